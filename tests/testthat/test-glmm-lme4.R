# Agreement of glmm() with lme4::glmer within the contract of issue 5
# (helper-glmm.R). Where glmer's reported deviance is higher, ours is the
# better optimum of the same approximate likelihood.

test_that("cbpp: binomial counts as cbind(successes, failures)", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  expect_glmer_agreement(fits$mlm, fits$lme4)
  expect_equal(deviance(fits$mlm), stats::deviance(fits$lme4), tolerance = 1e-3)
  expect_equal(AIC(fits$mlm), stats::AIC(fits$lme4), tolerance = 1e-5)
  expect_equal(BIC(fits$mlm), stats::BIC(fits$lme4), tolerance = 1e-5)
  # the covariance of beta given theta (glmer's use.hessian = FALSE)
  expect_equal(sqrt(diag(vcov(fits$mlm, use.hessian = FALSE))),
               sqrt(diag(as.matrix(suppressWarnings(stats::vcov(fits$lme4, use.hessian = FALSE))))),
               tolerance = 2e-3)
})

test_that("cbpp: proportions with the numbers of trials as weights give the same fit", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  cbpp$prop <- cbpp$incidence / cbpp$size
  f <- glmm(prop ~ period + (1 | herd), cbpp, binomial, weights = size)
  g <- lme4::glmer(prop ~ period + (1 | herd), cbpp, binomial, weights = size)
  expect_glmer_agreement(f, g)
  expect_equal(as.numeric(logLik(f)), as.numeric(logLik(test_fit("cbpp")$mlm)), tolerance = 1e-8)
  expect_equal(fixef(f), fixef(test_fit("cbpp")$mlm), tolerance = 1e-6)
})

test_that("Contraception: Laplace and adaptive Gauss-Hermite quadrature with 9 points", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("mlmRev")
  fits <- test_fit("contraception")
  expect_glmer_agreement(fits$mlm, fits$lme4)
  data("Contraception", package = "mlmRev", envir = environment())
  fm <- use ~ age + I(age^2) + urban + livch + (1 | district)
  f9 <- glmm(fm, Contraception, binomial, nAGQ = 9)
  g9 <- suppressWarnings(lme4::glmer(fm, Contraception, binomial, nAGQ = 9))
  expect_glmer_agreement(f9, g9)
  expect_identical(f9$nAGQ, 9L)
})

test_that("Contraception: a correlated random slope of urban", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("mlmRev")
  data("Contraception", package = "mlmRev", envir = environment())
  fm <- use ~ age + I(age^2) + urban + livch + (urban | district)
  f <- glmm(fm, Contraception, binomial)
  g <- suppressWarnings(lme4::glmer(fm, Contraception, binomial))  # glmer warns about convergence here
  expect_glmer_agreement(f, g)
  expect_length(f$theta, 3L)
})

test_that("Poisson with an offset: simulated exposures, offset() in the formula and offset =", {
  skip_if_not_installed("lme4")
  set.seed(2)
  k <- 40
  n <- 800
  d <- data.frame(grp = factor(sample(k, n, TRUE)), expo = stats::runif(n, 0.5, 4), x = stats::rnorm(n))
  d$y <- stats::rpois(n, d$expo * exp(0.3 + 0.5 * d$x + stats::rnorm(k, 0, 0.6)[d$grp]))
  f <- glmm(y ~ x + offset(log(expo)) + (1 | grp), d, poisson)
  g <- lme4::glmer(y ~ x + offset(log(expo)) + (1 | grp), d, poisson)
  expect_glmer_agreement(f, g)
  f2 <- glmm(y ~ x + (1 | grp), d, poisson, offset = log(expo))
  expect_equal(fixef(f2), fixef(f), tolerance = 1e-8)
  # the offset matters: without it the intercept absorbs the mean exposure
  f3 <- glmm(y ~ x + (1 | grp), d, poisson)
  expect_gt(abs(fixef(f3)[[1]] - fixef(f)[[1]]), 0.5)
})

test_that("grouseticks: Poisson with crossed factors and an observation-level random effect", {
  skip_if_not_installed("lme4")
  data("grouseticks", package = "lme4", envir = environment())
  fm <- TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)
  f <- glmm(fm, grouseticks, poisson)
  g <- lme4::glmer(fm, grouseticks, poisson)
  expect_glmer_agreement(f, g)
  expect_identical(unname(ngrps(f)[["INDEX"]]), nrow(grouseticks))
})

