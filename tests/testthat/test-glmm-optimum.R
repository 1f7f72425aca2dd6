# glmm() reaches the optimum glmer reaches: variances that the first stage
# must not leave at zero (zero is a stationary point of the deviance in each
# standard deviation, whatever the data), PIRLS on any scale of the linear
# predictor and of the predictors, standard errors from the Hessian, and
# fits of a million rows that stop at the noise floor of the deviance.
skip_if_not_installed("lme4")

# glmer with its PIRLS converged tightly. glmer's default tolPwrss = 1e-7
# (relative to the penalised deviance) stops PIRLS early and takes the
# Laplace term at the weights of the previous iterate: its deviance moves
# by up to 1e-3, and its finite-difference Hessian (steps of 1e-4), hence
# its standard errors, by up to about 1% (cbpp: 0.2312 for the intercept
# against 0.2325). At tolPwrss = 1e-14 glmer's Hessian stops changing and
# its standard errors agree with mlmfit's within 3e-5 (cbpp, Contraception,
# Poisson), as with the Hessian of the Laplace deviance computed by hand in
# test-glmm-laplace.R.
glmer_tight <- function(formula, data, family, ...) {
  suppressWarnings(lme4::glmer(formula, data, family, control = lme4::glmerControl(tolPwrss = 1e-14), ...))
}

expect_glmer_standard_errors <- function(fit, ref, tol = 1e-3) {
  se <- sqrt(diag(vcov(fit)))
  se_ref <- sqrt(diag(as.matrix(stats::vcov(ref))))
  expect_identical(fit_vcov_method(fit), "hessian")
  expect_lt(max(abs(unname(se) / unname(se_ref) - 1)), tol)
}

test_that("a random-intercept variance is not left at zero (issue example, nAGQ = 0, 1 and 5)", {
  set.seed(6)
  d <- data.frame(g = rep(1:20, each = 10), x = rnorm(200))
  d$y <- rbinom(200, 1, plogis(0.3 + 0.2 * d$x + rnorm(20, sd = .5)[d$g]))
  for (nAGQ in c(0L, 1L, 5L)) {
    f <- glmm(y ~ x + (1 | g), d, family = binomial, nAGQ = nAGQ)
    g <- lme4::glmer(y ~ x + (1 | g), d, family = binomial, nAGQ = nAGQ)
    expect_lt(-2 * as.numeric(logLik(f)) - (-2 * as.numeric(logLik(g))), 1e-4)
    expect_equal(unname(fit_theta(f)), unname(lme4::getME(g, "theta")), tolerance = 2e-3)
  }
  expect_equal(-2 * as.numeric(logLik(glmm(y ~ x + (1 | g), d, family = binomial))), 242.1923, tolerance = 1e-6)
})

test_that("the nurse-turnover simulation with seed 3: the hospital variance is not left at zero, as glmer", {
  # the simulation is the one that built the package's data (seed 1)
  expect_identical(simulate_nurseturnover(1), nurseturnover)
  d <- simulate_nurseturnover(3)
  fm <- leave ~ fam + valued + age + sex + INN_OUT + (1 | HOSPITAL)
  f <- glmm(fm, d, family = binomial, subset = age > 18)
  g <- glmer_tight(fm, d[d$age > 18, ], binomial)
  # glmm() used to stop at SD 0 with -2 log-likelihood 1701.50: zero is a
  # stationary point of the deviance, and the first quasi-Newton step of
  # stage 1 went past the bound
  expect_equal(-2 * as.numeric(logLik(f)), 1696.6298, tolerance = 1e-5 / 1696.63)
  expect_lt(-2 * as.numeric(logLik(f)) + 2 * as.numeric(logLik(g)), 1e-4)
  expect_equal(unname(fit_theta(f)), unname(lme4::getME(g, "theta")), tolerance = 1e-3)
  expect_equal(fixef(f), lme4::fixef(g), tolerance = 1e-4)
  expect_false(is_singular(f))
})

# Small binomial and Poisson data with a true standard deviation of 0.1 to
# 0.5, where a quarter to a half of the seeds used to end at zero.
small_variance_case <- function(seed, family) {
  set.seed(seed)
  k <- sample(c(10L, 20L, 40L), 1L)
  d <- data.frame(g = rep(seq_len(k), sample(c(5L, 10L, 20L), 1L)))
  d$x <- rnorm(nrow(d))
  eta <- 0.3 + 0.2 * d$x + rnorm(k, sd = sample(c(0.1, 0.2, 0.3, 0.5), 1L))[d$g]
  d$y <- if (family == "poisson") rpois(nrow(d), exp(eta)) else rbinom(nrow(d), 1L, plogis(eta))
  d
}

