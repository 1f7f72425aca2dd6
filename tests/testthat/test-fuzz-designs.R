# Seeded fuzz test, second generator (helper-fuzz-designs.R): random
# multilevel designs with one to three nested or crossed grouping factors,
# slopes, unbalanced sizes, missing values, weights and residual structures.
# Every case must either fit or raise one of mlmfit's classed errors. A fit
#   * passes expect_consistent() (helper-consistency.R): every method agrees
#     with its definition and the other methods, with na.omit or na.exclude;
#   * without a residual structure: its deviance is not worse than lme4's by
#     more than 1e-4, and where lme4's fit is clean it agrees with it within
#     the contract or is better (lme4 polished first where the likelihood
#     is flat, as in test-fuzz.R);
#   * with a residual structure: its log-likelihood is within 1e-3 of
#     nlme::lme()'s or higher, and where nlme converged without complaint
#     and neither is better, the estimates agree (the fixed effects only for
#     compound symmetry, which a random intercept makes unidentified).
# A refusal where lme4 fits cleanly must be one where lme4's optimum is not
# a maximum of the likelihood (test-fuzz.R's rule).
#
# The default tier runs 30 cases (about 20 s), the full tier 300;
# MLMFIT_DESIGN_CASES and MLMFIT_DESIGN_SEED change the run.
skip_if_not_installed("lme4")
skip_if_not_installed("broom.mixed")

design_cases <- as.integer(Sys.getenv("MLMFIT_DESIGN_CASES", if (full_tests()) "300" else "30"))
design_seed <- as.integer(Sys.getenv("MLMFIT_DESIGN_SEED", "20261130"))

design_tally <- c(fitted = 0L, refused = 0L, compared_lme4 = 0L, compared_nlme = 0L, better_than_reference = 0L,
                  worse_than_reference = 0L, disagree = 0L, refused_where_nlme_fits = 0L)
count <- function(what) design_tally[[what]] <<- design_tally[[what]] + 1L

# A case fails once however many of its numbers disagree, so that a few
# bad cases do not exhaust testthat's failure limit and end the run.
expect_agreement_once <- function(fit, ref, compare) {
  problem <- first_failure(compare(fit, ref))
  if (is.null(problem)) return(invisible(TRUE))
  count("disagree")
  fail(paste("disagrees with the reference fit:", problem))
}

first_failure <- function(expr) {
  tryCatch({
    expr
    NULL
  }, expectation_failure = function(e) conditionMessage(e))
}

for (i in seq_len(design_cases)) {
  case <- design_case(design_seed + i)
  test_that(design_describe(case), {
    m <- fit_design_lmm(case)
    if (inherits(m$value, "error")) {
      expect_s3_class(m$value, "mlmfit_error")
      count("refused")
      if (case$structure == "none") {
        l <- fit_design_lme4(case)
        if (lme4_clean(l, case$REML)) {
          expect_false(lme4_ray_rises(case, lme4::getME(l$value, "theta")),
                       label = paste("lme4 finds a proper optimum where mlmfit refused with", class(m$value)[1]))
        }
      } else if (!inherits(fit_design_nlme(case)$value, "error")) {
        count("refused_where_nlme_fits")
      }
      return(invisible())
    }
    fit <- m$value
    count("fitted")
    problem <- first_failure(expect_consistent(fit, case$data, paste("seed", case$seed)))
    if (!is.null(problem)) return(fail(paste("methods disagree:", problem)))

    if (case$structure == "none") {
      l <- fit_design_lme4(case)
      if (inherits(l$value, "error")) return(invisible())
      d_ref <- lme4_criterion(l$value, case$REML)
      if (!is.finite(d_ref)) return(invisible())
      if (deviance(fit) - d_ref > 1e-4) {
        count("worse_than_reference")
        return(expect_lt(deviance(fit) - d_ref, 1e-4))
      }
      if (!lme4_clean(l, case$REML)) return(invisible())
      count("compared_lme4")
      if (deviance(fit) < d_ref - 1e-6) return(count("better_than_reference"))
      if (agrees_with_lme4(fit, l$value)) return(invisible())
      polished <- lme4_polished(case, lme4::getME(l$value, "theta"))
      if (deviance(fit) <= lme4_criterion(polished, case$REML) + 1e-9) return(count("better_than_reference"))
      return(expect_agreement_once(fit, polished, expect_lme4_agreement))
    }

    r <- fit_design_nlme(case)
    if (inherits(r$value, "error")) return(invisible())
    count("compared_nlme")
    gain <- as.numeric(logLik(fit)) - as.numeric(logLik(r$value))
    if (gain < -1e-3) {
      count("worse_than_reference")
      return(expect_gt(gain, -1e-3))
    }
    if (gain > 1e-3) return(count("better_than_reference"))
    if (length(r$warnings) > 0L) return(invisible())
    # Compound symmetry within g1 and a random intercept for g1 describe the
    # same covariances along a ridge (sigma, rho and the intercept's
    # variance trade off): there only the fixed effects are identified.
    # varIdent: nlme takes the first stratum met as the reference, mlmfit
    # the first level; the standard deviations of the strata are compared.
    compare <- switch(case$structure, corCompSymm = expect_same_fixed_effects,
                      varIdent = expect_same_stratum_sds, expect_nlme_agreement)
    expect_agreement_once(fit, r$value, compare)
  })
}

test_that("the design cases exercise fits and comparisons with lme4 and nlme", {
  skip_if(design_cases < 30L, "too few design cases for the tally")
  expect_gt(design_tally[["fitted"]], 0.7 * design_cases)
  expect_gt(design_tally[["compared_lme4"]], 0.1 * design_cases)
  expect_gt(design_tally[["compared_nlme"]], 0.1 * design_cases)
  cat("\ndesign fuzz (seed ", design_seed, ", ", design_cases, " cases): ",
      paste(names(design_tally), design_tally, sep = " = ", collapse = ", "), "\n", sep = "")
})
