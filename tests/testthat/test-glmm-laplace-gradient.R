# The analytic gradient of the Laplace deviance in (theta, beta) that
# stage 2 of a glmm() fit uses for random-effect terms on one grouping
# factor or several (crossed or nested, scalar or q x q) and a canonical link
# (src/engine/laplace_gradient.h), against central
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
  nt <- length(theta)
  f <- function(x) laplace_at(fit, x[seq_len(nt)], x[-seq_len(nt)])
  vapply(seq_along(x), function(i) {
    e <- replace(numeric(length(x)), i, h)
    (f(x + e) - f(x - e)) / (2 * h)
  }, numeric(1))
}

expect_gradient_matches <- function(fit, theta, beta) {
  g <- gradient_at(fit, theta, beta)
  expect_length(g, length(theta) + length(beta))
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

test_that("crossed intercepts, binomial and Poisson (dense Schur complement): the gradient equals differences", {
  set.seed(20)
  n <- 3000
  d <- data.frame(a = factor(sample(80, n, TRUE)), b = factor(sample(30, n, TRUE)), x = rnorm(n))
  d$y <- rbinom(n, 1, plogis(-0.3 + 0.7 * d$x + rnorm(80)[d$a] + rnorm(30, sd = 0.5)[d$b]))
  d$k <- rpois(n, exp(0.2 + 0.3 * d$x + rnorm(80, sd = 0.3)[d$a] + rnorm(30, sd = 0.6)[d$b]))
  fb <- glmm(y ~ x + (1 | a) + (1 | b), d, binomial)
  th <- unname(fit_theta(fb))
  b <- unname(fixef(fb))
  expect_gradient_matches(fb, 1.2 * th + 0.05, b + c(0.1, -0.2))
  expect_gradient_matches(fb, c(th[1], 0), b)  # one term on its bound
  expect_lt(max(abs(gradient_at(fb, th, b))), 1e-3)
  fp <- glmm(k ~ x + (1 | a) + (1 | b), d, poisson)
  expect_gradient_matches(fp, 0.8 * unname(fit_theta(fp)), unname(fixef(fp)) + c(0.05, -0.1))
})

test_that("two scalar terms with columns (one pass, sums per pair of levels), Poisson and weighted binomial: the gradient equals differences", {
  set.seed(23)
  n <- 3000
  d <- data.frame(a = factor(sample(80, n, TRUE)), b = factor(sample(30, n, TRUE)), x = rnorm(n),
                  z = runif(n, 0.5, 2), w = sample(1:3, n, TRUE))
  d$k <- rpois(n, exp(0.2 + 0.3 * d$x + rnorm(80, sd = 0.3)[d$a] + rnorm(30, sd = 0.6)[d$b] * d$z))
  d$y <- rbinom(n, 1, plogis(-0.3 + 0.7 * d$x + rnorm(80)[d$a] * d$z + rnorm(30, sd = 0.5)[d$b]))
  fp <- glmm(k ~ x + (1 | a) + (0 + z | b), d, poisson)
  expect_gradient_matches(fp, 0.8 * unname(fit_theta(fp)) + 0.05, unname(fixef(fp)) + c(0.05, -0.1))
  expect_gradient_matches(fp, c(0, unname(fit_theta(fp))[2]), unname(fixef(fp)))  # the primary term on its bound
  fb <- glmm(y ~ x + (0 + z | a) + (1 | b), d, binomial, weights = w)
  expect_gradient_matches(fb, 1.3 * unname(fit_theta(fb)), unname(fixef(fb)) + c(-0.1, 0.2))
})

test_that("nested intercepts with prior weights (sparse Schur complement), three crossed terms: the gradient equals differences", {
  set.seed(21)
  d <- nested_weighted_design()
  fn <- glmm(y ~ x + (1 | school) + (1 | class), d, binomial, weights = w)
  expect_gradient_matches(fn, unname(fit_theta(fn)) * c(0.7, 1.4) + 0.1, unname(fixef(fn)) + c(-0.2, 0.1))
  f3 <- suppressMessages(glmm(k ~ x + offset(log(z)) + (1 | school) + (1 | class) + (1 | c3), d, poisson))
  expect_gradient_matches(f3, unname(fit_theta(f3)) + 0.1, unname(fixef(f3)) + c(0.1, 0.1))
})

test_that("one vector term (q x q blocks per level), correlated or not: the gradient equals differences", {
  set.seed(22)
  n <- 2000
  d <- data.frame(g = factor(sample(50, n, TRUE)), x = rnorm(n), x2 = runif(n), w = sample(1:2, n, TRUE))
  re <- matrix(rnorm(150, sd = 0.5), 50)
  d$y <- rbinom(n, 1, plogis(0.2 + d$x + re[d$g, 1] + re[d$g, 2] * d$x + re[d$g, 3] * d$x2))
  d$k <- rpois(n, exp(0.1 + 0.4 * d$x + re[d$g, 1] + re[d$g, 2] * d$x))
  f2 <- suppressMessages(glmm(y ~ x + (x | g), d, binomial, weights = w))
  th <- unname(fit_theta(f2))
  expect_gradient_matches(f2, th * c(1.3, 0.7, 1.1) + c(0, 0.1, 0.05), unname(fixef(f2)) + c(0.1, -0.1))
  expect_gradient_matches(f2, c(th[1], 0, 0), unname(fixef(f2)))  # the slope's variance on its bound
  f3 <- suppressMessages(glmm(y ~ x + x2 + (x + x2 | g), d, binomial))
  expect_gradient_matches(f3, unname(fit_theta(f3)) * 0.9 + 0.05, unname(fixef(f3)) + c(0.1, 0, -0.1))
  fd <- suppressMessages(glmm(k ~ x + (x || g), d, poisson))
  expect_gradient_matches(fd, unname(fit_theta(fd)) + 0.1, unname(fixef(fd)) - 0.05)
})

test_that("crossed terms with q x q blocks (dense Schur complement), binomial and Poisson: the gradient equals differences", {
  d <- crossed_slope_design()
  # the primary factor a with q = 2, the secondary b scalar
  f1 <- suppressMessages(glmm(y ~ x + (x | a) + (1 | b), d, binomial))
  th <- unname(fit_theta(f1))
  b <- unname(fixef(f1))
  expect_gradient_matches(f1, 1.2 * th + 0.05, b + c(0.1, -0.2))
  expect_gradient_matches(f1, c(th[1], 0, 0, th[4]), b)  # the slope's variance on its bound
  expect_lt(max(abs(gradient_at(f1, th, b))), 1e-3)
  # both q = 2
  f2 <- suppressMessages(glmm(y ~ x + (x | a) + (x | b), d, binomial))
  expect_gradient_matches(f2, 0.9 * unname(fit_theta(f2)) + 0.05, unname(fixef(f2)) + c(0.1, -0.2))
  # the primary scalar, the secondary q = 2; an offset
  f3 <- suppressMessages(glmm(k ~ x + offset(log(e)) + (1 | a) + (x | b), d, poisson))
  expect_gradient_matches(f3, 0.9 * unname(fit_theta(f3)) + 0.05, unname(fixef(f3)) + c(0.1, -0.2))
  # uncorrelated terms (theta in the diagonal places only)
  f4 <- suppressMessages(glmm(k ~ x + offset(log(e)) + (x || a) + (x | b), d, poisson))
  expect_gradient_matches(f4, 0.9 * unname(fit_theta(f4)) + 0.05, unname(fixef(f4)) + c(0.1, -0.2))
})

test_that("nested slope and intercept (sparse Schur complement), three factors, prior weights: the gradient equals differences", {
  d <- nested_slope_design()
  rs <- attr(d, "effects")
  fn <- suppressMessages(glmm(y ~ x + (x | school) + (1 | class), d, binomial, weights = w))
  expect_gradient_matches(fn, unname(fit_theta(fn)) * c(0.7, 1.2, 1.4, 0.9) + 0.1, unname(fixef(fn)) + c(-0.2, 0.1))
  d$c3 <- factor(sample(12, 3000, TRUE))
  d$k <- rpois(3000, exp(0.3 * d$x + 0.5 * rs[d$school, 1] + rnorm(12, sd = 0.5)[d$c3] + rnorm(750, sd = 0.3)[d$class]))
  f3 <- suppressMessages(glmm(k ~ x + (1 | school) + (1 | class) + (x | c3), d, poisson))
  expect_gradient_matches(f3, unname(fit_theta(f3)) + 0.1, unname(fixef(f3)) + c(0.1, 0.1))
})

test_that("the analytic gradient is not used where it does not apply", {
  skip_if_not_installed("lme4")
  probit <- suppressMessages(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                                  binomial(link = "probit")))
  expect_null(gradient_at(probit, unname(fit_theta(probit)), unname(fixef(probit))))
  set.seed(19)
  d <- data.frame(g = factor(sample(30, 400, TRUE)), x = rnorm(400))
  d$y <- rbinom(400, 1, plogis(d$x + rnorm(30)[d$g]))
  d$h <- factor(sample(8, 400, TRUE))
  mixed_probit <- suppressMessages(glmm(y ~ x + (x | g) + (1 | h), d, binomial(link = "probit")))
  expect_null(gradient_at(mixed_probit, unname(fit_theta(mixed_probit)), unname(fixef(mixed_probit))))
  crossed_probit <- suppressMessages(glmm(y ~ x + (1 | g) + (1 | h), d, binomial(link = "probit")))
  expect_null(gradient_at(crossed_probit, unname(fit_theta(crossed_probit)), unname(fixef(crossed_probit))))
})
