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

# Every refusal below is a classed error (class "mlmfit_error" and a
# specific one) whose message names the culprit; expected rows and names
# are worked out by hand from the data.

test_that("every refusal is an mlmfit_error", {
  err <- expect_error(lmm(math ~ homework, nels), class = "mlmfit_error")
  expect_s3_class(err, "mlmfit_error_no_random")
  expect_match(conditionMessage(err), "lm()", fixed = TRUE)
})

test_that("a misspelt variable is named and a close name suggested", {
  err <- expect_error(lmm(math ~ homwork + (1 | schid), nels), class = "mlmfit_error_variable")
  expect_equal(err$variables, "homwork")
  expect_match(conditionMessage(err), "Did you mean `homework`", fixed = TRUE)
})

test_that("responses of the wrong type are refused and named", {
  nels$passed <- nels$math > 50
  nels$grade <- as.character(round(nels$math))
  nels$when <- as.Date("2020-01-01") + round(nels$math)
  nels$mc <- complex(real = nels$math, imaginary = 1)
  for (v in c("passed", "grade", "when", "mc")) {
    f <- stats::as.formula(paste(v, "~ homework + (1 | schid)"))
    err <- expect_error(lmm(f, nels), class = "mlmfit_error_response")
    expect_equal(err$variable, v)
  }
})

test_that("Inf, -Inf and NaN in a predictor or the response name the variable and the data rows", {
  d <- nels
  d$math[c(4, 9)] <- c(Inf, -Inf)
  err <- expect_error(lmm(math ~ homework + (1 | schid), d), class = "mlmfit_error_nonfinite")
  expect_equal(err$variable, "math")
  expect_equal(err$rows, c(4L, 9L))
  expect_match(conditionMessage(err), "rows 4, 9", fixed = TRUE)

  # NaN is refused, not dropped as missing, and rows are those of the data
  # even after earlier rows were dropped for missing values.
  d <- nels
  d$homework[1:3] <- NA
  d$ses[12] <- NaN
  err <- expect_error(lmm(math ~ homework + ses + (1 | schid), d), class = "mlmfit_error_nonfinite")
  expect_equal(err$variable, "ses")
  expect_equal(err$rows, 12L)
  expect_match(conditionMessage(err), "NaN")

  # a transformation that overflows in the formula
  d <- nels
  d$homework[7] <- 0
  err <- expect_error(lmm(math ~ log(homework) + (1 | schid), d), class = "mlmfit_error_nonfinite")
  expect_equal(err$variable, "log(homework)")
  expect_true(7L %in% err$rows)

  # a random slope
  d <- nels
  d$ses[20] <- Inf
  err <- expect_error(lmm(math ~ 1 + (ses | schid), d), class = "mlmfit_error_nonfinite")
  expect_equal(err$rows, 20L)
})

test_that("rows are named by their row names when the data have them", {
  d <- nels[1:60, ]
  rownames(d) <- paste0("pupil", 1:60)
  d$homework[5] <- Inf
  err <- expect_error(lmm(math ~ homework + (1 | schid), d), class = "mlmfit_error_nonfinite")
  expect_equal(err$rows, "pupil5")
})

test_that("missing values left in by na.action name the variable and rows (a grouping factor among them)", {
  d <- nels
  d$school <- factor(d$schid)
  d$school[c(3, 30)] <- NA
  err <- expect_error(lmm(math ~ homework + (1 | school), d, na.action = na.pass), class = "mlmfit_error_missing")
  expect_equal(err$variable, "school")
  expect_equal(err$rows, c(3L, 30L))
  err <- expect_error(lmm(math ~ homework + (1 | school), d, na.action = function(x) x),
                      class = "mlmfit_error_missing")
  expect_equal(err$rows, c(3L, 30L))
  # a grouping factor computed in the formula: its missing values are
  # missing values of the model frame, dropped by na.omit or refused
  f <- lmm(math ~ homework + (1 | ifelse(schid > 7000, NA, schid)), nels)
  expect_equal(nobs(f), sum(nels$schid <= 7000))
  err <- expect_error(lmm(math ~ homework + (1 | ifelse(schid > 7000, NA, schid)), nels, na.action = na.pass),
                      class = "mlmfit_error_missing")
  expect_equal(err$rows, which(nels$schid > 7000))
  expect_error(lmm(math ~ homework + (1 | schid), nels, na.action = "no_such_function"),
               class = "mlmfit_error_argument")
})

