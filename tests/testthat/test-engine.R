# The engine interface (R/engine.R): what one call returns, checked against
# the fit and against R's own arithmetic.

test_that("the analytic gradient of the profiled deviance is its derivative", {
  fit <- test_fit("sleepstudy")$mlm
  spec <- fit_spec(fit)
  xp <- fit_xp(fit)
  theta <- fit_theta(fit) * c(1.3, 0.5, 0.8)  # away from the optimum, where the gradient is not zero
  d <- engine_deviance(spec, theta, REML = TRUE, xp = xp, gradient = TRUE)
  h <- 1e-6 * pmax(abs(theta), 0.1)
  numeric_gradient <- vapply(seq_along(theta), function(i) {
    e <- replace(numeric(length(theta)), i, h[i])
    diff(engine_deviance(spec, cbind(theta - e, theta + e), REML = TRUE, xp = xp)$deviance) / (2 * h[i])
  }, numeric(1))
  expect_equal(as.vector(d$gradient), numeric_gradient, tolerance = 1e-5)
  # at the optimum the deviance is the fit's and the gradient vanishes
  at <- engine_deviance(spec, fit_theta(fit), REML = TRUE, xp = xp, gradient = TRUE)
  expect_equal(at$deviance, deviance(fit), tolerance = 1e-10)
  expect_lt(max(abs(at$gradient)), 1e-3)
})

test_that("a spec without rows is evaluated from the cross-products alone", {
  fit <- lmm(math ~ homework + (homework | schid), nels88_data())
  metadata <- spec_without_rows(fit_spec(fit))
  expect_error(spec_X(metadata), class = "mlmfit_error_no_rows")
  ev <- engine_evaluate_lmm(metadata, fit_xp(fit), fit_theta(fit), REML = TRUE)
  expect_equal(ev$deviance, deviance(fit), tolerance = 1e-10)
  expect_equal(as.vector(ev$beta), unname(fixef(fit)), tolerance = 1e-10)
  expect_null(ev$fitted)
})

test_that("relative covariance factors are theta in the template's lower triangle", {
  fit <- lmm(Reaction ~ Days + (Days | Subject) + (1 | Days), lme4::sleepstudy)
  theta <- c(1.5, -0.25, 0.75, 2)
  Tb <- relative_factors(fit, theta)
  lay <- theta_layout(fit)
  for (k in seq_along(theta)) {
    tm <- re_terms(fit)[[lay$term[k]]]
    expect_equal(Tb[[tm$block]][tm$block_cols[lay$row[k]], tm$block_cols[lay$col[k]]], theta[k])
  }
  expect_true(all(Tb$Subject[upper.tri(Tb$Subject)] == 0))
  expect_identical(dimnames(Tb$Subject), list(c("(Intercept)", "Days"), c("(Intercept)", "Days")))
})

test_that("a structured fit's fitted values come with it: X beta + Z b", {
  fit <- lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont, correlation = nlme::corAR1(form = ~ 1 | Subject))
  Z <- term_z(fit, re_terms(fit)[[1L]])
  b <- fit_b(fit)$Subject[1L, ]
  by_hand <- drop(spec_X(fit) %*% fixef(fit)) + drop(Z) * b[as.integer(block_factor(fit, 1L))]
  expect_equal(unname(fitted(fit)), unname(by_hand), tolerance = 1e-10)
})

test_that("a GLMM's means, sigma and -2 log-likelihood come with the engine's answer, as R's family computes them", {
  fit <- test_fit("cbpp")$mlm
  fam <- family(fit)
  mu <- fam$linkinv(fit_eta(fit))
  expect_equal(fit_fitted(fit), mu, tolerance = 1e-12)
  y <- spec_y(fit)
  w <- spec_weights(fit)
  dc <- fit_devcomp(fit)
  expect_equal(dc$aic, fam$aic(y, spec_trials(fit), mu, w, sum(fam$dev.resids(y, mu, w))), tolerance = 1e-10)
  expect_equal(dc$sum_dev_resid, sum(fam$dev.resids(y, mu, w)), tolerance = 1e-10)
  expect_equal(dc$criterion, dc$ld_L2 + dc$ussq + dc$aic, tolerance = 1e-12)
  expect_equal(fit_working_weights(fit), w * fam$mu.eta(fit_eta(fit))^2 / fam$variance(mu), tolerance = 1e-10)
  expect_equal(sigma(fit), 1)
  # a Gamma model's scale: sqrt((Pearson sum of squares + |u|^2) / n), as glmer
  set.seed(5)
  d <- data.frame(g = factor(rep(1:20, each = 10)), x = stats::rnorm(200))
  d$y <- stats::rgamma(200, shape = 5, rate = 5 / exp(1 + 0.3 * d$x + stats::rnorm(20, sd = 0.3)[d$g]))
  gam <- glmm(y ~ x + (1 | g), d, Gamma(link = "log"))
  mu <- fitted(gam)
  pearson <- sum((d$y - mu)^2 / mu^2)
  expect_equal(sigma(gam), sqrt((pearson + fit_devcomp(gam)$ussq) / 200), tolerance = 1e-10)
  expect_equal(vcov(gam, use.hessian = FALSE), fit_vcov_unscaled(gam) * sigma(gam)^2)
})
