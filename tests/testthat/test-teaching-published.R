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
