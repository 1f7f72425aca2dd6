# Stage 1 of a glmm() fit on data large enough that it only gives stage 2
# its starting values (no Newton polish of its own) runs PIRLS to modes
# within 1e-6 instead of the full tolerance, and with scalar random
# effects starts its search from one EM step of their variances
# (src/engine/glmm_fit.cpp, optimise_theta, em_start). The fit must not
# move: glmer's deviance at its own estimates or lower, and the reported
# deviance that of the estimates with PIRLS converged tightly (by glmer's
# deviance function, and by mlmfit's own evaluation at the full tolerance).

# sd_b: the standard deviation of the effects of b (0: a singular fit).
crossed_counts_case <- function(seed, response, family, n = 16000, sd_b = 0.5) {
  set.seed(seed)
  d <- data.frame(a = factor(sample(400, n, TRUE)), b = factor(sample(60, n, TRUE)), x = rnorm(n), w = runif(n))
  eta <- 0.2 + 0.5 * d$x - 0.3 * d$w + rnorm(400, sd = 0.8)[d$a] + rnorm(60, sd = sd_b)[d$b]
  d$y <- rbinom(n, 1, plogis(eta))
  d$k <- rpois(n, exp(eta / 2))
  list(data = d, formula = stats::as.formula(paste(response, "~ x + w + (1 | a) + (1 | b)")), family = family,
       trials = NULL)
}

expect_stage1_fit_unmoved <- function(case) {
  fit <- suppressMessages(glmm(case$formula, case$data, get(case$family, mode = "function")))
  expect_identical(fit_optinfo(fit)$stage1_gradient, "analytic")
  dev <- -2 * as.numeric(logLik(fit))
  ref <- suppressWarnings(suppressMessages(lme4::glmer(case$formula, case$data, get(case$family, mode = "function"))))
  expect_lt(dev - glmer_accurate_deviance(case, ref), 1e-4)
  expect_equal(glmer_deviance_at(case, fit_theta(fit), fixef(fit)), dev, tolerance = 1e-9)
  at <- mlmfit:::glmm_evaluate_cpp(fit_spec(fit), unname(fit_eta(fit)), unname(fit_theta(fit)), unname(fixef(fit)), 1L,
                                   fit_control(fit))
  expect_equal(at$devcomp$criterion, fit_devcomp(fit)$criterion, tolerance = 1e-12)
  invisible(fit)
}

test_that("a crossed binomial fit with stage 1 at the looser PIRLS tolerance: glmer's deviance or lower", {
  skip_if_not_installed("lme4")
  expect_stage1_fit_unmoved(crossed_counts_case(31, "y", "binomial"))
})

test_that("a crossed Poisson fit from the EM start: glmer's deviance or lower, in half the evaluations", {
  skip_if_not_installed("lme4")
  # From theta = 1 without the EM step, stage 1 took 16 evaluations here
  # (12 on the binomial case above); from the EM step, 8 (7).
  fit <- expect_stage1_fit_unmoved(crossed_counts_case(31, "k", "poisson"))
  expect_lte(fit_optinfo(fit)$stage1$evals, 9)
})

test_that("a singular crossed fit from the EM start: glmer's deviance or lower, the variance at zero", {
  skip_unless_full_tests()
  skip_if_not_installed("lme4")
  fit <- expect_stage1_fit_unmoved(crossed_counts_case(32, "y", "binomial", sd_b = 0))
  expect_true(is_singular(fit))
})
