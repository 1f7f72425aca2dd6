# Satterthwaite's denominator degrees of freedom for linear combinations of
# the fixed effects (Satterthwaite 1946; Kuznetsova, Brockhoff and
# Christensen 2017, lmerTest). The variance parameters are
# varpar = (theta, sigma); their asymptotic covariance is twice the inverse
# Hessian of the deviance at the estimates, and vcov(beta) = sigma^2 U(theta)
# is differentiated with respect to them. Everything is evaluated from the
# stored cross-products: derivatives with respect to theta by Richardson-
# extrapolated central differences, those with respect to sigma exactly.

# The covariance of the variance parameters and the derivatives of vcov(beta).
satterthwaite_basis <- function(fit) {
  if (!inherits(fit, "mlmfit_lmm")) {
    mlm_abort("Satterthwaite's degrees of freedom are available for linear mixed models from {.fn lmm}.",
              "mlmfit_error_ddf")
  }
  sigma <- fit_sigma(fit)
  p <- length(fixef(fit))
  n <- nobs(fit)
  reml <- fit_reml(fit)
  n_eff <- if (reml) n - p else n
  # With a residual structure its free parameters join theta (the whitened
  # cross-products, log |R| and vcov(beta) depend on them).
  spec <- fit_spec(fit)
  res <- spec_residual(spec)
  k_theta <- length(fit_theta(fit))
  free <- if (is.null(res)) integer() else which(res$free)
  deviance_parts <- function(params, free) {
    params <- as.matrix(params)
    full <- params[seq_len(k_theta), , drop = FALSE]
    if (!is.null(res)) {
      psi <- matrix(fit_psi(fit), length(fit_psi(fit)), ncol(params))
      psi[free, ] <- params[k_theta + seq_along(free), ]
      full <- rbind(full, psi)
    }
    tm <- engine_deviance_terms(spec, full, reml, xp = fit_xp(fit), with_vcov = TRUE)
    g <- tm$ld_L2 + (if (reml) tm$ld_RX2 else 0) + tm$log_det_R
    rbind(g, tm$pwrss, matrix(tm$vcov, nrow = p * p))
  }
  free <- free[structure_parameters_interior(fit, free, deviance_parts)]
  theta <- unname(c(fit_theta(fit), fit_psi(fit)[free]))
  f <- function(params) deviance_parts(params, free)
  k <- length(theta)
  # four Richardson levels for the usual few parameters; two when there are
  # many (the evaluations grow with the square of their number)
  d <- richardson_derivatives(f, theta, levels = if (k <= 10L) 4L else 2L)
  pw <- d$value[2L]
  H <- matrix(0, k + 1L, k + 1L)
  H[seq_len(k), seq_len(k)] <- d$hessian[1L, , ] + d$hessian[2L, , ] / sigma^2
  H[seq_len(k), k + 1L] <- H[k + 1L, seq_len(k)] <- -2 * d$jacobian[2L, ] / sigma^3
  H[k + 1L, k + 1L] <- 6 * pw / sigma^4 - 2 * n_eff / sigma^2
  eig <- eigen(H, symmetric = TRUE)
  pos <- eig$values > 1e-8
  h_inv <- eig$vectors[, pos, drop = FALSE] %*% (t(eig$vectors[, pos, drop = FALSE]) / eig$values[pos])
  U <- matrix(d$value[-(1:2)], p, p)
  jac <- c(lapply(seq_len(k), function(i) sigma^2 * matrix(d$jacobian[-(1:2), i], p, p)),
           list(2 * sigma * U))
  list(vcov = vcov(fit), vcov_varpar = 2 * h_inv, jacobian = jac, hessian = H,
       n_negative = sum(eig$values < -1e-8))
}

# Which of the free residual-structure parameters `free` have a defined
# deviance on both sides within the differences' largest step? One at the
# edge of its space (a correlation the engine stops next to a singular
# matrix, src/engine/residual_structure.cpp) is held fixed, as a variance
# at zero is: differences across the edge are not defined, and an estimate
# at a limit has no Wald-type covariance.
structure_parameters_interior <- function(fit, free, deviance_parts) {
  if (length(free) == 0L) return(logical())
  x <- unname(c(fit_theta(fit), fit_psi(fit)[free]))
  h <- 1e-3 * pmax(abs(x), 0.1)  # richardson_derivatives()' first step
  k_theta <- length(fit_theta(fit))
  shifted <- lapply(k_theta + seq_along(free), function(i) {
    e <- numeric(length(x))
    e[i] <- h[i]
    cbind(x + e, x - e)
  })
  vals <- deviance_parts(do.call(cbind, shifted), free)
  ok <- colSums(!is.finite(vals)) == 0L
  vapply(seq_along(free), function(j) all(ok[2L * j - 1:0]), logical(1))
}

# t test of one linear combination: estimate, standard error, df.
satterthwaite_1d <- function(basis, L) {
  L <- as.vector(L)
  v <- sum(L * (basis$vcov %*% L))
  grad <- vapply(basis$jacobian, function(J) sum(L * (J %*% L)), numeric(1))
  denom <- sum(grad * (basis$vcov_varpar %*% grad))
  list(var = v, df = 2 * v^2 / denom)
}

# F test of the rows of L (lmerTest's method: the eigenvectors of L V L'
# give independent t tests whose df are combined by matching moments).
satterthwaite_md <- function(basis, L, beta, eps = sqrt(.Machine$double.eps)) {
  VL <- L %*% basis$vcov %*% t(L)
  eig <- eigen(VL, symmetric = TRUE)
  d <- eig$values
  pos <- d > max(eps * d[1L], 0)
  q <- sum(pos)
  if (q == 0L) return(list(F = NA_real_, ndf = 0L, ddf = NA_real_))
  PL <- crossprod(eig$vectors[, pos, drop = FALSE], L)
  t2 <- drop(PL %*% beta)^2 / d[pos]
  nu <- vapply(seq_len(q), function(m) satterthwaite_1d(basis, PL[m, ])$df, numeric(1))
  list(F = sum(t2) / q, ndf = q, ddf = combine_ddf(nu))
}

# One denominator df for an F statistic made of independent t statistics
# with df nu (the F distribution whose mean matches that of the sum).
combine_ddf <- function(nu, tol = 1e-8) {
  if (length(nu) == 1L) return(nu)
  if (all(abs(diff(nu)) < tol)) return(mean(nu))
  if (any(nu <= 2)) return(2)
  E <- sum(nu / (nu - 2))
  2 * E / (E - length(nu))
}
