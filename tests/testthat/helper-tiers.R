# Test tiers. The default run is the fast tier, for iterating; `.ci/run`
# sets MLMFIT_TESTS=full, which adds the slow tests (long fuzz runs, large
# data, the website in a browser, ...). Mark a slow test with
# skip_unless_full_tests() as its first line.
full_tests <- function() identical(Sys.getenv("MLMFIT_TESTS"), "full")

skip_unless_full_tests <- function() {
  testthat::skip_if_not(full_tests(), "slow test: run with MLMFIT_TESTS=full")
}
