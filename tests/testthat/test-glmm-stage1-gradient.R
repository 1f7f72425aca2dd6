# The analytic gradient in theta of the stage-1 criterion of a glmm() fit
# (the nAGQ = 0 criterion: the Laplace deviance with beta and u at their
# joint modes; src/engine/stage1_gradient.h) for scalar and q x q terms
# (one factor or several) and a canonical link, against central differences of the criterion that
# glmm_evaluate_cpp computes with nAGQ = 0, away from the optimum, at it
# and across the bound of theta; and the fits that use it.

stage1_at <- function(fit, theta) {
  mlmfit:::glmm_evaluate_cpp(fit_spec(fit), unname(fit_eta(fit)), theta, unname(fixef(fit)), 0L,
                             fit_control(fit))$devcomp$criterion
}

stage1_gradient_at <- function(fit, theta) {
  mlmfit:::glmm_stage1_gradient_cpp(fit_spec(fit), unname(fit_eta(fit)), theta, fit_control(fit))
}

stage1_differences_at <- function(fit, theta, h = 1e-4) {
  vapply(seq_along(theta), function(i) {
    e <- replace(numeric(length(theta)), i, h)
    (stage1_at(fit, theta + e) - stage1_at(fit, theta - e)) / (2 * h)
  }, numeric(1))
}

expect_stage1_gradient_matches <- function(fit, theta) {
  g <- stage1_gradient_at(fit, theta)
  expect_length(g, length(theta))
  d <- stage1_differences_at(fit, theta)
  expect_lt(max(abs(g - d)) / max(abs(d), 1), 1e-6)
}

crossed_design <- function(seed = 20, n = 3000) {
  set.seed(seed)
  d <- data.frame(a = factor(sample(80, n, TRUE)), b = factor(sample(30, n, TRUE)), x = rnorm(n))
  d$y <- rbinom(n, 1, plogis(-0.3 + 0.7 * d$x + rnorm(80)[d$a] + rnorm(30, sd = 0.5)[d$b]))
  d$k <- rpois(n, exp(0.2 + 0.3 * d$x + rnorm(80, sd = 0.3)[d$a] + rnorm(30, sd = 0.6)[d$b]))
  d
}

test_that("crossed intercepts, binomial and Poisson: the stage-1 gradient equals differences of the criterion", {
  d <- crossed_design()
  fb <- glmm(y ~ x + (1 | a) + (1 | b), d, binomial)
  th <- unname(fit_theta(fb))
  expect_stage1_gradient_matches(fb, 1.2 * th + 0.05)
  expect_stage1_gradient_matches(fb, c(0.3, 1.1))
  expect_stage1_gradient_matches(fb, c(th[1], 0))  # one term on its bound: the criterion is even in it
  expect_equal(stage1_gradient_at(fb, c(th[1], 0))[2], 0)
  fp <- glmm(k ~ x + (1 | a) + (1 | b), d, poisson)
  expect_stage1_gradient_matches(fp, 0.8 * unname(fit_theta(fp)))
  # The beta part matters: without d beta^/d theta (the Laplace gradient at
  # fixed beta) the values differ from the differences.
  th0 <- 0.8 * unname(fit_theta(fp))
  at0 <- mlmfit:::glmm_evaluate_cpp(fit_spec(fp), unname(fit_eta(fp)), th0, unname(fixef(fp)), 0L, fit_control(fp))
  partial <- mlmfit:::glmm_laplace_gradient_cpp(fit_spec(fp), unname(fit_eta(fp)), th0, at0$beta, fit_control(fp))
  expect_gt(max(abs(partial[1:2] - stage1_differences_at(fp, th0))), 1e-3)
})

test_that("nested intercepts with prior weights (sparse Schur complement), three terms with an offset: the stage-1 gradient equals differences", {
  set.seed(21)
  d <- nested_weighted_design()
  fn <- glmm(y ~ x + (1 | school) + (1 | class), d, binomial, weights = w)
  expect_stage1_gradient_matches(fn, unname(fit_theta(fn)) * c(0.7, 1.4) + 0.1)
  f3 <- suppressMessages(glmm(k ~ x + offset(log(z)) + (1 | school) + (1 | class) + (1 | c3), d, poisson))
  expect_stage1_gradient_matches(f3, unname(fit_theta(f3)) + 0.1)
})

