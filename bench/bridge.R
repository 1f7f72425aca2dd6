# The cost of the bridge to lme4 (as_lmerMod(), as_glmerMod()) beside a fit,
# medians of 5 runs. Run with mlmfit installed: Rscript bench/bridge.R
suppressPackageStartupMessages({library(mlmfit); library(lme4)})
data(Hsb82, package = "mlmRev")
tm <- function(expr) { ex <- substitute(expr); env <- parent.frame(); median(vapply(1:5, function(i) system.time(eval(ex, env))[["elapsed"]], 1)) }
f <- lmm(mAch ~ meanses * cses + sector * cses + (cses | school), Hsb82)
cat("Hsb82: lmm fit", tm(lmm(mAch ~ meanses * cses + sector * cses + (cses | school), Hsb82)),
    "s; as_lmerMod", tm(as_lmerMod(f)), "s; lmer fit", tm(lmer(mAch ~ meanses * cses + sector * cses + (cses | school), Hsb82)), "s\n")
set.seed(1); n <- 1e5; d <- data.frame(g = factor(sample(1e4, n, TRUE)), x = rnorm(n)); d$y <- 1 + d$x + rnorm(1e4)[d$g] + rnorm(n)
f2 <- lmm(y ~ x + (x | g), d)
cat("1e5 rows, 1e4 groups: lmm fit", tm(lmm(y ~ x + (x | g), d)), "s; as_lmerMod", tm(as_lmerMod(f2)), "s\n")
g <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
cat("cbpp: as_glmerMod", tm(as_glmerMod(g)), "s; getME(Z) native", tm(getME(f2, "Z")), "s\n")