test_that("a crossed binary design with rows in no order: glmer's deviance and means at mlmfit's estimates", {
  skip_if_not_installed("lme4")
  # PIRLS orders the rows by level inside the engine and keeps the fill of
  # the Schur complement across the stencil of its finite differences
  # (each person answers 10 of 50 items: the gathered fill). glmer's own
  # fit stops about 0.01 higher on this design (its fixed effects 0.1-0.2%
  # away): compared at mlmfit's estimates instead, row by row.
  set.seed(31)
  d <- do.call(rbind, lapply(seq_len(200), function(p) data.frame(person = p, item = sample.int(50, 10))))
  d <- d[sample.int(nrow(d)), ]
  d$x <- stats::rnorm(nrow(d))
  d$y <- stats::rbinom(nrow(d), 1, stats::plogis(0.2 + 0.5 * d$x + stats::rnorm(200)[d$person] +
                                                   stats::rnorm(50, sd = 0.7)[d$item]))
  d$person <- factor(d$person)
  d$item <- factor(d$item)
  fm <- y ~ x + (1 | person) + (1 | item)
  f <- glmm(fm, d, binomial)
  dev <- -2 * as.numeric(logLik(f))
  g <- lme4::glmer(fm, d, binomial)
  expect_lt(dev, -2 * as.numeric(stats::logLik(g)))
  devfun <- lme4::glmer(fm, d, binomial, control = lme4::glmerControl(tolPwrss = 1e-13), devFunOnly = TRUE)
  expect_equal(devfun(c(unname(f$theta), unname(fixef(f)))), dev, tolerance = 1e-5 / dev)
  expect_lt(max(abs(environment(devfun)$resp$mu - unname(fitted(f)))), 1e-8)
})

test_that("crossed Poisson counts where each person meets most items, with weights, an offset and rows in no order", {
  skip_if_not_installed("lme4")
  # 600 persons x 20 items, 18 items each: the Schur complement's fill is
  # formed as one dense product (more than 256 primary levels: its blocks
  # for the selected inverse), the rows are held once in level order for
  # both PIRLS modes, weights and offset included. Compared with glmer's
  # deviance function and means at mlmfit's estimates, and with glmer's fit.
  set.seed(47)
  d <- do.call(rbind, lapply(seq_len(600), function(p) data.frame(person = p, item = sample.int(20, 18))))
  d <- d[sample.int(nrow(d)), ]
  d$x <- stats::rnorm(nrow(d))
  d$expo <- stats::runif(nrow(d), 0.5, 2)
  d$wt <- sample(1:3, nrow(d), replace = TRUE)
  d$y <- stats::rpois(nrow(d), d$expo * exp(0.3 + 0.4 * d$x + stats::rnorm(600, sd = 0.5)[d$person] +
                                              stats::rnorm(20, sd = 0.3)[d$item]))
  d$person <- factor(d$person)
  d$item <- factor(d$item)
  fm <- y ~ x + offset(log(expo)) + (1 | person) + (1 | item)
  f <- glmm(fm, d, poisson, weights = wt)
  g <- lme4::glmer(fm, d, poisson, weights = wt)
  expect_glmer_agreement(f, g)
  dev <- -2 * as.numeric(logLik(f))
  devfun <- lme4::glmer(fm, d, poisson, weights = wt, control = lme4::glmerControl(tolPwrss = 1e-13), devFunOnly = TRUE)
  expect_equal(devfun(c(unname(f$theta), unname(fixef(f)))), dev, tolerance = 1e-5 / dev)
  expect_lt(max(abs(environment(devfun)$resp$mu - unname(fitted(f)))), 1e-8)
})

test_that("probit and cloglog links, and nAGQ = 0", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  fm <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  for (link in c("probit", "cloglog")) {
    expect_glmer_agreement(glmm(fm, cbpp, binomial(link = link)), lme4::glmer(fm, cbpp, binomial(link = link)))
  }
  f0 <- glmm(fm, cbpp, binomial, nAGQ = 0)
  g0 <- lme4::glmer(fm, cbpp, binomial, nAGQ = 0)
  expect_glmer_agreement(f0, g0)
  expect_equal(sqrt(diag(vcov(f0))), sqrt(diag(as.matrix(stats::vcov(g0)))), tolerance = 2e-3)
})

test_that("nAGQ = 0 with q x q and crossed terms: stage 1 on its analytic gradient agrees with glmer", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("mlmRev")
  contra <- contraception_data()
  fm <- use ~ age + I(age^2) + urban + livch + (urban | district)
  f <- glmm(fm, contra, binomial, nAGQ = 0)
  expect_identical(f$optinfo$stage1_gradient, "analytic")
  g <- lme4::glmer(fm, contra, binomial, nAGQ = 0)
  expect_glmer_agreement(f, g)
  expect_equal(sqrt(diag(vcov(f))), sqrt(diag(as.matrix(stats::vcov(g)))), tolerance = 2e-3)

  d <- crossed_slope_design()
  fm2 <- y ~ x + (x | a) + (1 | b)
  f2 <- glmm(fm2, d, binomial, nAGQ = 0)
  expect_identical(f2$optinfo$stage1_gradient, "analytic")
  expect_glmer_agreement(f2, lme4::glmer(fm2, d, binomial, nAGQ = 0))
})

