# Seed 002 (Barron's lecture notes on multilevel models): every figure the
# notes print for High School and Beyond, to the digits printed, from hsb
# (nlme's MathAchieve and MathAchSchool, cses = SES - the school file's MEANSES).

hsb_data <- function() teaching_dataset("hsb")

test_that("hsb is built from nlme's files: 7185 students in 160 schools, cses = ses - meanses", {
  hsb <- hsb_data()
  expect_equal(dim(hsb), c(7185L, 12L))
  expect_equal(nlevels(hsb$school), 160L)
  expect_equal(as.vector(table(tapply(as.character(hsb$sector), hsb$school, unique))), c(70L, 90L))
  expect_equal(hsb$cses, hsb$ses - hsb$meanses)
  # the school file's MEANSES is the sample mean plus 0.006 (0.0055 to 0.0065)
  gap <- tapply(hsb$meanses - group_mean(hsb$ses, hsb$school), hsb$school, unique)
  expect_true(all(gap > 0.0054 & gap < 0.0066))
})

test_that("HSB empty model: 12.64 (0.24), SDs 2.93 and 6.26, 8.61 and 39.15, ICC .18, AIC, DIC, deviance", {
  hsb <- hsb_data()
  fit <- lmm(mathach ~ 1 + (1 | school), hsb)
  ml <- lmm(mathach ~ 1 + (1 | school), hsb, REML = FALSE)
  expect_printed(fixef(fit), "12.64")
  expect_printed(sqrt(vcov(fit)[1, 1]), "0.24")
  vc <- as.data.frame(VarCorr(fit))
  expect_printed(vc$sdcor[1], "2.93")
  expect_printed(vc$sdcor[2], "6.26")
  expect_printed(vc$vcov[1], "8.61")
  expect_printed(vc$vcov[2], "39.15")
  expect_printed(vc$vcov[1] / sum(vc$vcov), ".18")
  expect_printed(AIC(fit), "47122.8")
  expect_printed(2 * deviance(ml) - deviance(fit), "47115")
  expect_printed(deviance(ml), "47115.8")
  expect_equal(c(nobs(fit), ngrps(fit)), c(7185, 160), ignore_attr = TRUE)
})

test_that("HSB mean SES: tau00 2.64, sigma^2 39.16, .69 explained, residual ICC .06", {
  hsb <- hsb_data()
  v0 <- as.data.frame(VarCorr(lmm(mathach ~ 1 + (1 | school), hsb)))$vcov
  v1 <- as.data.frame(VarCorr(lmm(mathach ~ meanses + (1 | school), hsb)))$vcov
  expect_printed(v1[1], "2.64")
  expect_printed(v1[2], "39.16")
  expect_printed((v0[1] - v1[1]) / v0[1], ".69")
  expect_printed(v1[1] / sum(v1), ".06")
})

test_that("HSB random slope: 12.65, 2.19, tau00 8.68, tau11 .69, tau01 .051, AIC 46726.2, deviance 46711.0", {
  hsb <- hsb_data()
  fit <- lmm(mathach ~ cses + (1 + cses | school), hsb)
  ml <- lmm(mathach ~ cses + (1 + cses | school), hsb, REML = FALSE)
  expect_printed(fixef(fit)[[1]], "12.65")
  expect_printed(fixef(fit)[[2]], "2.19")
  se <- sqrt(diag(vcov(fit)))
  expect_printed(se[[1]], "0.24")
  expect_printed(se[[2]], "0.13")
  vc <- as.data.frame(VarCorr(fit))
  expect_printed(vc$sdcor[1], "2.95")
  expect_printed(vc$sdcor[2], "0.83")
  expect_printed(vc$sdcor[3], "0.02")
  expect_printed(vc$sdcor[4], "6.06")
  expect_printed(vc$vcov[1], "8.68")
  expect_printed(vc$vcov[2], ".69")
  expect_printed(vc$vcov[3], ".051")
  expect_printed(AIC(fit), "46726.2")
  expect_printed(2 * deviance(ml) - deviance(fit), "46708")
  expect_printed(deviance(ml), "46711.0")
})

test_that("HSB cross-level model: 12.11, 5.34, 2.94, 1.22, 1.04, -1.64; deviance 46496.4 after an ML refit", {
  hsb <- hsb_data()
  f <- mathach ~ meanses * cses + sector * cses + (1 + cses | school)
  fit <- lmm(f, hsb)
  ml <- lmm(f, hsb, REML = FALSE)
  expect_equal(names(fixef(fit)), c("(Intercept)", "meanses", "cses", "sectorCatholic", "meanses:cses",
                                    "cses:sectorCatholic"))
  printed <- c("12.11", "5.34", "2.94", "1.22", "1.04", "-1.64")
  printed_se <- c("0.20", "0.37", "0.16", "0.31", "0.30", "0.24")
  for (k in 1:6) {
    expect_printed(fixef(fit)[[k]], printed[k])
    expect_printed(sqrt(vcov(fit)[k, k]), printed_se[k])
  }
  vc <- as.data.frame(VarCorr(fit))
  expect_printed(vc$sdcor[1], "1.54")
  expect_printed(vc$sdcor[2], "0.32")
  expect_printed(vc$sdcor[3], "0.39")
  expect_printed(vc$sdcor[4], "6.06")
  expect_printed(AIC(fit), "46523.7")
  expect_printed(2 * deviance(ml) - deviance(fit), "46489")
  # the notes' deviance is that of the ML refit; the ML criterion at the
  # REML estimates rounds to 46496.5
  expect_printed(deviance(ml), "46496.4")
  expect_equal(round(deviance(fit, REML = FALSE), 1), 46496.5)
})

test_that("HSB centred at the sample means reproduces Raudenbush and Bryk's Table 4.5", {
  hsb <- hsb_data()
  hsb$m <- group_mean(hsb$ses, hsb$school)
  hsb$c <- center_within(hsb$ses, hsb$school)
  fit <- lmm(mathach ~ m * c + sector * c + (1 + c | school), hsb)
  expect_equal(round(unname(fixef(fit)), 3), c(12.128, 5.333, 2.945, 1.227, 1.039, -1.643))
  vc <- as.data.frame(VarCorr(fit))
  # tau00 2.38, tau11 0.10, sigma^2 36.70 (Table 4.5)
  expect_equal(round(vc$vcov[c(1, 2, 4)], 2), c(2.38, 0.10, 36.72))
})
