# Seed 003 (the two-classrooms lesson): every number the lesson prints, to
# the digits printed, from the constructed twoclassrooms data
# (data-raw/twoclassrooms.R says how they were solved for).

test_that("twoclassrooms: 30 students per classroom, the same mean pretest in both", {
  two <- teaching_dataset("twoclassrooms")
  expect_equal(dim(two), c(60L, 5L))
  expect_equal(as.vector(table(two$classroom)), c(30L, 30L))
  expect_equal(two$classroom.d, as.integer(two$classroom == "class2"))
  expect_equal(two$pretest.c, two$pretest - mean(two$pretest))
  expect_equal(as.vector(tapply(two$pretest, two$classroom, mean)), c(50, 50))
  expect_true(all(two$pretest == round(two$pretest)))
  expect_true(all(abs(two$posttest * 1000 - round(two$posttest * 1000)) < 1e-6))
})

test_that("two classrooms, separate regressions: 70 + 0.2 pretest and 60 + 0.2 pretest", {
  two <- teaching_dataset("twoclassrooms")
  one <- coef(lm(posttest ~ pretest.c, two, subset = classroom == "class1"))
  other <- coef(lm(posttest ~ pretest.c, two, subset = classroom == "class2"))
  expect_printed(one[[1]], "70")
  expect_printed(other[[1]], "60")
  expect_printed(one[[2]], "0.2")
  expect_printed(other[[2]], "0.2")
})

test_that("two classrooms, collapsed: 65 + 0.2 pretest, R2 .055, residual SD 11.9, residual means 4.9 and -4.9", {
  two <- teaching_dataset("twoclassrooms")
  collapsed <- lm(posttest ~ pretest.c, two)
  expect_printed(coef(collapsed)[[1]], "65")
  expect_printed(coef(collapsed)[[2]], "0.2")
  expect_printed(summary(collapsed)$r.squared, ".055")
  expect_printed(sigma(collapsed), "11.9")
  means <- tapply(residuals(collapsed), two$classroom, mean)
  expect_printed(means[["class1"]], "4.9")
  expect_printed(means[["class2"]], "-4.9")
})

test_that("two classrooms, classroom dummy: 70 + 0.2 pre - 10 class, R2 .22, SD 10.9, residual means 0", {
  two <- teaching_dataset("twoclassrooms")
  dummy <- lm(posttest ~ pretest.c + classroom.d, two)
  expect_printed(coef(dummy)[[1]], "70")
  expect_printed(coef(dummy)[[2]], "0.2")
  expect_printed(coef(dummy)[[3]], "-10")
  expect_printed(summary(dummy)$r.squared, ".22")
  expect_printed(sigma(dummy), "10.9")
  expect_equal(as.vector(tapply(residuals(dummy), two$classroom, mean)), c(0, 0), tolerance = 1e-10)
})

test_that("two classrooms, lmm: 44.72 (6.688), 118.52 (10.887), 65.0333 (4.9333, t 13.182), 0.2089 (0.1036, t 2.017)", {
  two <- teaching_dataset("twoclassrooms")
  fit <- lmm(posttest ~ (1 | classroom.d) + pretest.c, two)
  vc <- as.data.frame(VarCorr(fit))
  expect_printed(vc$vcov[1], "44.72")
  expect_printed(vc$sdcor[1], "6.688")
  expect_printed(vc$vcov[2], "118.52")
  expect_printed(vc$sdcor[2], "10.887")
  cf <- summary(fit)$coefficients
  expect_printed(cf[1, "Estimate"], "65.0333")
  expect_printed(cf[1, "Std. Error"], "4.9333")
  expect_printed(cf[1, "t value"], "13.182")
  expect_printed(cf[2, "Estimate"], "0.2089")
  expect_printed(cf[2, "Std. Error"], "0.1036")
  expect_printed(cf[2, "t value"], "2.017")
  expect_equal(c(nobs(fit), ngrps(fit)), c(60, 2), ignore_attr = TRUE)
})

test_that("two classrooms: the REML estimates equal their closed forms (equal class sizes, equal mean pretest)", {
  two <- teaching_dataset("twoclassrooms")
  fit <- lmm(posttest ~ (1 | classroom.d) + pretest.c, two)
  xw <- two$pretest.c - ave(two$pretest.c, two$classroom)
  yw <- two$posttest - ave(two$posttest, two$classroom)
  slope <- sum(xw * yw) / sum(xw^2)
  sigma2 <- sum((yw - slope * xw)^2) / 57
  d <- diff(tapply(two$posttest, two$classroom, mean))[[1]]
  tau2 <- (15 * d^2 - sigma2) / 30
  expect_equal(unname(fixef(fit)), c(mean(two$posttest), slope), tolerance = 1e-10)
  expect_equal(as.data.frame(VarCorr(fit))$vcov, c(tau2, sigma2), tolerance = 1e-5)
  expect_equal(unname(sqrt(diag(vcov(fit)))), c(abs(d) / 2, sqrt(sigma2 / sum(xw^2))), tolerance = 1e-5)
})
