# What one deviance evaluation and one gradient of a linear mixed model
# cost, from the stored cross-products, and the engine's whole optimisation
# from them (the path of a fit from a database table: moment start,
# optimiser, rules at the optimum, final evaluation; median of 3 runs of
# at least 0.1 s each), in CPU seconds so that a busy machine distorts
# less; with the deviance and gradient at the optimum to check that a
# change leaves them as they were.
# Usage, mlmfit installed:
#   Rscript bench/evaluation-cost.R                   # AVX2/FMA kernels where the CPU has them
#   MLMFIT_NO_AVX2=1 Rscript bench/evaluation-cost.R  # the baseline kernels
#   Rscript bench/evaluation-cost.R --models=nested,nested_1e8,three_level,three_level_slopes,sleepstudy,hsb
# Models: InstEval (dense Schur complement of 1,156 levels, gathered fill)
# and a crossed 1e6-row model with 5,000 x 100 levels (dense fill) by
# default; the 1e7-row model of the suite has the same evaluation cost as
# the latter. Nested: `y ~ x + (x | g)` with 1e5 groups from 1e6 rows, and
# the same design with 1e8 rows (bench/db.R's table: its cross-products are
# summed here in chunks of 1e7 rows, about 30 s), the two three-level
# models of the suite, sleepstudy and Hsb82.
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
source(file.path(bench_dir, "cases.R"))
suppressPackageStartupMessages(library(mlmfit))
ns <- asNamespace("mlmfit")
args <- commandArgs(trailingOnly = TRUE)
models_arg <- grep("^--models=", args, value = TRUE)
models <- if (length(models_arg)) strsplit(sub("^--models=", "", models_arg), ",")[[1L]] else c("insteval", "crossed")
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
cost_xp <- function(label, spec, xp, theta) {
  th <- unname(theta)
  k <- 6L
  nearby <- matrix(th, length(th), k) * rep(1 + 0.001 * seq_len(k), each = length(th))
  t1 <- per_call(function() ns$engine_deviance(spec, matrix(th, ncol = 1L), TRUE, xp))
  tk <- per_call(function() ns$engine_deviance(spec, nearby, TRUE, xp))
  tg <- per_call(function() ns$engine_deviance(spec, matrix(th, ncol = 1L), TRUE, xp, gradient = TRUE))
  engine <- ns$engine_refit_xp(spec, xp, NULL, TRUE, lmm_control())
  t_engine <- stats::median(vapply(1:3, function(i) {
    per_call(function() ns$engine_refit_xp(spec, xp, NULL, TRUE, lmm_control()), min_time = 0.1)
  }, numeric(1)))
  cat(sprintf("%-9s engine fit %.3f ms CPU (%d evaluations); evaluation %.3f ms, gradient +%.3f ms, set-up %.3f ms\n",
              label, 1e3 * t_engine, engine$optinfo$evals, 1e3 * (tk - t1) / (k - 1L), 1e3 * (tg - t1),
              1e3 * (t1 - (tk - t1) / (k - 1L))))
  cat(sprintf("          deviance %.10f, gradient %s\n", engine$deviance,
              paste(signif(ns$engine_deviance(spec, matrix(th, ncol = 1L), TRUE, xp, gradient = TRUE)$gradient, 6),
                    collapse = " ")))
}
cost <- function(label, formula, data) {
  fit_time <- system.time(fit <- lmm(formula, data))
  cat(sprintf("%-9s lmm() %.2f s CPU (%d evaluations)\n", label, fit_time[["user.self"]] + fit_time[["sys.self"]],
              fit$optinfo$evals))
  cost_xp(label, ns$fit_spec(fit), ns$fit_xp(fit), fit$theta)
}
# The cross-products of bench/db.R's nested table (n rows, group i %% k + 1,
# intercepts of SD 2 and slopes of SD 0.5), summed in chunks; the spec from
# a small fit of the same design (every group present).
nested_table_xp <- function(n = 1e8, k = 1e5, chunk = 1e7) {
  set.seed(42)
  u0 <- 2 * rnorm(k)
  u1 <- 0.5 * rnorm(k)
  S <- matrix(0, k, 5)
  tot <- numeric(5)
  for (c in seq_len(n / chunk)) {
    i <- (c - 1) * chunk + seq_len(chunk)
    g <- (i %% k) + 1
    x <- rnorm(chunk)
    y <- 1 + 0.5 * x + rnorm(chunk) + u0[g] + u1[g] * x
    S <- S + rowsum(cbind(1, x, x * x, y, x * y), g, reorder = TRUE)
    tot <- tot + c(sum(x), sum(y), sum(x * x), sum(y * y), sum(x * y))
  }
  xb <- tot[1] / n
  yb <- tot[2] / n
  small <- data.frame(y = rnorm(3 * k), x = rnorm(3 * k), g = rep(seq_len(k), 3))
  fit <- lmm(y ~ x + (x | g), small)
  xp <- ns$fit_xp(fit)
  odd <- seq(1, 2 * k, 2)
  even <- odd + 1
  xp$n <- n
  xp$center <- c(0, xb, yb)
  xp$D1[1, odd] <- S[, 1]
  xp$D1[2, odd] <- xp$D1[1, even] <- S[, 2]
  xp$D1[2, even] <- S[, 3]
  xp$C1[, odd] <- rbind(S[, 1], S[, 2] - S[, 1] * xb, S[, 4] - S[, 1] * yb)
  xp$C1[, even] <- rbind(S[, 2], S[, 3] - xb * S[, 2], S[, 5] - yb * S[, 2])
  xp$XX[] <- 0
  xp$XX[1, 1] <- n
  xp$XX[2, 2] <- tot[3] - n * xb^2
  xp$XX[3, 3] <- tot[4] - n * yb^2
  xp$XX[3, 2] <- xp$XX[2, 3] <- tot[5] - n * xb * yb
  spec <- ns$fit_spec(fit)
  list(spec = spec, xp = xp, theta = ns$engine_refit_xp(spec, xp, NULL, TRUE, lmm_control())$theta)
}
cat("dense kernels:", if (nzchar(Sys.getenv("MLMFIT_NO_AVX2"))) "baseline (MLMFIT_NO_AVX2 set)" else "AVX2/FMA where the CPU has them", "\n")
for (m in models) switch(m,
  insteval = cost("InstEval", bench_cases$insteval$formula, bench_cases$insteval$data(FALSE)),
  crossed = cost("crossed", bench_cases$crossed_1e6$formula, bench_cases$crossed_1e6$data(FALSE)),
  nested = cost("nested", y ~ x + (x | g), simulate_slopes(1e6, 1e5)),
  nested_1e8 = with(nested_table_xp(), cost_xp("nested1e8", spec, xp, theta)),
  three_level = cost("3-level", bench_cases$three_level_1e6$formula, bench_cases$three_level_1e6$data(FALSE)),
  three_level_slopes = cost("3-slopes", bench_cases$three_level_slopes_1e6$formula,
                            bench_cases$three_level_slopes_1e6$data(FALSE)),
  sleepstudy = cost("sleep", bench_cases$sleepstudy$formula, bench_cases$sleepstudy$data(FALSE)),
  hsb = cost("Hsb82", bench_cases$hsb$formula, bench_cases$hsb$data(FALSE)),
  stop("unknown model ", m))
