nels <- nels88_data()

test_that("a variable missing from data is named", {
  err <- expect_error(lmm(math ~ hw + (1 | schid), nels), class = "mlmfit_error_variable")
  expect_match(conditionMessage(err), "hw")
})

test_that("a formula without random effects points to lm()", {
  expect_error(lmm(math ~ homework, nels), class = "mlmfit_error_no_random")
})

test_that("a factor response points to glmm()", {
  nels$pass <- factor(nels$math > 50)
  err <- expect_error(lmm(pass ~ homework + (1 | schid), nels), class = "mlmfit_error_response")
  expect_match(conditionMessage(err), "glmm")
})

test_that("a grouping factor with one level, or one level per row, is refused", {
  one <- nels[nels$schid == nels$schid[1], ]
  expect_error(lmm(math ~ homework + (1 | schid), one), class = "mlmfit_error_grouping")
  nels$id <- seq_len(nrow(nels))
  expect_error(lmm(math ~ homework + (1 | id), nels), class = "mlmfit_error_grouping")
})

test_that("infinite values name the variable and the rows", {
  nels$homework[c(3, 7)] <- Inf
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels), class = "mlmfit_error_nonfinite")
  expect_match(conditionMessage(err), "homework")
  expect_equal(err$rows, c(3L, 7L))
})

test_that("bad weights are refused", {
  nels$w <- 1
  nels$w[5] <- -1
  expect_error(lmm(math ~ homework + (1 | schid), nels, weights = w), class = "mlmfit_error_weights")
})

test_that("no rows after subsetting is an error, missing values are dropped", {
  expect_error(lmm(math ~ homework + (1 | schid), nels, subset = math > 1000), class = "mlmfit_error_empty")
  nels$homework[1:10] <- NA
  f <- lmm(math ~ homework + (1 | schid), nels)
  expect_equal(nobs(f), 509L)
})

test_that("data that is not a data frame is converted or refused", {
  expect_error(lmm(math ~ homework + (1 | schid), "nels"), class = "mlmfit_error_data")
  f <- lmm(math ~ homework + (1 | schid), as.list(nels))
  expect_equal(nobs(f), 519L)
})

test_that("na.exclude pads fitted values and residuals, na.fail refuses", {
  nels$homework[c(2, 5)] <- NA
  f <- lmm(math ~ homework + (1 | schid), nels, na.action = na.exclude)
  expect_equal(nobs(f), 517L)
  expect_length(fitted(f), 519L)
  expect_true(all(is.na(residuals(f)[c(2, 5)])))
  expect_equal(sum(is.na(fitted(f))), 2L)
  expect_error(lmm(math ~ homework + (1 | schid), nels, na.action = na.fail), class = "mlmfit_error_missing")
  skip_if_not_installed("lme4")
  g <- lme4::lmer(math ~ homework + (1 | schid), nels, na.action = na.exclude)
  expect_equal(unname(fitted(f)), unname(fitted(g)), tolerance = 1e-6)
})

test_that("integer, double and character grouping codes give the same factor levels as factor()", {
  g <- c(10L, 3L, 3L, 7L, 10L)
  expect_identical(levels(mlmfit:::as_grouping_factor(g)), levels(factor(g)))
  expect_identical(as.integer(mlmfit:::as_grouping_factor(g)), as.integer(factor(g)))
  gd <- c(2.5, 1, 2.5, -3)
  expect_identical(levels(mlmfit:::as_grouping_factor(gd)), levels(factor(gd)))
  expect_identical(as.integer(mlmfit:::as_grouping_factor(gd)), as.integer(factor(gd)))
})
