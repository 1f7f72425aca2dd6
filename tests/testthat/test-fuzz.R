# Seeded fuzz test: random small datasets and formulas (sizes, numbers of
# groups, nesting and crossing, missing values, scales from 1e-8 to 1e8,
# weights, and now and then an impossible value or a degenerate response).
# Every call must either fit, and then agree with lme4, or raise one of
# mlmfit's classed errors: never crash, never an unclassed error.
#
# A fit is checked twice against lme4 (helper-fuzz.R, helper-lme4.R):
# * lme4 evaluated at mlmfit's theta must give the same deviance, fixed
#   effects, standard errors, variance components and conditional modes
#   (with x rescaled to unit size where lme4 cannot work with x ~ 1e8,
#   after checking that mlmfit fits the same model on that scale);
# * mlmfit's deviance must not be worse than that of lme4's own fit by more
#   than 1e-4 (even where lme4 warns), and where lme4's fit is clean (no
#   error, warning or message, not singular, finite), unless mlmfit's is
#   lower (a better optimum, DESIGN.md), the two fits must agree within the
#   contract.
# A refusal where lme4 fits cleanly must be one of the refusals of input
# lme4 accepts by design, or lme4's optimum must fail to be a minimum.
#
# The full tier runs 1000 cases (about a minute), the default tier 100;
# MLMFIT_FUZZ_CASES and MLMFIT_FUZZ_SEED change the run:
# MLMFIT_FUZZ_CASES=5000 Rscript tools/run-tests.R fuzz.
skip_if_not_installed("lme4")

fuzz_cases <- as.integer(Sys.getenv("MLMFIT_FUZZ_CASES", if (full_tests()) "1000" else "100"))
fuzz_seed <- as.integer(Sys.getenv("MLMFIT_FUZZ_SEED", "20240607"))

# Refusals of input that lme4 accepts by design: NaN (lme4 drops the row as
# missing) and factor predictors with one level.
refusals_lme4_accepts <- c("mlmfit_error_nonfinite", "mlmfit_error_variable")

tally <- c(fitted = 0L, refused = 0L, compared_optimum = 0L, better_than_lme4 = 0L)

for (i in seq_len(fuzz_cases)) {
  case <- fuzz_case(fuzz_seed + i)
  test_that(fuzz_describe(case), {
    m <- fit_fuzz_case(case, lmm)
    if (inherits(m$value, "error")) {
      expect_s3_class(m$value, "mlmfit_error")
      tally[["refused"]] <<- tally[["refused"]] + 1L
      if (!inherits(m$value, refusals_lme4_accepts)) {
        # A refusal where lme4 fits cleanly is a fit mlmfit owes the user,
        # unless lme4's optimum is not a minimum (no maximum of the likelihood).
        l <- fit_fuzz_case(case, lme4::lmer)
        if (lme4_clean(l, case$REML)) {
          expect_false(lme4_ray_rises(case, lme4::getME(l$value, "theta")),
                       label = paste("lme4 finds a proper optimum where mlmfit refused with", class(m$value)[1]))
        }
      }
      return(invisible())
    }
    fit <- m$value
    tally[["fitted"]] <<- tally[["fitted"]] + 1L
    expect_s3_class(fit, "mlmfit_lmm")

    at <- tryCatch(lme4_at_theta(case, fit_theta(fit)), error = function(e) e)
    if (inherits(at, "error") && case$x_scale != 1) {
      # lme4 cannot work at this scale: compare on x rescaled to unit scale,
      # after checking that mlmfit fits the same model there.
      case <- rescale_fuzz_case(case)
      fit_unit <- fit_fuzz_case(case, lmm)$value
      expect_s3_class(fit_unit, "mlmfit_lmm")
      expect_equal(fitted(fit_unit), fitted(fit), tolerance = 1e-6)
      expect_equal(sigma(fit_unit), sigma(fit), tolerance = 1e-6)
      fit <- fit_unit
      at <- lme4_at_theta(case, fit_theta(fit))
    }
    # Both engines lose about eps (sd(y) / sigma)^2 of relative precision
    # as sigma goes to zero (tiny data with as many random effects as rows);
    # the full comparison is made where that loss is below 1e-5.
    ill_conditioning <- 1e-15 * (stats::sd(spec_y(fit)) / sigma(fit))^2
    expect_equal(deviance(fit), lme4_criterion(at, case$REML), tolerance = 1e-6 + ill_conditioning)
    if (ill_conditioning < 1e-5) expect_lme4_agreement(fit, at)

    l <- fit_fuzz_case(case, lme4::lmer)
    if (inherits(l$value, "error")) return(invisible())
    d_ref <- lme4_criterion(l$value, case$REML)
    # Never a worse optimum than lme4's, even where lme4 warns.
    if (is.finite(d_ref)) expect_lt(deviance(fit) - d_ref, 1e-4)
    if (!lme4_clean(l, case$REML)) return(invisible())
    tally[["compared_optimum"]] <<- tally[["compared_optimum"]] + 1L
    if (deviance(fit) < d_ref - 1e-6) {
      tally[["better_than_lme4"]] <<- tally[["better_than_lme4"]] + 1L
    } else if (!agrees_with_lme4(fit, l$value)) {
      # On a flat likelihood lme4 stops short: polish its optimum. mlmfit
      # must then agree with it, or be at least as good (its numbers at its
      # own theta were checked above).
      polished <- lme4_polished(case, lme4::getME(l$value, "theta"))
      d_pol <- lme4_criterion(polished, case$REML)
      if (deviance(fit) > d_pol + 1e-9) {
        expect_lme4_agreement(fit, polished)
      } else {
        tally[["better_than_lme4"]] <<- tally[["better_than_lme4"]] + 1L
      }
    }
  })
}

test_that("the fuzz cases exercise fits, refusals and comparisons with lme4's optimum", {
  skip_if(fuzz_cases < 100L, "too few fuzz cases for the tally")
  expect_gt(tally[["fitted"]], 0.5 * fuzz_cases)
  expect_gt(tally[["refused"]], 0.05 * fuzz_cases)
  expect_gt(tally[["compared_optimum"]], 0.15 * fuzz_cases)
})
