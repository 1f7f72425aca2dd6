# The blocked Cholesky factorisation (src/engine/blocked_cholesky.*) against
# dense algebra on the same model: Z, Lambda and [X y] written out in full
# and the penalised system factored by base R's chol(). Through a test-only
# glue entry (src/test_glue.cpp) at a theta away from the optimum, on nested
# and crossed designs that use the dense and the sparse Schur complement.

# The penalised system of the engine's coordinates (primary factor first,
# level by level; then each secondary factor), centred as the engine
# centres it: S = [Z Lambda, X, y]' W [Z Lambda, X, y] + diag(I, 0, 0).
penalised_system <- function(fit, theta) {
  spec <- mlmfit:::fit_spec(fit)
  xp <- mlmfit:::fit_xp(fit)
  blocks <- mlmfit:::re_blocks(spec)
  X <- mlmfit:::spec_X(spec)
  n <- nrow(X)
  p <- ncol(X)
  w <- mlmfit:::spec_weights(spec) %||% rep(1, n)
  y <- mlmfit:::spec_y(spec) - (mlmfit:::spec_offset(spec) %||% 0)
  if (length(xp$center) > 0L) {
    for (c in setdiff(seq_len(p), xp$intercept_col + 1L)) X[, c] <- X[, c] - xp$center[[c]]
    y <- y - xp$center[[p + 1L]]
  }
  Tm <- mlmfit:::relative_factors(fit, theta)
  Z <- list()
  Lambda <- list()
  for (f in seq_along(blocks)) {
    b <- blocks[[f]]
    cols <- mlmfit:::block_z(spec, f)
    level <- as.integer(mlmfit:::block_factor(spec, f))
    Z[[f]] <- Matrix::sparseMatrix(i = rep(seq_len(n), b$q), j = as.vector(outer((level - 1L) * b$q, seq_len(b$q), "+")),
                                   x = as.vector(cols), dims = c(n, b$n_levels * b$q))
    Lambda[[f]] <- kronecker(Matrix::Diagonal(b$n_levels), Matrix::Matrix(unname(Tm[[f]])))
  }
  Lambda <- Matrix::bdiag(Lambda)
  big <- cbind(do.call(cbind, Z) %*% Lambda, X, y)
  S <- as.matrix(Matrix::crossprod(big * sqrt(w)))
  nz <- ncol(Lambda)
  diag(S)[seq_len(nz)] <- diag(S)[seq_len(nz)] + 1
  list(S = S, Lambda = as.matrix(Lambda), nz = nz, p = p, n = n, sum_log_w = sum(log(w)), blocks = blocks)
}

# What the engine reports, from the dense system.
dense_system <- function(fit, theta) {
  s <- penalised_system(fit, theta)
  S <- s$S
  z <- seq_len(s$nz)
  ix <- s$nz + seq_len(s$p)
  L <- t(chol(S))
  sol <- solve(S[c(z, ix), c(z, ix)], S[c(z, ix), s$nz + s$p + 1L])
  Minv <- solve(S[z, z])
  c(s, list(ld_L2 = 2 * sum(log(diag(L)[z])), ld_RX2 = 2 * sum(log(diag(L)[ix])),
            pwrss = L[s$nz + s$p + 1L, s$nz + s$p + 1L]^2, beta = sol[ix], u = sol[z],
            unscaled_vcov = solve(S[ix, ix] - S[ix, z] %*% Minv %*% S[z, ix]),
            cond_var = s$Lambda %*% Minv %*% t(s$Lambda)))
}

# The profiled deviance from the dense factor (Bates et al. 2015, eq. 34, 41).
dense_deviance <- function(fit, theta, reml) {
  s <- penalised_system(fit, theta)
  d <- diag(chol(s$S))
  z <- seq_len(s$nz)
  n_eff <- if (reml) s$n - s$p else s$n
  pwrss <- d[s$nz + s$p + 1L]^2
  2 * sum(log(d[z])) + n_eff * (1 + log(2 * pi * pwrss / n_eff)) - s$sum_log_w +
    if (reml) 2 * sum(log(d[s$nz + seq_len(s$p)])) else 0
}

