# The variance parameters of a fit in the scales inference needs: theta
# (the engine's relative covariance factors), the standard deviations and
# correlations of each random-effect term with the residual SD (lme4's
# "sdcor" scale), and the deviance as a function of theta and sigma
# separately (Bates et al. 2015, eq. 34), evaluated from the stored
# cross-products without a pass over the data.

# ld_L2, ld_RX2, pwrss (and the covariance of beta per unit sigma^2) at each
# column of thetas.
deviance_terms <- function(fit, thetas, with_vcov = FALSE) {
  thetas <- as.matrix(thetas)
  storage.mode(thetas) <- "double"
  lmm_deviance_terms_cpp(fit$xp, engine_templates(fit$re), thetas, with_vcov)
}

# -2 log-likelihood (REML criterion when reml) at theta and sigma, given
# deviance_terms() at theta: lme4's deviance before sigma is profiled out.
deviance_theta_sigma <- function(terms, sigma, n, p, reml, sum_log_weights = 0) {
  s2 <- sigma^2
  dev <- terms$ld_L2 + terms$pwrss / s2 + n * log(2 * pi * s2) - sum_log_weights
  if (reml) dev <- dev + terms$ld_RX2 - p * log(2 * pi * s2)
  dev
}

# For each theta position: its term, row and column within the term.
theta_layout <- function(re) {
  k <- length(re$theta0)
  out <- data.frame(term = integer(k), row = integer(k), col = integer(k))
  for (t in seq_along(re$terms)) {
    q <- re$terms[[t]]$q
    pos <- re$terms[[t]]$theta
    k <- 0L
    for (c in seq_len(q)) for (r in c:q) {
      k <- k + 1L
      out[pos[k], ] <- c(t, r, c)
    }
  }
  out
}

# Lower-triangular factor of a covariance matrix that tolerates zero
# variances (a singular estimate): columns with zero pivots are zero.
chol_lower_semidefinite <- function(S) {
  q <- nrow(S)
  L <- matrix(0, q, q)
  for (j in seq_len(q)) {
    d <- S[j, j] - sum(L[j, seq_len(j - 1L)]^2)
    if (d <= 0) next
    L[j, j] <- sqrt(d)
    if (j < q) {
      for (i in (j + 1L):q) {
        L[i, j] <- (S[i, j] - sum(L[i, seq_len(j - 1L)] * L[j, seq_len(j - 1L)])) / L[j, j]
      }
    }
  }
  L
}

# theta and sigma -> standard deviations (diagonal positions) and
# correlations (off-diagonal positions) in theta's order, then sigma.
theta_to_sdcor <- function(re, theta, sigma) {
  out <- numeric(length(theta))
  for (tm in re$terms) {
    q <- tm$q
    Tt <- matrix(0, q, q)
    k <- 0L
    for (c in seq_len(q)) for (r in c:q) {
      k <- k + 1L
      Tt[r, c] <- theta[tm$theta[k]]
    }
    S <- sigma^2 * tcrossprod(Tt)
    sd <- sqrt(diag(S))
    k <- 0L
    for (c in seq_len(q)) for (r in c:q) {
      k <- k + 1L
      out[tm$theta[k]] <- if (r == c) sd[r] else if (sd[r] > 0 && sd[c] > 0) S[r, c] / (sd[r] * sd[c]) else 0
    }
  }
  c(out, sigma)
}

# The inverse: standard deviations and correlations (and sigma last) -> theta.
sdcor_to_theta <- function(re, sdcor) {
  k_theta <- length(sdcor) - 1L
  sigma <- sdcor[k_theta + 1L]
  theta <- numeric(k_theta)
  for (tm in re$terms) {
    q <- tm$q
    sd <- numeric(q)
    R <- diag(q)
    k <- 0L
    for (c in seq_len(q)) for (r in c:q) {
      k <- k + 1L
      v <- sdcor[tm$theta[k]]
      if (r == c) sd[r] <- v else R[r, c] <- R[c, r] <- v
    }
    Lt <- chol_lower_semidefinite(R * tcrossprod(sd)) / sigma
    k <- 0L
    for (c in seq_len(q)) for (r in c:q) {
      k <- k + 1L
      theta[tm$theta[k]] <- Lt[r, c]
    }
  }
  theta
}

