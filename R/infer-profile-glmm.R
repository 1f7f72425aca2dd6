# Profile-likelihood limits for glmm() fits, on the approximate deviance
# that the fit minimised (Laplace or adaptive Gauss-Hermite), as lme4's
# profile() of a glmer fit: for each parameter, the signed square root of
# the rise of that deviance when the parameter is held at a value and all
# others are re-optimised,
#   zeta(v) = sign(v - estimate) sqrt(d(v) - d(estimate)),
# and the limits are where zeta crosses the normal quantiles. A fixed effect
# is held by moving its column into the offset, and each point is a full
# fit in the engine. A standard deviation or correlation of the random
# effects is held on lme4's sdcor scale while the other variance parameters
# and the fixed effects are optimised in R (nlminb), each evaluation a
# call of the engine's deviance at given theta and beta.

# What the engine needs to refit or evaluate the model of a glmm() fit.
glmm_engine_setup <- function(fit) {
  fam <- fit$family_info
  y <- fit$y
  w <- fit$prior_weights
  control <- fit$control
  control$hessian <- FALSE
  control$cond_var <- FALSE
  list(X = fit$X, y = y, weights = w, offset = fit$offset,
       intercept_col = match("(Intercept)", colnames(fit$X), nomatch = 0L),
       blocks = engine_blocks(fit$re),
       family = glmm_engine_family(fam, y, w, glmm_mustart(y, w, fam$dist), fit$trials),
       nAGQ = fit$nAGQ, control = control)
}

# Blocks of the model without column j of X: references to later columns
# move down by one, a reference to column j becomes the column itself.
blocks_without_column <- function(blocks, j, xj) {
  lapply(blocks, function(b) {
    b$cols <- lapply(b$cols, function(ref) {
      if (is.integer(ref) && length(ref) == 1L) {
        if (ref == j) return(xj)
        if (ref > j) return(ref - 1L)
      }
      ref
    })
    b
  })
}

# A start for theta away from the boundary, where the optimiser can move.
glmm_profile_theta_start <- function(theta, lower) {
  ifelse(lower == 0 & abs(theta) < 1e-3, 0.1, theta)
}

# The approximate deviance at theta and beta.
glmm_criterion_at <- function(setup, theta, beta, eta_start) {
  r <- engine_call(glmm_evaluate_cpp(setup$X, setup$y, setup$weights, setup$offset, eta_start,
                                     setup$intercept_col - 1L, setup$blocks, as.double(theta), as.double(beta),
                                     setup$family, setup$nAGQ, setup$control))
  if (!is.null(r$error) || !is.finite(r$criterion)) return(Inf)
  r$criterion
}

# zeta for fixed effect j: the model refitted in the engine with x_j * value
# in the offset, started where the previous value ended.
glmm_fixed_effect_zeta <- function(fit, setup, j, base) {
  xj <- setup$X[, j]
  X <- setup$X[, -j, drop = FALSE]
  ic <- setup$intercept_col
  ic <- if (ic == j) 0L else if (ic > j) ic - 1L else ic
  blocks <- blocks_without_column(setup$blocks, j, xj)
  offset0 <- if (is.null(setup$offset)) 0 else setup$offset
  est <- unname(fit$beta[j])
  theta_start <- glmm_profile_theta_start(fit$theta, fit$lower)
  eta_start <- as.vector(fit$eta)
  function(value) {
    r <- engine_call(glmm_fit_cpp(X, setup$y, setup$weights, offset0 + value * xj, eta_start, ic - 1L, blocks,
                                  as.double(theta_start), fit$lower, setup$family, setup$nAGQ, setup$control))
    if (!is.null(r$error) || !is.finite(r$criterion)) return(NA_real_)
    theta_start <<- glmm_profile_theta_start(r$theta, fit$lower)
    eta_start <<- as.vector(r$eta)
    sign(value - est) * sqrt(max(0, r$criterion - base))
  }
}

