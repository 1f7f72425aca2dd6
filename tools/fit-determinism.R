# Are mlmfit's fits deterministic? Fits every case of bench/cases.R (quick
# data; not the bootstrap and the two 1e7-row cases) and some random GLMM
# designs (tests/testthat/helper-glmm-designs.R), forwards and then
# backwards in one process, and prints one fingerprint per fit (a digest of
# every number of the fit, its -2 log-likelihood in hex, evaluations and
# PIRLS passes) and whether both orders gave the same. Run it in several
# processes and compare the fingerprints across them too (the address-space
# layout differs between processes: glmer's rounding depends on it,
# tools/glmm-designs.R).
#
# Usage (from the repository's root, mlmfit installed in <library>):
#   Rscript tools/fit-determinism.R [library = .test-lib] [fingerprints.rds]
args <- commandArgs(trailingOnly = TRUE)
lib <- if (length(args) >= 1L) args[[1L]] else ".test-lib"
if (dir.exists(lib)) .libPaths(c(normalizePath(lib), .libPaths()))
suppressPackageStartupMessages({
  library(mlmfit)
  library(testthat)
})
source(file.path("bench", "cases.R"))
for (f in c("helper-fuzz.R", "helper-glmm-designs.R")) source(file.path("tests", "testthat", f))

numbers <- c("theta", "beta", "sigma", "b", "cond_var", "vcov", "fitted", "devcomp", "optinfo", "u", "eta",
             "working_weights", "xp")
fingerprint <- function(fit) {
  if (inherits(fit, "error")) return(paste("error:", conditionMessage(fit)))
  sprintf("%s %a evals %s", substr(digest::digest(unclass(fit)[intersect(numbers, names(fit))]), 1, 10),
          -2 * as.numeric(logLik(fit)), paste(unlist(fit$optinfo[c("evals", "pirls_passes")]), collapse = "/"))
}

jobs <- list()
for (name in setdiff(names(bench_cases), c("bootstrap", "nested_1e7", "crossed_1e7"))) {
  local({
    case <- bench_cases[[name]]
    data <- case$data(TRUE)
    jobs[[name]] <<- function() tryCatch(fit_with("mlmfit", case, data), error = identity)
  })
}
for (seed in c(7001:7012, 10270:10278, 9133)) {
  local({
    case <- glmm_design_case(seed)
    jobs[[paste0("design ", seed)]] <<- function() fit_glmm_design(case, "mlmfit")$value
  })
}

forward <- lapply(jobs, function(fit) fingerprint(fit()))
backward <- rev(lapply(rev(jobs), function(fit) fingerprint(fit())))
same <- mapply(identical, forward, backward)
for (name in names(jobs)) cat(sprintf("%-22s %-9s %s\n", name, if (same[[name]]) "same" else "DIFFERENT", forward[[name]]))
cat(sprintf("%d of %d fits the same forwards and backwards\n", sum(same), length(same)))
if (length(args) >= 2L) saveRDS(forward, args[[2L]])
