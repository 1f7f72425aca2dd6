# emmeans on lmm() fits against emmeans on lmerTest fits of the same model.

test_that("emmeans() and contrasts with Satterthwaite and Kenward-Roger df", {
  skip_if_not_installed("emmeans")
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  nels88 <- nels88_data()
  nels88$sctype <- factor(nels88$sctype)
  fm <- math ~ homework + sctype + (1 | schid)
  fit <- lmm(fm, nels88)
  ref <- lmerTest::lmer(fm, nels88)
  for (m in c("satterthwaite", "kenward-roger")) {
    a <- as.data.frame(summary(emmeans::emmeans(fit, ~ sctype, lmer.df = m)))
    b <- as.data.frame(summary(emmeans::emmeans(ref, ~ sctype, lmer.df = m)))
    expect_close(a$emmean, b$emmean, rel = 1e-4)
    expect_close(a$SE, b$SE, rel = 1e-3)
    expect_close(a$df, b$df, rel = 1e-2)
    pa <- as.data.frame(summary(pairs(emmeans::emmeans(fit, ~ sctype, lmer.df = m))))
    pb <- as.data.frame(summary(pairs(emmeans::emmeans(ref, ~ sctype, lmer.df = m))))
    expect_close(pa$df, pb$df, rel = 1e-2)
    expect_true(all(abs(pa$p.value - pb$p.value) <= 1e-3))
  }
  # Satterthwaite is the default, as in summary()
  expect_equal(as.data.frame(summary(emmeans::emmeans(fit, ~ sctype)))$df,
               as.data.frame(summary(emmeans::emmeans(fit, ~ sctype, lmer.df = "satterthwaite")))$df)
  a <- as.data.frame(summary(emmeans::emmeans(fit, ~ sctype, lmer.df = "asymptotic")))
  expect_true(all(is.infinite(a$df)))
})

test_that("emtrends() of a cross-level interaction (Hsb82)", {
  skip_if_not_installed("emmeans")
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("mlmRev")
  Hsb82 <- hsb82_data()
  fm <- mAch ~ sector * cses + meanses + (1 + cses | school)
  fit <- lmm(fm, Hsb82)
  ref <- lmerTest::lmer(fm, Hsb82)
  a <- as.data.frame(summary(emmeans::emtrends(fit, ~ sector, var = "cses", lmer.df = "satterthwaite")))
  b <- as.data.frame(summary(emmeans::emtrends(ref, ~ sector, var = "cses", lmer.df = "satterthwaite")))
  expect_close(a$cses.trend, b$cses.trend, rel = 1e-3)
  expect_close(a$df, b$df, rel = 1e-2)
})
