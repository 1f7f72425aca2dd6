# CPU time of glmm() fits (user + system; median of repeated fits,
# alternating the cases so that load on a shared machine spreads over all
# of them), with the evaluations and PIRLS passes each fit made. Usage
# (mlmfit in .test-lib or installed; only the cases whose names match the
# regular expression `cases`):
#   Rscript bench/glmm-speed.R [reps = 7] [library = .test-lib] [cases = .]
args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args) >= 1L) as.integer(args[[1L]]) else 7L
lib <- if (length(args) >= 2L) args[[2L]] else ".test-lib"
only <- if (length(args) >= 3L) args[[3L]] else "."
if (dir.exists(lib)) .libPaths(c(normalizePath(lib), .libPaths()))
suppressPackageStartupMessages(library(mlmfit))
source("bench/cases.R")
e <- new.env()
utils::data("Contraception", package = "mlmRev", envir = e)
utils::data("cbpp", package = "lme4", envir = e)
# Item responses with a random slope on persons, for (x | person) + (1 | item).
simulate_crossed_slope <- function(n, persons, items) {
  d <- simulate_crossed(n, persons, items, "binomial")
  set.seed(2)
  re <- matrix(rnorm(2 * persons), persons) %*% chol(matrix(c(1, 0.3 * 0.4, 0.3 * 0.4, 0.16), 2))
  d$y <- stats::rbinom(n, 1, stats::plogis(0.2 + 0.3 * d$x - 0.4 * d$w + re[d$person, 1] + re[d$person, 2] * d$x +
                                             rnorm(items, sd = 0.7)[d$item]))
  d
}
cases <- list(
  contraception = list(data = e$Contraception, formula = use ~ age + I(age^2) + urban + livch + (1 | district)),
  contraception_slope = list(data = e$Contraception,
                             formula = use ~ age + I(age^2) + urban + livch + (urban | district)),
  cbpp = list(data = e$cbpp, formula = cbind(incidence, size - incidence) ~ period + (1 | herd)),
  binary_1e5 = list(data = simulate_binary(1e5, 1e3), formula = y ~ x1 + x2 + (1 | g)),
  binary_1e6 = list(data = simulate_binary(1e6, 1e4), formula = y ~ x1 + x2 + (1 | g)),
  binary_1e5_slope = list(data = simulate_binary(1e5, 1e3), formula = y ~ x1 + x2 + (x1 | g)),
  crossed_binom_2e5 = list(data = simulate_crossed(2e5, 2000, 500, "binomial"),
                           formula = y ~ x + w + (1 | person) + (1 | item)),
  crossed_pois_2e5 = list(data = simulate_crossed(2e5, 2000, 500, "poisson"),
                          formula = y ~ x + w + (1 | person) + (1 | item), family = poisson),
  crossed_slope_1e5 = list(data = simulate_crossed_slope(1e5, 1000, 200),
                           formula = y ~ x + w + (x | person) + (1 | item)),
  crossed_slopes_1e5 = list(data = simulate_crossed_slope(1e5, 1000, 200),
                            formula = y ~ x + w + (x | person) + (x | item))
)
cases <- cases[grepl(only, names(cases))]
times <- lapply(cases, function(x) numeric())
info <- list()
for (r in seq_len(reps)) {
  for (nm in names(cases)) {
    if (nm %in% c("binary_1e6", "crossed_binom_2e5", "crossed_pois_2e5") && r > 3L) next
    cs <- cases[[nm]]
    gc()
    t <- system.time(fit <- suppressMessages(glmm(cs$formula, cs$data, if (is.null(cs$family)) binomial else cs$family)))
    t <- t[["user.self"]] + t[["sys.self"]]
    times[[nm]] <- c(times[[nm]], t)
    info[[nm]] <- c(evals = fit$optinfo$evals, stage1 = if (is.null(fit$optinfo$stage1)) NA else fit$optinfo$stage1$evals,
                    passes = fit$optinfo$pirls_passes, dev = -2 * as.numeric(logLik(fit)))
  }
}
cat(sprintf("load average at the end: %s\n", paste(readLines("/proc/loadavg"), collapse = " ")))
for (nm in names(cases)) {
  cat(sprintf("%-19s CPU median %8.3f s (min %.3f, %d runs)  evals %4d (stage 1 %4d)  passes %5d  -2logLik %.6f\n",
              nm, stats::median(times[[nm]]), min(times[[nm]]), length(times[[nm]]), info[[nm]][["evals"]],
              info[[nm]][["stage1"]], info[[nm]][["passes"]], info[[nm]][["dev"]]))
}
