# Profile-likelihood confidence limits, for every kind of fit. For each
# parameter, the signed square root of the rise of the deviance when the
# parameter is held at a value and all others are re-optimised,
#   zeta(v) = sign(v - estimate) sqrt(d(v) - d(estimate)),
# and the limits are where zeta crosses the normal quantiles, found by
# root finding. As lme4 does, linear mixed models are profiled on the ML
# deviance (a REML fit is first refitted by ML), GLMMs on the approximate
# deviance their fit minimised (Laplace or adaptive Gauss-Hermite).
#
# How a parameter is held depends on the parameter, not on the kind of fit:
# * a variance parameter (standard deviation, correlation, sigma) on lme4's
#   scale, with the others re-optimised by nlminb: for linear mixed models
#   the ML deviance in theta, sigma and the structure's parameters from the
#   engine's deviance pieces (many points per call), for GLMMs the engine's
#   approximate deviance in theta and beta;
# * a fixed effect by moving its column into the offset and refitting (for
#   a linear mixed model without a residual structure, algebraically in the
#   stored cross-products: no pass over the data);
# * a parameter of a residual structure by holding it in the engine's refit.
#
# Each zeta function also tells, when asked (zeta(value, trace = TRUE)),
# where the other parameters went: attribute "par" holds every parameter
# on confint()'s scale at that point, for the traces of profile()
# (infer-profile-object.R).

# Profile confidence limits for the parameters `which` (positions on
# confint()'s scale: variance parameters, then fixed effects; `names` for
# messages).
profile_intervals <- function(fit, which, level, names) {
  setup <- if (inherits(fit, "mlmfit_glmm")) glmm_profile_setup(fit) else lmm_profile_setup(fit)
  z <- stats::qnorm((1 + level) / 2)
  out <- matrix(NA_real_, length(which), 2L)
  for (k in seq_along(which)) {
    par <- setup$parameter(which[k])
    lim <- c(if (par$est <= par$lower) par$lower else profile_limit(par, -z, setup$tol, names[k]),
             if (par$est >= par$upper) par$upper else profile_limit(par, z, setup$tol, names[k]))
    out[k, ] <- par$natural(lim)
  }
  out
}

# A profile limit, or NA with a warning when the search fails.
profile_limit <- function(par, target, tol, name) {
  tryCatch(
    zeta_crossing(function(v) c(par$zeta(v)), par$est, target, par$step, par$lower, par$upper, tol = tol(par$step)),
    error = function(e) {
      mlm_warn("The profile of {.val {name}} could not be followed to its {if (target < 0) 'lower' else 'upper'} limit: {conditionMessage(e)}",
               "mlmfit_warning_profile")
      NA_real_
    })
}

# One parameter of a profile: its estimate, zeta, first step, bounds and
# the map of its limits to the scale they are reported on.
profile_parameter <- function(est, zeta, step, lower = -Inf, upper = Inf, natural = identity) {
  list(est = unname(est), zeta = zeta, step = unname(step), lower = lower, upper = upper, natural = natural)
}

# zeta of a parameter held at a value while the others (x) are re-optimised
# by nlminb, each value started where the last one ended: objective(x,
# value) and optionally gradient(x, value); with `scale`, in coordinates
# (x - start) / scale. complete(x, value): every parameter at the point.
optimised_zeta <- function(objective, start, lower, upper, est, base, control, gradient = NULL, scale = NULL,
                           complete = NULL) {
  current <- start
  est <- unname(est)
  function(value, trace = FALSE) {
    f <- function(x) {
      d <- objective(x, value)
      if (is.finite(d)) d else 1e100
    }
    if (length(current) == 0L) {
      d <- f(numeric())
    } else if (is.null(scale)) {
      opt <- stats::nlminb(current, f, gradient = if (!is.null(gradient)) function(x) gradient(x, value),
                           lower = lower, upper = upper, control = control)
      d <- opt$objective
      if (d < 1e99) current <<- opt$par
    } else {
      s <- pmin(pmax(current, lower), upper)
      opt <- stats::nlminb(numeric(length(s)), function(z) f(s + scale * z), lower = (lower - s) / scale,
                           upper = (upper - s) / scale, control = control)
      d <- opt$objective
      if (d < 1e99) current <<- s + scale * opt$par
    }
    if (d >= 1e99) return(NA_real_)
    z <- sign(value - est) * sqrt(max(0, d - base))
    if (trace) attr(z, "par") <- complete(current, value)
    z
  }
}

