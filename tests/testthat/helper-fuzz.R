# Random small datasets and formulas for the fuzz test (test-fuzz.R). Each
# case is drawn from its own seed, so that one case can be rebuilt alone:
#   case <- fuzz_case(20240607 + 17); lmm(case$formula, case$data, REML = case$REML, weights = .w)

fuzz_formulas <- c(
  "y ~ x + (1 | g)",
  "y ~ x + (x | g)",
  "y ~ x + (x || g)",
  "y ~ x + (0 + x | g)",
  "y ~ 1 + (1 | g)",
  "y ~ 0 + (1 | g)",
  "y ~ x + z + (1 | g)",
  "y ~ x + f + (1 | g)",
  "y ~ x + (1 | g) + (1 | h)",
  "y ~ x + (1 | g/h)",
  "y ~ x + (x | g) + (1 | h)",
  "y ~ x + I(2 * x) + (1 | g)"
)

fuzz_case <- function(seed) {
  set.seed(seed)
  pick <- function(x, ...) x[sample.int(length(x), 1L, ...)]
  k <- pick(c(1L, 2L, 3L, 5L, 8L, 15L, 30L, 60L))
  size_kind <- pick(c("one-two", "small", "mixed"))
  sizes <- switch(size_kind,
                  "one-two" = sample(1:2, k, replace = TRUE),
                  "small" = sample(2:6, k, replace = TRUE),
                  "mixed" = sample(1:15, k, replace = TRUE))
  g <- rep(seq_len(k), sizes)
  n <- length(g)
  x_scale <- 10^pick(c(-8, -4, 0, 0, 0, 3, 8))
  y_scale <- 10^pick(c(-6, 0, 0, 0, 4))
  x <- rnorm(n, pick(c(0, 0, 5))) * x_scale
  z <- rnorm(k)[g]                         # a group-level predictor
  f <- factor(sample(letters[1:pick(1:3)], n, replace = TRUE))
  h_kind <- pick(c("crossed", "nested"))
  h <- if (h_kind == "crossed") sample.int(pick(c(2L, 4L, 10L)), n, replace = TRUE) else sample.int(2L, n, replace = TRUE)
  b0 <- rnorm(k, sd = pick(c(0, 0.3, 1, 3)))
  b1 <- rnorm(k, sd = pick(c(0, 0.3, 1)))
  bh <- rnorm(max(h), sd = pick(c(0, 0.5)))
  y <- 1 + 0.5 * x / x_scale + 0.3 * z + b0[g] + b1[g] * x / x_scale + bh[h] + rnorm(n)
  y <- y * y_scale
  d <- data.frame(y = y, x = x, z = z, f = f, h = h,
                  g = switch(pick(c("integer", "character", "factor", "double")),
                             integer = g, character = paste0("s", g), factor = factor(g), double = g + 0.5))
  # Defects, each now and then: missing values, impossible values, degenerate responses.
  if (runif(1) < 0.3) {
    for (v in c("y", "x", "g")) d[[v]][sample.int(n, rbinom(1, n, 0.05))] <- NA
  }
  if (runif(1) < 0.04) d$x[sample.int(n, 1L)] <- pick(c(Inf, -Inf))
  if (runif(1) < 0.03) d$y[sample.int(n, 1L)] <- NaN
  if (runif(1) < 0.03) d$y <- 2
  if (runif(1) < 0.03) d$y <- ave(d$y, d$g)
  weights <- NULL
  if (runif(1) < 0.15) {
    weights <- runif(n, 0.2, 3)
    if (runif(1) < 0.2) weights[sample.int(n, 1L)] <- -1
  }
  list(seed = seed, data = d, weights = weights, REML = runif(1) < 0.6, x_scale = x_scale,
       formula = stats::as.formula(pick(fuzz_formulas), env = globalenv()))
}

fuzz_describe <- function(case) {
  sprintf("fuzz case seed %d: %s, n = %d, REML = %s, weights = %s", case$seed, deparse1(case$formula),
          nrow(case$data), case$REML, !is.null(case$weights))
}

