# The family kernels of a PIRLS pass (src/engine/family_kernels.*,
# vector_math_impl.h): their own exponential and logarithm against R's
# (the C library's), the terms of binomial-logit and Poisson-log against
# R's family objects, and the baseline and AVX2 builds against each other.

# Within one unit in the last place of ours plus half of the C library's.
expect_within_ulps <- function(got, ref) {
  finite <- is.finite(ref) & ref != 0
  expect_identical(got[!finite], ref[!finite])
  expect_lte(max(abs(got[finite] - ref[finite]) / abs(ref[finite])), 1.5 * .Machine$double.eps)
}

kernel_inputs <- function() {
  set.seed(11)
  x <- c(runif(4000, -40, 40), runif(2000, -708, 709), -30, 30, -36, 700, 0, 1, -1e-300, 1e-300, -2, 2, 0.5)
  list(x = x, y = as.numeric(runif(length(x)) < 0.5))
}

test_that("the kernels' exp and log agree with R's to about one unit in the last place", {
  inp <- kernel_inputs()
  b <- mlmfit:::family_kernel_builds_cpp(inp$x, inp$y)$baseline
  expect_within_ulps(b$exp, exp(inp$x))
  pos <- c(exp(runif(4000, -700, 700)), 1 + runif(2000), 1:1000, 5e-324, 2.2e-308, .Machine$double.xmax)
  lb <- mlmfit:::family_kernel_builds_cpp(pos, rep(0, length(pos)))$baseline
  expect_within_ulps(lb$log, log(pos))
  special <- c(0, -0, -1, Inf, -Inf, NaN, 1)
  s <- mlmfit:::family_kernel_builds_cpp(special, rep(0, length(special)))$baseline
  expect_identical(s$log[c(1, 2, 4, 7)], c(-Inf, -Inf, Inf, 0))
  expect_true(all(is.nan(s$log[c(3, 5, 6)])))
  expect_identical(s$exp[c(1, 2, 4, 5)], c(1, 1, Inf, 0))
  expect_equal(s$exp[c(3, 7)], exp(c(-1, 1)), tolerance = 1e-15)
  expect_true(is.nan(s$exp[6]))
})

test_that("the baseline and AVX2 builds give the same bits", {
  inp <- kernel_inputs()
  k <- mlmfit:::family_kernel_builds_cpp(inp$x, inp$y)
  skip_if(is.null(k$avx2), "the AVX2 build is not available on this CPU or compiler")
  expect_identical(k$in_use, "avx2")
  expect_identical(k$avx2, k$baseline)
})

# R's terms of one observation: deviance residual, working weight and
# working residual (stats::glm's IRLS).
r_terms <- function(family, eta, y, pw) {
  mu <- family$linkinv(eta)
  mu_eta <- family$mu.eta(eta)
  list(dev = family$dev.resids(y, mu, pw), w = pw * mu_eta^2 / family$variance(mu), wres = (y - mu) / mu_eta,
       mu = mu, mu_eta = mu_eta)
}

expect_terms_match_r <- function(kernel, family, eta, y, pw) {
  # blocks of 1000 (the rows' tail padded in each) and blocks of 7
  for (block in c(1000L, 7L)) {
    k <- mlmfit:::family_pass_terms_cpp(eta, y, if (all(pw == 1)) numeric() else pw, kernel, block)
    r <- r_terms(family, eta, y, pw)
    expect_true(k$valid)
    # each block's sums: its deviance residuals one by one in row order, and
    # the squared rounding scales pw (1 + |y|)(1 + |eta|) in four running
    # sums, row i of each whole group of four into sum i %% 4 + 1, the rest
    # into the first (in R, added in the same order: the same bits)
    starts <- seq(1L, length(eta), by = block)
    for (b in seq_along(starts)) {
      rows <- starts[b]:min(starts[b] + block - 1L, length(eta))
      expect_identical(k$dev_sums[b], Reduce(`+`, k$dev[rows], 0))
      sc2 <- (pw[rows] * (1 + abs(y[rows])) * (1 + abs(eta[rows])))^2
      whole <- length(rows) - length(rows) %% 4L
      lane <- c((seq_len(whole) - 1L) %% 4L + 1L, rep(1L, length(rows) - whole))
      expect_identical(k$sq[, b], vapply(1:4, function(l) Reduce(`+`, sc2[lane == l], 0), 0))
    }
    expect_equal(k$dev, r$dev, tolerance = 1e-13)
    expect_equal(k$w, r$w, tolerance = 1e-13)
    # the working residual carries the rounding of y - mu: compare on its scale
    scale <- pmax(1, abs(y), r$mu) / r$mu_eta
    expect_lte(max(abs(k$wres - r$wres) / scale), 4 * .Machine$double.eps)
    # the general formulas of the engine give the same to rounding
    g <- mlmfit:::family_pass_terms_cpp(eta, y, if (all(pw == 1)) numeric() else pw, paste0("generic_", kernel), block)
    expect_equal(k$dev, g$dev, tolerance = 1e-14)
    expect_equal(k$w, g$w, tolerance = 1e-14)
    expect_lte(max(abs(k$wres - g$wres) / scale), 4 * .Machine$double.eps)
  }
}

test_that("the binomial-logit kernel's terms are R's, with weights, proportions and clamped eta", {
  set.seed(12)
  n <- 2003
  eta <- c(rnorm(n - 3, sd = 4), -35, 31, 29.9)
  y <- as.numeric(runif(n) < stats::plogis(eta))
  expect_terms_match_r("logit", binomial(), eta, y, rep(1, n))
  pw <- sample(1:20, n, replace = TRUE)
  prop <- stats::rbinom(n, pw, stats::plogis(eta)) / pw
  expect_terms_match_r("logit", binomial(), eta, prop, pw)
})

test_that("the Poisson-log kernel's terms are R's, with weights, zeros and clamped eta", {
  set.seed(13)
  n <- 2003
  eta <- c(rnorm(n - 3, sd = 2), -40, 5, 701)
  y <- as.numeric(stats::rpois(n, exp(pmin(eta, 5))))
  expect_terms_match_r("poisson", poisson(), eta, y, rep(1, n))
  expect_terms_match_r("poisson", poisson(), eta, y, runif(n, 0.5, 2))
})

test_that("a linear predictor that is not a number leaves the kernel invalid", {
  k <- mlmfit:::family_pass_terms_cpp(c(0, NaN, 1), c(0, 1, 1), numeric(), "logit", 1000L)
  expect_false(k$valid)
  k <- mlmfit:::family_pass_terms_cpp(c(0, NaN, 1), c(0, 1, 1), numeric(), "poisson", 1000L)
  expect_false(k$valid)
})
