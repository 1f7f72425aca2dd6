# Random binomial and Poisson GLMM designs for the test of glmm() against
# glmer and glmmTMB (test-glmm-designs.R): one to three grouping factors,
# nested or crossed, random slopes, uncorrelated terms (||), unbalanced
# groups. Each case is drawn from its own seed, so that one case can be
# rebuilt alone:
#   case <- glmm_design_case(7001); glmm(case$formula, case$data, family = case$family)

glmm_design_formulas <- list(
  `1` = c("y ~ x + (1 | g1)",
          "y ~ x + (x | g1)",
          "y ~ x + (x || g1)",
          "y ~ x + k + (0 + x | g1)",
          "y ~ x + k + (1 + k | g1)"),
  `2` = c("y ~ x + (1 | g1) + (1 | g2)",
          "y ~ x + (x | g1) + (1 | g2)",
          "y ~ x + (x | g1) + (x | g2)",
          "y ~ x + (x || g1) + (1 | g2)",
          "y ~ x + k + (0 + x | g1) + (1 | g1:g2)",
          "y ~ x + (1 | g1/g2)"),
  `3` = c("y ~ x + (1 | g1) + (1 | g1:g2) + (1 | g1:g2:g3)",
          "y ~ x + k + (0 + x | g1) + (1 | g1:g2) + (1 | g1:g2:g3)",
          "y ~ x + (1 | g1) + (1 | g2) + (1 | g3)",
          "y ~ x + (x || g1) + (1 | g2) + (1 | g3)",
          "y ~ x + (x | g1) + (1 | g1:g2) + (1 | g3)")
)

glmm_design_case <- function(seed) {
  set.seed(seed)
  pick <- function(x) x[[sample.int(length(x), 1L)]]
  family <- pick(c("binomial", "binomial", "poisson"))
  n_factors <- pick(1:3)
  nesting <- pick(c("nested", "crossed"))
  formula <- pick(glmm_design_formulas[[as.character(n_factors)]])
  # The first factor: groups of unequal size.
  k1 <- pick(c(6L, 10L, 20L, 40L))
  sizes <- switch(pick(c("balanced", "mixed", "skewed")),
                  balanced = rep(pick(c(4L, 8L, 15L)), k1),
                  mixed = sample(2:20, k1, replace = TRUE),
                  skewed = pmax(1L, round(stats::rexp(k1, 1 / 10))))
  g1 <- rep(seq_len(k1), sizes)
  n <- length(g1)
  # The second and third: within g1 (nested) or across it (crossed).
  level_within <- function(m) sample.int(m, n, replace = TRUE)
  g2 <- level_within(pick(c(2L, 3L, 5L)))
  g3 <- level_within(pick(c(2L, 4L)))
  if (nesting == "crossed") {
    g2 <- level_within(pick(c(4L, 8L, 15L)))
    g3 <- level_within(pick(c(3L, 6L, 10L)))
  }
  x <- stats::rnorm(n)
  k <- stats::rbinom(n, 1L, 0.4)
  sd_of <- function() pick(c(0, 0.2, 0.5, 1))
  intercept <- if (family == "poisson") pick(c(-1, 0.5, 2)) else pick(c(-1.5, 0, 0.8))
  eta <- intercept + 0.4 * x - 0.3 * k
  eta <- eta + stats::rnorm(k1, sd = sd_of())[g1] + stats::rnorm(k1, sd = sd_of())[g1] * x
  eta <- eta + stats::rnorm(max(g2) * k1, sd = sd_of())[(g1 - 1L) * max(g2) + g2]  # g1:g2 effects
  eta <- eta + stats::rnorm(max(g2), sd = sd_of())[g2]                            # g2 effects (crossed)
  eta <- eta + stats::rnorm(max(g3) * max(g2) * k1, sd = sd_of())[((g1 - 1L) * max(g2) + g2 - 1L) * max(g3) + g3]
  eta <- eta + stats::rnorm(max(g3), sd = sd_of())[g3]
  trials <- NULL
  y <- if (family == "poisson") {
    stats::rpois(n, exp(eta))
  } else if (stats::runif(1) < 0.7) {
    stats::rbinom(n, 1L, stats::plogis(eta))
  } else {
    trials <- sample(2:10, n, replace = TRUE)
    stats::rbinom(n, trials, stats::plogis(eta)) / trials
  }
  d <- data.frame(y = y, x = x, k = k, g1 = factor(g1), g2 = factor(g2), g3 = factor(g3))
  list(seed = seed, family = family, formula = stats::as.formula(formula, env = globalenv()), data = d,
       trials = trials, nesting = nesting)
}