# zeta of a parameter held by a refit: refit_at(value, start) gives the
# deviance, the start of the next refit and every parameter at the point
# (NULL when it fails).
refit_zeta <- function(est, base, refit_at) {
  start <- NULL
  est <- unname(est)
  function(value, trace = FALSE) {
    r <- refit_at(value, start)
    if (is.null(r) || !is.finite(r$deviance)) return(NA_real_)
    start <<- r$start
    z <- sign(value - est) * sqrt(max(0, r$deviance - base))
    if (trace) attr(z, "par") <- r$par
    z
  }
}

# A vector with `value` inserted at position j (a held fixed effect
# returned to the coefficients of a refit without it).
insert_at <- function(x, j, value) append(unname(x), value, after = j - 1L)

# Linear mixed models, with or without a residual structure: the ML fit,
# and its parameters on confint()'s scale (sdcor, sigma, free residual
# parameters on the unconstrained scale, then the fixed effects).
lmm_profile_setup <- function(fit) {
  fit_ml <- refit_ml(fit)
  spec <- fit_spec(fit_ml)
  res <- spec_residual(spec)
  theta <- fit_theta(fit_ml)
  psi <- fit_psi(fit_ml)
  k_sd <- length(theta) + 1L
  free <- if (is.null(res)) integer() else which(res$free)
  nvp <- k_sd + length(free)
  sdcor <- theta_to_sdcor(fit_ml, theta, fit_sigma(fit_ml))
  par_hat <- c(sdcor, psi[free])
  bounds <- sdcor_bounds(fit_ml)
  # the structure's parameters on the unconstrained scale, kept finite
  lower <- c(bounds$lower, rep(-50, length(free)))
  upper <- c(bounds$upper, rep(50, length(free)))
  base <- deviance(fit_ml)
  beta <- fixef(fit_ml)
  se <- sqrt(diag(vcov(fit_ml)))
  control <- utils::modifyList(fit_control(fit_ml), list(cond_var = FALSE))
  dev_at <- ml_deviance_function(fit_ml)
  # every parameter on confint()'s scale from the engine's estimates
  natural_psi <- function(p) if (is.null(res)) numeric() else unname(natural_residual_parameters(res, p)[free])
  point <- function(theta, sigma, psi, beta) {
    unname(c(theta_to_sdcor(fit_ml, theta, sigma), natural_psi(psi), beta))
  }
  # ... and at variance parameters held (p: sdcor, sigma, free psi), with
  # the fixed effects that maximise the likelihood there
  to_theta <- sdcor_to_theta_map(fit_ml)
  xp <- fit_xp(fit_ml)
  complete_variance <- function(x, value, i) {
    p <- par_hat
    p[-i] <- x
    p[i] <- value
    th <- to_theta(p[seq_len(k_sd)])
    if (is.null(res)) return(unname(c(p[seq_len(k_sd)], engine_evaluate_lmm(spec, xp, th, FALSE)$beta)))
    ps <- psi
    ps[free] <- p[k_sd + seq_along(free)]
    unname(c(p[seq_len(k_sd)], natural_psi(ps), engine_evaluate_structured(spec, th, ps, FALSE)$beta))
  }
  parameter <- function(w) {
    if (w <= k_sd) {
      step <- if (bounds$lower[w] == -1) 0.05 else 0.1 * max(par_hat[w], 1e-3 * sdcor[k_sd])
      zeta <- variance_zeta(dev_at, w, par_hat, lower, upper, base, k_sd, with_gradient = !is.null(res),
                            complete = function(x, value) complete_variance(x, value, w))
      return(profile_parameter(par_hat[w], zeta, step, lower[w], upper[w]))
    }
    if (w <= nvp) {
      j <- free[w - k_sd]
      natural <- function(v) vapply(v, function(x) {
        p <- psi
        p[j] <- x
        unname(natural_residual_parameters(res, p)[j])
      }, numeric(1))
      held <- function(value, start) {
        start <- start %||% list(theta = theta, psi = psi)
        start$psi[j] <- value
        r <- tryCatch(engine_fit(spec_hold_residual_parameter(spec, j, value), control, REML = FALSE, start = start),
                      error = function(e) NULL)
        if (is.null(r)) return(NULL)
        list(deviance = r$deviance, start = list(theta = r$theta, psi = as.vector(r$psi)),
             par = point(r$theta, r$sigma, as.vector(r$psi), r$beta))
      }
      return(profile_parameter(par_hat[w], refit_zeta(par_hat[w], base, held), 0.25, lower[w], upper[w], natural))
    }
    j <- w - nvp
    profile_parameter(beta[j], refit_zeta(beta[j], base, lmm_coefficient_held(fit_ml, j, control, point)), se[j])
  }
  list(parameter = parameter, tol = function(step) 1e-8 * max(abs(step), 1e-12), base_fit = fit_ml,
       estimates = point(theta, fit_sigma(fit_ml), psi, beta), n_variance = nvp,
       lower = c(bounds$lower, vapply(seq_along(free), function(k) parameter(k_sd + k)$natural(-50), 1)),
       upper = c(bounds$upper, vapply(seq_along(free), function(k) parameter(k_sd + k)$natural(50), 1)))
}