test_that("zero rows before or after subset and the removal of missing values", {
  expect_error(lmm(math ~ homework + (1 | schid), nels[0, ]), class = "mlmfit_error_empty")
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels, subset = schid < 0), class = "mlmfit_error_empty")
  expect_match(conditionMessage(err), "subset")
  d <- nels
  d$homework[d$schid != d$schid[1]] <- NA
  d$math[d$schid == d$schid[1]] <- NA
  err <- expect_error(lmm(math ~ homework + (1 | schid), d), class = "mlmfit_error_empty")
  expect_match(conditionMessage(err), "missing")
})

test_that("negative, zero, missing, non-numeric, unknown and wrongly sized weights", {
  d <- nels
  d$w <- 1
  d$w[c(8, 11)] <- c(-2, 0)
  err <- expect_error(lmm(math ~ homework + (1 | schid), d, weights = w), class = "mlmfit_error_weights")
  expect_equal(err$rows, c(8L, 11L))
  expect_match(conditionMessage(err), "negative")
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels, weights = rep(1, 10)), class = "mlmfit_error_weights")
  expect_match(conditionMessage(err), "519")
  expect_s3_class(err, "mlmfit_error_frame")  # the earlier class, kept
  expect_error(lmm(math ~ homework + (1 | schid), nels, weights = rep("a", 519)), class = "mlmfit_error_weights")
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels, weights = wt), class = "mlmfit_error_weights")
  expect_equal(err$variables, "wt")
  # Missing weights follow na.action, as in lm() and lme4: the rows are dropped ...
  d <- nels
  d$w <- 1
  d$w[c(2, 6)] <- NA
  expect_equal(nobs(lmm(math ~ homework + (1 | schid), d, weights = w)), 517L)
  # ... or refused where na.action keeps them.
  err <- expect_error(lmm(math ~ homework + (1 | schid), d, weights = w, na.action = na.pass),
                      class = "mlmfit_error_missing")
  expect_equal(err$variable, "weights")
  expect_equal(err$rows, c(2L, 6L))
  d$w[2] <- Inf
  err <- expect_error(lmm(math ~ homework + (1 | schid), d, weights = w), class = "mlmfit_error_nonfinite")
  expect_equal(err$variable, "weights")
})

test_that("non-numeric, unknown, infinite, missing and wrongly sized offsets", {
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels, offset = rep(1, 10)), class = "mlmfit_error_offset")
  expect_match(conditionMessage(err), "519")
  expect_error(lmm(math ~ homework + (1 | schid), nels, offset = rep("a", 519)), class = "mlmfit_error_offset")
  expect_error(lmm(math ~ homework + (1 | schid), nels, offset = off), class = "mlmfit_error_offset")
  o <- rep(0, 519)
  o[14] <- -Inf
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels, offset = o), class = "mlmfit_error_nonfinite")
  expect_equal(err$variable, "offset")
  expect_equal(err$rows, 14L)
  o[14] <- NA
  err <- expect_error(lmm(math ~ homework + (1 | schid), nels, offset = o, na.action = na.pass),
                      class = "mlmfit_error_missing")
  expect_equal(err$rows, 14L)
  expect_equal(nobs(lmm(math ~ homework + (1 | schid), nels, offset = o)), 518L)
})