# The diagonal blocks (q x q per level) of a dense matrix, factor by factor
# as the engine returns them (q x q levels).
diagonal_blocks <- function(M, blocks) {
  out <- list()
  start <- 0L
  for (b in blocks) {
    k <- b$n_levels
    out[[length(out) + 1L]] <- do.call(cbind, lapply(seq_len(k), function(l) {
      i <- start + (l - 1L) * b$q + seq_len(b$q)
      M[i, i, drop = FALSE]
    }))
    start <- start + k * b$q
  }
  out
}

expect_factor_matches_dense <- function(fit, theta, reml, gradient = TRUE) {
  e <- mlmfit:::blocked_cholesky_parts_cpp(mlmfit:::fit_spec(fit), mlmfit:::fit_xp(fit), theta, reml)
  d <- dense_system(fit, theta)
  expect_equal(e$ld_L2, d$ld_L2, tolerance = 1e-10)
  expect_equal(e$ld_RX2, d$ld_RX2, tolerance = 1e-10)
  expect_equal(e$pwrss, d$pwrss, tolerance = 1e-10)
  expect_equal(as.vector(e$beta), unname(d$beta), tolerance = 1e-9)
  expect_equal(unlist(lapply(e$u, as.vector)), unname(d$u), tolerance = 1e-9)
  expect_equal(e$unscaled_vcov, unname(d$unscaled_vcov), tolerance = 1e-9)
  expect_equal(lapply(e$cond_var, unname), lapply(diagonal_blocks(d$cond_var, d$blocks), unname), tolerance = 1e-9)
  # PIRLS's chord step (chord_solve) from half the modes: the system is
  # linear, so the step lands on its solution
  expect_equal(as.vector(e$chord_beta), unname(d$beta), tolerance = 1e-9)
  expect_equal(unlist(lapply(e$chord_u, as.vector)), unname(d$u), tolerance = 1e-9)
  if (!gradient) return(invisible(e))
  # the analytic gradient against central differences of the dense deviance
  h <- 1e-5
  num <- vapply(seq_along(theta), function(k) {
    tp <- tm <- theta
    tp[k] <- tp[k] + h
    tm[k] <- tm[k] - h
    (dense_deviance(fit, tp, reml) - dense_deviance(fit, tm, reml)) / (2 * h)
  }, numeric(1))
  expect_equal(as.vector(e$gradient), num, tolerance = 1e-5)
  invisible(e)
}

# theta away from the optimum (so that every term of the gradient is
# exercised): the estimate times 1.3 with the off-diagonal entries moved.
away_from_optimum <- function(fit) {
  th <- unname(mlmfit:::fit_theta(fit)) * 1.3
  below <- mlmfit:::theta_lower(fit) != 0
  th[below] <- th[below] + 0.2
  th
}

test_that("the blocked Cholesky factor agrees with dense algebra on a nested design (dense Schur complement)", {
  set.seed(11)
  d <- data.frame(a = rep(1:12, each = 10), b = rep(1:40, each = 3))
  d$x <- rnorm(nrow(d))
  d$y <- 1 + d$x + rnorm(12)[d$a] + rnorm(40, sd = 0.5)[d$b] + rnorm(12, sd = 0.3)[d$a] * d$x + rnorm(nrow(d))
  fit <- lmm(y ~ x + (x | a) + (1 | a:b), d)
  for (reml in c(TRUE, FALSE)) {
    e <- expect_factor_matches_dense(fit, away_from_optimum(fit), reml)
    expect_true(e$dense_schur)
  }
})

test_that("the blocked Cholesky factor agrees with dense algebra on crossed designs with weights", {
  set.seed(12)
  n <- 300
  d <- data.frame(a = sample(60, n, TRUE), b = sample(15, n, TRUE), c = sample(8, n, TRUE), x = rnorm(n))
  d$y <- d$x + rnorm(60)[d$a] + rnorm(15)[d$b] + rnorm(8)[d$c] + rnorm(15, sd = 0.4)[d$b] * d$x + rnorm(n)
  d$w <- runif(n, 0.5, 2)
  fit <- lmm(y ~ x + (1 | a) + (x | b) + (1 | c), d, weights = w)
  for (reml in c(TRUE, FALSE)) expect_factor_matches_dense(fit, away_from_optimum(fit), reml)
  # at a singular theta (a diagonal entry of T at zero) the gradient is exact too
  th <- away_from_optimum(fit)
  th[[1L]] <- 0
  expect_factor_matches_dense(fit, th, TRUE)
})