# Names of the variance parameters on the sdcor scale: lme4's old names
# (.sig01, ..., .sigma) or its descriptive ones (sd_(Intercept)|Subject,
# cor_Days.(Intercept)|Subject, sigma).
sdcor_names <- function(re, old_names = TRUE) {
  k <- length(re$theta0)
  if (old_names) return(c(sprintf(".sig%02d", seq_len(k)), ".sigma"))
  lay <- theta_layout(re)
  nm <- character(k)
  for (i in seq_len(k)) {
    tm <- re$terms[[lay$term[i]]]
    nm[i] <- if (lay$row[i] == lay$col[i]) {
      paste0("sd_", tm$colnames[lay$row[i]], "|", tm$label)
    } else {
      paste0("cor_", tm$colnames[lay$row[i]], ".", tm$colnames[lay$col[i]], "|", tm$label)
    }
  }
  c(nm, "sigma")
}

# Lower and upper bounds of each sdcor parameter.
sdcor_bounds <- function(re) {
  lay <- theta_layout(re)
  diag_pos <- lay$row == lay$col
  list(lower = c(ifelse(diag_pos, 0, -1), 0), upper = c(ifelse(diag_pos, Inf, 1), Inf))
}

# Derivatives of a vector-valued function f at x by central differences
# with Richardson extrapolation (steps h, h/2, h/4, h/8). f takes a matrix
# whose columns are points and returns a matrix with one column per point.
# Returns the Jacobian (outputs x k) and the Hessians (outputs x k x k).
richardson_derivatives <- function(f, x, h = 1e-3 * pmax(abs(x), 0.1), levels = 4L, second = TRUE) {
  k <- length(x)
  pts <- list(x)
  add <- function(v) {
    pts[[length(pts) + 1L]] <<- v
    length(pts)
  }
  plan <- vector("list", levels)
  for (l in seq_len(levels)) {
    hl <- h / 2^(l - 1L)
    ax <- matrix(0L, k, 2L)
    for (i in seq_len(k)) {
      e <- numeric(k)
      e[i] <- hl[i]
      ax[i, ] <- c(add(x + e), add(x - e))
    }
    pairs <- list()
    if (second && k > 1L) {
      for (i in 2:k) for (j in 1:(i - 1L)) {
        ei <- numeric(k); ei[i] <- hl[i]
        ej <- numeric(k); ej[j] <- hl[j]
        pairs[[length(pairs) + 1L]] <- c(i, j, add(x + ei + ej), add(x + ei - ej), add(x - ei + ej), add(x - ei - ej))
      }
    }
    plan[[l]] <- list(h = hl, axis = ax, pairs = pairs)
  }
  vals <- f(do.call(cbind, pts))
  m <- nrow(vals)
  f0 <- vals[, 1L]
  grad_l <- array(0, c(m, k, levels))
  hess_l <- array(0, c(m, k, k, levels))
  for (l in seq_len(levels)) {
    pl <- plan[[l]]
    for (i in seq_len(k)) {
      fp <- vals[, pl$axis[i, 1L]]
      fm <- vals[, pl$axis[i, 2L]]
      grad_l[, i, l] <- (fp - fm) / (2 * pl$h[i])
      hess_l[, i, i, l] <- (fp - 2 * f0 + fm) / pl$h[i]^2
    }
    for (pr in pl$pairs) {
      i <- pr[1L]
      j <- pr[2L]
      v <- (vals[, pr[3L]] - vals[, pr[4L]] - vals[, pr[5L]] + vals[, pr[6L]]) / (4 * pl$h[i] * pl$h[j])
      hess_l[, i, j, l] <- v
      hess_l[, j, i, l] <- v
    }
  }
  # Richardson: the error of each estimate is a series in h^2.
  extrapolate <- function(a, along) {
    est <- lapply(seq_len(levels), function(l) if (along == 3L) a[, , l, drop = FALSE] else a[, , , l, drop = FALSE])
    for (m_ord in seq_len(levels - 1L)) {
      fac <- 4^m_ord
      est <- lapply(seq_len(length(est) - 1L), function(l) (fac * est[[l + 1L]] - est[[l]]) / (fac - 1))
    }
    est[[1L]]
  }
  jac <- array(extrapolate(grad_l, 3L), c(m, k))
  hess <- if (second) array(extrapolate(hess_l, 4L), c(m, k, k)) else NULL
  list(value = f0, jacobian = jac, hessian = hess)
}
