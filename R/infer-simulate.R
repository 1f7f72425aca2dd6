# simulate() and refit(): responses drawn from the fitted model, and fits
# of the same model to a new response from the stored cross-products.

# The random-effect terms (indices into fit$re$terms) in lme4's internal
# order: lme4 sorts the terms of the formula by number of levels only when
# some term has more levels than the one before it, and then reverses ties.
# simulate() draws random effects in that order so that a seed gives
# lme4's draws.
lme4_term_order <- function(fit) {
  pos <- formula_positions(fit)
  nl <- numeric(length(pos))
  nl[pos] <- vapply(fit$re$terms, function(tm) tm$n_levels, numeric(1))
  lme4_seq <- if (any(diff(nl) > 0)) rev(order(nl)) else seq_along(nl)
  match(lme4_seq, pos)
}

# Position in the formula of each term of fit$re$terms (which are sorted by
# number of levels).
formula_positions <- function(fit) {
  parsed <- parse_mixed_formula(fit$formula)$random
  keys <- vapply(parsed, function(r) paste(r$label, deparse1(r$lhs)), "")
  used <- logical(length(keys))
  vapply(fit$re$terms, function(tm) {
    k <- which(keys == paste(tm$label, deparse1(tm$lhs)) & !used)[1L]
    used[k] <<- TRUE
    k
  }, integer(1))
}

# nsim draws of Z b with b from its estimated distribution, for the terms
# `which` (indices into fit$re$terms); an n x nsim matrix in units of sigma.
simulate_random_effects <- function(fit, which, nsim) {
  n <- nobs(fit)
  out <- matrix(0, n, nsim)
  if (length(which) == 0L) return(out)
  re <- fit$re
  ord <- lme4_term_order(fit)
  ord <- ord[ord %in% which]
  sizes <- vapply(ord, function(t) re$terms[[t]]$q * re$terms[[t]]$n_levels, numeric(1))
  u <- matrix(stats::rnorm(sum(sizes) * nsim), ncol = nsim)
  Tb <- relative_factors(re, fit$theta)
  env <- environment(fit$formula)
  start <- 0
  for (i in seq_along(ord)) {
    tm <- re$terms[[ord[i]]]
    q <- tm$q
    k <- tm$n_levels
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    Z <- term_columns(fit, tm, fit$frame, env)
    codes <- as.integer(re$blocks[[tm$block]]$factor)
    # q x (k nsim): the draws of each level are consecutive (level-major, as lme4)
    bs <- Tt %*% matrix(u[start + seq_len(q * k), , drop = FALSE], nrow = q)
    for (a in seq_len(q)) {
      out <- out + Z[, a] * matrix(bs[a, ], k, nsim)[codes, , drop = FALSE]
    }
    start <- start + q * k
  }
  out
}

#' Simulate responses from a linear mixed model
#'
#' Draws new responses from the fitted model, as lme4's `simulate()`: with
#' `re.form = NA` (default) new random effects are drawn for every term
#' (unconditional simulation); with `re.form = NULL` the random effects are
#' held at their conditional modes and only the residuals are new; with a
#' formula the named terms are held at their modes and the others are drawn.
#' Without prior weights and with the same seed, the draws are those of
#' `lme4::simulate()` for the same model. With prior weights the residual
#' variance of observation `i` is `sigma^2 / w_i` (lme4 ignores the weights
#' here).
#'
#' For a fit with a residual `correlation` or `variance` structure the
#' residuals are drawn with the fitted covariance `sigma^2 R` (as
#' [residual_covariance()] gives it): within each group of the correlation
#' structure, standard normal draws in time order are multiplied by the
#' lower Cholesky factor of the group's correlation matrix (for AR(1) and
#' CAR(1) the recursion `e_k = rho e_(k-1) + sqrt(1 - rho^2) z_k`, `rho =
#' Phi^gap`) and then by each observation's standard-deviation multiplier
#' from the variance function and prior weights. The random effects are
#' drawn (or held) as for fits without a structure, and the random stream
#' is used in the same order, so a seed gives the same random effects.
#'
#' @param object A fit from [lmm()].
#' @param nsim Number of simulated responses.
#' @param seed An integer for [set.seed()], or `NULL` to continue the
#'   current random number stream.
#' @param re.form Random effects to condition on: `NA` (none, default),
#'   `NULL` (all) or a formula of some of the model's terms.
#' @param ... Unused.
#' @return A data frame with one column per simulation (`sim_1`,
#'   `sim_2`, ...) and one row per observation, with the random number
#'   state before the simulation as attribute `"seed"`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' sims <- simulate(fit, nsim = 3, seed = 1)
#' head(sims)
#' # refit the model to a simulated response
#' fixef(refit(fit, sims$sim_1))
#' @export
simulate.mlmfit_lmm <- function(object, nsim = 1, seed = NULL, re.form = NA, ...) {
  nsim <- positive_count(nsim, "nsim")
  if (!is.null(seed)) set.seed(seed)
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  rng_state <- get(".Random.seed", envir = .GlobalEnv)
  Y <- simulate_responses(object, nsim, re.form)
  val <- as.data.frame(Y)
  names(val) <- paste0("sim_", seq_len(nsim))
  rownames(val) <- rownames(object$frame)
  omit <- attr(object$frame, "na.action")
  if (!is.null(omit)) {
    val <- as.data.frame(lapply(val, function(v) stats::napredict(omit, v)))
  }
  structure(val, seed = rng_state)
}