check_small_variance_seeds <- function(seeds) {
  for (family in c("binomial", "poisson")) {
    for (seed in seeds) {
      d <- small_variance_case(seed, family)
      fam <- get(family, mode = "function")
      f <- suppressMessages(glmm(y ~ x + (1 | g), d, family = fam))
      g <- suppressMessages(lme4::glmer(y ~ x + (1 | g), d, family = fam))
      gap <- -2 * as.numeric(logLik(f)) + 2 * as.numeric(logLik(g))
      expect_lt(gap, 1e-4, label = sprintf("%s seed %d: mlmfit's -2 log-likelihood minus glmer's", family, seed))
      if (lme4::getME(g, "theta") > 0.05) {
        expect_gt(unname(fit_theta(f)), 0, label = sprintf("%s seed %d: the standard deviation", family, seed))
      }
    }
  }
}

test_that("small variances over many seeds, binomial and Poisson, as glmer", {
  check_small_variance_seeds(1:20)
})

test_that("small variances over many seeds: the full tier", {
  skip_unless_full_tests()
  check_small_variance_seeds(21:120)
})

# Poisson counts with log-means around 15, 20 groups of 10: the fits of
# mlmfit and glmer (which warns "rescale variables?").
large_count_fits <- function(seed) {
  set.seed(seed)
  d <- data.frame(g = rep(1:20, each = 10), x = rnorm(200))
  d$y <- rpois(200, exp(15 + 0.3 * d$x + rnorm(20, sd = .3)[d$g]))
  list(f = glmm(y ~ x + (1 | g), d, family = poisson),
       g = suppressWarnings(lme4::glmer(y ~ x + (1 | g), d, family = poisson)))
}

test_that("PIRLS with large Poisson counts (log-means around 15), as glmer", {
  for (seed in 1:3) {
    fits <- large_count_fits(seed)
    f <- fits$f
    g <- fits$g
    expect_lt(-2 * as.numeric(logLik(f)) + 2 * as.numeric(logLik(g)), 1e-4)
    expect_equal(fixef(f), lme4::fixef(g), tolerance = 1e-5)
    expect_equal(unname(fit_theta(f)), unname(lme4::getME(g, "theta")), tolerance = 1e-3)
  }
})

test_that("large Poisson counts: the Hessian in optinfo is glmer's, and stage 2 does not wander", {
  # M = Lambda'Z'WZ Lambda + I is ~3e6 here: modes within the tolerance in u
  # left a residual of their equation that spoilt the gradient's differences
  # (theta-theta entry -5e-4 instead of 728, 451 evaluations on seed 2)
  for (seed in 2:3) {
    fits <- large_count_fits(seed)
    f <- fits$f
    g <- fits$g
    # each entry relative to its own size (x's entry, ~1e10, would swamp a joint comparison)
    expect_lt(max(abs(diag(f$optinfo$hessian) / diag(g@optinfo$derivs$Hessian) - 1)), 2e-3)
    expect_lt(f$optinfo$evals, 60)
  }
})

test_that("predictors on scales from 1e-8 to 1e8: the fit of the unscaled model, as glmer's", {
  for (seed in c(1L, 2L, 14L, 17L, 29L, 40L)) {
    set.seed(seed)
    k <- sample(c(10, 30, 60), 1)
    d <- data.frame(g = rep(seq_len(k), each = sample(c(4, 10, 20), 1)))
    n <- nrow(d)
    d$x <- rnorm(n)
    d$z <- rnorm(n)
    eta <- 0.2 + 0.8 * d$x - 0.5 * d$z + rnorm(k, sd = sample(c(0.2, 0.5, 1), 1))[d$g] + rnorm(k, sd = 0.3)[d$g] * d$x
    d$y <- rbinom(n, 1, plogis(eta))
    f <- suppressWarnings(suppressMessages(glmm(y ~ x + z + (x | g), d, binomial)))
    g <- suppressWarnings(suppressMessages(lme4::glmer(y ~ x + z + (x | g), d, binomial)))
    expect_lt(-2 * as.numeric(logLik(f)) + 2 * as.numeric(logLik(g)), 1e-4)
    for (scale in c(1e3, if (seed <= 2L) c(1e-8, 1e8))) {
      d$xs <- d$x * scale
      d$zs <- d$z / scale
      fs <- suppressWarnings(suppressMessages(glmm(y ~ xs + zs + (xs | g), d, binomial)))
      expect_equal(as.numeric(logLik(fs)), as.numeric(logLik(f)), tolerance = 1e-7)
      expect_equal(unname(fixef(fs) * c(1, scale, 1 / scale)), unname(fixef(f)), tolerance = 1e-3)
      expect_equal(unname(fitted(fs)), unname(fitted(f)), tolerance = 1e-4)
    }
  }
})

