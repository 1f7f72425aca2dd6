# Speed of the inference methods on a school-sized model (High School and
# Beyond: 7185 students in 160 schools), against lme4/lmerTest where they
# offer the same computation. Run from the package root after installing
# the package (optimised build):
#   Rscript bench/bootstrap.R
# Results are written to bench/bootstrap-results.md.
suppressPackageStartupMessages({
  library(mlmfit)
  library(lme4)
})
data("Hsb82", package = "mlmRev")
reps <- 3L
# median elapsed and CPU (user + system) seconds; on a shared machine the
# CPU time is the steadier of the two
time_it <- function(expr, reps) {
  expr <- substitute(expr)
  env <- parent.frame()
  t <- vapply(seq_len(reps), function(i) {
    st <- system.time(eval(expr, env))
    c(st[["elapsed"]], st[["user.self"]] + st[["sys.self"]] + st[["user.child"]] + st[["sys.child"]])
  }, numeric(2))
  c(elapsed = median(t[1L, ]), cpu = median(t[2L, ]))
}

fm_slope <- mAch ~ cses + (1 + cses | school)
fit <- lmm(fm_slope, Hsb82)
ref <- lmer(fm_slope, Hsb82)

t_fit <- time_it(lmm(fm_slope, Hsb82), reps)
t_boot <- time_it(parametric_bootstrap(fit, nsim = 1000, seed = 1, progress = FALSE), reps)
t_boot_2 <- time_it(parametric_bootstrap(fit, nsim = 1000, seed = 1, progress = FALSE, cores = 2L), reps)
fun <- function(m) c(fixef(m), sigma = sigma(m))
t_bootmer_100 <- time_it(suppressMessages(suppressWarnings(bootMer(ref, fun, nsim = 100, seed = 1))), 1L)

fm_full <- mAch ~ meanses * cses + sector * cses + (1 + cses | school)
full <- lmm(fm_full, Hsb82)
ref_full <- lmer(fm_full, Hsb82)
t_profile <- time_it(confint(full), reps)
t_profile_lme4 <- time_it(suppressMessages(suppressWarnings(confint(ref_full))), 1L)
t_satt <- time_it(summary(full), reps)
t_kr <- time_it(summary(full, ddf = "Kenward-Roger"), reps)
have_lmertest <- requireNamespace("lmerTest", quietly = TRUE)
if (have_lmertest) {
  t_satt_ref <- time_it(summary(lmerTest::lmer(fm_full, Hsb82)), 1L)
  t_kr_ref <- time_it(summary(lmerTest::lmer(fm_full, Hsb82), ddf = "Kenward-Roger"), 1L)
}

fmt <- function(x) sprintf("%.2f s (CPU %.2f s)", x[["elapsed"]], x[["cpu"]])
lines <- c(
  "# Inference benchmark (bench/bootstrap.R)",
  "",
  sprintf("Machine: %s, R %s, %s; median of %d runs for mlmfit, one run for lme4/lmerTest.",
          Sys.info()[["machine"]], getRversion(), format(Sys.Date()), reps),
  sprintf("Elapsed time, with CPU time (user + system, including child processes) in brackets; load average at the start: %s.",
          paste(tryCatch(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], error = function(e) "n/a"), collapse = " ")),
  "",
  "Model A: `mAch ~ cses + (1 + cses | school)`, Hsb82 (7185 students, 160 schools).",
  "Model B: `mAch ~ meanses * cses + sector * cses + (1 + cses | school)`, Hsb82.",
  "",
  "| task | mlmfit | lme4 / lmerTest |",
  "|---|---|---|",
  sprintf("| fit of model A | %s | |", fmt(t_fit)),
  sprintf("| parametric bootstrap, 1000 refits of model A (1 core) | %s | %s (`bootMer`, 100 refits) |",
          fmt(t_boot), fmt(t_bootmer_100)),
  sprintf("| parametric bootstrap, 1000 refits of model A (2 cores) | %s | |", fmt(t_boot_2)),
  sprintf("| profile confidence intervals, all 10 parameters of model B | %s | %s |", fmt(t_profile), fmt(t_profile_lme4)),
  sprintf("| summary with Satterthwaite df, model B (lmerTest: fit + summary) | %s | %s |", fmt(t_satt),
          if (have_lmertest) fmt(t_satt_ref) else "n/a"),
  sprintf("| summary with Kenward-Roger df, model B (lmerTest: fit + summary) | %s | %s |", fmt(t_kr),
          if (have_lmertest) fmt(t_kr_ref) else "n/a")
)
writeLines(lines, "bench/bootstrap-results.md")
writeLines(lines)