glmm_design_describe <- function(case) {
  sprintf("glmm design seed %d: %s %s (%s), n = %d%s", case$seed, case$family, deparse1(case$formula),
          case$nesting, nrow(case$data), if (is.null(case$trials)) "" else ", binomial counts")
}

# Fit a case with one of glmm(), lme4::glmer() or glmmTMB::glmmTMB(),
# collecting warnings and messages (collect_conditions, helper-fuzz.R).
fit_glmm_design <- function(case, package = c("mlmfit", "lme4", "glmmTMB")) {
  package <- match.arg(package)
  .w <- case$trials
  formula <- case$formula
  environment(formula) <- environment()  # where model.frame() finds .w
  family <- get(case$family, mode = "function")
  collect_conditions(switch(package,
    mlmfit = glmm(formula, case$data, family = family, weights = .w),
    lme4 = lme4::glmer(formula, case$data, family = family, weights = .w),
    glmmTMB = glmmTMB::glmmTMB(formula, case$data, family = family, weights = .w)))
}

# -2 log-likelihood of a fit of any of the three packages (NA when it failed).
design_deviance <- function(result) {
  fit <- result$value
  if (inherits(fit, "error") || is.null(fit)) return(NA_real_)
  value <- tryCatch(-2 * as.numeric(stats::logLik(fit)), error = function(e) NA_real_)
  if (is.finite(value)) value else NA_real_
}

# glmer's -2 log-likelihood at given (theta, beta) with PIRLS converged
# tightly: glmer's default tolPwrss = 1e-7 stops PIRLS early and takes the
# Laplace term at the weights of the previous iterate, which moves its
# reported deviance by up to 1e-3 either way (test-glmm-optimum.R); so
# do tolPwrss = 1e-10 (design seed 7009: 5.8e-4) and 1e-13 (seed 9010:
# 1.4e-5); at 1e-14 glmer's value agrees with mlmfit's at the same
# estimates within 1e-7.
glmer_deviance_at <- function(case, theta, beta) {
  .w <- case$trials
  formula <- case$formula
  environment(formula) <- environment()
  family <- get(case$family, mode = "function")
  # where PIRLS cannot reach 1e-14 (large deviances), the tightest it reaches
  for (tol in c(1e-14, 1e-13, 1e-12)) {
    value <- tryCatch({
      devfun <- suppressWarnings(suppressMessages(lme4::glmer(formula, case$data, family = family, weights = .w,
                                                              control = lme4::glmerControl(tolPwrss = tol),
                                                              devFunOnly = TRUE)))
      devfun(c(unname(theta), unname(beta)))
    }, error = function(e) NA_real_)
    if (is.finite(value)) return(value)
  }
  NA_real_
}

glmer_accurate_deviance <- function(case, fit) {
  glmer_deviance_at(case, lme4::getME(fit, "theta"), lme4::fixef(fit))
}

