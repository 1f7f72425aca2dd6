nels <- nels88_data()
fit <- lmm(math ~ homework + (homework | schid), nels)
fit_ml <- lmm(math ~ homework + (homework | schid), nels, REML = FALSE)

test_that("logLik, AIC, BIC, deviance, nobs and df agree with lme4", {
  skip_if_not_installed("lme4")
  g <- lme4::lmer(math ~ homework + (homework | schid), nels)
  g_ml <- lme4::lmer(math ~ homework + (homework | schid), nels, REML = FALSE)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(g)), tolerance = 1e-7)
  expect_equal(attr(logLik(fit), "df"), attr(logLik(g), "df"))
  expect_equal(attr(logLik(fit), "nobs"), attr(logLik(g), "nobs"))
  expect_equal(AIC(fit_ml), AIC(g_ml), tolerance = 1e-7)
  expect_equal(BIC(fit_ml), BIC(g_ml), tolerance = 1e-7)
  expect_equal(deviance(fit_ml), deviance(g_ml), tolerance = 1e-7)
  expect_equal(deviance(fit, REML = FALSE), deviance(g, REML = FALSE), tolerance = 1e-6)
  expect_equal(nobs(fit), 519L)
  expect_equal(ngrps(fit), c(schid = 23L))
  expect_equal(sigma(fit), sigma(g), tolerance = 1e-4)
})

test_that("fitted values and residuals are y = fitted + residual, and match lme4", {
  skip_if_not_installed("lme4")
  g <- lme4::lmer(math ~ homework + (homework | schid), nels)
  expect_equal(unname(fitted(fit) + residuals(fit)), as.numeric(nels$math))
  expect_equal(unname(fitted(fit)), unname(fitted(g)), tolerance = 1e-6)
  expect_equal(unname(residuals(fit, scaled = TRUE)), unname(residuals(g, scaled = TRUE)), tolerance = 1e-4)
})

test_that("coef adds fixed and random effects per group", {
  cf <- coef(fit)$schid
  re <- ranef(fit)$schid
  expect_equal(cf$homework, unname(fixef(fit)["homework"] + re$homework))
  expect_equal(rownames(cf), as.character(sort(unique(nels$schid))))
  skip_if_not_installed("lme4")
  g <- lme4::lmer(math ~ homework + (homework | schid), nels)
  expect_equal(as.matrix(cf), as.matrix(coef(g)$schid), tolerance = 1e-3)
})

test_that("VarCorr's data frame has lme4's columns and the covariance is sd * sd * corr", {
  vc <- as.data.frame(VarCorr(fit))
  expect_named(vc, c("grp", "var1", "var2", "vcov", "sdcor"))
  expect_equal(vc$grp, c("schid", "schid", "schid", "Residual"))
  expect_equal(vc$vcov[3], vc$sdcor[1] * vc$sdcor[2] * vc$sdcor[3])
  expect_equal(vc$sdcor[4], sigma(fit))
  expect_output(print(VarCorr(fit)), "Corr")
})

test_that("model.frame, model.matrix, terms, formula, weights", {
  expect_equal(nrow(model.frame(fit)), 519L)
  expect_equal(colnames(model.matrix(fit)), c("(Intercept)", "homework"))
  expect_equal(attr(terms(fit), "term.labels"), "homework")
  expect_equal(formula(fit), math ~ homework + (homework | schid), ignore_attr = TRUE)
  expect_equal(unname(weights(fit)), rep(1, 519))
})

test_that("update refits with a changed formula or REML", {
  f2 <- update(fit, . ~ . + ses)
  expect_true("ses" %in% names(fixef(f2)))
  f3 <- update(fit, REML = FALSE)
  expect_equal(deviance(f3), deviance(fit_ml), tolerance = 1e-8)
})

test_that("print and summary read like lme4's", {
  expect_output(print(fit), "Linear mixed model fit by REML")
  expect_output(print(fit), "Number of obs: 519, groups:  schid, 23")
  s <- summary(fit)
  # lmerTest's columns (t tests with Satterthwaite's df, see test-ddf.R)
  expect_equal(colnames(s$coefficients), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
  expect_equal(unname(s$coefficients[, "t value"]), unname(fixef(fit) / sqrt(diag(vcov(fit)))))
  out <- capture.output(print(s))
  expect_true(any(grepl("REML criterion at convergence", out)))
  expect_true(any(grepl("Scaled residuals", out)))
  expect_true(any(grepl("Correlation of Fixed Effects", out)))
  out_ml <- capture.output(print(summary(fit_ml)))
  expect_true(any(grepl("AIC +BIC +logLik +deviance +df.resid", out_ml)))
})

test_that("fixef, ranef and VarCorr work through nlme's and lme4's generics", {
  expect_identical(nlme::fixef(fit), fixef(fit))
  expect_identical(nlme::ranef(fit), ranef(fit))
  skip_if_not_installed("lme4")
  expect_identical(lme4::fixef(fit), fixef(fit))
  expect_identical(lme4::ngrps(fit), ngrps(fit))
})

test_that("rank-deficient fixed effects are dropped with a message naming them", {
  nels$hw2 <- 2 * nels$homework
  expect_message(f <- lmm(math ~ homework + hw2 + (1 | schid), nels), "hw2")
  expect_named(fixef(f), c("(Intercept)", "homework"))
  expect_equal(spec_dropped(f), "hw2")
  skip_if_not_installed("lme4")
  g <- suppressMessages(lme4::lmer(math ~ homework + hw2 + (1 | schid), nels))
  expect_equal(unname(fixef(f)), unname(fixef(g)), tolerance = 1e-6)
})

test_that("is_singular follows the rule of lme4's isSingular", {
  expect_false(is_singular(fit))
  skip_if_not_installed("lme4")
  g <- lme4::lmer(math ~ homework + (homework | schid), nels)
  expect_identical(is_singular(fit), lme4::isSingular(g))
})
