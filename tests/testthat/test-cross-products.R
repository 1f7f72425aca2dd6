# The one pass that forms the cross-products (cross_products.cpp) finds
# the blocks between levels of different factors for a chunk of
# observations first, then adds the chunk's rows into them, fetching ahead.
# A row added to the wrong block, a block lost when its table grows, or a
# chunk boundary handled twice would change the deviance: the fit is
# compared with lme4 and with the same rows in another order, on three
# crossed factors (blocks between secondary levels too), a random slope
# (blocks of several columns), more rows than three chunks and more blocks
# than the table's first size.

test_that("cross-products over chunks and a growing block table give lme4's fit, in any row order", {
  skip_if_not_installed("lme4")
  set.seed(21)
  n <- 6500
  d <- data.frame(a = sample(300, n, TRUE), b = sample(120, n, TRUE), c = sample(40, n, TRUE), x = rnorm(n))
  d$y <- 1 + 0.5 * d$x + rnorm(300)[d$a] + rnorm(120, sd = 0.7)[d$b] + rnorm(120, sd = 0.3)[d$b] * d$x +
    rnorm(40, sd = 0.5)[d$c] + rnorm(n)
  d[c("a", "b", "c")] <- lapply(d[c("a", "b", "c")], factor)
  formula <- y ~ x + (1 | a) + (x | b) + (1 | c)
  fit <- lmm(formula, d)
  ref <- lme4::lmer(formula, d)
  expect_lme4_agreement(fit, ref)

  shuffled <- d[sample(n), ]
  fit2 <- lmm(formula, shuffled)
  expect_equal(deviance(fit2), deviance(fit), tolerance = 1e-8)
  expect_equal(fixef(fit2), fixef(fit), tolerance = 1e-6)
})
