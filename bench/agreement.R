# Agreement with lme4 on many models: differences of deviance, fixed effects,
# standard errors, variance components and conditional modes, with
# evaluation counts and times. Usage: Rscript bench/agreement.R (mlmfit
# installed). Not a test: the tests assert the contract; this prints it.
library(mlmfit)
suppressMessages({library(lme4); library(mlmRev)})
cmp <- function(fm, data, REML=TRUE, ...) {
  t1 <- system.time(f <- lmm(fm, data, REML=REML, ...))[3]
  t2 <- system.time(g <- lmer(fm, data, REML=REML, ...))[3]
  dd <- deviance(f) - (if (REML) REMLcrit(g) else deviance(g))
  fe <- max(abs(fixef(f)/fixef(g) - 1))
  se <- max(abs(sqrt(diag(vcov(f)))/sqrt(diag(as.matrix(vcov(g)))) - 1))
  v1 <- as.data.frame(VarCorr(f)); v2 <- as.data.frame(VarCorr(g))
  vc <- max(abs(v1$sdcor - v2$sdcor) / pmax(abs(v2$sdcor), 1e-3), na.rm=TRUE)
  re1 <- unlist(lapply(ranef(f), as.matrix)); re2 <- unlist(lapply(ranef(g)[names(ranef(f))], as.matrix))
  re <- max(abs(re1 - re2)) / max(abs(re2), 1e-10)
  cat(sprintf("%-58s dDev=%9.2e fe=%8.1e se=%8.1e vc=%8.1e re=%8.1e evals=%d t=%.3f/%.3f sing=%s\n", paste(deparse(fm), collapse=""), dd, fe, se, vc, re, f$optinfo$evals, t1, t2, is_singular(f)))
  invisible(list(f,g))
}
cmp(Reaction ~ Days + (Days | Subject), sleepstudy)
cmp(Reaction ~ Days + (Days || Subject), sleepstudy)
cmp(Reaction ~ Days + (Days | Subject), sleepstudy, REML=FALSE)
cmp(mAch ~ 1 + (1|school), Hsb82, REML=FALSE)
cmp(mAch ~ meanses + (1|school), Hsb82)
cmp(mAch ~ cses + (cses|school), Hsb82)
cmp(mAch ~ meanses*cses + sector*cses + (cses|school), Hsb82)
cmp(normexam ~ standLRT + (standLRT|school), Exam)
cmp(normexam ~ standLRT + sex + schgend + (standLRT|school), Exam)
cmp(diameter ~ 1 + (1|plate) + (1|sample), Penicillin)
cmp(strength ~ 1 + (1|batch/cask), Pastes)
cmp(Yield ~ 1 + (1|Batch), Dyestuff2)
cmp(Yield ~ 1 + (1|Batch), Dyestuff)
nels <- mlmfit::nels88
cmp(math ~ 1 + (1|schid), nels, REML=FALSE)
cmp(math ~ homework + (homework|schid), nels)
cmp(math ~ homework + ses + (homework + ses|schid), nels)
cmp(math ~ homework + (homework|schid) + (1|sctype), nels)
data(Orthodont, package="nlme"); Orthodont <- as.data.frame(Orthodont)
cmp(distance ~ age*Sex + (age|Subject), Orthodont)
cmp(y ~ service + (1|s) + (1|d) + (1|dept:service), InstEval)
