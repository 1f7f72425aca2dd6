test_that("random-effect terms are found and expanded as lme4 does", {
  p <- parse_mixed_formula(y ~ x + (1 | a / b) + (x || g) + (1 | c:d))
  expect_equal(vapply(p$random, `[[`, "", "label"), c("a", "b:a", "g", "g", "c:d"))
  expect_equal(deparse(p$random[[4]]$lhs), "0 + x")
  expect_equal(deparse(p$fixed), "y ~ x")
  expect_setequal(all.vars(p$frame), c("y", "x", "a", "b", "g", "c", "d"))
})

test_that("the fixed part keeps intercept removal and offsets", {
  expect_equal(deparse(parse_mixed_formula(y ~ 0 + x + (1 | g))$fixed), "y ~ 0 + x")
  expect_equal(deparse(parse_mixed_formula(y ~ (1 | g))$fixed), "y ~ 1")
  expect_equal(deparse(parse_mixed_formula(y ~ (1 | g) + x + offset(o))$fixed), "y ~ x + offset(o)")
  expect_equal(deparse(parse_mixed_formula(y ~ x - 1 + (1 | g))$fixed), "y ~ x - 1")
})

test_that("a/b/c nests three levels", {
  p <- parse_mixed_formula(y ~ 1 + (1 | a / b / c))
  expect_equal(vapply(p$random, `[[`, "", "label"), c("a", "b:a", "c:b:a"))
})

test_that("formulas without random effects, or with misplaced bars, are refused", {
  expect_error(parse_mixed_formula(y ~ x), class = "mlmfit_error_no_random")
  expect_error(parse_mixed_formula(~ x + (1 | g)), class = "mlmfit_error_formula")
  expect_error(parse_mixed_formula(y ~ x * (1 | g)), class = "mlmfit_error_formula")
})

test_that("interaction grouping factors keep only the combinations that occur", {
  a <- factor(c("x", "x", "y", "y"))
  b <- factor(c("1", "2", "1", "1"))
  f <- mlmfit:::interaction_factor(list(a, b))
  expect_equal(levels(f), c("x:1", "x:2", "y:1"))
  expect_equal(as.integer(f), c(1L, 2L, 3L, 3L))
  base <- droplevels(a:b)
  expect_equal(as.character(f), as.character(base))
})