# The n x nsim matrix of simulated responses (the random stream is used as
# lme4 uses it: all random effects, then all residuals).
simulate_responses <- function(object, nsim, re.form = NA) {
  held <- select_re_terms(object, re.form)
  drawn <- setdiff(seq_along(object$re$terms), held)
  d <- new_design(object, NULL, if (length(held)) re.form else NA)
  mean <- drop(d$X %*% object$beta) + d$offset + d$re
  sim_re <- simulate_random_effects(object, drawn, nsim)
  n <- length(mean)
  e <- matrix(stats::rnorm(n * nsim), ncol = nsim)
  if (!is.null(object$residual)) {
    e <- correlate_residual_draws(object, e)
  } else if (!is.null(object$prior_weights)) {
    e <- e / sqrt(object$prior_weights)
  }
  mean + object$sigma * (sim_re + e)
}

#' Refit a model to a new response
#'
#' Fits the same model (formula, data, weights, REML or ML) to a new
#' response vector. Only the parts of the stored cross-products that involve
#' the response are recomputed (one pass over the new response), and the
#' optimiser starts at the estimates of `object`, so a refit costs a
#' fraction of a fit. This is the refit of a parametric bootstrap.
#'
#' `refit()` is also registered as a method for lme4's generic, so it works
#' whether or not lme4 is attached.
#'
#' A fit with a residual `correlation` or `variance` structure is refitted
#' in full by the structured engine (its whitened cross-products depend on
#' the structure's parameters), started at the estimates of `object`: the
#' variance components and the structure's parameters are re-estimated.
#'
#' @param object A fit from [lmm()].
#' @param newresp The new response: a numeric vector with one value per
#'   observation used in the fit (or a one-column data frame, e.g. a column
#'   of [simulate()]'s result). `NULL` refits the original response.
#' @param ... Unused.
#' @return A fit like `object`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' y2 <- simulate(fit, seed = 42)$sim_1
#' fit2 <- refit(fit, y2)
#' fixef(fit2)
#' @export
refit <- function(object, newresp = NULL, ...) UseMethod("refit")

#' @rdname refit
#' @export
refit.mlmfit_lmm <- function(object, newresp = NULL, ...) {
  y <- checked_new_response(object, newresp)
  engine <- lmm_refit_response_cpp(object$X, y, object$prior_weights, object$offset, object$xp$intercept_col,
                                   engine_blocks(object$re), object$xp, object$theta, object$lower, object$REML,
                                   object$control)
  out <- fit_from_engine(object, engine, REML = object$REML, y = y)
  out$frame[[1L]] <- y
  out
}

# newresp as a double vector with one value per observation of the fit.
checked_new_response <- function(object, newresp) {
  if (is.null(newresp)) newresp <- object$y
  if (is.data.frame(newresp)) {
    if (ncol(newresp) != 1L) mlm_abort("{.arg newresp} must have one column.", "mlmfit_error_argument")
    newresp <- newresp[[1L]]
  }
  omit <- attr(object$frame, "na.action")
  if (!is.null(omit) && length(newresp) == nobs(object) + length(omit)) newresp <- newresp[-as.integer(omit)]
  if (!is.numeric(newresp) || length(newresp) != nobs(object)) {
    mlm_abort(c("{.arg newresp} must be a numeric vector with one value per observation of the fit ({nobs(object)}).",
                x = "It has length {length(newresp)}."),
              "mlmfit_error_argument")
  }
  if (any(!is.finite(newresp))) {
    mlm_abort("{.arg newresp} has missing or infinite values.", "mlmfit_error_argument")
  }
  as.double(newresp)
}