test_that("fixed-effect standard errors agree with glmer's Hessian-based ones (cbpp, Contraception, Poisson)", {
  skip_if_not_installed("mlmRev")
  cbpp_formula <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  expect_glmer_standard_errors(test_fit("cbpp")$mlm, glmer_tight(cbpp_formula, lme4::cbpp, binomial))
  # glmer's default PIRLS tolerance gives about 1% smaller ones here
  se_default <- sqrt(diag(as.matrix(stats::vcov(test_fit("cbpp")$lme4))))
  expect_gt(max(abs(sqrt(diag(vcov(test_fit("cbpp")$mlm))) / se_default - 1)), 3e-3)

  fm <- use ~ age + I(age^2) + urban + livch + (1 | district)
  expect_glmer_standard_errors(test_fit("contraception")$mlm, glmer_tight(fm, contraception_data(), binomial))

  fits <- test_fit("poisson")
  expect_glmer_standard_errors(fits$mlm, glmer_tight(y ~ x + offset(log(exposure)) + (1 | g), fits$data, poisson))
})

test_that("a binary GLMM of a million rows stops at the noise floor of its deviance", {
  skip_unless_full_tests()
  set.seed(1)
  n <- 1e6
  g <- sample.int(1e4, n, replace = TRUE)
  d <- data.frame(x1 = rnorm(n), x2 = rbinom(n, 1, 0.4), g = g)
  d$y <- rbinom(n, 1, plogis(-0.5 + 0.6 * d$x1 - 0.4 * d$x2 + rnorm(1e4, 0, 0.8)[g]))
  f <- glmm(y ~ x1 + x2 + (1 | g), d, binomial)
  # the same rows in another order: sums rounded differently, the same fit
  p <- glmm(y ~ x1 + x2 + (1 | g), d[sample.int(n), ], binomial)
  expect_equal(as.numeric(logLik(p)), as.numeric(logLik(f)), tolerance = 1e-9)
  expect_equal(fixef(p), fixef(f), tolerance = 1e-5)
  expect_equal(unname(fit_theta(p)), unname(fit_theta(f)), tolerance = 1e-4)
  expect_lt(fit_optinfo(f)$evals, 200)
  expect_lt(fit_optinfo(p)$evals, 200)
  expect_length(fit_optinfo(f)$warnings, 0L)
})

# Binary data with a random slope whose variance is small: the fits end on
# the slope's bound (singular: perfectly correlated with the intercept) or
# close to it. Stage 2 takes Newton steps with an entry on its bound held
# there, and first moves an entry near its bound onto it or out along it
# (where the deviance curves down towards the bound, as it does when the
# variance is worth having); before, a quasi-Newton descent on finite
# differences walked there in ten-odd steps of 13 evaluations.
slope_data <- function(n, groups, seed) {
  set.seed(seed)
  g <- sample.int(groups, n, replace = TRUE)
  d <- data.frame(x1 = rnorm(n), x2 = rbinom(n, 1, 0.4), g = g)
  d$y <- rbinom(n, 1, plogis(-0.5 + 0.6 * d$x1 - 0.4 * d$x2 + rnorm(groups, 0, 0.8)[g]))
  d
}

test_that("a singular random-slope fit reaches glmer's optimum with the bound entry held", {
  for (seed in c(1, 4)) {
    d <- slope_data(3000, 60, seed)
    f <- suppressMessages(glmm(y ~ x1 + x2 + (x1 | g), d, binomial))
    ref <- suppressMessages(suppressWarnings(lme4::glmer(y ~ x1 + x2 + (x1 | g), d, binomial)))
    expect_true(is_singular(f))
    expect_identical(unname(fit_theta(f)[3]), 0)
    # glmer stops just off the bound (theta 1e-5 to 8e-5), 1e-5 to 1e-4 higher
    expect_lt(-2 * as.numeric(logLik(f)), -2 * as.numeric(stats::logLik(ref)) + 1e-6)
    expect_glmer_agreement(f, ref)
  }
})

