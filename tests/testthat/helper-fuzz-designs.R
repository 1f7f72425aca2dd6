# The second fuzz generator (test-fuzz-designs.R): multilevel designs as a
# study would have them, unlike the first generator's formulas over small
# random data (helper-fuzz.R). One to three grouping factors, each nested in
# the one before or crossed with it; random slopes, correlated or not
# (`||`); unbalanced group sizes; missing values (dropped with na.omit or
# kept in place with na.exclude); prior weights; and residual correlation
# or variance structures, compared with nlme::lme(). Each case is drawn from
# its own seed: design_case(seed) rebuilds one alone.

design_structures <- c("corAR1", "corCAR1", "corCompSymm", "varIdent", "varPower", "varExp")

design_case <- function(seed) {
  set.seed(seed)
  pick <- function(x) x[[sample.int(length(x), 1L)]]
  structure <- if (stats::runif(1) < 0.35) pick(design_structures) else "none"
  # nlme's lme() fits these structures with one grouping factor here
  n_factors <- if (structure == "none") pick(1:3) else 1L
  k1 <- pick(c(5L, 8L, 12L, 20L, 40L))
  sizes <- 1L + stats::rpois(k1, pick(c(2, 4, 8)))
  g1 <- rep(seq_len(k1), sizes)
  n <- length(g1)
  d <- data.frame(g1 = paste0("a", g1), x = round(stats::rnorm(n, pick(c(0, 3))), 3),
                  time = sequence(sizes))
  d$ctime <- stats::ave(stats::runif(n, 0.5, 1.5), g1, FUN = cumsum)
  d$v <- stats::runif(n, 0.5, 3)
  d$s <- sample(c("F", "M"), n, replace = TRUE)
  slope_kind <- pick(c("none", "none", "correlated", "uncorrelated"))
  term1 <- switch(slope_kind, none = "(1 | g1)", correlated = "(x | g1)", uncorrelated = "(x || g1)")
  sd_slope <- if (slope_kind == "none") 0 else pick(c(0, 0.2, 0.5))
  eta <- 1 + 0.5 * d$x + stats::rnorm(k1, sd = pick(c(0, 0.3, 1, 1)))[g1] + stats::rnorm(k1, sd = sd_slope)[g1] * d$x
  terms <- term1
  nesting <- character()
  for (j in seq_len(n_factors - 1L)) {
    kind <- pick(c("nested", "crossed"))
    nesting <- c(nesting, kind)
    levels_j <- if (kind == "nested") pick(2:4) else pick(c(3L, 6L, 12L))
    code <- sample.int(levels_j, n, replace = TRUE)
    name <- paste0("g", j + 1L)
    outer <- paste0("g", j)
    if (kind == "nested") {
      # nested codes, either unique across the outer factor or repeated and written outer:inner
      if (stats::runif(1) < 0.5) {
        d[[name]] <- paste(d[[outer]], code, sep = ".")
        terms <- c(terms, sprintf("(1 | %s)", name))
      } else {
        d[[name]] <- code
        terms <- c(terms, sprintf("(1 | %s:%s)", outer, name))
      }
      group <- paste(d[[outer]], code)
    } else {
      d[[name]] <- paste0(letters[j + 1L], code)
      terms <- c(terms, sprintf("(1 | %s)", name))
      group <- d[[name]]
    }
    eta <- eta + stats::rnorm(length(unique(group)), sd = pick(c(0, 0.5)))[match(group, unique(group))]
  }
  # residuals: the structure's correlation within g1 or its variance function
  e <- stats::rnorm(n)
  rho <- pick(c(0.3, 0.7))
  if (structure %in% c("corAR1", "corCAR1")) {
    e <- unlist(lapply(split(e, g1), function(z) as.vector(stats::filter(z * sqrt(1 - rho^2), rho, "recursive"))))
  }
  if (structure == "corCompSymm") e <- sqrt(1 - rho) * e + sqrt(rho) * stats::rnorm(k1)[g1]
  e <- e * switch(structure, varIdent = ifelse(d$s == "F", 0.5, 1.5), varPower = d$v^0.7,
                  varExp = exp(0.4 * d$v), 1)
  d$y <- eta + e
  if (stats::runif(1) < 0.3) {
    d$y[sample.int(n, stats::rbinom(1, n, 0.06))] <- NA
    d$x[sample.int(n, stats::rbinom(1, n, 0.03))] <- NA
  }
  weights <- if (structure == "none" && stats::runif(1) < 0.25) round(stats::runif(n, 0.3, 3), 2) else NULL
  correlation <- switch(structure,
                        corAR1 = nlme::corAR1(form = ~ time | g1),
                        corCAR1 = nlme::corCAR1(form = ~ ctime | g1),
                        corCompSymm = nlme::corCompSymm(form = ~ 1 | g1), NULL)
  variance <- switch(structure,
                     varIdent = nlme::varIdent(form = ~ 1 | s),
                     varPower = nlme::varPower(form = ~ v),
                     varExp = nlme::varExp(form = ~ v), NULL)
  list(seed = seed, data = d, weights = weights, REML = stats::runif(1) < 0.5,
       na_action = if (stats::runif(1) < 0.5) "na.exclude" else "na.omit",
       formula = stats::as.formula(paste("y ~ x +", paste(terms, collapse = " + ")), env = globalenv()),
       structure = structure, correlation = correlation, variance = variance, slope_kind = slope_kind,
       nesting = nesting)
}

