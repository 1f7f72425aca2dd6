# The benchmark suite: each case makes its data (deterministically) and names
# the model. Shared by run.R (timing, in one process) and memory.R (peak
# memory, one fresh process per fit).

simulate_slopes <- function(n, groups, seed = 1) {
  set.seed(seed)
  g <- sample.int(groups, n, replace = TRUE)
  x <- rnorm(n)
  b0 <- rnorm(groups, sd = 1)
  b1 <- rnorm(groups, sd = 0.5)
  data.frame(y = 1 + 0.5 * x + b0[g] + b1[g] * x + rnorm(n), x = x, g = g)
}

simulate_binary <- function(n, groups, seed = 1) {
  set.seed(seed)
  g <- sample.int(groups, n, replace = TRUE)
  d <- data.frame(x1 = rnorm(n), x2 = rbinom(n, 1, 0.4), g = g)
  d$y <- rbinom(n, 1, stats::plogis(-0.5 + 0.6 * d$x1 - 0.4 * d$x2 + rnorm(groups, 0, 0.8)[g]))
  d
}

simulate_three_level <- function(n, schools, classes_per_school, seed = 1) {
  set.seed(seed)
  classes <- schools * classes_per_school
  class <- sample.int(classes, n, replace = TRUE)
  school <- (class - 1L) %/% classes_per_school + 1L
  x <- rnorm(n)
  data.frame(y = 2 + 0.3 * x + rnorm(schools)[school] + rnorm(classes, sd = 0.5)[class] + rnorm(n),
             x = x, school = school, class = class)
}

bench_cases <- list(
  sleepstudy = list(
    data = function() { e <- new.env(); utils::data("sleepstudy", package = "lme4", envir = e); e$sleepstudy },
    formula = Reaction ~ Days + (Days | Subject), reps = 20L, label = "sleepstudy `(Days | Subject)`"),
  hsb = list(
    data = function() { e <- new.env(); utils::data("Hsb82", package = "mlmRev", envir = e); e$Hsb82 },
    formula = mAch ~ meanses * cses + sector * cses + (1 + cses | school), reps = 20L,
    label = "Hsb82 `meanses * cses + sector * cses + (cses | school)`"),
  insteval = list(
    data = function() { e <- new.env(); utils::data("InstEval", package = "lme4", envir = e); e$InstEval },
    formula = y ~ service + (1 | s) + (1 | d) + (1 | dept:service), reps = 3L,
    label = "InstEval `service + (1 | s) + (1 | d) + (1 | dept:service)`"),
  nested_1e5 = list(
    data = function() simulate_slopes(1e5, 1e4), formula = y ~ x + (x | g), reps = 5L,
    label = "simulated 1e5 rows, 10,000 groups, `(x | g)`"),
  nested_1e6 = list(
    data = function() simulate_slopes(1e6, 1e4), formula = y ~ x + (x | g), reps = 3L,
    label = "simulated 1e6 rows, 10,000 groups, `(x | g)`"),
  three_level_1e6 = list(
    data = function() simulate_three_level(1e6, 2000L, 10L), formula = y ~ x + (1 | school / class), reps = 3L,
    label = "simulated 1e6 pupils, 20,000 classes in 2,000 schools, `(1 | school/class)`"),
  contraception = list(
    data = function() { e <- new.env(); utils::data("Contraception", package = "mlmRev", envir = e); e$Contraception },
    formula = use ~ age + I(age^2) + urban + livch + (1 | district), family = stats::binomial, reps = 20L,
    label = "Contraception, binomial `(1 | district)` (Laplace)"),
  binomial_1e6 = list(
    data = function() simulate_binary(1e6, 1e4), formula = y ~ x1 + x2 + (1 | g), family = stats::binomial, reps = 2L,
    label = "simulated binary, 1e6 rows, 10,000 groups, `(1 | g)` (Laplace)"),
  nested_1e7 = list(
    data = function() simulate_slopes(1e7, 1e5), formula = y ~ x + (x | g), reps = 2L, lme4 = FALSE,
    label = "simulated 1e7 rows, 100,000 groups, `(x | g)` (mlmfit only)")
)

scaling_sizes <- c(1e4, 1e5, 1e6, 1e7)
scaling_case <- function(n) {
  list(data = function() simulate_slopes(n, max(100, n / 100)), formula = y ~ x + (x | g),
       reps = if (n <= 1e5) 5L else 2L, lme4 = n <= 1e6,
       label = sprintf("%g rows, %g groups", n, max(100, n / 100)))
}

fit_with <- function(pkg, case, data) {
  if (is.null(case$family)) {
    if (pkg == "mlmfit") mlmfit::lmm(case$formula, data) else lme4::lmer(case$formula, data)
  } else {
    if (pkg == "mlmfit") mlmfit::glmm(case$formula, data, case$family) else lme4::glmer(case$formula, data, case$family)
  }
}

# The criterion both packages minimise: the REML criterion of linear mixed
# models, -2 log-likelihood (Laplace) of generalized ones.
criterion <- function(fit) {
  if (inherits(fit, "mlmfit_glmm") || inherits(fit, "glmerMod")) return(-2 * as.numeric(stats::logLik(fit)))
  if (inherits(fit, "mlmfit")) stats::deviance(fit) else lme4::REMLcrit(fit)
}
