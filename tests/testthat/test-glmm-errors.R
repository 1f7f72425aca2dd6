# Bad input to glmm(), and models whose estimates do not exist, refused
# with classed conditions that say what to do.

binary_data <- function(seed = 3, n = 300, k = 20) {
  set.seed(seed)
  d <- data.frame(g = factor(sample(k, n, TRUE)), x = stats::rnorm(n), trt = stats::rbinom(n, 1, 0.3))
  d$y <- stats::rbinom(n, 1, stats::plogis(-0.5 + d$x + stats::rnorm(k)[d$g]))
  d
}

test_that("families glmm() does not fit are refused with a pointer", {
  d <- binary_data()
  err <- expect_error(glmm(y ~ x + (1 | g), d, family = gaussian), class = "mlmfit_error_family")
  expect_match(conditionMessage(err), "lmm")
  expect_error(glmm(y ~ x + (1 | g), d, family = quasibinomial), class = "mlmfit_error_family")
  expect_error(glmm(y ~ x + (1 | g), d, family = binomial(link = "identity")), class = "mlmfit_error_family")
  expect_error(glmm(y ~ x + (1 | g), d, family = "no_such_family"), class = "mlmfit_error_family")
  expect_error(glmm(y ~ x + (1 | g), d, family = 3), class = "mlmfit_error_family")
})

test_that("nAGQ is checked: a whole number to 25, above 1 only for one scalar random effect", {
  d <- binary_data()
  expect_error(glmm(y ~ x + (1 | g), d, nAGQ = 26), class = "mlmfit_error_argument")
  expect_error(glmm(y ~ x + (1 | g), d, nAGQ = 1.5), class = "mlmfit_error_argument")
  err <- expect_error(glmm(y ~ x + (x | g), d, nAGQ = 5), class = "mlmfit_error_nagq")
  expect_match(conditionMessage(err), "nAGQ = 1")
  d$h <- factor(sample(5, nrow(d), TRUE))
  expect_error(glmm(y ~ x + (1 | g) + (1 | h), d, nAGQ = 5), class = "mlmfit_error_nagq")
  expect_error(glmm(y ~ x + (1 | g), d, control = lmm_control()), class = "mlmfit_error_argument")
})

test_that("binomial responses out of range, of three levels, or constant are refused", {
  d <- binary_data()
  d$y3 <- factor(sample(c("a", "b", "c"), nrow(d), TRUE))
  err <- expect_error(glmm(y3 ~ x + (1 | g), d), class = "mlmfit_error_response")
  expect_match(conditionMessage(err), "3 levels")
  d$y2 <- d$y * 2
  expect_error(glmm(y2 ~ x + (1 | g), d), class = "mlmfit_error_response")
  d$yc <- 1
  expect_error(glmm(yc ~ x + (1 | g), d), class = "mlmfit_error_response")
  d$ych <- ifelse(d$y == 1, "yes", "no")
  expect_error(glmm(ych ~ x + (1 | g), d), class = "mlmfit_error_response")
  d$s <- stats::rbinom(nrow(d), 5, 0.4)
  d$f <- -1
  expect_error(glmm(cbind(s, f) ~ x + (1 | g), d), class = "mlmfit_error_response")
  d$p <- d$s / 5
  expect_warning(glmm(p ~ x + (1 | g), d), class = "mlmfit_warning_response")
})

test_that("counts must not be negative; Gamma responses must be positive", {
  d <- binary_data()
  d$count <- stats::rpois(nrow(d), 2)
  d$count[4] <- -1
  err <- expect_error(glmm(count ~ x + (1 | g), d, family = poisson), class = "mlmfit_error_response")
  expect_equal(err$rows, 4L)
  d$pos <- stats::rgamma(nrow(d), 2)
  d$pos[7] <- 0
  expect_error(glmm(pos ~ x + (1 | g), d, family = Gamma(link = "log")), class = "mlmfit_error_response")
})

test_that("a predictor with only successes is separation: an error naming it, or a warning", {
  d <- binary_data()
  d$y[d$trt == 1] <- 1
  err <- expect_error(glmm(y ~ x + trt + (1 | g), d), class = "mlmfit_error_separation")
  expect_match(conditionMessage(err), "trt")
  classes <- character()
  fit <- withCallingHandlers(glmm(y ~ x + trt + (1 | g), d, control = glmm_control(separation = "warning")),
                             warning = function(w) {
                               classes <<- c(classes, class(w))
                               invokeRestart("muffleWarning")
                             })
  expect_true("mlmfit_warning_separation" %in% classes)
  expect_s3_class(fit, "mlmfit_glmm")
  # the estimate ran off towards infinity, with a standard error to match
  expect_gt(fixef(fit)[["trt"]], 10)
  expect_gt(sqrt(vcov(fit)["trt", "trt"]), 100)
  # without the separating predictor the model is fine
  expect_s3_class(glmm(y ~ x + (1 | g), d), "mlmfit_glmm")
})