# zeta for variance parameter i (sdcor scale): the other variance
# parameters and the fixed effects optimised by nlminb in coordinates scaled
# by their standard errors, started where the previous value ended.
glmm_variance_parameter_zeta <- function(fit, setup, i, base) {
  re <- fit$re
  sdc <- theta_to_sdcor(re, fit$theta, 1)
  nv <- length(sdc) - 1L
  sdc <- sdc[seq_len(nv)]
  bounds <- sdcor_bounds(re)
  p <- length(fit$beta)
  lower <- c(bounds$lower[seq_len(nv)][-i], rep(-Inf, p))
  upper <- c(bounds$upper[seq_len(nv)][-i], rep(Inf, p))
  se_beta <- sqrt(diag(fit$vcov))
  if (!all(is.finite(se_beta) & se_beta > 0)) se_beta <- rep(1, p)
  scale <- c(ifelse(bounds$lower[seq_len(nv)][-i] < 0, 0.1, pmax(0.1 * abs(sdc[-i]), 0.02)), se_beta)
  current <- c(sdc[-i], unname(fit$beta))
  eta_start <- as.vector(fit$eta)
  function(value) {
    crit <- function(par) {
      s <- sdc
      s[i] <- value
      s[-i] <- par[seq_len(nv - 1L)]
      d <- glmm_criterion_at(setup, sdcor_to_theta(re, c(s, 1)), par[nv - 1L + seq_len(p)], eta_start)
      if (is.finite(d)) d else 1e100
    }
    start <- pmin(pmax(current, lower), upper)
    obj <- function(z) crit(start + scale * z)
    opt <- stats::nlminb(numeric(length(start)), obj, lower = (lower - start) / scale, upper = (upper - start) / scale,
                         control = list(eval.max = 5000, iter.max = 1000, rel.tol = 1e-12, x.tol = 1e-9))
    if (opt$objective >= 1e99) return(NA_real_)
    current <<- start + scale * opt$par
    sign(value - sdc[i]) * sqrt(max(0, opt$objective - base))
  }
}

# A profile limit, or NA with a warning when the search fails.
glmm_profile_limit <- function(zeta, est, target, step, lower, upper, name) {
  tryCatch(
    zeta_crossing(zeta, est, target, step, lower, upper, tol = 1e-5 * step),
    error = function(e) {
      mlm_warn("The profile of {.val {name}} could not be followed to its {if (target < 0) 'lower' else 'upper'} limit: {conditionMessage(e)}",
               "mlmfit_warning_profile")
      NA_real_
    })
}

# Profile confidence limits of a glmm() fit for the parameters `which`
# (positions on confint()'s scale: variance parameters, then fixed effects).
glmm_profile_intervals <- function(fit, which, level, names) {
  if (fit$nAGQ == 0L) {
    mlm_abort(c("Profile intervals need a fit by the Laplace approximation or adaptive quadrature.",
                x = "This fit used {.code nAGQ = 0}, whose criterion is not a likelihood of the fixed effects.",
                i = "Refit with {.code nAGQ = 1}, or use {.code method = \"Wald\"} or {.code \"boot\"}."),
              "mlmfit_error_argument")
  }
  if (isTRUE(fit$use_sc)) {
    mlm_abort(c("Profile intervals are not available for {.field {fit$family$family}} models, whose scale is estimated apart from the approximate deviance.",
                i = "Use {.code method = \"Wald\"} or {.code method = \"boot\"}."),
              "mlmfit_error_argument")
  }
  setup <- glmm_engine_setup(fit)
  base <- glmm_criterion_at(setup, fit$theta, fit$beta, as.vector(fit$eta))
  if (!is.finite(base)) {
    mlm_abort("The approximate deviance could not be evaluated at the estimates.", "mlmfit_error_fit")
  }
  re <- fit$re
  nv <- length(fit$theta)
  sdc <- theta_to_sdcor(re, fit$theta, 1)[seq_len(nv)]
  bounds <- sdcor_bounds(re)
  lay <- theta_layout(re)
  z <- stats::qnorm((1 + level) / 2)
  se_beta <- sqrt(diag(fit$vcov))
  # Standard errors of theta from the Hessian of the deviance (2 H^-1),
  # for the first steps of the search along the standard deviations that
  # equal a theta.
  se_theta <- rep(NA_real_, nv)
  H <- fit$optinfo$hessian
  if (length(H) > 0L && all(is.finite(H))) {
    V <- tryCatch(2 * solve(H), error = function(e) NULL)
    if (!is.null(V)) se_theta <- sqrt(pmax(diag(V)[seq_len(nv)], 0))
  }
  out <- matrix(NA_real_, length(which), 2L)
  for (k in seq_along(which)) {
    w <- which[k]
    if (w <= nv) {
      est <- sdc[w]
      zeta <- glmm_variance_parameter_zeta(fit, setup, w, base)
      lo <- bounds$lower[w]
      up <- bounds$upper[w]
      step <- if (lo == -1) {
        0.05
      } else if (lay$row[w] == 1L && lay$col[w] == 1L && is.finite(se_theta[w]) && se_theta[w] > 0) {
        se_theta[w]
      } else {
        0.1 * max(est, 1e-3)
      }
    } else {
      j <- w - nv
      est <- unname(fit$beta[j])
      zeta <- glmm_fixed_effect_zeta(fit, setup, j, base)
      step <- if (is.finite(se_beta[j]) && se_beta[j] > 0) se_beta[j] else 0.1 * max(abs(est), 1)
      lo <- -Inf
      up <- Inf
    }
    out[k, 1L] <- if (est <= lo) lo else glmm_profile_limit(zeta, est, -z, step, lo, up, names[k])
    out[k, 2L] <- if (est >= up) up else glmm_profile_limit(zeta, est, z, step, lo, up, names[k])
  }
  out
}
