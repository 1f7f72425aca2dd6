# A first fit: mathematics scores of 519 students in 23 schools (NELS:88),
# with a random intercept and a random slope for homework.
library(mlmfit)
fit <- lmm(math ~ homework + (1 + homework | schid), data = nels88)
print(summary(fit))
cat("\nTime for 100 fits of this model:", format(system.time(for (i in 1:100) lmm(math ~ homework + (1 + homework | schid), data = nels88))[["elapsed"]]), "seconds\n")
lessons <- utils::vignette(package = "mlmfit")$results
cat("\nThe lessons (vignette(\"<name>\", package = \"mlmfit\"), or browseVignettes(\"mlmfit\")):\n")
cat(paste0("  ", format(lessons[, "Item"]), "  ", lessons[, "Title"]), sep = "\n")
