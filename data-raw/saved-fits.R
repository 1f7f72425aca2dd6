# Fits saved by an earlier version of mlmfit, for the test that such fits
# still load and answer after the fit object changes
# (tests/testthat/test-saved-fits.R). Each file holds the fit and the
# answers that version gave (fixef, summary's coefficients, predictions,
# Wald intervals, printed output). Run from the package root with that
# version installed:
#   Rscript data-raw/saved-fits.R
# The files in tests/testthat/fixtures/ were made by mlmfit 0.1.0 at commit
# fa30ef6 (before the fit object had a constructor and a version stamp).
suppressPackageStartupMessages(library(mlmfit))
nels <- nels88
nels$pass <- nels$math >= 50
newdata <- data.frame(homework = c(0, 2, 5), schid = nels$schid[c(1, 30, 200)], public = c(0, 1, 1))
fits <- list(
  lmm = lmm(math ~ homework + (homework | schid), nels),
  glmm = glmm(pass ~ homework + (1 | schid), nels, family = binomial),
  structured = lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont,
                   correlation = nlme::corAR1(form = ~ 1 | Subject))
)
newdata_of <- list(lmm = newdata, glmm = newdata,
                   structured = data.frame(age = c(8, 10, 14), Sex = c("Male", "Female", "Male"),
                                           Subject = c("M01", "F02", "M05")))
version <- as.character(utils::packageVersion("mlmfit"))
for (kind in names(fits)) {
  fit <- fits[[kind]]
  answers <- list(
    fixef = fixef(fit),
    coefficients = summary(fit)$coefficients,
    predict = predict(fit, newdata = newdata_of[[kind]]),
    confint = confint(fit, method = "Wald"),
    print = utils::capture.output(print(fit)),
    summary = utils::capture.output(print(summary(fit)))
  )
  saveRDS(list(fit = fit, newdata = newdata_of[[kind]], answers = answers, version = version),
          file.path("tests", "testthat", "fixtures", paste0("saved-fit-", version, "-", kind, ".rds")))
}
