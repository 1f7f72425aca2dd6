# anova() and ranova() against lmerTest and lme4.

expect_anova_like <- function(ours, theirs, cols, rel = 1e-3, same_rownames = TRUE) {
  if (same_rownames) expect_identical(rownames(ours), rownames(theirs))
  for (cc in cols) expect_close(ours[[cc]], theirs[[cc]], rel = rel, abs = 1e-6, info = cc)
}

test_that("type III F tests agree with lmerTest (Satterthwaite and Kenward-Roger)", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  nels88 <- nels88_data()
  nels88$sctype <- factor(nels88$sctype)
  fm <- math ~ homework * sctype + ses + (1 | schid)
  fit <- lmm(fm, nels88)
  ref <- lmerTest::lmer(fm, nels88)
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    a <- anova(fit, ddf = ddf)
    b <- anova(ref, ddf = ddf)
    expect_identical(names(a), names(b))
    expect_anova_like(a, b, c("Sum Sq", "Mean Sq", "NumDF", "F value"))
    expect_close(a$DenDF, b$DenDF, rel = 1e-2)
    expect_true(all(abs(a[["Pr(>F)"]] - b[["Pr(>F)"]]) <= 1e-3))
  }
  expect_match(attr(anova(fit), "heading"), "Type III")
})

test_that("type III hypotheses do not depend on the contrasts (sum contrasts, lmerTest)", {
  skip_if_not_installed("lmerTest")
  nels88 <- nels88_data()
  nels88$sctype <- factor(nels88$sctype)
  nels88$sex <- factor(nels88$sex)
  fm <- math ~ sex * sctype + homework + (1 | schid)
  fit_t <- lmm(fm, nels88)
  op <- options(contrasts = c("contr.sum", "contr.poly"))
  on.exit(options(op))
  fit <- lmm(fm, nels88)
  ref <- lmerTest::lmer(fm, nels88)
  a <- anova(fit)
  b <- anova(ref)
  expect_anova_like(a, b, c("F value", "NumDF"))
  expect_close(a$DenDF, b$DenDF, rel = 1e-2)
  # the same hypotheses under treatment coding
  expect_close(anova(fit_t)[["F value"]], a[["F value"]], rel = 1e-6)
})

test_that("Hsb82: F tests of a continuous-by-factor cross-level interaction", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("mlmRev")
  Hsb82 <- hsb82_data()
  fm <- mAch ~ meanses * cses + sector * cses + (1 + cses | school)
  a <- anova(lmm(fm, Hsb82))
  b <- anova(lmerTest::lmer(fm, Hsb82))
  expect_anova_like(a, b, c("F value", "NumDF"))
  expect_close(a$DenDF, b$DenDF, rel = 1e-2)
})

test_that("likelihood-ratio tests of several fits agree with lme4, refitting with ML", {
  nels88 <- nels88_data()
  f0 <- lmm(math ~ homework + (1 | schid), nels88)
  f1 <- lmm(math ~ homework + (homework | schid), nels88)
  f2 <- lmm(math ~ homework + ses + (homework | schid), nels88)
  g0 <- lme4::lmer(math ~ homework + (1 | schid), nels88)
  g1 <- lme4::lmer(math ~ homework + (homework | schid), nels88)
  g2 <- lme4::lmer(math ~ homework + ses + (homework | schid), nels88)
  expect_message(a <- anova(f2, f0, f1), class = "mlmfit_message_refit")
  b <- suppressMessages(anova(g2, g0, g1))
  expect_identical(names(a), names(b))
  expect_identical(rownames(a), c("f0", "f1", "f2"))
  expect_anova_like(a, b, c("npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df"), rel = 1e-5,
                    same_rownames = FALSE)
  expect_true(all(abs(a[["Pr(>Chisq)"]] - b[["Pr(>Chisq)"]]) <= 1e-6, na.rm = TRUE))

  # same fixed effects, both REML: the REML criteria are compared (lme4's refit = FALSE)
  expect_no_message(a <- anova(f0, f1))
  b <- anova(g0, g1, refit = FALSE)
  expect_anova_like(a, b, c("logLik", "Chisq", "Df"), rel = 1e-5, same_rownames = FALSE)
  expect_message(anova(f0, f1, refit = TRUE), class = "mlmfit_message_refit")

  # a linear model as the null model
  l0 <- lm(math ~ homework, nels88)
  m1 <- lmm(math ~ homework + (1 | schid), nels88, REML = FALSE)
  a <- anova(m1, l0)
  b <- anova(lme4::lmer(math ~ homework + (1 | schid), nels88, REML = FALSE), l0)
  expect_close(a$Chisq[2], b$Chisq[2], rel = 1e-5)

  expect_error(anova(f0, lmm(math ~ homework + (1 | schid), nels88[-1, ])), class = "mlmfit_error_anova")
})

test_that("ranova() agrees with lmerTest::ranova", {
  skip_if_not_installed("lmerTest")
  nels88 <- nels88_data()
  fit <- lmm(math ~ homework + ses + (homework | schid), nels88)
  ref <- lmerTest::lmer(math ~ homework + ses + (homework | schid), nels88)
  a <- ranova(fit)
  b <- lmerTest::ranova(ref)
  expect_identical(names(a), names(b))
  expect_anova_like(a, b, c("npar", "logLik", "AIC", "LRT", "Df"), rel = 1e-5)
  a <- ranova(fit, reduce.terms = FALSE)
  b <- lmerTest::ranova(ref, reduce.terms = FALSE)
  expect_anova_like(a, b, c("npar", "logLik", "AIC", "LRT", "Df"), rel = 1e-5)

  # two terms; dropping the last random effect compares with lm()
  sleepstudy <- lme4_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy)
  ref <- lmerTest::lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy)
  a <- ranova(fit)
  b <- lmerTest::ranova(ref)
  expect_anova_like(a, b, c("npar", "logLik", "LRT", "Df"), rel = 1e-5)
  fit1 <- lmm(Reaction ~ Days + (1 | Subject), sleepstudy)
  a <- ranova(fit1)
  b <- lmerTest::ranova(lmerTest::lmer(Reaction ~ Days + (1 | Subject), sleepstudy))
  expect_anova_like(a, b, c("npar", "logLik", "LRT"), rel = 1e-5)
})