# glmer restarted from its own estimates (lme4's advice when it warns of
# non-convergence). lme4 1.1-31 rounds differently from one R process to
# another (its CHOLMOD ordering follows the address lme4.so was loaded at,
# tools/glmm-designs.R), and where its Nelder-Mead stops on a flat surface
# that moves its deviance (design seed 10278: 100.35904 in some processes,
# 100.35840 in others); restarted, it ends within 1e-5 of 100.35839 from
# either.
glmer_restarted <- function(case, fit) {
  .w <- case$trials
  formula <- case$formula
  environment(formula) <- environment()
  family <- get(case$family, mode = "function")
  start <- list(theta = lme4::getME(fit, "theta"), fixef = lme4::fixef(fit))
  collect_conditions(lme4::glmer(formula, case$data, family = family, weights = .w, start = start))
}

# The reference for a case: glmer's -2 log-likelihood (at its estimates,
# accurately), and where glmer warns or fails, the best of glmer's, glmer's
# restarted from its estimates and glmmTMB's.
design_reference <- function(case) {
  l <- fit_glmm_design(case, "lme4")
  ref <- design_deviance(l)
  if (is.finite(ref)) {
    accurate <- glmer_accurate_deviance(case, l$value)
    if (is.finite(accurate)) ref <- accurate
  }
  source <- "glmer"
  if (length(l$warnings) > 0L && is.finite(ref)) {
    again <- glmer_restarted(case, l$value)
    restarted <- if (inherits(again$value, "error")) NA_real_ else glmer_accurate_deviance(case, again$value)
    if (is.finite(restarted) && restarted < ref) {
      ref <- restarted
      source <- "glmer restarted"
    }
  }
  if ((length(l$warnings) > 0L || !is.finite(ref)) && requireNamespace("glmmTMB", quietly = TRUE)) {
    t <- design_deviance(fit_glmm_design(case, "glmmTMB"))
    if (is.finite(t) && (!is.finite(ref) || t < ref)) {
      ref <- t
      source <- "glmmTMB"
    }
  }
  list(deviance = ref, source = source, lme4 = l)
}

# One case: mlmfit's deviance minus the reference's (NA when either did not
# fit). Where mlmfit's is lower, glmer's deviance function at mlmfit's
# estimates too (confirmed: its value there agrees with mlmfit's).
run_glmm_design <- function(case) {
  m <- fit_glmm_design(case, "mlmfit")
  ref <- design_reference(case)
  gap <- design_deviance(m) - ref$deviance
  confirmed <- NA_real_
  if (is.finite(gap) && gap < -1e-6) {
    # theta in lme4's order of terms (getME(), mlmfit's method)
    confirmed <- glmer_deviance_at(case, lme4::getME(m$value, "theta"), fixef(m$value))
  }
  list(case = case, mlmfit = m, reference = ref, gap = gap, lower_confirmed_by_glmer = confirmed)
}

# Does glmer's deviance function at mlmfit's estimates give mlmfit's
# deviance (within 1e-5, or 1e-8 relative: glmer's PIRLS at tolPwrss =
# 1e-13 on a deviance of 1e4 is off by 2e-5)?
lower_confirmed <- function(r) {
  dev <- -2 * as.numeric(logLik(r$mlmfit$value))
  abs(dev - r$lower_confirmed_by_glmer) < 1e-5 + 1e-8 * abs(dev)
}

# A summary of many cases: how many fitted, how many missed the reference.
summarise_glmm_designs <- function(runs, tol = 1e-4) {
  gaps <- vapply(runs, `[[`, numeric(1), "gap")
  refused <- vapply(runs, function(r) inherits(r$mlmfit$value, "error"), logical(1))
  unconfirmed <- vapply(runs, function(r) {
    is.finite(r$gap) && r$gap < -1e-6 && !isTRUE(lower_confirmed(r))
  }, logical(1))
  list(cases = length(runs), compared = sum(is.finite(gaps)), refused = sum(refused),
       mismatches = sum(gaps > tol, na.rm = TRUE), lower = sum(gaps < -tol, na.rm = TRUE),
       lower_unconfirmed = sum(unconfirmed),
       worst = if (any(is.finite(gaps))) max(gaps, na.rm = TRUE) else NA_real_,
       missed = Filter(function(r) is.finite(r$gap) && r$gap > tol, runs))
}
