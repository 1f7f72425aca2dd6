# Stage 1 of a glmm() fit on data large enough that it only gives stage 2
# its starting values (no Newton polish of its own) runs PIRLS to modes
# within 1e-7 instead of the full tolerance (src/engine/glmm_fit.cpp,
# optimise_theta). The fit must not move: glmer's deviance at its own
# estimates or lower, and the reported deviance that of the estimates with
# PIRLS converged tightly (by glmer's deviance function, and by mlmfit's
# own evaluation at the full tolerance).

crossed_counts_case <- function(seed, response, family, n = 16000) {
  set.seed(seed)
  d <- data.frame(a = factor(sample(400, n, TRUE)), b = factor(sample(60, n, TRUE)), x = rnorm(n), w = runif(n))
  eta <- 0.2 + 0.5 * d$x - 0.3 * d$w + rnorm(400, sd = 0.8)[d$a] + rnorm(60, sd = 0.5)[d$b]
  d$y <- rbinom(n, 1, plogis(eta))
  d$k <- rpois(n, exp(eta / 2))
  list(data = d, formula = stats::as.formula(paste(response, "~ x + w + (1 | a) + (1 | b)")), family = family,
       trials = NULL)
}

expect_stage1_fit_unmoved <- function(case) {
  fit <- glmm(case$formula, case$data, get(case$family, mode = "function"))
  expect_identical(fit_optinfo(fit)$stage1_gradient, "analytic")
  dev <- -2 * as.numeric(logLik(fit))
  ref <- suppressWarnings(suppressMessages(lme4::glmer(case$formula, case$data, get(case$family, mode = "function"))))
  expect_lt(dev - glmer_accurate_deviance(case, ref), 1e-4)
  expect_equal(glmer_deviance_at(case, fit_theta(fit), fixef(fit)), dev, tolerance = 1e-9)
  at <- mlmfit:::glmm_evaluate_cpp(fit_spec(fit), unname(fit_eta(fit)), unname(fit_theta(fit)), unname(fixef(fit)), 1L,
                                   fit_control(fit))
  expect_equal(at$devcomp$criterion, fit_devcomp(fit)$criterion, tolerance = 1e-12)
}

test_that("a crossed binomial fit with stage 1 at the looser PIRLS tolerance: glmer's deviance or lower", {
  skip_if_not_installed("lme4")
  expect_stage1_fit_unmoved(crossed_counts_case(31, "y", "binomial"))
})

test_that("a crossed Poisson fit with stage 1 at the looser PIRLS tolerance: glmer's deviance or lower", {
  skip_unless_full_tests()
  skip_if_not_installed("lme4")
  expect_stage1_fit_unmoved(crossed_counts_case(31, "k", "poisson"))
})