design_describe <- function(case) {
  sprintf("design case seed %d: %s, n = %d, REML = %s, weights = %s, %s, structure %s", case$seed,
          deparse1(case$formula), nrow(case$data), case$REML, !is.null(case$weights), case$na_action,
          case$structure)
}

fit_design_lmm <- function(case) {
  .w <- case$weights
  formula <- case$formula
  environment(formula) <- environment()  # where the model frame finds .w
  na_action <- get(case$na_action, envir = asNamespace("stats"))
  collect_conditions(lmm(formula, data = case$data, REML = case$REML, weights = .w, na.action = na_action,
                         correlation = case$correlation, variance = case$variance))
}

# lme4's fit of an unstructured case (with the fuzz helpers' calling convention).
fit_design_lme4 <- function(case) {
  fit_fuzz_case(case, function(formula, data, REML, weights) {
    environment(formula) <- environment()
    lme4::lmer(formula, data = data, REML = REML, weights = weights, na.action = stats::na.omit)
  })
}

# nlme's lme() of a structured case: the same random part for g1.
fit_design_nlme <- function(case) {
  random <- switch(case$slope_kind,
                   none = list(g1 = nlme::pdSymm(~ 1)),
                   correlated = list(g1 = nlme::pdSymm(~ x)),
                   uncorrelated = list(g1 = nlme::pdDiag(~ x)))
  collect_conditions(nlme::lme(y ~ x, data = case$data, random = random, method = if (case$REML) "REML" else "ML",
                               correlation = case$correlation, weights = case$variance, na.action = stats::na.omit,
                               control = nlme::lmeControl(maxIter = 200, msMaxIter = 200, niterEM = 50,
                                                          returnObject = TRUE)))
}

# Fixed effects and their standard errors of a fit and an nlme fit.
expect_same_fixed_effects <- function(fit, ref) {
  testthat::expect_equal(unname(fixef(fit)), unname(nlme::fixef(ref)), tolerance = 1e-3)
  testthat::expect_equal(sqrt(diag(vcov(fit))), sqrt(diag(stats::vcov(ref))), tolerance = 2e-3, ignore_attr = TRUE)
}

# varIdent fits: fixed effects and the residual SD of every stratum,
# whichever stratum each package takes as the reference.
expect_same_stratum_sds <- function(fit, ref) {
  expect_same_fixed_effects(fit, ref)
  ratios <- residual_parameters(fit)
  strata <- unique(as.character(ref$data$s))
  sds <- stats::setNames(rep(sigma(fit), length(strata)), strata)
  sds[names(ratios)] <- sigma(fit) * ratios
  sds_ref <- ref$sigma * stats::coef(ref$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
  testthat::expect_equal(sds[names(sds_ref)], sds_ref, tolerance = 2e-3)
}
