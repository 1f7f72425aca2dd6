# Values of grouping variables map to levels once, with factor()'s
# semantics (as lme4): the same mapping names the levels of the fit and
# finds them in new data for predict() and simulate().

group_data <- function(g, seed = 1) {
  set.seed(seed)
  k <- length(unique(g))
  d <- data.frame(g = g, x = stats::rnorm(length(g)))
  d$y <- d$x + stats::rnorm(k)[match(g, unique(g))] + stats::rnorm(length(g))
  d
}

test_that("numeric group codes: levels named as lme4 names them, found again in new data", {
  skip_if_not_installed("lme4")
  for (g in list(rep(100000 + 0:9, each = 5),             # doubles that print as 1e+05
                 rep(1e7 + 0:9, each = 5),                # beyond the tabulated range
                 rep(as.integer(100000 + 0:9), each = 5), # integers print in full
                 rep(c(2.5, 10, 1e-3, 7, 300000), each = 8))) {
    d <- group_data(g)
    m <- lmm(y ~ x + (1 | g), d)
    ref <- lme4::lmer(y ~ x + (1 | g), d)
    expect_identical(rownames(ranef(m)$g), rownames(lme4::ranef(ref)$g))
    # the data of the fit as new data: its own fitted values, seen levels only
    expect_equal(predict(m, d), fitted(m), tolerance = 1e-12)
    expect_equal(predict(m, d, allow.new.levels = TRUE), fitted(m), tolerance = 1e-12)
    expect_close(predict(m, d), predict(ref, d), rel = 1e-4)
    # a code the fit has not seen
    nd <- d[1:2, ]
    nd$g[2] <- max(g) + 1
    expect_error(predict(m, nd), class = "mlmfit_error_new_levels")
    expect_equal(unname(predict(m, nd, allow.new.levels = TRUE)[2]), unname(predict(m, nd, re.form = NA)[2]))
  }
})

test_that("distinct doubles that print alike are one group, as factor() makes them", {
  skip_if_not_installed("lme4")
  g <- rep(c(0.1 + 0.2, 0.5, 0.7, 0.9, 1.1), each = 10)
  g[6:10] <- 0.3
  d <- group_data(g)
  m <- lmm(y ~ x + (1 | g), d)
  ref <- lme4::lmer(y ~ x + (1 | g), d)
  expect_identical(ngrps(m), c(g = 5L))
  expect_equal(ngrps(m), lme4::ngrps(ref))
  re <- ranef(m)$g
  expect_identical(rownames(re), rownames(lme4::ranef(ref)$g))
  expect_close(re[[1]], lme4::ranef(ref)$g[[1]], rel = 1e-3, abs = 1e-4)
  expect_equal(predict(m, d), fitted(m), tolerance = 1e-12)
  expect_equal(deviance(m), lme4::REMLcrit(ref), tolerance = 1e-6)
})

test_that("interactions of numeric codes and simulate() with new data use the same levels", {
  skip_if_not_installed("lme4")
  set.seed(4)
  d <- data.frame(a = rep(1e5 + 0:3, each = 12), b = rep(rep(c(0.5, 1e6), each = 6), 4), x = stats::rnorm(48))
  d$y <- d$x + stats::rnorm(8)[as.integer(interaction(d$a, d$b))] + stats::rnorm(48)
  m <- lmm(y ~ x + (1 | a:b), d)
  ref <- lme4::lmer(y ~ x + (1 | a:b), d)
  expect_identical(rownames(ranef(m)[["a:b"]]), rownames(lme4::ranef(ref)[["a:b"]]))
  expect_equal(predict(m, d[c(40, 2), ]), fitted(m)[c(40, 2)], tolerance = 1e-12)
  fit <- at_lme4_estimates(m, ref)
  expect_close(as.matrix(simulate(fit, nsim = 2, seed = 1, newdata = d[c(40, 2, 13), ], use.u = TRUE)),
               as.matrix(simulate(ref, nsim = 2, seed = 1, newdata = d[c(40, 2, 13), ], use.u = TRUE)),
               rel = 0, abs = 1e-6)
})

test_that("integer64 group codes and predictors are used as their values", {
  skip_if_not_installed("bit64")
  skip_if_not_installed("lme4")
  sleepstudy <- lme4_data("sleepstudy")
  s64 <- sleepstudy
  s64$Days <- bit64::as.integer64(sleepstudy$Days)
  s64$id <- bit64::as.integer64(as.integer(as.character(sleepstudy$Subject)) + 1e10)
  sleepstudy$id <- as.double(as.integer(as.character(sleepstudy$Subject)) + 1e10)
  m64 <- lmm(Reaction ~ Days + (Days | id), s64)
  m <- lmm(Reaction ~ Days + (Days | id), sleepstudy)
  ref <- lme4::lmer(Reaction ~ Days + (Days | id), sleepstudy)
  expect_equal(fixef(m64), fixef(m))
  expect_equal(deviance(m64), deviance(m))
  expect_identical(rownames(ranef(m64)$id), rownames(lme4::ranef(ref)$id))
  expect_lme4_agreement(m64, ref)
  expect_equal(predict(m64, s64[1:5, ]), fitted(m)[1:5], tolerance = 1e-12)
  # a value with no exact double is refused, naming the variable
  s64$big <- bit64::as.integer64("9007199254740993") + s64$Days
  expect_error(lmm(Reaction ~ big + (1 | id), s64), class = "mlmfit_error_variable")
})
