# What one deviance evaluation and one gradient of a crossed linear mixed
# model cost, from the stored cross-products (CPU seconds, so that a busy
# machine distorts less), with the deviance and gradient at the optimum to
# check that a change leaves them as they were. Usage, mlmfit installed:
#   Rscript bench/evaluation-cost.R                   # AVX2/FMA kernels where the CPU has them
#   MLMFIT_NO_AVX2=1 Rscript bench/evaluation-cost.R  # the baseline kernels
# Models: InstEval (dense Schur complement of 1,156 levels, gathered fill)
# and a crossed 1e6-row model with 5,000 x 100 levels (dense fill); the
# 1e7-row model of the suite has the same evaluation cost as the latter.
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
source(file.path(bench_dir, "cases.R"))
suppressPackageStartupMessages(library(mlmfit))
ns <- asNamespace("mlmfit")
cpu <- function() sum(proc.time()[c("user.self", "sys.self")])
per_call <- function(f, min_time = 0.3) {
  n <- 1L
  repeat {
    t0 <- cpu()
    for (i in seq_len(n)) f()
    t <- cpu() - t0
    if (t >= min_time) return(t / n)
    n <- n * 2L
  }
}
cost <- function(label, formula, data) {
  fit_time <- system.time(fit <- lmm(formula, data))
  spec <- ns$fit_spec(fit)
  xp <- ns$fit_xp(fit)
  th <- unname(fit$theta)
  k <- 6L
  nearby <- matrix(th, length(th), k) * rep(1 + 0.001 * seq_len(k), each = length(th))
  t1 <- per_call(function() ns$engine_deviance(spec, matrix(th, ncol = 1L), TRUE, xp))
  tk <- per_call(function() ns$engine_deviance(spec, nearby, TRUE, xp))
  tg <- per_call(function() ns$engine_deviance(spec, matrix(th, ncol = 1L), TRUE, xp, gradient = TRUE))
  cat(sprintf("%-9s fit %.2f s CPU (%d evaluations); evaluation %.1f ms, gradient +%.1f ms, set-up %.1f ms\n",
              label, fit_time[["user.self"]] + fit_time[["sys.self"]], fit$optinfo$evals, 1e3 * (tk - t1) / (k - 1L),
              1e3 * (tg - t1), 1e3 * (t1 - (tk - t1) / (k - 1L))))
  cat(sprintf("          deviance %.10f, gradient %s\n", deviance(fit),
              paste(signif(ns$engine_deviance(spec, matrix(th, ncol = 1L), TRUE, xp, gradient = TRUE)$gradient, 6),
                    collapse = " ")))
}
cat("dense kernels:", if (nzchar(Sys.getenv("MLMFIT_NO_AVX2"))) "baseline (MLMFIT_NO_AVX2 set)" else "AVX2/FMA where the CPU has them", "\n")
cost("InstEval", bench_cases$insteval$formula, bench_cases$insteval$data(FALSE))
cost("crossed", bench_cases$crossed_1e6$formula, bench_cases$crossed_1e6$data(FALSE))
