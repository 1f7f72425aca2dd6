# glmm() on random binomial and Poisson designs (helper-glmm-designs.R:
# one to three grouping factors, nested or crossed, slopes, ||, unbalanced
# groups) against glmer, and against glmmTMB where glmer warns: mlmfit's
# -2 log-likelihood is never above the better reference by more than 1e-4
# (the contract of DESIGN.md), and a refusal is one of mlmfit's classed
# errors. The default tier runs 24 cases (about 15 s); the full tier 150
# more from another seed. tools/glmm-designs.R runs any number and prints
# the counts. Where mlmfit's deviance is lower, glmer's deviance function
# at mlmfit's estimates confirms it.
skip_if_not_installed("lme4")

run_design_cases <- function(seed, cases) {
  tally <- c(compared = 0L, refused = 0L, lower = 0L)
  for (i in seq_len(cases)) {
    r <- run_glmm_design(glmm_design_case(seed + i))
    test_that(glmm_design_describe(r$case), {
      if (inherits(r$mlmfit$value, "error")) {
        expect_s3_class(r$mlmfit$value, "mlmfit_error")
        tally[["refused"]] <<- tally[["refused"]] + 1L
        return(invisible())
      }
      expect_s3_class(r$mlmfit$value, "mlmfit_glmm")
      if (!is.finite(r$gap)) return(invisible())
      tally[["compared"]] <<- tally[["compared"]] + 1L
      if (r$gap < -1e-4) tally[["lower"]] <<- tally[["lower"]] + 1L
      expect_lt(r$gap, 1e-4, label = sprintf("mlmfit's -2 log-likelihood minus %s's", r$reference$source))
      # a lower deviance is glmer's own at mlmfit's estimates
      if (r$gap < -1e-6) {
        expect_true(lower_confirmed(r),
                    label = "mlmfit's -2 log-likelihood is glmer's deviance function at mlmfit's estimates")
      }
    })
  }
  tally
}

test_that("random GLMM designs: the default tier", {
  tally <- run_design_cases(7000L, 24L)
  expect_gt(tally[["compared"]], 20L)
})

test_that("random GLMM designs: the full tier", {
  skip_unless_full_tests()
  tally <- run_design_cases(8000L, 150L)
  expect_gt(tally[["compared"]], 140L)
})