test_that("the reference level of a factor can separate too", {
  d <- binary_data()
  d$y[d$trt == 1] <- 1
  d$f <- factor(ifelse(d$trt == 1, "a", sample(c("b", "c"), nrow(d), TRUE)))
  err <- expect_error(glmm(y ~ x + f + (1 | g), d), class = "mlmfit_error_separation")
  expect_match(conditionMessage(err), "level \"a\" of `f`", fixed = TRUE)
})

test_that("the reference level of a two-level factor separates too (one dummy column)", {
  d <- binary_data()
  d$y[d$trt == 1] <- 1
  d$f <- factor(ifelse(d$trt == 1, "a", "b"))
  err <- expect_error(glmm(y ~ x + f + (1 | g), d), class = "mlmfit_error_separation")
  expect_match(conditionMessage(err), "level \"a\" of `f`", fixed = TRUE)
  # and not where it does not: a level with both outcomes
  d$y <- stats::rbinom(nrow(d), 1, 0.5)
  expect_s3_class(glmm(y ~ x + f + (1 | g), d), "mlmfit_glmm")
})

test_that("a single column's reference-level test from its ranges is the test on 1 - x", {
  # The pre-fit check decides 1 - x for one dummy column from the ranges of
  # x in each class of outcomes; the direct test is separation_sign().
  set.seed(11)
  for (i in 1:400) {
    n <- sample(3:8, 1)
    y <- sample(c(0, 1, 0.5), n, TRUE, prob = c(0.45, 0.45, if (i %% 3 == 0) 0.1 else 0))
    x <- sample(c(0, 1, if (i %% 4 == 0) 0.5), n, TRUE)
    X <- cbind(1, x)
    rows <- mlmfit:::outcome_rows(y, NULL, "binomial")
    expect_identical(rows, mlmfit:::class_rows(mlmfit:::outcome_classes(y, NULL, "binomial")))
    ranges <- mlmfit:::class_ranges(X, 2L, rows)
    expect_identical(mlmfit:::complement_separation_sign(ranges), mlmfit:::separation_sign(1 - x, rows),
                     info = paste("y =", toString(y), "x =", toString(x)))
  }
  counts <- c(0, 3, 0, 2, 5)
  expect_identical(mlmfit:::outcome_rows(counts, NULL, "poisson"),
                   mlmfit:::class_rows(mlmfit:::outcome_classes(counts, NULL, "poisson")))
})

test_that("complete separation by a combination of predictors is found", {
  d <- binary_data()
  set.seed(4)
  d$x2 <- stats::rnorm(nrow(d))
  d$y <- as.numeric(d$x + d$x2 > 0)
  err <- expect_error(glmm(y ~ x + x2 + (1 | g), d), class = "mlmfit_error_separation")
  expect_match(conditionMessage(err), "`x` and `x2`")
})

test_that("zero counts in a whole category of a Poisson model are separation", {
  d <- binary_data()
  d$count <- stats::rpois(nrow(d), exp(0.5 + 0.3 * d$x))
  d$count[d$trt == 1] <- 0
  expect_error(glmm(count ~ x + trt + (1 | g), d, family = poisson), class = "mlmfit_error_separation")
})

test_that("strong but finite effects are not called separation", {
  d <- binary_data()
  set.seed(6)
  d$y <- stats::rbinom(nrow(d), 1, stats::plogis(3 * d$x))
  fit <- glmm(y ~ x + (1 | g), d)
  expect_gt(fixef(fit)[["x"]], 1.5)
})

test_that("a singular fit is reported in words, and flagged", {
  skip_if_not_installed("mlmRev")
  data("Contraception", package = "mlmRev", envir = environment())
  expect_message(fit <- glmm(use ~ age + urban + livch + (1 | district:urban) + (1 | district), Contraception),
                 class = "mlmfit_message_singular")
  expect_true(is_singular(fit))
  expect_true(any(grepl("boundary", capture.output(print(fit)))))
})

test_that("an observation-level random effect is allowed, more effects than observations are not", {
  d <- binary_data()
  d$count <- stats::rpois(nrow(d), exp(0.5 + 0.3 * d$x + stats::rnorm(nrow(d), 0, 0.5)))
  d$obs <- factor(seq_len(nrow(d)))
  fit <- glmm(count ~ x + (1 | obs), d, family = poisson)
  expect_identical(unname(ngrps(fit)), nrow(d))
  expect_error(glmm(count ~ x + (x | obs), d, family = poisson), class = "mlmfit_error_identifiability")
})