test_that("one scalar term (binomial with trials, binary with prior weights): the stage-1 gradient equals differences", {
  skip_if_not_installed("lme4")
  cbpp <- suppressMessages(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial))
  expect_stage1_gradient_matches(cbpp, 0.5)
  expect_stage1_gradient_matches(cbpp, 1.3)
  expect_stage1_gradient_matches(cbpp, -0.4)  # Lambda = theta I: the criterion is even in theta
  set.seed(18)
  d <- data.frame(g = factor(sample(60, 800, TRUE)), x = rnorm(800), w = sample(1:3, 800, TRUE))
  d$y <- rbinom(800, 1, plogis(-0.5 + d$x + rnorm(60)[d$g]))
  f <- glmm(y ~ x + (1 | g), d, binomial, weights = w)
  expect_stage1_gradient_matches(f, 0.6)
})

slope_design <- function(seed = 40, n = 2000) {
  set.seed(seed)
  d <- data.frame(g = factor(sample(50, n, TRUE)), x = rnorm(n), x2 = runif(n), w = sample(1:2, n, TRUE))
  re <- matrix(rnorm(150, sd = 0.5), 50)
  d$y <- rbinom(n, 1, plogis(0.2 + d$x + re[d$g, 1] + re[d$g, 2] * d$x + re[d$g, 3] * d$x2))
  d$k <- rpois(n, exp(0.1 + 0.4 * d$x + re[d$g, 1] + re[d$g, 2] * d$x))
  d
}

test_that("one q x q term, binomial and Poisson: the stage-1 gradient equals differences", {
  d <- slope_design()
  fb <- suppressMessages(glmm(y ~ x + (x | g), d, binomial, weights = w))
  th <- unname(fit_theta(fb))
  expect_stage1_gradient_matches(fb, th * c(1.3, 0.7, 1.1) + c(0, 0.1, 0.05))
  expect_stage1_gradient_matches(fb, c(th[1], -0.3, 0))  # T singular: the slope's own part on its bound
  f3 <- suppressMessages(glmm(y ~ x + x2 + (x + x2 | g), d, binomial))
  expect_stage1_gradient_matches(f3, unname(fit_theta(f3)) * 0.9 + 0.05)
  fp <- suppressMessages(glmm(k ~ x + (x | g), d, poisson))
  thp <- 0.8 * unname(fit_theta(fp)) + 0.05
  expect_stage1_gradient_matches(fp, thp)
  fd <- suppressMessages(glmm(k ~ x + (x || g), d, poisson))
  expect_stage1_gradient_matches(fd, unname(fit_theta(fd)) + 0.1)
  # The beta part matters for every entry (the off-diagonal one too):
  # without it the Laplace gradient at fixed beta differs from the differences.
  at <- mlmfit:::glmm_evaluate_cpp(fit_spec(fp), unname(fit_eta(fp)), thp, unname(fixef(fp)), 0L, fit_control(fp))
  partial <- mlmfit:::glmm_laplace_gradient_cpp(fit_spec(fp), unname(fit_eta(fp)), thp, at$beta, fit_control(fp))
  expect_gt(min(abs(partial[1:3] - stage1_differences_at(fp, thp))), 1e-4)
})

test_that("a correlation near +-1 (T nearly singular): the stage-1 gradient equals differences", {
  d <- slope_design(41)
  f <- suppressMessages(glmm(y ~ x + (x | g), d, binomial))
  # T = [t1 0; t2 t3], the correlation t2 / sqrt(t2^2 + t3^2)
  expect_stage1_gradient_matches(f, c(0.6, 0.5, 1e-3))   # correlation +0.999998
  expect_stage1_gradient_matches(f, c(0.6, -0.5, 1e-3))  # -0.999998
  expect_stage1_gradient_matches(f, c(0.6, 0.5, 0))      # exactly 1: on the bound of t3
})