# A linear mixed model refitted by ML with fixed effect j held at a value:
# from the cross-products (the column moved into the offset algebraically),
# or by the engine in full with a residual structure. point(theta, sigma,
# psi, beta) gives every parameter of the refit.
lmm_coefficient_held <- function(fit_ml, j, control, point) {
  spec <- fit_spec(fit_ml)
  if (is.null(spec_residual(spec))) {
    metadata <- spec_without_rows(spec)
    return(function(value, start) {
      r <- engine_refit_xp(metadata, xp_fix_coefficient(fit_xp(fit_ml), j, value), start %||% fit_theta(fit_ml),
                           FALSE, control)
      list(deviance = r$deviance, start = r$theta, par = point(r$theta, r$sigma, numeric(), insert_at(r$beta, j, value)))
    })
  }
  function(value, start) {
    start <- start %||% list(theta = fit_theta(fit_ml), psi = fit_psi(fit_ml))
    r <- tryCatch(engine_fit(spec_hold_covariate(spec_fix_coefficient(spec, j, value)), control, REML = FALSE,
                             start = start),
                  error = function(e) NULL)
    if (is.null(r)) return(NULL)
    list(deviance = r$deviance, start = list(theta = r$theta, psi = as.vector(r$psi)),
         par = point(r$theta, r$sigma, as.vector(r$psi), insert_at(r$beta, j, value)))
  }
}

# -2 log-likelihood of an ML fit at columns of variance parameters on
# confint()'s scale: (sdcor of the random effects, sigma, free residual
# parameters on the unconstrained scale); Inf outside the parameter space.
# All columns in one call of the engine.
ml_deviance_function <- function(fit_ml) {
  spec <- fit_spec(fit_ml)
  res <- spec_residual(spec)
  k_sd <- length(fit_theta(fit_ml)) + 1L
  psi_hat <- fit_psi(fit_ml)
  free <- if (is.null(res)) integer() else which(res$free)
  n <- nobs(fit_ml)
  xp <- fit_xp(fit_ml)
  to_theta <- sdcor_to_theta_map(fit_ml)
  function(pars) {
    pars <- as.matrix(pars)
    sigma <- pars[k_sd, ]
    ok <- is.finite(sigma) & sigma > 0
    out <- rep(Inf, ncol(pars))
    if (!any(ok)) return(out)
    full <- vapply(which(ok), function(c) {
      theta <- to_theta(pars[seq_len(k_sd), c])
      if (is.null(res)) return(theta)
      psi <- psi_hat
      psi[free] <- pars[k_sd + seq_along(free), c]
      c(theta, psi)
    }, numeric(k_sd - 1L + length(psi_hat)))
    tm <- engine_deviance_terms(spec, matrix(full, ncol = sum(ok)), REML = FALSE, xp = xp)
    s2 <- sigma[ok]^2
    d <- tm$ld_L2 + tm$pwrss / s2 + n * log(2 * pi * s2) + tm$log_det_R
    d[!tm$ok] <- Inf
    out[ok] <- d
    out
  }
}

