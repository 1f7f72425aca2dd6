# CPU time per observation of the family terms of a PIRLS pass (deviance
# residual, working weight, working residual), as a pass computes them in
# blocks of 1024 observations: the binomial-logit and Poisson-log family
# kernels (src/engine/family_kernels.*: own exp and log, a vector at a
# time, the AVX2 build where the CPU has it) against the engine's general
# per-observation formulas (the C library's exp and log). Medians of `reps`
# timings of ten calls on 1e6 observations, alternating (each call also
# allocates and fills its three result vectors). Usage (mlmfit in .test-lib or
# installed; MLMFIT_NO_AVX2=1 for the baseline build):
#   Rscript bench/family-kernels.R [reps = 9] [library = .test-lib]
args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args) >= 1L) as.integer(args[[1L]]) else 9L
lib <- if (length(args) >= 2L) args[[2L]] else ".test-lib"
if (dir.exists(lib)) .libPaths(c(normalizePath(lib), .libPaths()))
suppressPackageStartupMessages(library(mlmfit))
n <- 1e6
set.seed(1)
eta <- rnorm(n, sd = 1.5)
inputs <- list(logit = as.numeric(runif(n) < stats::plogis(eta)), poisson = as.numeric(stats::rpois(n, exp(eta / 2))))
kernels <- c("logit", "generic_logit", "poisson", "generic_poisson")
times <- setNames(vector("list", length(kernels)), kernels)
for (r in seq_len(reps)) {
  for (k in kernels) {
    y <- inputs[[sub("generic_", "", k)]]
    e <- if (grepl("poisson", k)) eta / 2 else eta
    t <- system.time(for (i in 1:10) mlmfit:::family_pass_terms_cpp(e, y, numeric(), k, 1024L))
    times[[k]] <- c(times[[k]], (t[["user.self"]] + t[["sys.self"]]) / 10)
  }
}
build <- mlmfit:::family_kernel_builds_cpp(0, 0)$in_use
cat(sprintf("family kernels in use: %s build; load average %s\n", build, readLines("/proc/loadavg")))
for (k in kernels) cat(sprintf("%-16s %6.2f ns per observation (median of %d)\n", k, 1e9 * stats::median(times[[k]]) / n, reps))