test_that("crossed and nested q x q terms: the stage-1 gradient equals differences", {
  d <- crossed_slope_design()
  f1 <- suppressMessages(glmm(y ~ x + (x | a) + (1 | b), d, binomial))  # as (x | person) + (1 | item)
  th <- unname(fit_theta(f1))
  expect_stage1_gradient_matches(f1, 1.2 * th + 0.05)
  expect_stage1_gradient_matches(f1, c(th[1], 0.2, 0, th[4]))  # T of a singular
  f2 <- suppressMessages(glmm(y ~ x + (x | a) + (x | b), d, binomial))
  expect_stage1_gradient_matches(f2, 0.9 * unname(fit_theta(f2)) + 0.05)
  f3 <- suppressMessages(glmm(k ~ x + offset(log(e)) + (1 | a) + (x | b), d, poisson))
  expect_stage1_gradient_matches(f3, 0.9 * unname(fit_theta(f3)) + 0.05)
  # nested slopes (sparse Schur complement), prior weights
  dn <- nested_slope_design()
  fn <- suppressMessages(glmm(y ~ x + (x | school) + (1 | class), dn, binomial, weights = w))
  expect_stage1_gradient_matches(fn, unname(fit_theta(fn)) * c(0.7, 1.2, 1.4, 0.9) + 0.1)
  fs <- suppressMessages(glmm(y ~ x + (1 | school) + (x | class), dn, binomial, weights = w))
  expect_stage1_gradient_matches(fs, unname(fit_theta(fs)) * 0.8 + 0.1)
})

test_that("no stage-1 gradient where it does not apply", {
  d <- crossed_design(19, 600)
  probit <- suppressMessages(glmm(y ~ x + (1 | a) + (1 | b), d, binomial(link = "probit")))
  expect_null(stage1_gradient_at(probit, unname(fit_theta(probit))))
  slope <- suppressMessages(glmm(y ~ x + (x | a), d, binomial(link = "probit")))
  expect_null(stage1_gradient_at(slope, unname(fit_theta(slope))))
})

test_that("a crossed fit takes stage 1 on the analytic gradient and agrees with glmer", {
  skip_if_not_installed("lme4")
  d <- crossed_design(23, 4000)
  f <- glmm(y ~ x + (1 | a) + (1 | b), d, binomial)
  # On differences stage 1 took 67 evaluations on this fit (its
  # quasi-Newton steps 5 each, then the probes and the polish of small
  # data); on the gradient 25.
  expect_lt(fit_optinfo(f)$stage1$evals, 40)
  g <- lme4::glmer(y ~ x + (1 | a) + (1 | b), d, binomial)
  # glmer stops 1.1e-3 above mlmfit's deviance here (4628.26311 against
  # 4628.26204), its fixed effects 1.6e-4 relative away: a better optimum.
  expect_lt(-2 * as.numeric(logLik(f)), -2 * as.numeric(logLik(g)) - 5e-4)
  expect_equal(unname(fixef(f)), unname(lme4::fixef(g)), tolerance = 1e-3)
})

test_that("glmm_control(step =) is reported as unused where stage 1 takes no differences", {
  d <- crossed_design(24, 600)
  expect_warning(f <- glmm(y ~ x + (1 | a) + (1 | b), d, binomial, control = glmm_control(step = 1e-4)),
                 class = "mlmfit_warning_unused_argument")
  expect_identical(fit_optinfo(f)$stage1_gradient, "analytic")
  expect_no_warning(glmm(y ~ x + (1 | a) + (1 | b), d, binomial))
  slope <- suppressMessages(glmm(y ~ x + (x | a), d, binomial))
  expect_identical(fit_optinfo(slope)$stage1_gradient, "analytic")
  # a probit link: stage 1 on differences, whose step it is
  probit <- suppressMessages(glmm(y ~ x + (x | a), d, binomial(link = "probit"),
                                  control = glmm_control(step = 1e-4)))
  expect_identical(fit_optinfo(probit)$stage1_gradient, "differences")
})
