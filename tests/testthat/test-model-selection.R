# anova() types I-III (lmerTest's hypotheses), drop1() (lme4's
# likelihood-ratio tests, lmerTest's Satterthwaite F tests), add1(),
# step() and update().

test_that("anova(type = I, II, III) gives lmerTest's tables (Hsb82, sleepstudy)", {
  skip_if_not_installed("lmerTest")
  for (name in c("hsb", "sleepstudy")) {
    fits <- test_fit(name)
    ref <- lmerTest::as_lmerModLmerTest(fits$lme4)
    for (type in list("I", "II", "III", 1, 2, 3)) {
      a <- anova(fits$mlm, type = type)
      b <- stats::anova(ref, type = type)
      expect_identical(rownames(a), rownames(b))
      expect_equal(a$NumDF, b$NumDF)
      expect_equal(a$`F value`, b$`F value`, tolerance = 1e-3)
      expect_equal(a$DenDF, b$DenDF, tolerance = 2e-3)
      expect_equal(a$`Pr(>F)`, b$`Pr(>F)`, tolerance = 2e-3)
    }
  }
  # type I and type II differ where terms are not orthogonal
  hsb <- test_fit("hsb")$mlm
  expect_false(isTRUE(all.equal(anova(hsb, type = 1)$`F value`, anova(hsb, type = 2)$`F value`)))
  expect_error(anova(hsb, type = "IV"), class = "mlmfit_error_argument")
})

test_that("type II tests of a glmm fit are Wald tests, as car::Anova() gives them", {
  skip_if_not_installed("car")
  fits <- test_fit("cbpp")
  a <- anova(fits$mlm, type = 2)
  b <- car::Anova(as_glmerMod(fits$mlm), type = 2)
  expect_equal(a$`F value` * a$NumDF, b$Chisq, tolerance = 1e-8)
})

test_that("drop1() gives lme4's likelihood-ratio tests and lmerTest's F tests", {
  skip_if_not_installed("lmerTest")
  Hsb82 <- test_fit("hsb")$data
  fit <- lmm(mAch ~ meanses * cses + sector * cses + (cses | school), Hsb82)
  ref <- lme4::lmer(mAch ~ meanses * cses + sector * cses + (cses | school), Hsb82)
  a <- drop1(fit, test = "Chisq")
  b <- stats::drop1(ref, test = "Chisq")
  expect_identical(rownames(a), rownames(b))
  expect_equal(a$Df, b$npar)
  expect_equal(a$AIC, b$AIC, tolerance = 1e-7)
  expect_equal(a$LRT, b$LRT, tolerance = 1e-4)
  expect_equal(a$`Pr(>Chi)`, b$`Pr(Chi)`, tolerance = 1e-3)
  f <- drop1(fit, test = "F")
  g <- stats::drop1(lmerTest::as_lmerModLmerTest(ref))
  expect_identical(rownames(f), rownames(g))
  expect_equal(f$`F value`, g$`F value`, tolerance = 1e-3)
  expect_equal(f$DenDF, g$DenDF, tolerance = 2e-3)
  expect_error(drop1(fit, "cses"), class = "mlmfit_error_argument")  # contained in interactions
  expect_error(drop1(test_fit("cbpp")$mlm, test = "F"), class = "mlmfit_error_argument")
  # a glmm: the likelihood-ratio test of period against glmer's
  cbpp <- lme4::cbpp
  g1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
  g1_lme4 <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
  expect_equal(drop1(g1, test = "Chisq")$LRT[2L], stats::drop1(g1_lme4, test = "Chisq")$LRT[2L], tolerance = 1e-3)
})

test_that("add1() gives the likelihood-ratio tests of anova() between the ML fits, and step() selects by AIC", {
  skip_if_not_installed("lme4")
  Hsb82 <- test_fit("hsb")$data
  small <- lmm(mAch ~ meanses + (1 | school), Hsb82)
  a <- add1(small, ~ . + sector + cses, test = "Chisq")
  expect_identical(rownames(a), c("<none>", "sector", "cses"))
  m0 <- lme4::lmer(mAch ~ meanses + (1 | school), Hsb82, REML = FALSE)
  m1 <- lme4::lmer(mAch ~ meanses + sector + (1 | school), Hsb82, REML = FALSE)
  lrt <- stats::anova(m0, m1)
  expect_equal(a["sector", "LRT"], lrt$Chisq[2L], tolerance = 1e-5)
  expect_equal(a["sector", "AIC"], stats::AIC(m1), tolerance = 1e-7)
  expect_error(add1(small), class = "mlmfit_error_argument")

  big <- lmm(mAch ~ meanses + sector + cses + minrty + sx + (1 | school), Hsb82, REML = FALSE)
  chosen <- stats::step(big, trace = 0)
  # the model step() stops at: dropping any of its terms raises lme4's AIC,
  # and its AIC is at most that of the full model
  kept <- attr(terms(chosen), "term.labels")
  ml_aic <- function(labels) {
    f <- stats::reformulate(c(labels, "(1 | school)"), response = "mAch")
    stats::AIC(lme4::lmer(f, Hsb82, REML = FALSE))
  }
  chosen_aic <- ml_aic(kept)
  expect_equal(extractAIC(chosen)[2L], chosen_aic, tolerance = 1e-7)
  expect_lte(chosen_aic, ml_aic(c("meanses", "sector", "cses", "minrty", "sx")))
  for (term in kept) expect_gt(ml_aic(setdiff(kept, term)), chosen_aic)
  expect_true(any(grepl("| school", deparse1(formula(chosen)), fixed = TRUE)))
  # update() keeps the random part when given the fixed terms alone
  refit <- update(chosen, ~ . - meanses)
  expect_s3_class(refit, "mlmfit_lmm")
  expect_false("meanses" %in% attr(terms(refit), "term.labels"))
})