gamma_data <- function() {
  set.seed(2)
  k <- 40
  n <- 800
  d <- data.frame(grp = factor(sample(k, n, TRUE)), expo = stats::runif(n, 0.5, 4), x = stats::rnorm(n))
  d$count <- stats::rpois(n, d$expo * exp(0.3 + 0.5 * d$x + stats::rnorm(k, 0, 0.6)[d$grp]))
  d$y <- stats::rgamma(n, shape = 3, rate = 3 / exp(1 + 0.4 * d$x + stats::rnorm(k, 0, 0.3)[d$grp]))
  d
}

test_that("Gamma with log and inverse links", {
  skip_if_not_installed("lme4")
  d <- gamma_data()
  # glmer's default PIRLS tolerance (1e-7, relative) leaves its Gamma
  # deviance about 2e-3 off; with a tight tolerance it matches the exact
  # Laplace value that glmm() computes.
  ctl <- lme4::glmerControl(tolPwrss = 1e-10)
  for (fam in list(Gamma(link = "log"), Gamma(link = "inverse"))) {
    f <- glmm(y ~ x + (1 | grp), d, fam)
    g <- lme4::glmer(y ~ x + (1 | grp), d, fam, control = ctl)
    expect_glmer_agreement(f, g)
    expect_equal(sigma(f), sigma(g), tolerance = 1e-3)
    expect_true("Residual" %in% as.data.frame(VarCorr(f))$grp)
    expect_identical(colnames(summary(f)$coefficients)[3], "t value")
    # lme4's Laplace criterion for Gamma (its aic() with the dispersion
    # dev / sum(weights)), computed from scratch
    expect_equal(-2 * as.numeric(logLik(f)),
                 laplace_by_hand(d$y, stats::model.matrix(~x, d), d$grp, fam, unname(f$theta), fixef(f)),
                 tolerance = 1e-8)
  }
})

test_that("Gamma, inverse link: a first PIRLS step that leaves the domain (glmer fails) is recovered", {
  set.seed(2)
  k <- 40
  n <- 800
  d <- data.frame(grp = factor(sample(k, n, TRUE)), x = stats::rnorm(n))
  d$y <- stats::rgamma(n, shape = 3, rate = 3 / exp(1 + 0.4 * d$x + stats::rnorm(k, 0, 0.3)[d$grp]))
  f <- glmm(y ~ x + (1 | grp), d, Gamma)
  X <- stats::model.matrix(~x, d)
  dev <- function(par) laplace_by_hand(d$y, X, d$grp, Gamma(), par[1], par[-1])
  x0 <- unname(c(f$theta, fixef(f)))
  expect_equal(-2 * as.numeric(logLik(f)), dev(x0), tolerance = 1e-8)
  # a minimum of the criterion computed by hand
  for (i in seq_along(x0)) for (s in c(-1, 1)) {
    expect_gt(dev(replace(x0, i, x0[i] + s * 1e-3 * max(abs(x0[i]), 0.1))), dev(x0))
  }
})

test_that("a response given as 0/1, logical or two-level factor gives the same fit", {
  skip_if_not_installed("mlmRev")
  data("Contraception", package = "mlmRev", envir = environment())
  ref <- test_fit("contraception")$mlm
  Contraception$use01 <- as.numeric(Contraception$use == "Y")
  Contraception$uselgl <- Contraception$use == "Y"
  for (resp in c("use01", "uselgl")) {
    fm <- stats::as.formula(paste(resp, "~ age + I(age^2) + urban + livch + (1 | district)"))
    f <- glmm(fm, Contraception, binomial)
    expect_equal(as.numeric(logLik(f)), as.numeric(logLik(ref)), tolerance = 1e-9)
    expect_equal(fixef(f), fixef(ref), tolerance = 1e-6)
  }
})

test_that("negative binomial: known size as glmer, estimated size as glmer.nb", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("MASS")
  set.seed(7)
  k <- 40
  n <- 600
  d <- data.frame(g = factor(sample(k, n, TRUE)), x = stats::rnorm(n))
  d$y <- stats::rnbinom(n, size = 2, mu = exp(0.5 + 0.4 * d$x + stats::rnorm(k, 0, 0.5)[d$g]))
  f2 <- glmm(y ~ x + (1 | g), d, family = MASS::negative.binomial(2))
  # glmer warns here that its optimiser has not converged (max|grad| 0.01)
  g2 <- suppressWarnings(lme4::glmer(y ~ x + (1 | g), d, family = MASS::negative.binomial(2)))
  expect_glmer_agreement(f2, g2)
  expect_equal(fixef(glmm(y ~ x + (1 | g), d, family = negative_binomial(2))), fixef(f2), tolerance = 1e-8)

  f <- glmm(y ~ x + (1 | g), d, family = negative_binomial())
  g <- suppressWarnings(lme4::glmer.nb(y ~ x + (1 | g), d))
  expect_glmer_agreement(f, g)
  expect_equal(spec_family(f)$nb_size, lme4::getME(g, "glmer.nb.theta"), tolerance = 2e-3)
  expect_match(family(f)$family, "^Negative Binomial\\(")
  expect_equal(sqrt(diag(vcov(f))), sqrt(diag(as.matrix(stats::vcov(g)))), tolerance = 2e-3)
})
