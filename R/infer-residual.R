# Inference for fits with a residual correlation or variance structure,
# where it differs from fits without one: profile-likelihood intervals over
# the structure's parameters too, the terms Satterthwaite's degrees of
# freedom differentiate (with respect to theta and the structure's
# parameters), and the reduced model of ranova() without random effects
# (nlme's gls with the same structure).

# -2 log-likelihood of an ML fit with a structure at columns of variance
# parameters on confint()'s scale: par = (sdcor of the random effects,
# sigma, free residual parameters on the unconstrained scale). One set-up
# of the whitening per call, whatever the number of columns.
structured_ml_deviance <- function(fit_ml) {
  re <- fit_ml$re
  res <- fit_ml$residual
  k_sd <- length(fit_ml$theta) + 1L
  free <- which(res$free)
  n <- nobs(fit_ml)
  function(pars) {
    pars <- as.matrix(pars)
    sigma <- pars[k_sd, ]
    ok <- is.finite(sigma) & sigma > 0
    out <- rep(Inf, ncol(pars))
    if (!any(ok)) return(out)
    full <- vapply(which(ok), function(c) {
      psi <- res$psi
      psi[free] <- pars[k_sd + seq_along(free), c]
      c(sdcor_to_theta(re, pars[seq_len(k_sd), c]), psi)
    }, numeric(length(fit_ml$theta) + length(res$psi)))
    tm <- residual_structure_terms(fit_ml, matrix(full, ncol = sum(ok)), REML = FALSE)
    s2 <- sigma[ok]^2
    d <- tm["ld_L2", ] + tm["pwrss", ] / s2 + n * log(2 * pi * s2) + tm["log_det_R", ]
    d[!is.finite(tm["deviance", ])] <- Inf
    out[ok] <- d
    out
  }
}

# zeta of variance parameter i of par (see structured_ml_deviance): the
# others, sigma and the structure's parameters included, re-optimised
# (nlminb with central-difference gradients, all points of a gradient in
# one call of the engine).
structured_variance_zeta <- function(fit_ml, i, par_hat, lower, upper, base) {
  dev_at <- structured_ml_deviance(fit_ml)
  k_sd <- length(fit_ml$theta) + 1L
  others <- par_hat[-i]
  lo <- lower[-i]
  up <- upper[-i]
  # keep sigma strictly positive in the search
  if (i != k_sd) lo[if (i < k_sd) k_sd - 1L else k_sd] <- 1e-10 * par_hat[k_sd]
  function(value) {
    full <- function(X) {
      P <- matrix(par_hat, length(par_hat), ncol(X))
      P[-i, ] <- X
      P[i, ] <- value
      P
    }
    obj <- function(x) {
      d <- dev_at(full(matrix(x)))
      if (is.finite(d)) d else 1e100
    }
    grad <- function(x) {
      h <- 1e-6 * pmax(abs(x), 0.1)
      # stay inside the bounds: one-sided where a bound is near
      hp <- pmin(h, up - x)
      hm <- pmin(h, x - lo)
      hp[hp <= 0] <- 0
      hm[hm <= 0] <- 0
      k <- length(x)
      X <- cbind(x + diag(hp, k), x - diag(hm, k))
      d <- dev_at(full(X))
      g <- (d[seq_len(k)] - d[k + seq_len(k)]) / (hp + hm)
      g[!is.finite(g)] <- 0
      g
    }
    opt <- stats::nlminb(others, obj, gradient = grad, lower = lo, upper = up,
                         control = list(eval.max = 2000, iter.max = 1000, rel.tol = 1e-12, x.tol = 1e-10))
    if (opt$objective < 1e99) others <<- opt$par
    sign(value - par_hat[i]) * sqrt(max(0, opt$objective - base))
  }
}

# zeta of free residual parameter j (an index into psi, unconstrained
# scale): the structured engine refits the model with psi_j held at a
# value, from the last point's estimates.
structured_residual_zeta <- function(fit_ml, j, base) {
  control <- fit_ml$control
  control$cond_var <- FALSE
  theta <- fit_ml$theta
  psi <- fit_ml$residual$psi
  est <- psi[[j]]
  engine <- fit_ml$residual$engine
  engine$psi_free[j] <- FALSE
  engine$covariate_fitted <- FALSE  # a profile holds a covariate of fitted values
  function(value) {
    psi[j] <- value
    engine$psi0 <- as.double(psi)
    r <- tryCatch(lmm_fit_residual_cpp(fit_ml$X, fit_ml$y, fit_ml$prior_weights, fit_ml$offset,
                                       match("(Intercept)", colnames(fit_ml$X), nomatch = 0L) - 1L,
                                       engine_blocks(fit_ml$re), as.double(theta), fit_ml$lower, FALSE, control,
                                       engine),
                  error = function(e) NULL)
    if (is.null(r) || !is.finite(r$deviance)) return(NA_real_)
    theta <<- r$theta
    psi <<- as.vector(r$psi)
    sign(value - est) * sqrt(max(0, r$deviance - base))
  }
}

