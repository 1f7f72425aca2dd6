# Fits saved by an earlier version of mlmfit (data-raw/saved-fits.R: an
# lmm, a glmm and a fit with a residual structure, made by mlmfit 0.1.0
# before fits had a version stamp) still load and answer as that version
# did: print, summary, fixef, predict and Wald intervals.

for (kind in c("lmm", "glmm", "structured")) {
  test_that(paste("a saved", kind, "fit of mlmfit 0.1.0 loads and answers as it did"), {
    saved <- readRDS(test_path("fixtures", paste0("saved-fit-0.1.0-", kind, ".rds")))
    fit <- saved$fit
    answers <- saved$answers
    expect_null(fit$version)
    expect_equal(fixef(fit), answers$fixef)
    # Satterthwaite's df are second differences of the deviance: moving
    # theta by a few units in the last place moves their sixth digit (so
    # does any change in the engine's rounding); the rest of the table is
    # exact to far below that
    expect_equal(summary(fit)$coefficients, answers$coefficients, tolerance = 1e-5)
    expect_equal(predict(fit, newdata = saved$newdata), answers$predict)
    expect_equal(confint(fit, method = "Wald"), answers$confint)
    # (the fixtures were printed with fancy quotes, the tests print without)
    plain_quotes <- function(x) gsub("[\u2018\u2019]", "'", x)
    expect_identical(plain_quotes(utils::capture.output(print(fit))), plain_quotes(answers$print))
    # the printed summary to the letter, but for the rows of fixed effects
    # (their df printed to seven digits; compared as numbers above)
    fixed_rows <- function(lines) {
      vapply(lines, function(l) any(startsWith(l, paste0(rownames(answers$coefficients), " "))), logical(1),
             USE.NAMES = FALSE)
    }
    printed <- plain_quotes(utils::capture.output(print(summary(fit))))
    expected <- plain_quotes(answers$summary)
    expect_identical(fixed_rows(printed), fixed_rows(expected))
    expect_identical(printed[!fixed_rows(printed)], expected[!fixed_rows(expected)])
    # in memory it is brought to the current layout, stamped and valid
    current <- current_fit(fit)
    expect_identical(fit_version(current), as.character(utils::packageVersion("mlmfit")))
    expect_s3_class(fit_spec(current), "mlmfit_spec")
    expect_identical(class(current), class(fit))
  })
}

test_that("a new fit carries the version of mlmfit that made it and passes the validator", {
  fit <- lmm(math ~ homework + (1 | schid), nels88_data())
  expect_identical(fit_version(fit), as.character(utils::packageVersion("mlmfit")))
  expect_identical(validate_mlmfit(fit), fit)
  broken <- fit
  broken$beta <- broken$beta[-1]
  expect_error(validate_mlmfit(broken), class = "mlmfit_error_internal")
})
