# The parameters of a fit in the scales inference needs: theta (the
# engine's relative covariance factors) and the standard deviations and
# correlations of each random-effect term with the residual SD (lme4's
# "sdcor" scale), with the names and bounds confint() uses; and numerical
# derivatives for Satterthwaite's degrees of freedom.

# The parameters inference reports, for every kind of fit: the variance
# parameters on lme4's scale (standard deviations and correlations of each
# random-effect term, sigma where the model has a residual scale, and the
# free parameters of a residual structure on their natural scale), then the
# fixed effects. Names: lme4's old ones (.sig01, ..., .sigma) or its
# descriptive ones, then the structure's (Phi, ...) and the columns of X.
variance_parameter_names <- function(fit, old_names = TRUE) {
  nm <- sdcor_names(fit, old_names)
  if (!has_scale(fit)) nm <- nm[-length(nm)]
  c(nm, names(residual_parameters(fit)))
}

variance_parameter_values <- function(fit, theta = fit_theta(fit), sigma = fit_sigma(fit), psi = fit_psi(fit)) {
  v <- theta_to_sdcor(fit, theta, sigma)
  if (!has_scale(fit)) v <- v[-length(v)]
  res <- spec_residual(fit)
  if (!is.null(res)) v <- c(v, natural_residual_parameters(res, psi)[res$free])
  v
}

parameter_names <- function(fit, old_names = TRUE) c(variance_parameter_names(fit, old_names), names(fixef(fit)))
parameter_values <- function(fit) stats::setNames(c(variance_parameter_values(fit), fixef(fit)), parameter_names(fit))

# For each theta position: its term, row and column within the term.
theta_layout <- function(x) {
  terms <- re_terms(x)
  k <- length(theta_start(x))
  out <- data.frame(term = integer(k), row = integer(k), col = integer(k))
  for (t in seq_along(terms)) {
    lay <- theta_layout_term(terms[[t]])
    out[terms[[t]]$theta, ] <- cbind(t, lay$row, lay$col)
  }
  out
}

# Row and column within one term of each of its theta entries (lme4's
# order: the lower triangle column by column).
theta_layout_term <- function(term) {
  q <- term$q
  list(row = sequence(q:1, from = seq_len(q)), col = rep.int(seq_len(q), q:1))
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
theta_to_sdcor <- function(x, theta, sigma) {
  out <- numeric(length(theta))
  Tb <- relative_factors(x, theta)
  for (tm in re_terms(x)) {
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    S <- sigma^2 * tcrossprod(Tt)
    sd <- sqrt(diag(S))
    lay <- theta_layout_term(tm)
    r <- lay$row
    c <- lay$col
    cor <- ifelse(sd[r] > 0 & sd[c] > 0, S[cbind(r, c)] / (sd[r] * sd[c]), 0)
    out[tm$theta] <- ifelse(r == c, sd[r], cor)
  }
  c(out, sigma)
}

# The inverse: standard deviations and correlations (and sigma last) -> theta.
sdcor_to_theta <- function(x, sdcor) sdcor_to_theta_map(x)(sdcor)

# The same as a function of sdcor, with the layout of each term worked out
# once (profiles evaluate it thousands of times).
sdcor_to_theta_map <- function(x) {
  terms <- lapply(re_terms(x), function(tm) {
    lay <- theta_layout_term(tm)
    off <- lay$row != lay$col
    list(q = tm$q, theta = tm$theta, diag = lay$row == lay$col, lower = cbind(lay$row, lay$col),
         off_lower = cbind(lay$row, lay$col)[off, , drop = FALSE], off_upper = cbind(lay$col, lay$row)[off, , drop = FALSE],
         off = off)
  })
  k_theta <- length(theta_start(x))
  function(sdcor) {
    sigma <- sdcor[k_theta + 1L]
    theta <- numeric(k_theta)
    for (tm in terms) {
      v <- sdcor[tm$theta]
      sd <- v[tm$diag]
      if (tm$q == 1L) {
        theta[tm$theta] <- abs(sd) / sigma
        next
      }
      R <- diag(tm$q)
      R[tm$off_lower] <- v[tm$off]
      R[tm$off_upper] <- v[tm$off]
      theta[tm$theta] <- (chol_lower_semidefinite(R * tcrossprod(sd)) / sigma)[tm$lower]
    }
    theta
  }
}

# Names of the variance parameters on the sdcor scale: lme4's old names
# (.sig01, ..., .sigma) or its descriptive ones (sd_(Intercept)|Subject,
# cor_Days.(Intercept)|Subject, sigma).
sdcor_names <- function(x, old_names = TRUE) {
  k <- length(theta_start(x))
  if (old_names) return(c(sprintf(".sig%02d", seq_len(k)), ".sigma"))
  lay <- theta_layout(x)
  terms <- re_terms(x)
  nm <- character(k)
  for (i in seq_len(k)) {
    tm <- terms[[lay$term[i]]]
    nm[i] <- if (lay$row[i] == lay$col[i]) {
      paste0("sd_", tm$colnames[lay$row[i]], "|", tm$label)
    } else {
      paste0("cor_", tm$colnames[lay$row[i]], ".", tm$colnames[lay$col[i]], "|", tm$label)
    }
  }
  c(nm, "sigma")
}

# Lower and upper bounds of each sdcor parameter.
sdcor_bounds <- function(x) {
  lay <- theta_layout(x)
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
