# Published figures of the lessons and textbooks, reproduced with the
# package's datasets (sources in ../shared/data/PROVENANCE.md).

test_that("Hox popular2: extraversion with a random slope (HLM7 output)", {
  popular <- teaching_dataset("popular")
  expect_equal(dim(popular), c(2000L, 15L))
  fit <- lmm(popular ~ extrav + sex + texp + (extrav | class), popular, REML = FALSE)
  # HLM7: 0.738568, 0.452641, 1.252470, 0.090813. The intercept lies on a flat
  # ridge of the likelihood; lme4 finds 0.7377 too.
  expect_equal(unname(fixef(fit)), c(0.738568, 0.452641, 1.252470, 0.090813), tolerance = 2e-3)
  expect_equal(unname(fixef(fit))[2:4], c(0.452641, 1.252470, 0.090813), tolerance = 1e-3)
  # deviance 4812.806967: equal, or lower (a better optimum)
  expect_lt(deviance(fit) - 4812.806967, 1e-4)
  expect_gt(deviance(fit), 4812.806967 - 1e-3)
  vc <- as.data.frame(VarCorr(fit))
  expect_equal(vc$vcov, c(1.28143, 0.03392, -0.18475, 0.55181), tolerance = 2e-3)
  # the empty model by ML: Hox's Mplus 5.078, 0.695, 1.222 (ICC 0.363)
  empty <- lmm(popular ~ 1 + (1 | class), popular, REML = FALSE)
  expect_equal(round(unname(fixef(empty)), 3), 5.078)
  expect_equal(as.data.frame(VarCorr(empty))$vcov, c(0.695, 1.222), tolerance = 1e-3)
  expect_equal(round(icc(empty)$icc, 3), 0.362)
  expect_equal(round(deviance(empty), 2), 6327.47)
})

test_that("Hox nurses: the three-level model with a cross-level interaction (HLM7 output)", {
  nurses <- teaching_dataset("nurses")
  expect_equal(dim(nurses), c(1000L, 20L))
  # HLM centres expcon at its mean over wards and hospsize at its mean over hospitals
  nurses$ec <- nurses$expcon - 0.5
  hospital_size <- tapply(nurses$hospsize, nurses$hospital, function(v) v[1])
  expect_equal(mean(hospital_size), 0.8)
  nurses$hc <- nurses$hospsize - 0.8
  fit <- lmm(stress ~ age + gender + experien + wardtype + ec * hc + (1 | hospital:ward) + (1 + ec | hospital),
             nurses, REML = FALSE)
  expect_equal(unname(fixef(fit)),
               c(5.403553, 0.022297, -0.454752, -0.061808, 0.053134, -0.698783, 0.458217, 0.998447),
               tolerance = 1e-5)
  vc <- as.data.frame(VarCorr(fit))
  expect_equal(vc$grp, c("hospital:ward", "hospital", "hospital", "hospital", "Residual"))
  expect_equal(vc$vcov, c(0.10872, 0.15162, 0.17840, 0.05327, 0.21662), tolerance = 1e-3)
  expect_equal(round(deviance(fit), 3), 1550.761)
  # the empty three-level model: 5.001; ward 0.489, hospital 0.162, nurse 0.301
  empty <- lmm(stress ~ 1 + (1 | hospital / ward), nurses, REML = FALSE)
  expect_equal(round(unname(fixef(empty)), 3), 5.001)
  expect_equal(round(as.data.frame(VarCorr(empty))$vcov, 3), c(0.489, 0.162, 0.301))
  expect_equal(round(deviance(empty), 2), 1942.36)
})

test_that("JSP: 3236 records, and the three-level model of the last year", {
  jsp <- teaching_dataset("jsp")
  expect_equal(nrow(jsp), 3236L)
  expect_equal(length(unique(jsp$id)), 1192L)
  expect_equal(as.vector(table(jsp$year)), c(1154L, 1129L, 953L))
  expect_equal(levels(jsp$gender), c("girl", "boy"))
  expect_equal(nlevels(jsp$social), 9L)
  fit <- lmm(math ~ 1 + (1 | school) + (1 | school:class), jsp, subset = year == 2)
  expect_equal(nobs(fit), 953L)
  expect_equal(round(unname(fixef(fit)), 2), 30.50)
  vc <- as.data.frame(VarCorr(fit))
  expect_equal(vc$grp, c("school:class", "school", "Residual"))
  expect_equal(round(vc$vcov, 2), c(1.78, 3.84, 38.67))
})

test_that("Two classrooms: the lesson's pattern holds in the simulated data", {
  two <- teaching_dataset("twoclassrooms")
  expect_equal(dim(two), c(60L, 4L))
  expect_equal(two$pretest.c, two$pretest - mean(two$pretest))
  one <- coef(lm(posttest ~ pretest.c, two, subset = classroom == "class1"))
  other <- coef(lm(posttest ~ pretest.c, two, subset = classroom == "class2"))
  expect_equal(round(unname(c(one[1], other[1]))), c(70, 60))
  expect_equal(round(unname(c(one[2], other[2])), 1), c(0.2, 0.2))
  collapsed <- lm(posttest ~ pretest.c, two)
  expect_equal(round(unname(coef(collapsed)), c(0, 1)), c(65, 0.2))
  # the collapsed residuals are clustered: positive in class1, negative in class2
  by_class <- tapply(residuals(collapsed), two$classroom, mean)
  expect_true(by_class[["class1"]] > 4 && by_class[["class2"]] < -4)
  dummy <- coef(lm(posttest ~ pretest.c + classroom, two))
  expect_equal(round(unname(dummy[c(1, 3)])), c(70, -10))
  fit <- lmm(posttest ~ pretest.c + (1 | classroom), two)
  expect_equal(round(unname(fixef(fit)), c(0, 1)), c(65, 0.2))
})

test_that("High School and Beyond: the lesson's figures", {
  skip_if_not_installed("mlmRev")
  hsb <- teaching_hsb82()
  # a random slope for cses: 12.65 (0.24), 2.19 (0.13); SDs 2.95, 0.83,
  # correlation 0.02, residual 6.06; AIC 46726.2, deviance 46711.0
  slope <- lmm(mAch ~ cses + (cses | school), hsb)
  expect_equal(round(unname(fixef(slope)), 2), c(12.64, 2.19))
  expect_equal(round(sqrt(diag(vcov(slope))), 2), c(0.24, 0.13), ignore_attr = TRUE)
  vc <- as.data.frame(VarCorr(slope))
  expect_equal(round(vc$sdcor, 2), c(2.95, 0.83, 0.02, 6.06))
  expect_equal(round(vc$vcov[1:2], 2), c(8.68, 0.69))
  expect_equal(round(AIC(slope), 1), 46726.2)
  expect_equal(round(deviance(slope, REML = FALSE), 1), 46711.0)
  # meanses * cses + sector * cses (Raudenbush & Bryk 2002, Table 4.5):
  # 12.128, 5.333, 2.945, 1.227, 1.039, -1.643; tau 2.38 and 0.10, sigma^2 36.70
  full <- lmm(mAch ~ meanses * cses + sector * cses + (cses | school), hsb)
  expect_equal(round(unname(fixef(full)), 3), c(12.128, 5.333, 2.945, 1.227, 1.039, -1.643))
  vf <- as.data.frame(VarCorr(full))
  expect_equal(round(vf$vcov[c(1, 2, 4)], 2), c(2.38, 0.10, 36.72))
  expect_equal(round(vf$sdcor[c(1, 2, 3, 4)], 2), c(1.54, 0.32, 0.39, 6.06))
  expect_equal(round(AIC(full), 1), 46523.7)
})
