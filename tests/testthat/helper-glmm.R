# The accuracy contract of glmm() with lme4::glmer (issue 5):
# -2 log-likelihood within 1e-3 or lower; fixed effects relative 1e-3
# (absolute 1e-5 near zero); variance components relative 2e-3 (absolute
# 1e-3 for SDs near zero and for correlations); conditional modes within
# 2e-3 of the largest mode of their factor.
expect_glmer_agreement <- function(fit, ref, dev_tol = 1e-3, fe_tol = 1e-3, vc_tol = 2e-3, re_tol = 2e-3) {
  dev <- -2 * as.numeric(logLik(fit))
  dev_ref <- -2 * as.numeric(stats::logLik(ref))
  testthat::expect_lt(dev - dev_ref, dev_tol)
  testthat::expect_equal(attr(logLik(fit), "df"), attr(stats::logLik(ref), "df"))
  testthat::expect_equal(nobs(fit), stats::nobs(ref))

  fe <- fixef(fit)
  fr <- lme4::fixef(ref)
  testthat::expect_identical(names(fe), names(fr))
  testthat::expect_true(all(abs(fe - fr) <= pmax(fe_tol * abs(fr), 1e-5)),
                        info = paste("fixed effects differ:", paste(signif(fe / fr - 1, 3), collapse = " ")))

  expect_components_agree(fit, ref, vc_tol, re_tol)
  invisible(TRUE)
}

# The Laplace and adaptive Gauss-Hermite deviances of the cbpp model
# computed from scratch, herd by herd: each herd's conditional mode by a
# one-dimensional search, then lme4's formulas. Independent of the engine.
cbpp_deviance_by_hand <- function(theta, beta, nAGQ = 1L) {
  cbpp <- lme4::cbpp
  X <- stats::model.matrix(~period, cbpp)
  y <- cbpp$incidence
  n <- cbpp$size
  eta0 <- drop(X %*% beta)
  total <- 0
  for (h in levels(cbpp$herd)) {
    i <- cbpp$herd == h
    pen <- function(u) -2 * sum(stats::dbinom(y[i], n[i], stats::plogis(eta0[i] + theta * u), log = TRUE)) + u^2
    o <- stats::optimize(pen, c(-10, 10), tol = 1e-12)
    u <- o$minimum
    mu <- stats::plogis(eta0[i] + theta * u)
    L2 <- 1 + theta^2 * sum(n[i] * mu * (1 - mu))
    if (nAGQ == 1L) {
      total <- total + o$objective + log(L2)
    } else {
      # lme4's glmerAGQ: deviance residuals (no saturated constant)
      sat <- -2 * sum(stats::dbinom(y[i], n[i], y[i] / n[i], log = TRUE))
      gh <- lme4::GHrule(nAGQ)
      sd <- 1 / sqrt(L2)
      m <- sum(gh[, "w"] * exp(-0.5 * (vapply(u + gh[, "z"] * sd, pen, 1) - o$objective) + gh[, "z"]^2 / 2))
      total <- total + o$objective - sat + log(L2) - 2 * log(m)
    }
  }
  total
}

# lme4's Laplace deviance of a model with one scalar random intercept,
# from scratch for any family: each group's conditional mode by a
# one-dimensional search, the working weights there, and family$aic().
laplace_by_hand <- function(y, X, group, family, theta, beta, weights = rep(1, length(y))) {
  eta0 <- drop(X %*% beta)
  mu_all <- numeric(length(y))
  ussq <- 0
  ldL2 <- 0
  for (h in levels(group)) {
    i <- group == h
    pen <- function(u) {
      mu <- family$linkinv(eta0[i] + theta * u)
      if (!family$validmu(mu) || !family$valideta(eta0[i] + theta * u)) return(1e300)
      sum(family$dev.resids(y[i], mu, weights[i])) + u^2
    }
    u <- stats::optimize(pen, c(-10, 10), tol = 1e-12)$minimum
    eta <- eta0[i] + theta * u
    mu <- family$linkinv(eta)
    w <- weights[i] * family$mu.eta(eta)^2 / family$variance(mu)
    ldL2 <- ldL2 + log(1 + theta^2 * sum(w))
    ussq <- ussq + u^2
    mu_all[i] <- mu
  }
  dev <- sum(family$dev.resids(y, mu_all, weights))
  ldL2 + ussq + family$aic(y, rep(1, length(y)), mu_all, weights, dev)
}

# 250 schools of 3 classes (more schools than the dense Schur complement's
# limit), prior weights w, a binary y on school and class intercepts, and
# a count k with an offset log(z) on school and a third factor c3: the
# sparse-Schur designs of the gradient tests (seed set by the caller).
nested_weighted_design <- function() {
  d <- data.frame(school = factor(rep(1:250, each = 12)), x = rnorm(3000), w = sample(1:3, 3000, TRUE))
  d$class <- factor(paste(d$school, rep(1:3, length.out = 3000), sep = ":"))
  d$y <- rbinom(3000, 1, plogis(0.2 + 0.5 * d$x + rnorm(250)[d$school] + rnorm(750, sd = 0.5)[d$class]))
  d$c3 <- factor(sample(12, 3000, TRUE))
  d$z <- runif(3000, 0.5, 1.5)
  d$k <- rpois(3000, d$z * exp(0.3 * d$x + rnorm(250, sd = 0.4)[d$school] + rnorm(12, sd = 0.5)[d$c3]))
  d
}

# Crossed factors a (80 levels) and b (30) with random slopes on both: a
# binary response y and counts k with exposure e (the q x q gradient tests).
crossed_slope_design <- function() {
  set.seed(30)
  n <- 3000
  d <- data.frame(a = factor(sample(80, n, TRUE)), b = factor(sample(30, n, TRUE)), x = rnorm(n),
                  e = runif(n, 1, 2))
  ra <- matrix(rnorm(160, sd = 0.6), 80)
  rb <- matrix(rnorm(60, sd = 0.5), 30)
  d$y <- rbinom(n, 1, plogis(-0.3 + 0.7 * d$x + ra[d$a, 1] + ra[d$a, 2] * d$x + rb[d$b, 1] + rb[d$b, 2] * d$x))
  d$k <- rpois(n, d$e * exp(0.2 + 0.3 * d$x + 0.5 * ra[d$a, 1] + 0.5 * ra[d$a, 2] * d$x + rb[d$b, 1]))
  d
}

# 250 schools with a random slope (500 secondary coordinates) and 750
# classes, prior weights w, a binary y (sets the seed; the caller's draws
# after it continue the stream); the schools' effects in attr "effects".
nested_slope_design <- function() {
  set.seed(31)
  d <- data.frame(school = factor(rep(1:250, each = 12)), x = rnorm(3000), w = sample(1:3, 3000, TRUE))
  d$class <- factor(paste(d$school, rep(1:3, length.out = 3000), sep = ":"))
  rs <- matrix(rnorm(500, sd = 0.5), 250)
  d$y <- rbinom(3000, 1, plogis(0.2 + 0.5 * d$x + rs[d$school, 1] + rs[d$school, 2] * d$x +
                                  rnorm(750, sd = 0.5)[d$class]))
  attr(d, "effects") <- rs
  d
}
