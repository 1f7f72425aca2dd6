# Speed of glmm() against lme4::glmer on the two GLMMs of the benchmark
# suite: mlmRev's Contraception (1934 women, 60 districts, Laplace) and a
# simulated binary outcome with 1e6 rows in 10,000 groups. Runs of the two
# packages alternate in one R process; the table gives median elapsed
# seconds, the ratio glmer / glmm and the difference of -2 log-likelihoods.
#
# Usage (from the package root, after installing mlmfit, e.g. with
# tools/run-tests.R which installs into ./.test-lib):
#   Rscript bench/glmm.R [runs_small = 5] [runs_large = 1]
# Writes bench/glmm-results.md.

args <- commandArgs(trailingOnly = TRUE)
runs_small <- if (length(args) >= 1L) as.integer(args[[1L]]) else 5L
runs_large <- if (length(args) >= 2L) as.integer(args[[2L]]) else 1L
if (dir.exists(".test-lib")) .libPaths(c(normalizePath(".test-lib"), .libPaths()))
suppressPackageStartupMessages({
  library(mlmfit)
  library(lme4)
})

time_it <- function(expr) {
  gc(FALSE)
  t <- system.time(value <- force(expr))[["elapsed"]]
  list(time = t, value = value)
}

compare <- function(label, fit_mlm, fit_lme4, runs) {
  tm <- tl <- numeric(runs)
  for (r in seq_len(runs)) {
    a <- time_it(fit_mlm())
    b <- time_it(suppressWarnings(suppressMessages(fit_lme4())))
    tm[r] <- a$time
    tl[r] <- b$time
  }
  dev_m <- -2 * as.numeric(logLik(a$value))
  dev_l <- -2 * as.numeric(logLik(b$value))
  data.frame(model = label, runs = runs, glmm_s = median(tm), glmer_s = median(tl),
             ratio = median(tl) / median(tm), dev_glmm_minus_glmer = dev_m - dev_l)
}

data("Contraception", package = "mlmRev")
fc <- use ~ age + I(age^2) + urban + livch + (1 | district)
res1 <- compare("Contraception (1934 rows, 60 districts)",
                function() glmm(fc, Contraception, binomial),
                function() glmer(fc, Contraception, binomial), runs_small)

set.seed(1)
n <- 1e6
k <- 1e4
g <- sample.int(k, n, replace = TRUE)
sim <- data.frame(x1 = rnorm(n), x2 = rbinom(n, 1, 0.4), g = factor(g))
sim$y <- rbinom(n, 1, plogis(-0.5 + 0.6 * sim$x1 - 0.4 * sim$x2 + rnorm(k, 0, 0.8)[g]))
fs <- y ~ x1 + x2 + (1 | g)
res2 <- compare("simulated binary, 1e6 rows, 10,000 groups",
                function() glmm(fs, sim, binomial),
                function() glmer(fs, sim, binomial), runs_large)

res <- rbind(res1, res2)
print(res, digits = 4)
cpu <- tryCatch(trimws(sub(".*:", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)[1L])),
                error = function(e) "unknown")
out <- c("# glmm() against glmer", "",
         sprintf("Machine: %s, %d cores; %s; lme4 %s; mlmfit %s; %s.", cpu, parallel::detectCores(),
                 R.version.string, packageVersion("lme4"), packageVersion("mlmfit"), format(Sys.Date())),
         "Command: `Rscript bench/glmm.R %d %d`" |> sprintf(runs_small, runs_large), "",
         "| model | runs | glmm (s) | glmer (s) | glmer / glmm | -2 logLik: glmm - glmer |",
         "|---|---|---|---|---|---|",
         sprintf("| %s | %d | %.3f | %.3f | %.1f | %.2g |", res$model, res$runs, res$glmm_s, res$glmer_s, res$ratio,
                 res$dev_glmm_minus_glmer))
writeLines(out, file.path("bench", "glmm-results.md"))
