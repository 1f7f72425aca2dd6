# The test command: installs the package from this checkout into a private
# library (compiled objects are reused between runs), runs the testthat
# suite against it and prints one line "N passed, N failed". Exits
# non-zero when a test fails or errors. Usage: Rscript tools/run-tests.R [filter]
args <- commandArgs(trailingOnly = TRUE)
filter <- if (length(args) > 0L) args[[1L]] else NULL
root <- normalizePath(".")
lib <- file.path(root, ".test-lib")
dir.create(lib, showWarnings = FALSE)
log <- tempfile()
status <- system2(file.path(R.home("bin"), "R"),
                  c("CMD", "INSTALL", "--no-test-load", "--no-docs", "--no-multiarch", paste0("--library=", shQuote(lib)), shQuote(root)),
                  stdout = log, stderr = log)
if (status != 0L) {
  writeLines(readLines(log))
  cat("0 passed, 1 failed\n")
  quit(status = 1L)
}
.libPaths(c(lib, .libPaths()))
suppressPackageStartupMessages(library(mlmfit, lib.loc = lib))
library(testthat)
results <- testthat::test_dir(file.path(root, "tests", "testthat"), filter = filter, package = "mlmfit",
                              load_package = "installed", stop_on_failure = FALSE,
                              reporter = testthat::ProgressReporter$new(show_praise = FALSE))
df <- as.data.frame(results)
failed <- sum(df$failed) + sum(df$error)
passed <- sum(df$nb) - sum(df$failed) - sum(df$skipped)
cat(sprintf("%d passed, %d failed\n", passed, failed))
quit(status = if (failed > 0L) 1L else 0L)
