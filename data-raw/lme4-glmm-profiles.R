# Reference limits for the tests of confint() of glmm() fits: lme4's
# profile-likelihood intervals of glmer fits on mlmRev's Contraception,
# which take lme4 a minute or more per model (too slow to recompute in
# every test run). Run from the package root:
#   Rscript data-raw/lme4-glmm-profiles.R
# Writes tests/testthat/fixtures/lme4-glmm-profiles.csv.
suppressPackageStartupMessages(library(lme4))
data("Contraception", package = "mlmRev")
models <- list(
  laplace = list(formula = use ~ age + I(age^2) + urban + livch + (1 | district), nAGQ = 1L),
  agq9 = list(formula = use ~ age + urban + (1 | district), nAGQ = 9L),
  slope = list(formula = use ~ age + urban + (urban | district), nAGQ = 1L)
)
rows <- lapply(names(models), function(name) {
  m <- models[[name]]
  ref <- suppressWarnings(glmer(m$formula, Contraception, binomial, nAGQ = m$nAGQ))
  ci <- suppressWarnings(suppressMessages(confint(ref, method = "profile")))
  data.frame(model = name, parameter = rownames(ci), lower = unname(ci[, 1L]), upper = unname(ci[, 2L]),
             lme4 = as.character(packageVersion("lme4")))
})
out <- do.call(rbind, rows)
utils::write.csv(out, "tests/testthat/fixtures/lme4-glmm-profiles.csv", row.names = FALSE)
print(out)
