# car, effects, emmeans (glmm), broom.mixed's augment() (glmm) and lme4's
# lattice pictures on mlmfit fits, against the same calls on lme4 fits.

test_that("car::Anova(), linearHypothesis() and vif() give the lme4 fit's numbers", {
  skip_if_not_installed("car")
  hsb <- test_fit("hsb")
  for (type in c("II", "III")) {
    a <- car::Anova(hsb$mlm, type = type)
    b <- car::Anova(hsb$lme4, type = type)
    expect_identical(rownames(a), rownames(b))
    expect_equal(a$Chisq, b$Chisq, tolerance = 2e-3)
    expect_equal(a$Df, b$Df)
  }
  # F tests with Kenward-Roger's df (pbkrtest, through car)
  ss <- test_fit("sleepstudy")
  a <- car::Anova(ss$mlm, test.statistic = "F")
  b <- car::Anova(ss$lme4, test.statistic = "F")
  expect_equal(a$F, b$F, tolerance = 2e-3)
  expect_equal(a$Df.res, b$Df.res, tolerance = 2e-3)
  lh <- car::linearHypothesis(hsb$mlm, c("meanses = 0", "sectorCatholic = 0"))
  lh_ref <- car::linearHypothesis(hsb$lme4, c("meanses = 0", "sectorCatholic = 0"))
  expect_equal(lh$Chisq, lh_ref$Chisq, tolerance = 2e-3)
  # vif() of the fixed effects: lme4's numbers, and by hand from the
  # correlation of the estimates (one-column terms)
  additive <- lmm(mAch ~ meanses + cses + sector + (1 | school), hsb$data)
  v <- car::vif(additive)
  expect_equal(v, car::vif(lme4::lmer(mAch ~ meanses + cses + sector + (1 | school), hsb$data)), tolerance = 1e-3)
  R <- stats::cov2cor(vcov(additive)[-1, -1])
  expect_equal(unname(v), unname(diag(solve(R))), tolerance = 1e-10)
  cb <- test_fit("cbpp")
  expect_equal(car::Anova(cb$mlm)$Chisq, car::Anova(cb$lme4)$Chisq, tolerance = 0.03)
})

test_that("effects::allEffects() and Effect() give the lme4 fit's effects", {
  skip_if_not_installed("effects")
  ss <- test_fit("sleepstudy")
  a <- as.data.frame(effects::allEffects(ss$mlm)[[1L]])
  b <- as.data.frame(effects::allEffects(ss$lme4)[[1L]])
  expect_equal(a$fit, b$fit, tolerance = 1e-4)
  expect_equal(a$lower, b$lower, tolerance = 1e-3)
  cb <- test_fit("cbpp")
  a <- as.data.frame(effects::Effect("period", cb$mlm))
  b <- as.data.frame(effects::Effect("period", cb$lme4))
  expect_equal(a$fit, b$fit, tolerance = 1e-3)
  expect_equal(a$lower, b$lower, tolerance = 0.01)
})

test_that("emmeans() on a glmm fit back-transforms as for the glmer fit", {
  skip_if_not_installed("emmeans")
  cb <- test_fit("cbpp")
  a <- as.data.frame(emmeans::emmeans(cb$mlm, ~ period, type = "response"))
  b <- as.data.frame(emmeans::emmeans(cb$lme4, ~ period, type = "response"))
  expect_identical(names(a), names(b))
  expect_equal(a$prob, b$prob, tolerance = 1e-3)
  expect_equal(a$df, b$df)
  # link scale, by hand: X beta and sqrt(x' V x)
  link <- as.data.frame(emmeans::emmeans(cb$mlm, ~ period))
  X <- cbind(1, diag(4)[, -1])
  expect_equal(link$emmean, as.vector(X %*% fixef(cb$mlm)), tolerance = 1e-10)
  expect_equal(link$SE, sqrt(rowSums((X %*% vcov(cb$mlm)) * X)), tolerance = 1e-10)
  pr <- as.data.frame(pairs(emmeans::emmeans(cb$mlm, ~ period)))
  pr_ref <- as.data.frame(pairs(emmeans::emmeans(cb$lme4, ~ period)))
  expect_equal(pr$estimate, pr_ref$estimate, tolerance = 2e-3)
})

test_that("augment() of a glmm fit has broom.mixed's columns and values for glmer", {
  skip_if_not_installed("broom.mixed")
  cb <- test_fit("cbpp")
  a <- augment(cb$mlm)
  b <- suppressWarnings(broom.mixed::augment(cb$lme4))
  cols <- c(".fitted", ".resid", ".fixed", ".mu", ".offset", ".sqrtXwt", ".sqrtrwt", ".weights", ".wtres", ".eta")
  expect_true(all(cols %in% names(a)))
  for (nm in cols) expect_equal(a[[nm]], unname(b[[nm]]), tolerance = 2e-3, info = nm)
  expect_equal(broom.mixed::augment(cb$mlm)$.mu, a$.mu)
  nd <- lme4::cbpp[1:3, ]
  expect_equal(augment(cb$mlm, newdata = nd, type.predict = "response")$.fitted,
               unname(predict(cb$mlm, newdata = nd, type = "response")))
})

test_that("dotplot() and qqmath() of ranef() and plot(fit, formula) draw lme4's pictures", {
  skip_if_not_installed("lattice")
  skip_if_not_installed("lme4")
  ss <- test_fit("sleepstudy")
  d1 <- lattice::dotplot(ranef(ss$mlm, condVar = TRUE))$Subject
  d2 <- lattice::dotplot(lme4::ranef(ss$lme4, condVar = TRUE))$Subject
  expect_s3_class(d1, "trellis")
  expect_equal(d1$panel.args, d2$panel.args, tolerance = 1e-3)
  expect_identical(d1$y.limits, d2$y.limits)  # group labels, sorted as lme4 sorts them
  q1 <- lattice::qqmath(ranef(ss$mlm, condVar = TRUE))$Subject
  q2 <- lattice::qqmath(lme4::ranef(ss$lme4, condVar = TRUE))$Subject
  expect_equal(q1$panel.args, q2$panel.args, tolerance = 1e-3)
  p1 <- plot(ss$mlm, resid(.) ~ fitted(.) | Subject)
  p2 <- plot(ss$lme4, resid(.) ~ fitted(.) | Subject)
  expect_s3_class(p1, "trellis")
  expect_equal(p1$panel.args, p2$panel.args, tolerance = 1e-4)
  expect_identical(names(p1$packet.sizes), names(p2$packet.sizes))
  p3 <- plot(ss$mlm, sqrt(abs(resid(.))) ~ fitted(.))
  expect_equal(p3$panel.args[[1L]]$y, sqrt(abs(unname(residuals(ss$mlm)))), tolerance = 1e-12)
  cb <- test_fit("cbpp")
  g1 <- plot(cb$mlm)
  g2 <- plot(cb$lme4)
  expect_equal(g1$panel.args, g2$panel.args, tolerance = 1e-3)
  expect_error(plot(ss$mlm, which = "nonsense"))
})
