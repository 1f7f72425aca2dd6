# Refits of a model: to a new response (refit(), the parametric
# bootstrap), by ML after REML (likelihood-ratio tests, profiles), and with
# a parameter held at a value (profiles). A linear mixed model without a
# residual structure is refitted from its stored cross-products (no pass
# over the data, or one over a new response); with a structure, the
# engine refits it in full (its whitened cross-products depend on the
# structure's parameters), started at the estimates; a GLMM is refitted as
# glmm() fits it.

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
  warn_unused_dots(..., method = "refit")
  y <- checked_new_response(object, newresp)
  spec <- spec_with_response(fit_spec(object), y)
  new_lmm_fit(spec, lmm_refit_engine(object, spec, new_response = TRUE), fit_call(object), fit_reml(object),
              fit_control(object))
}

# newresp as a double vector with one value per observation of the fit.
checked_new_response <- function(object, newresp) {
  if (is.null(newresp)) newresp <- spec_y(object)
  if (is.data.frame(newresp)) {
    if (ncol(newresp) != 1L) mlm_abort("{.arg newresp} must have one column.", "mlmfit_error_argument")
    newresp <- newresp[[1L]]
  }
  omit <- attr(spec_frame(object), "na.action")
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

# The engine's refit of a linear mixed model to `spec` (the fit's, or one
# with a new response or a coefficient held), started at the estimates of
# `fit` (or at `start`): from the cross-products when there is no residual
# structure, in full otherwise.
lmm_refit_engine <- function(fit, spec = fit_spec(fit), REML = fit_reml(fit), control = fit_control(fit),
                             new_response = FALSE, start = list(theta = fit_theta(fit), psi = fit_psi(fit))) {
  if (!is.null(spec_residual(spec))) return(engine_fit(spec, control, REML, start = start))
  if (new_response) return(engine_refit_response(spec, fit_xp(fit), start$theta, REML, control))
  engine_refit_xp(spec, fit_xp(fit), start$theta, REML, control)
}

# The ML version of a REML fit, re-optimised from its estimates (for a
# residual structure its parameters are re-estimated too).
refit_ml <- function(fit) {
  if (!fit_reml(fit)) return(fit)
  call <- fit_call(fit)
  call$REML <- FALSE
  new_lmm_fit(fit_spec(fit), lmm_refit_engine(fit, REML = FALSE), call, FALSE, fit_control(fit))
}