# Run a call, collecting its warnings and messages; errors are returned.
collect_conditions <- function(expr) {
  warnings <- character()
  messages <- character()
  value <- tryCatch(withCallingHandlers(expr,
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      messages <<- c(messages, conditionMessage(m))
      invokeRestart("muffleMessage")
    }), error = function(e) e)
  list(value = value, warnings = warnings, messages = messages)
}

fit_fuzz_case <- function(case, fitter) {
  .w <- case$weights
  formula <- case$formula
  environment(formula) <- environment()  # where model.frame() finds .w
  collect_conditions(fitter(formula, data = case$data, REML = case$REML, weights = .w))
}

# lme4's fit object at a given theta (its optimiser switched off): its
# deviance, fixed effects, standard errors, variance components and
# conditional modes at exactly the point mlmfit reports, whatever either
# optimiser does.
lme4_at_theta <- function(case, theta) {
  .w <- case$weights
  formula <- case$formula
  environment(formula) <- environment()
  control <- lme4::lmerControl(optimizer = NULL, calc.derivs = FALSE, check.rankX = "silent.drop.cols",
                               check.scaleX = "ignore", check.nobs.vs.nlev = "ignore",
                               check.nlev.gtreq.5 = "ignore", check.nobs.vs.nRE = "ignore",
                               check.nlev.gtr.1 = "ignore", check.conv.singular = "ignore")
  at_start <- lme4::lmer(formula, data = case$data, REML = case$REML, weights = .w, control = control)
  order <- names(lme4::getME(at_start, "theta"))
  lme4::lmer(formula, data = case$data, REML = case$REML, weights = .w, control = control,
             start = list(theta = unname(theta[order])))
}

# The same case with x back on a unit scale (lme4 cannot work with x of
# order 1e8; mlmfit's fit must describe the same model either way).
rescale_fuzz_case <- function(case) {
  case$data$x <- case$data$x / case$x_scale
  case$x_scale <- 1
  case
}

# Is lme4's fit clean: no error, warning or message, not singular, finite?
lme4_clean <- function(l, reml) {
  !inherits(l$value, "error") && length(l$warnings) == 0L && length(l$messages) == 0L &&
    !lme4::isSingular(l$value) && is.finite(lme4_criterion(l$value, reml))
}

lme4_criterion <- function(ref, reml) {
  if (reml && length(lme4::fixef(ref)) == 0L) return(lme4::getME(ref, "devcomp")$cmp[["dev"]])
  if (reml) lme4::REMLcrit(ref) else stats::deviance(ref)
}

# Is lme4's optimum below the deviance everywhere further out along its ray
# (10 to 1e6 times theta, where lme4 can evaluate it)? If not, the deviance
# is flat there or falls without limit (sigma -> 0): no maximum of the
# likelihood, as mlmfit says when it refuses such a fit.
lme4_ray_rises <- function(case, theta) {
  .w <- case$weights
  formula <- case$formula
  environment(formula) <- environment()
  devfun <- lme4::lmer(formula, data = case$data, REML = case$REML, weights = .w, devFunOnly = TRUE)
  at <- devfun(theta)
  # lme4 cannot evaluate every point far out; those it can are the evidence.
  further <- vapply(10^(1:6), function(s) tryCatch(devfun(s * theta), error = function(e) NA_real_), numeric(1))
  further <- further[is.finite(further)]
  length(further) >= 2L && all(further > at + 1e-6)
}

# Does the fit agree with ref within the contract? (expect_lme4_agreement
# as a yes or no: its failures are caught here, not reported.)
agrees_with_lme4 <- function(fit, ref) {
  tryCatch({
    expect_lme4_agreement(fit, ref)
    TRUE
  }, expectation_failure = function(e) FALSE)
}

# lme4 again from its own optimum with tight tolerances: where the
# likelihood is flat, lme4's default stopping rule leaves it short.
lme4_polished <- function(case, theta) {
  .w <- case$weights
  formula <- case$formula
  environment(formula) <- environment()
  control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                               calc.derivs = FALSE)
  lme4::lmer(formula, data = case$data, REML = case$REML, weights = .w, control = control,
             start = list(theta = theta))
}