# zeta of fixed effect j: the model with beta_j held at a value (its column
# moved into the offset) refitted by the structured engine, from the last
# point's estimates.
structured_fixed_effect_zeta <- function(fit_ml, j, base) {
  X <- fit_ml$X
  xj <- X[, j]
  Xr <- X[, -j, drop = FALSE]
  # random-effect columns that refer to columns of X travel as vectors
  blocks <- lapply(engine_blocks(fit_ml$re), function(b) {
    b$cols <- lapply(b$cols, function(c) if (is.integer(c) && length(c) == 1L) X[, c] else c)
    b
  })
  ic <- match("(Intercept)", colnames(Xr), nomatch = 0L) - 1L
  offset <- fit_ml$offset %||% numeric(nrow(X))
  control <- fit_ml$control
  control$cond_var <- FALSE
  theta <- fit_ml$theta
  psi <- fit_ml$residual$psi
  est <- unname(fit_ml$beta[j])
  function(value) {
    r <- tryCatch(lmm_fit_residual_cpp(Xr, fit_ml$y, fit_ml$prior_weights, offset + value * xj, ic, blocks,
                                       as.double(theta), fit_ml$lower, FALSE, control,
                                       residual_engine_at(fit_ml, psi, hold_covariate = TRUE)),
                  error = function(e) NULL)
    if (is.null(r) || !is.finite(r$deviance)) return(NA_real_)
    theta <<- r$theta
    psi <<- r$psi
    sign(value - est) * sqrt(max(0, r$deviance - base))
  }
}

# Profile confidence limits of a fit with a residual structure for the
# parameters `which` on confint()'s scale: sdcor, sigma, the free residual
# parameters (natural scale), then the fixed effects.
structured_profile_intervals <- function(fit, which, level) {
  fit_ml <- refit_ml(fit)
  re <- fit_ml$re
  res <- fit_ml$residual
  k_sd <- length(fit_ml$theta) + 1L
  free <- which(res$free)
  nvp <- k_sd + length(free)
  sdcor <- theta_to_sdcor(re, fit_ml$theta, fit_ml$sigma)
  par_hat <- c(sdcor, res$psi[free])
  bounds <- sdcor_bounds(re)
  # the structure's parameters on the unconstrained scale, kept finite
  lower <- c(bounds$lower, rep(-50, length(free)))
  upper <- c(bounds$upper, rep(50, length(free)))
  base <- deviance(fit_ml)
  z <- stats::qnorm((1 + level) / 2)
  se <- sqrt(diag(fit_ml$vcov))
  natural <- function(i, value) {
    psi <- res$psi
    psi[free[i - k_sd]] <- value
    unname(natural_residual_parameters(res, psi)[free[i - k_sd]])
  }
  out <- matrix(NA_real_, length(which), 2L)
  for (k in seq_along(which)) {
    w <- which[k]
    if (w <= nvp) {
      est <- par_hat[w]
      zeta <- if (w > k_sd) structured_residual_zeta(fit_ml, free[w - k_sd], base) else
        structured_variance_zeta(fit_ml, w, par_hat, lower, upper, base)
      step <- if (w > k_sd) 0.25 else if (bounds$lower[w] == -1) 0.05 else 0.1 * max(est, 1e-3 * sdcor[k_sd])
      lo <- lower[w]
      up <- upper[w]
    } else {
      j <- w - nvp
      est <- unname(fit_ml$beta[j])
      zeta <- structured_fixed_effect_zeta(fit_ml, j, base)
      step <- se[j]
      lo <- -Inf
      up <- Inf
    }
    lim <- c(if (est <= lo) lo else zeta_crossing(zeta, est, -z, step, lo, up),
             if (est >= up) up else zeta_crossing(zeta, est, z, step, lo, up))
    if (w > k_sd && w <= nvp) lim <- vapply(lim, function(v) natural(w, v), numeric(1))
    out[k, ] <- lim
  }
  out
}

