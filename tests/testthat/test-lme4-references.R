# The lme4 profile limits and traces the tests compare with are stored in
# fixtures/lme4-profiles.csv and lme4-profile-traces.csv (data-raw/lme4-profiles.R,
# lme4-profile-traces.R), since lme4 takes
# seconds to minutes per profile. The full tier recomputes the quicker ones
# with the lme4 installed and checks that the fixture still holds them.

test_that("the stored lme4 profile limits are those lme4 computes", {
  skip_unless_full_tests()
  skip_if_not_installed("lme4")
  models <- lme4_profile_models()
  for (name in names(models)[vapply(models, `[[`, logical(1), "quick")]) {
    m <- models[[name]]
    live <- suppressWarnings(suppressMessages(m$limits(m$fit())))
    expect_equal(live, lme4_profile_limits(name), tolerance = 1e-6, info = name)
  }
})

test_that("the stored lme4 profile traces are those lme4's profile() computes", {
  skip_unless_full_tests()
  skip_if_not_installed("lme4")
  models <- lme4_trace_models()
  stored <- utils::read.csv(test_path("fixtures", "lme4-profile-traces.csv"), stringsAsFactors = FALSE)
  for (name in names(models)) {
    live <- thpr_to_long(suppressWarnings(profile(models[[name]]())), name)
    ref <- stored[stored$model == name, names(live)]
    rownames(ref) <- NULL
    expect_equal(live, ref, tolerance = 1e-5, info = name)
  }
})