test_that("data: what as.data.frame() accepts is used, the rest refused with the reason", {
  m <- as.matrix(nels[c("math", "homework", "schid")])
  f1 <- lmm(math ~ homework + (1 | schid), m)
  f2 <- lmm(math ~ homework + (1 | schid), nels)
  expect_equal(fixef(f1), fixef(f2))
  err <- expect_error(lmm(math ~ homework + (1 | schid), list(math = 1:3, homework = 1:2, schid = 1)),
                      class = "mlmfit_error_data")
  expect_match(conditionMessage(err), "differing number of rows")
  expect_error(lmm(math ~ homework + (1 | schid), mean), class = "mlmfit_error_data")
  expect_error(lmm(math ~ homework + (1 | schid), 3), class = "mlmfit_error_data")
})

test_that("grouping factors: one level, one level per observation, as many effects as observations", {
  d <- nels
  d$all <- "one school"
  err <- expect_error(lmm(math ~ homework + (1 | all), d), class = "mlmfit_error_grouping")
  expect_equal(err$variable, "all")
  d$row <- seq_len(nrow(d))
  err <- expect_error(lmm(math ~ homework + (0 + homework | row), d), class = "mlmfit_error_grouping")
  expect_equal(err$variable, "row")
  # 20 groups of 3 with three random effects each: 60 effects for 60 rows
  set.seed(3)
  d <- data.frame(g = rep(1:20, each = 3), x = rnorm(60), z = rnorm(60), y = rnorm(60))
  err <- expect_error(lmm(y ~ x + (1 + x + z | g), d), class = "mlmfit_error_identifiability")
  expect_equal(err$variable, "g")
})

test_that("a random-effect column that is zero everywhere, and a one-level factor predictor", {
  d <- nels
  d$nothing <- 0
  err <- expect_error(lmm(math ~ homework + (nothing | schid), d), class = "mlmfit_error_identifiability")
  expect_equal(err$variable, "nothing")
  d$cohort <- factor("1988")
  err <- expect_error(lmm(math ~ homework + cohort + (1 | schid), d), class = "mlmfit_error_variable")
  expect_equal(err$variables, "cohort")
})

test_that("REML needs more observations than fixed effects", {
  d <- nels[1:12, ]
  d$g <- rep(1:2, 6)
  expect_error(lmm(math ~ factor(seq_len(12)) + (1 | g), d), class = "mlmfit_error_identifiability")
})

test_that("a response the model reproduces exactly is refused, as no maximum of the likelihood exists", {
  # constant response
  d <- nels
  d$math <- 50
  err <- expect_error(lmm(math ~ homework + (1 | schid), d), class = "mlmfit_error_response")
  expect_match(conditionMessage(err), "same value")
  # an exact linear function of the predictors
  d <- nels
  d$exact <- 40 + 2 * d$homework
  err <- expect_error(lmm(exact ~ homework + (0 + ses | schid), d), class = "mlmfit_error_fit")
  expect_match(conditionMessage(err), "exact linear function")
})

test_that("an nlme variance function given as weights (nlme's habit) points to `variance =`", {
  skip_if_not_installed("nlme")
  err <- expect_error(lmm(distance ~ age + (1 | Subject), nlme::Orthodont, weights = varIdent(form = ~ 1 | Sex)),
                      class = "mlmfit_error_weights")
  expect_match(conditionMessage(err), "variance = varIdent(form = ~1 | Sex)", fixed = TRUE)
  err <- expect_error(lmm(distance ~ age + (1 | Subject), nlme::Orthodont, weights = nlme::varPower()),
                      class = "mlmfit_error_weights")
  expect_match(conditionMessage(err), "variance = nlme::varPower()", fixed = TRUE)
  # numeric weights keep the plain message
  err <- expect_error(lmm(distance ~ age + (1 | Subject), nlme::Orthodont, weights = rep(1, 3)),
                      class = "mlmfit_error_weights")
  expect_no_match(conditionMessage(err), "variance =", fixed = TRUE)
})
