# Reference traces for the tests of profile(): lme4's profile() of the
# models the tests profile with mlmfit, as a long table (model, the
# parameter held, the point of its trace, column, value). lme4's profiles
# take seconds per model; the full tier of the tests recomputes them and
# checks that they still equal these (test-lme4-references.R). Run from the
# package root:
#   Rscript data-raw/lme4-profile-traces.R
# Writes tests/testthat/fixtures/lme4-profile-traces.csv.
suppressPackageStartupMessages(library(lme4))
source("tests/testthat/helper-data.R")
models <- lme4_trace_models()
out <- do.call(rbind, lapply(names(models), function(name) {
  pr <- suppressWarnings(profile(models[[name]]()))
  thpr_to_long(pr, name)
}))
out$lme4 <- as.character(packageVersion("lme4"))
utils::write.csv(out, "tests/testthat/fixtures/lme4-profile-traces.csv", row.names = FALSE)
print(table(out$model))
