# Profile-likelihood confidence limits. As lme4 does, profiles use the ML
# deviance (a REML fit is first refitted by ML): for each parameter, the
# signed square root of the rise of the deviance when the parameter is held
# at a value and all others are optimised,
#   zeta(v) = sign(v - estimate) sqrt(d(v) - d(estimate)),
# and the limits are where zeta crosses the normal quantiles. Fixed
# effects are profiled by moving the coefficient's column into the offset
# algebraically in the stored cross-products; variance parameters (standard
# deviations, correlations and the residual SD) by optimising the deviance
# in theta and sigma over the other variance parameters. No pass over the
# data is needed.

# Cross-products without centring (X and y as they are).
xp_uncentre <- function(xp) {
  if (length(xp$center) == 0L) return(xp)
  P <- xp$p + 1L
  ic <- xp$intercept_col + 1L
  K <- diag(P)
  K[ic, -ic] <- xp$center[-ic]
  xp$XX <- crossprod(K, xp$XX %*% K)
  xp$C1 <- crossprod(K, xp$C1)
  if (length(xp$CR)) xp$CR <- crossprod(K, xp$CR)
  xp$center <- numeric(0)
  xp$intercept_col <- -1L
  xp
}

# Cross-products of the model with coefficient j (1-based) fixed at value:
# y becomes y - value * x_j and column j leaves X.
xp_fix_coefficient <- function(xp, j, value) {
  if (length(xp$center) > 0L && j == xp$intercept_col + 1L) xp <- xp_uncentre(xp)
  P <- xp$p + 1L
  M <- diag(P)
  M[j, P] <- -value
  xp$XX <- crossprod(M, xp$XX %*% M)[-j, -j, drop = FALSE]
  xp$C1 <- crossprod(M, xp$C1)[-j, , drop = FALSE]
  xp$CR <- if (length(xp$CR)) crossprod(M, xp$CR)[-j, , drop = FALSE] else matrix(0, P - 1L, 0L)
  if (length(xp$center) > 0L) {
    xp$center[P] <- xp$center[P] - value * xp$center[j]
    xp$center <- xp$center[-j]
    if (xp$intercept_col + 1L > j) xp$intercept_col <- xp$intercept_col - 1L
  }
  xp$p <- xp$p - 1L
  xp
}

# zeta for fixed effect j of an ML fit.
fixed_effect_zeta <- function(fit_ml, j) {
  base <- deviance(fit_ml)
  est <- unname(fit_ml$beta[j])
  tpl <- engine_templates(fit_ml$re)
  start <- fit_ml$theta
  function(value) {
    xp <- xp_fix_coefficient(fit_ml$xp, j, value)
    r <- lmm_refit_xp_cpp(xp, tpl, start, fit_ml$lower, FALSE, fit_ml$control)
    if (is.finite(r$deviance)) start <<- r$theta
    sign(value - est) * sqrt(max(0, r$deviance - base))
  }
}

# zeta for variance parameter i (in the sdcor scale, sigma last) of an ML fit.
variance_parameter_zeta <- function(fit_ml, i) {
  re <- fit_ml$re
  est_all <- theta_to_sdcor(re, fit_ml$theta, fit_ml$sigma)
  base <- deviance(fit_ml)
  bounds <- sdcor_bounds(re)
  n <- nobs(fit_ml)
  slw <- fit_ml$devcomp$sum_log_weights
  dev_at <- function(par) {
    sigma <- par[length(par)]
    if (!(sigma > 0)) return(Inf)
    tm <- deviance_terms(fit_ml, sdcor_to_theta(re, par))
    if (!tm$ok) return(Inf)
    deviance_theta_sigma(tm, sigma, n, 0, FALSE, slw)
  }
  others <- est_all[-i]
  lo <- bounds$lower[-i]
  up <- bounds$upper[-i]
  # keep standard deviations strictly positive in the search (sigma must be)
  lo[length(lo)] <- if (i == length(est_all)) lo[length(lo)] else 1e-10 * est_all[length(est_all)]
  function(value) {
    par <- est_all
    obj <- function(x) {
      par[-i] <- x
      par[i] <- value
      d <- dev_at(par)
      if (is.finite(d)) d else 1e100
    }
    if (length(others)) {
      opt <- stats::nlminb(others, obj, lower = lo, upper = up,
                           control = list(eval.max = 2000, iter.max = 1000, rel.tol = 1e-12, x.tol = 1e-10))
      if (opt$objective < 1e99) others <<- opt$par
      d <- opt$objective
    } else {
      d <- obj(numeric())
    }
    sign(value - est_all[i]) * sqrt(max(0, d - base))
  }
}

# The value where zeta crosses `target`, searching from the estimate in
# the direction of target's sign with steps that double, within bounds.
zeta_crossing <- function(zeta, est, target, step, lower = -Inf, upper = Inf, max_doublings = 40L,
                          tol = 1e-8 * max(abs(step), 1e-12)) {
  dir <- sign(target)
  a <- est
  za <- 0
  h <- step
  for (k in seq_len(max_doublings)) {
    b <- est + dir * h
    at_bound <- FALSE
    if (b <= lower) { b <- lower; at_bound <- TRUE }
    if (b >= upper) { b <- upper; at_bound <- TRUE }
    zb <- zeta(b)
    if (is.finite(zb) && dir * (zb - target) >= 0) {
      r <- stats::uniroot(function(v) zeta(v) - target, sort(c(a, b)),
                          f.lower = if (a < b) za - target else zb - target,
                          f.upper = if (a < b) zb - target else za - target,
                          tol = tol)
      return(r$root)
    }
    if (at_bound) return(b)
    a <- b
    za <- zb
    h <- 2 * h
  }
  NA_real_
}

# Profile confidence limits for the parameters `which` (names on the
# sdcor-then-fixed scale of confint()).
profile_intervals <- function(fit, which, level) {
  if (inherits(fit, "mlmfit_lmm_structured")) return(structured_profile_intervals(fit, which, level))
  fit_ml <- refit_ml(fit)
  re <- fit_ml$re
  nvp <- length(fit_ml$theta) + 1L
  sdcor <- theta_to_sdcor(re, fit_ml$theta, fit_ml$sigma)
  bounds <- sdcor_bounds(re)
  z <- stats::qnorm((1 + level) / 2)
  se <- sqrt(diag(fit_ml$vcov))
  out <- matrix(NA_real_, length(which), 2L)
  for (k in seq_along(which)) {
    w <- which[k]
    if (w <= nvp) {
      est <- sdcor[w]
      zeta <- variance_parameter_zeta(fit_ml, w)
      step <- if (bounds$lower[w] == -1) 0.05 else 0.1 * max(est, 1e-3 * sdcor[nvp])
      lo <- bounds$lower[w]
      up <- bounds$upper[w]
    } else {
      j <- w - nvp
      est <- unname(fit_ml$beta[j])
      zeta <- fixed_effect_zeta(fit_ml, j)
      step <- se[j]
      lo <- -Inf
      up <- Inf
    }
    out[k, 1L] <- if (est <= lo) lo else zeta_crossing(zeta, est, -z, step, lo, up)
    out[k, 2L] <- if (est >= up) up else zeta_crossing(zeta, est, z, step, lo, up)
  }
  out
}