# zeta of variance parameter i of par_hat (see ml_deviance_function): the
# others, sigma and a structure's parameters included, re-optimised; with a
# residual structure by central-difference gradients (all points of a
# gradient in one call of the engine, which costs a pass over the data).
# complete(x, value): every parameter at a point (profile traces).
variance_zeta <- function(dev_at, i, par_hat, lower, upper, base, k_sd, with_gradient, complete = NULL) {
  lo <- lower[-i]
  up <- upper[-i]
  # keep sigma strictly positive in the search
  if (i != k_sd) lo[if (i < k_sd) k_sd - 1L else k_sd] <- 1e-10 * par_hat[k_sd]
  full <- function(X, value) {
    P <- matrix(par_hat, length(par_hat), ncol(X))
    P[-i, ] <- X
    P[i, ] <- value
    P
  }
  gradient <- function(x, value) {
    h <- 1e-6 * pmax(abs(x), 0.1)
    # stay inside the bounds: one-sided where a bound is near
    hp <- pmin(h, up - x)
    hm <- pmin(h, x - lo)
    hp[hp <= 0] <- 0
    hm[hm <= 0] <- 0
    k <- length(x)
    d <- dev_at(full(cbind(x + diag(hp, k), x - diag(hm, k)), value))
    g <- (d[seq_len(k)] - d[k + seq_len(k)]) / (hp + hm)
    g[!is.finite(g)] <- 0
    g
  }
  objective <- function(x, value) {
    p <- par_hat
    p[-i] <- x
    p[i] <- value
    dev_at(p)
  }
  optimised_zeta(objective, par_hat[-i], lo, up, par_hat[i], base,
                 control = list(eval.max = 2000, iter.max = 1000, rel.tol = 1e-12, x.tol = 1e-10),
                 gradient = if (with_gradient) gradient, complete = complete)
}

