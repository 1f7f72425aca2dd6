# Evaluations and CPU time of lmm() fits on the models of the optimiser
# work (issue 17): sleepstudy, Hsb82, InstEval and the crossed 1e6-row
# model of bench/cases.R; CPU seconds (user + system), medians. Compare two
# builds by running it with each on the library path, one after the other;
# --lme4 also times lme4::lmer() (whichever lme4 the library path finds).
#   R_LIBS=<library with mlmfit> Rscript bench/evaluations.R [--reps=5] [--lme4]
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
source(file.path(bench_dir, "cases.R"))
suppressPackageStartupMessages(library(mlmfit))
args <- commandArgs(trailingOnly = TRUE)
reps_arg <- grep("^--reps=", args, value = TRUE)
reps <- if (length(reps_arg)) as.integer(sub("^--reps=", "", reps_arg)) else 5L
with_lme4 <- "--lme4" %in% args
cpu <- function() sum(proc.time()[c("user.self", "sys.self")])
# Fits per timed run: a fit of a millisecond is below the clock's resolution.
cases <- c(sleepstudy = 200L, hsb = 20L, insteval = 1L, crossed_1e6 = 1L)
median_cpu <- function(fit_once, batch) {
  median(vapply(seq_len(reps), function(i) {
    t0 <- cpu()
    for (k in seq_len(batch)) fit_once()
    (cpu() - t0) / batch
  }, numeric(1)))
}
for (nm in names(cases)) {
  case <- bench_cases[[nm]]
  data <- case$data(FALSE)
  fit <- lmm(case$formula, data)
  t_mlm <- median_cpu(function() lmm(case$formula, data), cases[[nm]])
  line <- sprintf("%-11s %3d evaluations  deviance %.9f  mlmfit %.4f s", nm, fit$optinfo$evals, deviance(fit), t_mlm)
  if (with_lme4) {
    lfit <- lme4::lmer(case$formula, data)
    t_lme4 <- median_cpu(function() lme4::lmer(case$formula, data), max(1L, cases[[nm]] %/% 10L))
    line <- sprintf("%s  lme4 %s %.4f s (%.1fx), its deviance %.9f", line, utils::packageVersion("lme4"), t_lme4,
                    t_lme4 / t_mlm, lme4::REMLcrit(lfit))
  }
  cat(line, " (CPU, median of ", reps, ")\n", sep = "")
}