test_that("the blocked Cholesky factor agrees with dense algebra where the Schur complement is sparse", {
  set.seed(13)
  # nested: 110 schools (secondary, a slope each: 220 coordinates, beyond
  # the size that is always dense) over 220 classes (primary)
  d <- data.frame(school = rep(1:110, each = 4), class = rep(1:220, each = 2))
  d$x <- rnorm(nrow(d))
  d$y <- d$x + rnorm(110)[d$school] + rnorm(220, sd = 0.5)[d$class] + rnorm(nrow(d))
  fit <- suppressMessages(lmm(y ~ x + (x | school) + (1 | class), d))
  e <- expect_factor_matches_dense(fit, away_from_optimum(fit), TRUE, gradient = FALSE)
  expect_false(e$dense_schur)
  # crossed: two secondary factors of 110 levels that meet in a band (each
  # level of b with three of c) and 220 primary levels within b, so S
  # stays sparse
  n <- 500
  d <- data.frame(b = sample(110, n, TRUE), x = rnorm(n))
  d$c <- (d$b + sample(0:2, n, TRUE)) %% 110 + 1
  d$a <- (d$b - 1) * 2 + sample(1:2, n, TRUE)
  d$y <- d$x + rnorm(220)[d$a] + rnorm(110)[d$b] + rnorm(110)[d$c] + rnorm(n)
  fit <- suppressMessages(lmm(y ~ x + (1 | a) + (1 | b) + (1 | c), d, REML = FALSE))
  e <- expect_factor_matches_dense(fit, away_from_optimum(fit), FALSE, gradient = FALSE)
  expect_false(e$dense_schur)
})

test_that("the blocked Cholesky factor agrees with dense algebra with one grouping factor, for each size of block", {
  # One grouping factor: no Schur complement, and the factorisation and
  # gradient take their own path, unrolled for blocks of 1, 2 and 3
  # (4: the general loops); with weights, without an intercept (no
  # centring), REML and ML, and at a singular theta.
  set.seed(14)
  n <- 400
  d <- data.frame(g = sample(40, n, TRUE), x = rnorm(n), z = rnorm(n), v = rnorm(n), w = runif(n, 0.5, 2))
  d$y <- 1 + d$x + rnorm(40)[d$g] + rnorm(40, sd = 0.5)[d$g] * d$x + rnorm(40, sd = 0.3)[d$g] * d$z + rnorm(n)
  fits <- list(
    q1 = lmm(y ~ x + (1 | g), d, weights = w),
    q2 = lmm(y ~ x + z + (x | g), d),
    q3 = lmm(y ~ 0 + x + (x + z | g), d, weights = w),
    q4 = suppressMessages(lmm(y ~ x + (x + z + v | g), d))
  )
  for (fit in fits) {
    for (reml in c(TRUE, FALSE)) {
      e <- expect_factor_matches_dense(fit, away_from_optimum(fit), reml)
      expect_true(e$dense_schur)  # nothing to hold: no secondary factor
    }
    th <- away_from_optimum(fit)
    th[[1L]] <- 0
    expect_factor_matches_dense(fit, th, TRUE)
  }
})

test_that("log |L_Z|^2 of one grouping factor stays exact however large the variances", {
  # The determinant is taken as the log of products of the diagonal of the
  # factor, in ranges that cannot overflow: a relative standard deviation
  # of 1e50 (the product leaves its range after a few levels) and 1e110
  # (a single entry beyond it).
  set.seed(15)
  d <- data.frame(g = rep(1:30, each = 5), x = rnorm(150))
  d$y <- d$x + rnorm(30)[d$g] + rnorm(150)
  fit <- lmm(y ~ 0 + x + (1 | g), d)  # an intercept would be lost in the group effects at such variances
  for (th in c(1e50, 1e110)) {
    e <- mlmfit:::blocked_cholesky_parts_cpp(mlmfit:::fit_spec(fit), mlmfit:::fit_xp(fit), th, TRUE)
    expect_equal(e$ld_L2, 30 * log(1 + th^2 * 5), tolerance = 1e-14)  # 30 levels of 5 rows: 1 + th^2 Z_j'Z_j each
    expect_equal(e$pwrss, sum(stats::resid(stats::lm(y ~ x + factor(g), d))^2), tolerance = 1e-8)
  }
})
