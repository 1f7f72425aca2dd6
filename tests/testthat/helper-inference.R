# Helpers for the inference tests.

# Our fit re-evaluated at lme4's variance parameters (theta): the fixed
# effects, conditional modes and sigma are then those of lme4's fit to
# rounding, so methods (predict, simulate) can be compared with lme4's to
# 1e-6 without the optimisers' differences (DESIGN.md allows 1e-3).
at_lme4_estimates <- function(fit, ref) {
  theta <- unname(lme4::getME(ref, "theta"))
  spec <- fit_spec(fit)
  ev <- engine_evaluate_lmm(spec, fit_xp(fit), theta, fit_reml(fit), cond_var = TRUE)
  ev$theta <- theta
  ev$xp <- fit_xp(fit)
  new_lmm_fit(spec, ev, fit_call(fit), fit_reml(fit), fit_control(fit))
}

# Relative agreement of two numeric vectors, with an absolute floor.
expect_close <- function(object, expected, rel = 1e-3, abs = 1e-8, info = NULL) {
  object <- unname(as.vector(object))
  expected <- unname(as.vector(expected))
  testthat::expect_equal(length(object), length(expected))
  testthat::expect_identical(is.na(object), is.na(expected), info = paste(info, "(missing values)"))
  keep <- !is.na(expected) & !is.na(object)
  object <- object[keep]
  expected <- expected[keep]
  if (length(expected) == 0L) return(invisible(TRUE))
  err <- abs(object - expected)
  ok <- err <= pmax(rel * abs(expected), abs)
  testthat::expect_true(all(ok), info = paste(info, "max rel diff:", signif(max(err / pmax(abs(expected), abs)), 3)))
}

# A glmm() fit moved to lme4's estimates (theta and beta of `ref`), so that
# methods that depend on the estimates (simulate's draws) can be compared
# exactly; theta is matched by lme4's names.
glmm_at_lme4_estimates <- function(fit, ref) {
  theta <- lme4::getME(ref, "theta")[names(theta_start(fit))]
  spec <- fit_spec(fit)
  ev <- engine_evaluate_glmm(spec, unname(theta), unname(lme4::fixef(ref)), fit_eta(fit), fit_nagq(fit),
                             fit_control(fit))
  ev$theta <- unname(theta)
  new_glmm_fit(spec, ev, fit_call(fit), fit_nagq(fit), fit_control(fit))
}
