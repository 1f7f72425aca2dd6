# Reference limits for the tests of profile-likelihood intervals: lme4's
# confint(method = "profile") of the models the tests fit with mlmfit.
# lme4's profiles take seconds (sleepstudy, cbpp) to minutes
# (Contraception) per model, too slow to recompute in every test run; the
# full tier of the tests recomputes the quick ones and checks that they
# still equal these (test-lme4-references.R). Run from the package root:
#   Rscript data-raw/lme4-profiles.R
# Writes tests/testthat/fixtures/lme4-profiles.csv.
suppressPackageStartupMessages(library(lme4))
source("tests/testthat/helper-data.R")
profile_models <- lme4_profile_models()
rows <- lapply(names(profile_models), function(name) {
  m <- profile_models[[name]]
  ci <- suppressWarnings(suppressMessages(m$limits(m$fit())))
  data.frame(model = name, parameter = rownames(ci), lower = unname(ci[, 1L]), upper = unname(ci[, 2L]),
             lme4 = as.character(packageVersion("lme4")))
})
out <- do.call(rbind, rows)
utils::write.csv(out, "tests/testthat/fixtures/lme4-profiles.csv", row.names = FALSE)
print(out)
