# Published figures of the teaching literature.

test_that("High School and Beyond empty model (Raudenbush & Bryk)", {
  skip_if_not_installed("mlmRev")
  data("Hsb82", package = "mlmRev")
  f <- lmm(mAch ~ 1 + (1 | school), Hsb82)
  expect_equal(round(unname(fixef(f)), 2), 12.64)
  expect_equal(round(unname(sqrt(diag(vcov(f)))), 2), 0.24)
  vc <- as.data.frame(VarCorr(f))
  expect_equal(round(vc$sdcor, 2), c(2.93, 6.26))
  # variances 8.61 and 39.15, ICC 0.18
  expect_equal(round(vc$vcov, 2), c(8.61, 39.15))
  expect_equal(round(vc$vcov[1] / sum(vc$vcov), 2), 0.18)
  fml <- lmm(mAch ~ 1 + (1 | school), Hsb82, REML = FALSE)
  expect_equal(round(deviance(fml), 1), 47115.8)
})

test_that("NELS88 23 schools, empty model by ML (Kreft & de Leeuw, Table 4.2)", {
  nels88 <- nels88_data()
  f <- lmm(math ~ 1 + (1 | schid), nels88, REML = FALSE)
  expect_equal(round(unname(fixef(f)), 3), 50.757)
  expect_equal(round(unname(sqrt(diag(vcov(f)))), 3), 1.127)
  vc <- as.data.frame(VarCorr(f))
  expect_equal(round(vc$vcov, 2), c(24.85, 81.24))
  expect_equal(round(as.numeric(logLik(f)), 3), -1900.388)
  # REML: the HLM output (50.758849, SE 1.151098, tau 26.12302, sigma^2 81.24393)
  fr <- lmm(math ~ 1 + (1 | schid), nels88)
  expect_equal(unname(fixef(fr)), 50.758849, tolerance = 1e-6)
  expect_equal(unname(sqrt(diag(vcov(fr)))), 1.151098, tolerance = 1e-4)
  expect_equal(as.data.frame(VarCorr(fr))$vcov, c(26.12302, 81.24393), tolerance = 1e-4)
})