# GLMMs: the approximate deviance of the fit, its variance parameters on
# lme4's sdcor scale (no sigma) and its fixed effects.
glmm_profile_setup <- function(fit) {
  nagq <- fit_nagq(fit)
  if (nagq == 0L) {
    mlm_abort(c("Profile intervals need a fit by the Laplace approximation or adaptive quadrature.",
                x = "This fit used {.code nAGQ = 0}, whose criterion is not a likelihood of the fixed effects.",
                i = "Refit with {.code nAGQ = 1}, or use {.code method = \"Wald\"} or {.code \"boot\"}."),
              "mlmfit_error_argument")
  }
  if (has_scale(fit)) {
    mlm_abort(c("Profile intervals are not available for {.field {family(fit)$family}} models, whose scale is estimated apart from the approximate deviance.",
                i = "Use {.code method = \"Wald\"} or {.code method = \"boot\"}."),
              "mlmfit_error_argument")
  }
  spec <- fit_spec(fit)
  control <- utils::modifyList(fit_control(fit), list(hessian = FALSE, cond_var = FALSE))
  theta <- fit_theta(fit)
  beta <- fixef(fit)
  eta_hat <- fit_eta(fit)
  lower_theta <- theta_lower(fit)
  criterion_at <- function(th, b, eta_start = eta_hat) glmm_criterion_at(spec, th, b, eta_start, nagq, control)
  base <- criterion_at(theta, beta)
  if (!is.finite(base)) {
    mlm_abort("The approximate deviance could not be evaluated at the estimates.", "mlmfit_error_fit")
  }
  nv <- length(theta)
  p <- length(beta)
  sdc <- theta_to_sdcor(fit, theta, 1)[seq_len(nv)]
  bounds <- sdcor_bounds(fit)
  lay <- theta_layout(fit)
  to_theta <- sdcor_to_theta_map(fit)
  se_beta <- sqrt(diag(vcov(fit)))
  # Standard errors of theta from the Hessian of the deviance (2 H^-1),
  # for the first steps of the search along the standard deviations that
  # equal a theta.
  se_theta <- rep(NA_real_, nv)
  H <- fit_optinfo(fit)$hessian
  if (length(H) > 0L && all(is.finite(H))) {
    V <- tryCatch(2 * solve(H), error = function(e) NULL)
    if (!is.null(V)) se_theta <- sqrt(pmax(diag(V)[seq_len(nv)], 0))
  }
  parameter <- function(w) {
    if (w <= nv) {
      lo <- bounds$lower[w]
      step <- if (lo == -1) {
        0.05
      } else if (lay$row[w] == 1L && lay$col[w] == 1L && is.finite(se_theta[w]) && se_theta[w] > 0) {
        se_theta[w]
      } else {
        0.1 * max(sdc[w], 1e-3)
      }
      # the other variance parameters and the fixed effects, in coordinates
      # scaled by their standard errors
      others_lower <- c(bounds$lower[seq_len(nv)][-w], rep(-Inf, p))
      others_upper <- c(bounds$upper[seq_len(nv)][-w], rep(Inf, p))
      se_b <- if (all(is.finite(se_beta) & se_beta > 0)) se_beta else rep(1, p)
      scale <- c(ifelse(bounds$lower[seq_len(nv)][-w] < 0, 0.1, pmax(0.1 * abs(sdc[-w]), 0.02)), se_b)
      objective <- function(x, value) {
        s <- sdc
        s[w] <- value
        s[-w] <- x[seq_len(nv - 1L)]
        criterion_at(to_theta(c(s, 1)), x[nv - 1L + seq_len(p)])
      }
      complete <- function(x, value) {
        s <- sdc
        s[w] <- value
        s[-w] <- x[seq_len(nv - 1L)]
        unname(c(s, x[nv - 1L + seq_len(p)]))
      }
      zeta <- optimised_zeta(objective, c(sdc[-w], unname(beta)), others_lower, others_upper, sdc[w], base,
                             control = list(eval.max = 5000, iter.max = 1000, rel.tol = 1e-12, x.tol = 1e-9),
                             scale = scale, complete = complete)
      return(profile_parameter(sdc[w], zeta, step, lo, bounds$upper[w]))
    }
    j <- w - nv
    held <- function(value, start) {
      start <- start %||% list(theta = glmm_profile_theta_start(theta, lower_theta), eta = eta_hat)
      r <- engine_fit(spec_fix_coefficient(spec, j, value), control, nAGQ = nagq, start = start)
      if (!is.null(r$error)) return(NULL)
      list(deviance = r$devcomp$criterion,
           start = list(theta = glmm_profile_theta_start(r$theta, lower_theta), eta = as.vector(r$eta)),
           par = unname(c(theta_to_sdcor(fit, r$theta, 1)[seq_len(nv)], insert_at(r$beta, j, value))))
    }
    step <- if (is.finite(se_beta[j]) && se_beta[j] > 0) se_beta[j] else 0.1 * max(abs(beta[j]), 1)
    profile_parameter(beta[j], refit_zeta(beta[j], base, held), step)
  }
  list(parameter = parameter, tol = function(step) 1e-5 * step, base_fit = fit,
       estimates = unname(c(sdc, beta)), n_variance = nv, lower = bounds$lower[seq_len(nv)],
       upper = bounds$upper[seq_len(nv)])
}

# The approximate deviance of a GLMM at theta and beta.
glmm_criterion_at <- function(spec, theta, beta, eta_start, nAGQ, control) {
  r <- engine_evaluate_glmm(spec, theta, beta, eta_start, nAGQ, control)
  if (!is.null(r$error) || !is.finite(r$devcomp$criterion)) return(Inf)
  r$devcomp$criterion
}

# A start for theta away from the boundary, where the optimiser can move.
glmm_profile_theta_start <- function(theta, lower) {
  ifelse(lower == 0 & abs(theta) < 1e-3, 0.1, theta)
}

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
