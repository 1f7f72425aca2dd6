# The approximate likelihood itself, checked against values computed from
# scratch (helper-glmm.R): lme4's Laplace formula and its adaptive
# Gauss-Hermite version, herd by herd for cbpp.

test_that("the Laplace deviance at the optimum equals the one computed by hand", {
  skip_if_not_installed("lme4")
  f <- test_fit("cbpp")$mlm
  by_hand <- cbpp_deviance_by_hand(unname(fit_theta(f)), fixef(f))
  expect_equal(-2 * as.numeric(logLik(f)), by_hand, tolerance = 1e-8)
})

test_that("the standard errors are those of the Hessian of the Laplace deviance", {
  skip_if_not_installed("lme4")
  f <- test_fit("cbpp")$mlm
  x0 <- unname(c(fit_theta(f), fixef(f)))
  dev <- function(x) cbpp_deviance_by_hand(x[1], x[-1])
  h <- 1e-3
  k <- length(x0)
  H <- matrix(0, k, k)
  for (i in seq_len(k)) for (j in seq_len(k)) {
    ei <- replace(numeric(k), i, h)
    ej <- replace(numeric(k), j, h)
    H[i, j] <- (dev(x0 + ei + ej) - dev(x0 + ei - ej) - dev(x0 - ei + ej) + dev(x0 - ei - ej)) / (4 * h^2)
  }
  se_hand <- sqrt(diag(2 * solve(H)))[-1]
  expect_equal(unname(sqrt(diag(vcov(f)))), se_hand, tolerance = 1e-3)
  expect_identical(fit_vcov_method(f), "hessian")
})

test_that("adaptive Gauss-Hermite deviance (nAGQ = 9) equals the one computed by hand", {
  skip_if_not_installed("lme4")
  f9 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial, nAGQ = 9)
  expect_equal(-2 * as.numeric(logLik(f9)), cbpp_deviance_by_hand(unname(fit_theta(f9)), fixef(f9), nAGQ = 9L), tolerance = 1e-8)
  # more points converge towards the integral: 9 and 25 points nearly agree
  f25 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial, nAGQ = 25)
  expect_equal(as.numeric(logLik(f25)), as.numeric(logLik(f9)), tolerance = 1e-4)
})

test_that("the Gauss-Hermite rule matches lme4's", {
  skip_if_not_installed("lme4")
  for (k in c(1, 2, 5, 9, 16, 25)) {
    r <- gauss_hermite_cpp(k)
    ref <- lme4::GHrule(k)
    o <- order(ref[, "z"])
    expect_equal(r$z, unname(ref[o, "z"]), tolerance = 1e-10)
    expect_equal(r$w, unname(ref[o, "w"]), tolerance = 1e-10)
  }
})

test_that("the optimum is a minimum: moving any parameter raises the deviance", {
  skip_if_not_installed("lme4")
  f <- test_fit("cbpp")$mlm
  x0 <- unname(c(fit_theta(f), fixef(f)))
  d0 <- cbpp_deviance_by_hand(x0[1], x0[-1])
  for (i in seq_along(x0)) for (s in c(-1, 1)) {
    x <- x0
    x[i] <- x[i] + s * 1e-3
    expect_gt(cbpp_deviance_by_hand(x[1], x[-1]), d0)
  }
})

test_that("predictors on extreme scales give the same model (glmer fails here)", {
  skip_if_not_installed("mlmRev")
  data("Contraception", package = "mlmRev", envir = environment())
  Contraception$agedays <- Contraception$age * 365.25 + 1e4
  f <- glmm(use ~ agedays + I(agedays^2) + urban + livch + (1 | district), Contraception, binomial)
  ref <- test_fit("contraception")$mlm
  # the same model in other units: same likelihood, predictions and district effects
  expect_equal(as.numeric(logLik(f)), as.numeric(logLik(ref)), tolerance = 1e-9)
  expect_equal(unname(fitted(f)), unname(fitted(ref)), tolerance = 1e-5)
  expect_equal(unname(fit_theta(f)), unname(ref$theta), tolerance = 1e-4)
  expect_length(fit_optinfo(f)$warnings, 0L)
})
