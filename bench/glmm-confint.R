# Speed of confint() for glmm() fits against lme4's confint() of the same
# glmer fits: profile intervals of every parameter on cbpp and on
# Contraception (Laplace), and a parametric bootstrap of cbpp (mlmfit:
# 1000 refits; lme4's bootMer: 100). Run from the package root after
# installing the package (optimised build):
#   Rscript bench/glmm-confint.R
# Results are written to bench/glmm-confint-results.md.
suppressPackageStartupMessages({
  library(mlmfit)
  library(lme4)
})
data("Contraception", package = "mlmRev")
# elapsed and CPU (user + system) seconds of one run
time_it <- function(expr) {
  st <- system.time(expr)
  c(elapsed = st[["elapsed"]], cpu = st[["user.self"]] + st[["sys.self"]] + st[["user.child"]] + st[["sys.child"]])
}
gap <- function(ours, theirs) {
  max(abs(ours - theirs) / (theirs[, 2L] - theirs[, 1L]))
}

fm_cbpp <- cbind(incidence, size - incidence) ~ period + (1 | herd)
fit_cbpp <- glmm(fm_cbpp, cbpp, binomial)
ref_cbpp <- glmer(fm_cbpp, cbpp, binomial)
t_cbpp <- time_it(ci_cbpp <- confint(fit_cbpp))
t_cbpp_lme4 <- time_it(ci_cbpp_lme4 <- suppressMessages(confint(ref_cbpp)))

fm_con <- use ~ age + I(age^2) + urban + livch + (1 | district)
fit_con <- glmm(fm_con, Contraception, binomial)
ref_con <- suppressWarnings(glmer(fm_con, Contraception, binomial))
t_con <- time_it(ci_con <- confint(fit_con))
t_con_lme4 <- time_it(ci_con_lme4 <- suppressWarnings(suppressMessages(confint(ref_con))))

fm_slope <- use ~ age + urban + (urban | district)
fit_slope <- glmm(fm_slope, Contraception, binomial)
ref_slope <- glmer(fm_slope, Contraception, binomial)
t_slope <- time_it(ci_slope <- confint(fit_slope))
t_slope_lme4 <- time_it(ci_slope_lme4 <- suppressWarnings(suppressMessages(confint(ref_slope))))

t_boot <- time_it(parametric_bootstrap(fit_cbpp, nsim = 1000, seed = 1, progress = FALSE))
fun <- function(m) c(sqrt(unlist(VarCorr(m))), fixef(m))
t_bootmer <- time_it(suppressMessages(suppressWarnings(bootMer(ref_cbpp, fun, nsim = 100, seed = 1))))

row <- function(what, ours, theirs, agreement = "") {
  sprintf("| %s | %.2f (%.2f) | %.2f (%.2f) | %s |", what, ours[["elapsed"]], ours[["cpu"]], theirs[["elapsed"]],
          theirs[["cpu"]], agreement)
}
lines <- c(
  "# confint() of glmm() fits: speed against lme4",
  "",
  sprintf("Run %s on %s (R %s, lme4 %s). Seconds elapsed (CPU), one run each.", format(Sys.time(), "%Y-%m-%d %H:%M"),
          Sys.info()[["nodename"]], getRversion(), packageVersion("lme4")),
  "",
  "| task | mlmfit | lme4 | largest gap between the limits, as a fraction of lme4's interval width |",
  "|---|---|---|---|",
  row("profile, all 5 parameters, cbpp", t_cbpp, t_cbpp_lme4, signif(gap(ci_cbpp, ci_cbpp_lme4), 2)),
  row("profile, all 8 parameters, Contraception `(1 \\| district)`", t_con, t_con_lme4, signif(gap(ci_con, ci_con_lme4), 2)),
  row("profile, all 6 parameters, Contraception `(urban \\| district)`", t_slope, t_slope_lme4,
      signif(gap(ci_slope, ci_slope_lme4), 2)),
  row("parametric bootstrap of cbpp: mlmfit 1000 refits, lme4 `bootMer` 100", t_boot, t_bootmer),
  ""
)
writeLines(lines, "bench/glmm-confint-results.md")
writeLines(lines)