# glmer (lme4 1.1-31, default control) on the data below: -2 log-likelihood
# and theta; mlmfit's -2 log-likelihood must be lower (by at most below:
# glmer's PIRLS tolerance leaves it 1e-4 to 2e-3 above) and its theta the
# same to 1e-3.
expect_below_glmer <- function(f, dev_glmer, theta_glmer, below = 1e-3) {
  dev <- -2 * as.numeric(logLik(f))
  expect_lt(dev, dev_glmer + 1e-6)
  expect_gt(dev, dev_glmer - below)
  expect_lt(max(abs(unname(fit_theta(f)) - theta_glmer)), 1e-3)
}

test_that("random-slope fits on and near the slope's bound: stage 2 on the analytic gradient, the slope held on its bound", {
  # singular (glmer: theta 2.6e-5 for the slope)
  f <- suppressMessages(glmm(y ~ x1 + x2 + (x1 | g), slope_data(2e4, 200, 2), binomial))
  expect_true(is_singular(f))
  expect_below_glmer(f, 23212.6980526, c(0.829370, -0.030855, 2.6e-5))
  # quasi-Newton steps on the gradient with the slope held on its bound,
  # one Hessian from differences of the gradient and the rules at the
  # optimum: 21; Newton steps on differences of the values took 108
  expect_lt(fit_optinfo(f)$stage2$evals, 40)

  # the slope's SD 0.0124, stage 1 ends on its bound where the deviance
  # curves down: the search out along it, then the gradient: 93 (Newton
  # steps on differences of the values 189; the descent on differences
  # took 858, most of them in recoveries from the bound)
  f <- suppressMessages(glmm(y ~ x1 + x2 + (x1 | g), slope_data(1.2e4, 120, 12), binomial))
  expect_false(is_singular(f))
  expect_below_glmer(f, 14108.6124848, c(0.731299, -0.021993, 0.012372))
  expect_lt(fit_optinfo(f)$stage2$evals, 150)
})

test_that("the random-slope fit of the speed benchmark (1e5 rows): stage 1 ends next to the slope's bound", {
  skip_unless_full_tests()
  f <- suppressMessages(glmm(y ~ x1 + x2 + (x1 | g), slope_data(1e5, 1e3, 1), binomial))
  expect_below_glmer(f, 115681.5294, c(0.796306, -0.002439, 0.047118), below = 5e-3)
  # 23 on the analytic gradient; 153 by Newton steps on differences of the
  # values, 219 with the descent on differences from next to the bound
  expect_lt(fit_optinfo(f)$stage2$evals, 50)
})

# Crossed factors with random slopes: stage 2 on the analytic gradient of
# several q x q terms. On finite differences it took 100 and 165
# evaluations here (quasi-Newton on the gradient: 11 and 13); the optimum
# is glmmTMB's (its -2 log-likelihood to 1e-7: 12320.2665730 and
# 12262.3940145; glmer 1.1-31 stops 5e-3 and 2e-3 above, at theta within
# 1.5e-4 of it).
crossed_slope_data <- function(n, na, nb, sd_slope_b, seed) {
  set.seed(seed)
  d <- data.frame(a = sample.int(na, n, TRUE), b = sample.int(nb, n, TRUE), x = rnorm(n))
  ra <- matrix(rnorm(2 * na), na) %*% chol(matrix(c(0.8, 0.1, 0.1, 0.2), 2))
  rb <- cbind(rnorm(nb, sd = 0.6), rnorm(nb, sd = sd_slope_b))
  d$y <- rbinom(n, 1, plogis(0.2 + 0.5 * d$x + ra[d$a, 1] + ra[d$a, 2] * d$x + rb[d$b, 1] + rb[d$b, 2] * d$x))
  d
}

test_that("crossed random-slope fits take stage 2 on the analytic gradient and reach glmmTMB's optimum", {
  d <- crossed_slope_data(1e4, 300, 60, 0.3, 5)
  f <- suppressMessages(glmm(y ~ x + (x | a) + (1 | b), d, binomial))
  expect_equal(-2 * as.numeric(logLik(f)), 12320.2665730, tolerance = 1e-5 / 12320)
  expect_lt(max(abs(unname(fit_theta(f)) - c(0.89015245, 0.07762493, 0.33549883, 0.54981823))), 1e-3)
  expect_lt(fit_optinfo(f)$stage2$evals, 40)
  f2 <- suppressMessages(glmm(y ~ x + (x | a) + (x | b), d, binomial))
  expect_equal(-2 * as.numeric(logLik(f2)), 12262.3940145, tolerance = 1e-5 / 12262)
  expect_lt(max(abs(unname(fit_theta(f2)) -
                      c(0.90247117, 0.09102568, 0.33538037, 0.55940789, 0.05386195, 0.26934711))), 1e-3)
  expect_lt(fit_optinfo(f2)$stage2$evals, 40)
})

