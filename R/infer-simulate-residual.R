# Simulation and refits of fits with a residual correlation or variance
# structure: residual draws with covariance sigma^2 R (the structure at the
# estimates), and refits through the structured engine (the whitened
# cross-products depend on the structure's parameters, so the stored ones
# cannot be reused as for fits without a structure).

# Standard normal draws z (n x nsim, rows in the order of the fit's
# observations) turned into draws with correlation C and standard deviation
# multipliers S: e = S L z within each residual group, L the lower Cholesky
# factor of the group's correlation matrix in time order. In units of sigma.
correlate_residual_draws <- function(object, z) {
  res <- object$residual
  s <- residual_sd_multipliers(object)
  cor <- res$correlation
  if (is.null(cor)) return(s * z)
  par <- natural_residual_parameters(res)[[1L]]
  g <- as.integer(cor$group)
  ord <- order(g, cor$position)
  gs <- g[ord]
  pos <- cor$position[ord]
  zs <- z[ord, , drop = FALSE]
  out <- zs
  # k: place of each (sorted) observation within its group
  k <- stats::ave(seq_along(gs), gs, FUN = seq_along)
  if (cor$kind %in% c("ar1", "car1")) {
    # AR(1) and CAR(1) are Markov in time: the Cholesky factor is the
    # recursion e_k = rho_k e_(k-1) + sqrt(1 - rho_k^2) z_k with
    # rho_k = Phi^(gap to the previous occasion).
    for (kk in seq_len(max(k))[-1L]) {
      rows <- which(k == kk)
      rho <- par^abs(pos[rows] - pos[rows - 1L])
      out[rows, ] <- rho * out[rows - 1L, , drop = FALSE] + sqrt(1 - rho^2) * zs[rows, , drop = FALSE]
    }
  } else {
    # compound symmetry: the correlation matrix depends on the group size
    # only, so one Cholesky factor per size serves all groups of that size
    size <- tabulate(gs, max(gs))[gs]
    for (m in setdiff(unique(size), 1L)) {
      rows <- which(size == m)
      L <- t(chol(group_correlation(cor, par, seq_len(m))))
      n_groups <- length(rows) / m
      blocks <- L %*% matrix(zs[rows, , drop = FALSE], nrow = m)
      out[rows, ] <- matrix(blocks, nrow = m * n_groups)
    }
  }
  e <- z
  e[ord, ] <- out
  s * e
}

# The engine's residual specification with the optimiser started at psi;
# with hold_covariate, a covariate of fitted values stays at the fit's
# (profiles) instead of iterating with the refit.
residual_engine_at <- function(object, psi = object$residual$psi, hold_covariate = FALSE) {
  eng <- object$residual$engine
  eng$psi0 <- as.double(psi)
  if (hold_covariate) eng$covariate_fitted <- FALSE
  eng
}

# A fit of the same structured model to response y (REML or ML), started at
# the estimates of object. Returns the engine's answer.
structured_engine_fit <- function(object, y, REML = object$REML, control = object$control,
                                  theta = object$theta, psi = object$residual$psi) {
  lmm_fit_residual_cpp(object$X, as.double(y), object$prior_weights, object$offset,
                       match("(Intercept)", colnames(object$X), nomatch = 0L) - 1L,
                       engine_blocks(object$re), as.double(theta), object$lower, REML, control,
                       residual_engine_at(object, psi))
}

# The fit object of a structured refit.
structured_fit_from_engine <- function(object, engine, REML = object$REML, y = object$y) {
  if (is.finite(engine$deviance)) {
    engine$fitted <- linear_predictor_cpp(object$X, object$offset, engine_blocks(object$re), engine$beta, engine$b)
  }
  fit <- fit_from_engine(object, engine, REML = REML, y = y)
  structure <- object$residual[c("correlation", "variance", "engine")]
  add_residual_structure(fit, engine, structure)
}

#' @rdname refit
#' @export
refit.mlmfit_lmm_structured <- function(object, newresp = NULL, ...) {
  y <- checked_new_response(object, newresp)
  engine <- engine_call(structured_engine_fit(object, y))
  out <- structured_fit_from_engine(object, engine, y = y)
  out$frame[[1L]] <- y
  out
}

# Refits of a structured model to the columns of Y (the bootstrap's):
# theta, beta, sigma, the residual parameters (unconstrained) and the
# number of convergence warnings of each; NA where a refit failed.
structured_refit_responses <- function(object, Y, control) {
  m <- ncol(Y)
  out <- list(theta = matrix(NA_real_, length(object$theta), m), beta = matrix(NA_real_, length(object$beta), m),
              sigma = rep(NA_real_, m), psi = matrix(NA_real_, length(object$residual$psi), m),
              warnings = integer(m))
  for (s in seq_len(m)) {
    r <- tryCatch(structured_engine_fit(object, Y[, s], control = control), error = function(e) NULL)
    if (is.null(r) || !is.finite(r$deviance) || !is.finite(r$sigma) || !(r$sigma > 0)) next
    out$theta[, s] <- r$theta
    out$beta[, s] <- r$beta
    out$sigma[s] <- r$sigma
    out$psi[, s] <- r$psi
    out$warnings[s] <- length(r$optinfo$warnings)
  }
  out
}
