# The analytic gradient of the Laplace deviance in (theta, beta) that
# stage 2 of a glmm() fit uses for one scalar random-effect term and a
# canonical link (src/engine/laplace_gradient.h), against central
# differences of the deviance that glmm_evaluate_cpp computes, away from the
# optimum (where the gradient is not zero) and across the bound of theta.

laplace_at <- function(fit, theta, beta) {
  mlmfit:::glmm_evaluate_cpp(fit_spec(fit), unname(fit_eta(fit)), theta, beta, 1L, fit_control(fit))$devcomp$criterion
}

gradient_at <- function(fit, theta, beta) {
  mlmfit:::glmm_laplace_gradient_cpp(fit_spec(fit), unname(fit_eta(fit)), theta, beta, fit_control(fit))
}

differences_at <- function(fit, theta, beta, h = 1e-4) {
  x <- c(theta, beta)
  f <- function(x) laplace_at(fit, x[1], x[-1])
  vapply(seq_along(x), function(i) {
    e <- replace(numeric(length(x)), i, h)
    (f(x + e) - f(x - e)) / (2 * h)
  }, numeric(1))
}

expect_gradient_matches <- function(fit, theta, beta) {
  g <- gradient_at(fit, theta, beta)
  expect_length(g, 1L + length(beta))
  d <- differences_at(fit, theta, beta)
  expect_lt(max(abs(g - d)) / max(abs(d), 1), 1e-6)
}

test_that("binomial with trials (cbpp): the gradient equals differences of the deviance", {
  skip_if_not_installed("lme4")
  f <- suppressMessages(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial))
  th <- unname(fit_theta(f))
  b <- unname(fixef(f))
  expect_gradient_matches(f, 1.3 * th, b + c(0.2, -0.1, 0.05, 0.1))
  expect_gradient_matches(f, -0.7 * th, b)  # Lambda = theta I: the deviance is even in theta
  # at the optimum the gradient vanishes
  expect_lt(max(abs(gradient_at(f, th, b))), 1e-3)
})

test_that("Poisson with an offset and a slope-only term: the gradient equals differences", {
  set.seed(17)
  n <- 600
  d <- data.frame(g = factor(sample(40, n, TRUE)), x = runif(n, -1, 1), e = runif(n, 1, 3))
  d$y <- rpois(n, d$e * exp(0.3 + 0.5 * d$x + rnorm(40, sd = 0.4)[d$g] * d$x))
  f <- glmm(y ~ x + offset(log(e)) + (0 + x | g), d, poisson)
  expect_gradient_matches(f, 0.5 * unname(fit_theta(f)) + 0.1, unname(fixef(f)) + c(-0.1, 0.2))
})

test_that("binary outcomes with prior weights: the gradient equals differences", {
  set.seed(18)
  n <- 800
  d <- data.frame(g = factor(sample(60, n, TRUE)), x = rnorm(n), w = sample(1:3, n, TRUE))
  d$y <- rbinom(n, 1, plogis(-0.5 + d$x + rnorm(60)[d$g]))
  f <- glmm(y ~ x + (1 | g), d, binomial, weights = w)
  expect_gradient_matches(f, unname(fit_theta(f)) * 0.8, unname(fixef(f)) + c(0.3, -0.2))
})

test_that("the analytic gradient is not used where it does not apply", {
  skip_if_not_installed("lme4")
  probit <- suppressMessages(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                                  binomial(link = "probit")))
  expect_null(gradient_at(probit, unname(fit_theta(probit)), unname(fixef(probit))))
  set.seed(19)
  d <- data.frame(g = factor(sample(30, 400, TRUE)), x = rnorm(400))
  d$y <- rbinom(400, 1, plogis(d$x + rnorm(30)[d$g]))
  slopes <- suppressMessages(glmm(y ~ x + (x | g), d, binomial))
  expect_null(gradient_at(slopes, unname(fit_theta(slopes)), unname(fixef(slopes))))
})