test_that("crossed fits too large for stage 1's polish: whitening from stage 1's gradients, standard errors as glmer's", {
  skip_unless_full_tests()
  skip_if_not_installed("lme4")
  skip_if_not_installed("glmmTMB")
  # 2e4 rows and two terms: stage 1 has no Newton polish here, so whiten()
  # takes the curvature along theta from stage 1's analytic gradients and
  # stage 2 starts with the partials its last gradient took.
  set.seed(31)
  n <- 2e4
  d <- data.frame(a = factor(sample(300, n, TRUE)), b = factor(sample(60, n, TRUE)), x = rnorm(n), w = runif(n))
  d$y <- rbinom(n, 1, plogis(-0.4 + 0.5 * d$x - 0.3 * d$w + rnorm(300, sd = 0.8)[d$a] + rnorm(60, sd = 0.5)[d$b]))
  d$k <- rpois(n, exp(0.3 + 0.2 * d$x + rnorm(300, sd = 0.4)[d$a] + rnorm(60, sd = 0.3)[d$b]))
  f <- glmm(y ~ x + w + (1 | a) + (1 | b), d, binomial)
  expect_identical(fit_optinfo(f)$stage1_gradient, "analytic")
  # glmer's PIRLS at its default tolerance stops 1.2e-3 above this optimum.
  g <- suppressWarnings(lme4::glmer(y ~ x + w + (1 | a) + (1 | b), d, binomial,
                                    control = lme4::glmerControl(tolPwrss = 1e-12)))
  expect_lt(-2 * as.numeric(logLik(f)), -2 * as.numeric(logLik(g)) + 1e-4)
  expect_equal(unname(fixef(f)), unname(lme4::fixef(g)), tolerance = 1e-4)
  expect_glmer_standard_errors(f, g)
  # Poisson: glmer's standard errors (its Hessian from differences) are
  # 2.6e-3 relative from glmmTMB's (automatic differentiation), whatever
  # its PIRLS tolerance; mlmfit's are within 1e-5 of glmmTMB's.
  f <- glmm(k ~ x + w + (1 | a) + (1 | b), d, poisson)
  tmb <- glmmTMB::glmmTMB(k ~ x + w + (1 | a) + (1 | b), d, poisson)
  expect_lt(-2 * as.numeric(logLik(f)), -2 * as.numeric(logLik(tmb)) + 1e-4)
  expect_equal(unname(fixef(f)), unname(glmmTMB::fixef(tmb)$cond), tolerance = 1e-4)
  expect_lt(max(abs(sqrt(diag(vcov(f))) / sqrt(diag(stats::vcov(tmb)$cond)) - 1)), 1e-3)
})

test_that("stage 1 ending where it took no gradient: whitening takes one there, not differences, glmmTMB's fit", {
  skip_unless_full_tests()
  skip_if_not_installed("glmmTMB")
  # (x | person) + (x | item) on 2e4 rows: stage 1 ends at a point without
  # an analytic gradient; whiten() took second differences there (12
  # evaluations), and now one gradient at its own run (no evaluation).
  set.seed(2)
  n <- 2e4
  d <- data.frame(person = sample.int(400, n, TRUE), item = sample.int(80, n, TRUE))
  rnorm(400 + 80)  # the draws of bench/cases.R's simulate_crossed(), whose design this is
  d$x <- rnorm(n)
  d$w <- rbinom(80, 1, 0.5)[d$item]
  set.seed(3)
  re <- matrix(rnorm(800), 400) %*% chol(matrix(c(1, 0.12, 0.12, 0.16), 2))
  d$y <- rbinom(n, 1, plogis(0.2 + 0.3 * d$x - 0.4 * d$w + re[d$person, 1] + re[d$person, 2] * d$x +
                               rnorm(80, sd = 0.7)[d$item]))
  f <- suppressMessages(glmm(y ~ x + w + (x | person) + (x | item), d, binomial))
  o <- fit_optinfo(f)
  expect_identical(o$evals - o$stage1$evals - o$stage2$evals, 0L)
  tmb <- glmmTMB::glmmTMB(y ~ x + w + (x | person) + (x | item), d, binomial)
  expect_lt(-2 * as.numeric(logLik(f)), -2 * as.numeric(logLik(tmb)) + 1e-4)
  expect_equal(unname(fixef(f)), unname(glmmTMB::fixef(tmb)$cond), tolerance = 1e-4)
  expect_lt(max(abs(sqrt(diag(vcov(f))) / sqrt(diag(stats::vcov(tmb)$cond)) - 1)), 1e-3)
})