# The engine at each column of params = (theta, all residual parameters):
# a matrix with rows deviance, ld_L2, ld_RX2, pwrss, sigma, log_det_R and,
# with with_vcov, the covariance of beta; one whitening set-up for all.
residual_structure_terms <- function(object, params, REML = object$REML, with_vcov = FALSE) {
  params <- as.matrix(params)
  storage.mode(params) <- "double"
  out <- lmm_residual_terms_cpp(object$X, object$y, object$prior_weights, object$offset,
                                match("(Intercept)", colnames(object$X), nomatch = 0L) - 1L,
                                engine_blocks(object$re), engine_residual(object), params,
                                length(object$theta), REML, with_vcov)
  rownames(out) <- c("deviance", "ld_L2", "ld_RX2", "pwrss", "sigma", "log_det_R",
                     if (with_vcov) rep("vcov", length(object$beta)^2))
  out
}

# For Satterthwaite's degrees of freedom: at each column of
# params = (theta, free residual parameters), the deviance terms that
# depend on them (log-determinants and log |R|), the penalised residual sum
# of squares and the covariance of beta per unit sigma^2.
structured_vcov_terms <- function(fit) {
  res <- fit$residual
  free <- which(res$free)
  k_t <- length(fit$theta)
  function(params) {
    params <- as.matrix(params)
    full <- rbind(params[seq_len(k_t), , drop = FALSE],
                  matrix(res$psi, length(res$psi), ncol(params)))
    full[k_t + free, ] <- params[k_t + seq_along(free), ]
    tm <- residual_structure_terms(fit, full, with_vcov = TRUE)
    g <- tm["ld_L2", ] + (if (fit$REML) tm["ld_RX2", ] else 0) + tm["log_det_R", ]
    rbind(g, tm["pwrss", ], sweep(tm[-(1:6), , drop = FALSE], 2L, tm["sigma", ]^2, "/"))
  }
}

# ranova()'s reduced model when the last random-effect term is dropped
# from a fit with a residual structure: nlme::gls() with the same
# correlation and variance structure (their groups as the fit resolved
# them), started at the fit's estimates; parameters held fixed stay fixed.
gls_without_random_effects <- function(model, formula, eval_env) {
  if (!is.null(model$prior_weights) || !is.null(model$offset)) {
    mlm_abort(c("{.fn ranova} cannot drop the last random-effect term of this model: the reduced model, a generalised least squares fit by {.fn nlme::gls}, takes no prior weights or offset.",
                i = "Compare the models with and without the term by {.fn anova} on fits you make yourself."),
              "mlmfit_error_anova")
  }
  res <- model$residual
  par <- natural_residual_parameters(res)
  n_cor <- if (is.null(res$correlation)) 0L else 1L
  cor_obj <- NULL
  if (!is.null(cs <- res$correlation)) {
    ctor <- getExportedValue("nlme", cs$class)
    cor_obj <- ctor(value = unname(par[[1L]]), form = cs$formula, fixed = !res$free[[1L]])
  }
  var_obj <- NULL
  if (!is.null(vs <- res$variance)) {
    ctor <- getExportedValue("nlme", vs$class)
    vpar <- par[vs$names]
    vfree <- res$free[n_cor + seq_along(vs$names)]
    var_obj <- if (vs$kind == "ident") {
      args <- list(form = vs$formula)
      if (any(vfree)) args$value <- vpar[vfree]
      if (any(!vfree)) args$fixed <- vpar[!vfree]
      do.call(ctor, args)
    } else if (vs$kind == "const_power") {
      args <- c(list(form = vs$formula), as.list(vpar[vfree]))
      if (any(!vfree)) args$fixed <- as.list(vpar[!vfree])
      do.call(ctor, args)
    } else if (vfree) {
      ctor(value = unname(vpar), form = vs$formula)
    } else {
      ctor(value = unname(vpar), form = vs$formula, fixed = unname(vpar))
    }
  }
  call <- model$call
  gcall <- call("gls", model = formula)
  gcall[[1L]] <- quote(nlme::gls)
  gcall$data <- call$data
  if (!is.null(call$subset)) gcall$subset <- call$subset
  gcall$na.action <- call$na.action %||% quote(stats::na.omit)
  gcall$correlation <- cor_obj
  gcall$weights <- var_obj
  gcall$method <- if (isTRUE(model$REML)) "REML" else "ML"
  eval(gcall, eval_env)
}

#' @rdname lmm-influence
#' @export
hatvalues.mlmfit_lmm_structured <- function(model, ...) {
  mlm_abort(c("Leverages and Cook's distances are not available for fits with a residual {.arg correlation} or {.arg variance} structure.",
              i = "The hat matrix of such a fit is not the one computed for independent residuals; {.code residuals(fit, type = \"normalized\")} gives residuals to inspect."),
            "mlmfit_error_residual_structure")
}
