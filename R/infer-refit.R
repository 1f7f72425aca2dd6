# Refits of a model: to a new response (refit(), the parametric
# bootstrap, lme4's bootMer()), by ML after REML (likelihood-ratio tests,
# profiles), and with a parameter held at a value (profiles). A linear mixed model without a
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
#' A [glmm()] fit is refitted as [glmm()] fits the data (same family,
#' `nAGQ`, weights and offset; the size of a negative binomial model held
#' at its estimate), to a response in any form [glmm()] accepts for the
#' family: 0/1, logical, a two-level factor, proportions (with the numbers
#' of trials of the fit as weights) or, for a response given as
#' `cbind(successes, failures)`, a two-column matrix with the same number of
#' trials in each row (as [simulate()] draws it).
#'
#' `refit()` is also registered as a method for lme4's generic, so it works
#' whether or not lme4 is attached, and so does `lme4::bootMer()`, which
#' simulates with [simulate()] and refits with `refit()`.
#'
#' A fit with a residual `correlation` or `variance` structure is refitted
#' in full by the structured engine (its whitened cross-products depend on
#' the structure's parameters), started at the estimates of `object`: the
#' variance components and the structure's parameters are re-estimated.
#'
#' @param object A fit from [lmm()] or [glmm()].
#' @param newresp The new response: a vector (or for a `cbind()` binomial
#'   response a two-column matrix) with one value per observation used in
#'   the fit, or one per row of the data for a fit with `na.exclude`
#'   (or a one-column data frame, e.g. a column of [simulate()]'s result).
#'   `NULL` refits the original response.
#' @param ... lme4's `control` and `verbose` are accepted when `NULL` or
#'   zero (as `lme4::bootMer()` passes them); the refit uses the settings
#'   of `object`, and other values or arguments are refused with a warning.
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
  check_refit_arguments(...)
  y <- checked_new_response(object, newresp)
  spec <- spec_with_response(fit_spec(object), y)
  new_lmm_fit(spec, lmm_refit_engine(object, spec, new_response = TRUE), fit_call(object), fit_reml(object),
              fit_control(object))
}

#' @rdname refit
#' @export
refit.mlmfit_glmm <- function(object, newresp = NULL, ...) {
  check_refit_arguments(...)
  newresp <- if (is.null(newresp)) spec_response(object) else response_rows(object, newresp)
  r <- glmm_refit_response(object, newresp, fit_control(object))
  if (!is.null(r$error)) {
    mlm_abort(c("The refit failed: {r$error}.", i = "Check the new response (its outcomes must vary)."),
              "mlmfit_error_fit")
  }
  fit <- new_glmm_fit(r$spec, r, fit_call(object), fit_nagq(object), fit_control(object))
  report_convergence(fit_optinfo(fit)$warnings)
  fit
}

# lme4's refit() takes control and verbose, which bootMer() passes as NULL
# and 0; mlmfit's refits use the fit's own settings.
check_refit_arguments <- function(...) {
  args <- list(...)
  honoured <- vapply(names(args) %||% rep("", length(args)), function(nm) {
    nm %in% c("control", "verbose") && (is.null(args[[nm]]) || identical(as.numeric(args[[nm]]), 0))
  }, logical(1))
  if (!all(honoured)) {
    ignored <- names(args)[!honoured]
    ignored[is.na(ignored) | ignored == ""] <- "(unnamed)"
    mlm_warn(c("{.fn refit} ignores {.arg {ignored}}.", i = "A refit uses the settings of the fit it refits."),
             c("mlmfit_warning_unused_argument", "mlmfit_warning_argument"))
  }
  invisible()
}

# newresp with one row per observation of the fit: the column of a
# one-column data frame, without the rows a na.exclude fit left out.
response_rows <- function(object, newresp) {
  if (is.data.frame(newresp)) {
    if (ncol(newresp) != 1L) mlm_abort("{.arg newresp} must have one column.", "mlmfit_error_argument")
    newresp <- newresp[[1L]]
  }
  omit <- attr(spec_frame(object), "na.action")
  n_rows <- if (is.matrix(newresp)) nrow(newresp) else length(newresp)
  if (!is.null(omit) && n_rows == nobs(object) + length(omit)) {
    newresp <- if (is.matrix(newresp)) newresp[-as.integer(omit), , drop = FALSE] else newresp[-as.integer(omit)]
  }
  newresp
}

# A GLMM refitted to a new response (in the form glmm() takes, one row per
# observation), as glmm() fits the data: the engine's answer with the spec
# of the refit, or with `error`.
glmm_refit_response <- function(fit, newresp, control) {
  spec <- fit_spec(fit)
  fam <- spec_family(spec)
  n_rows <- if (is.matrix(newresp)) nrow(newresp) else length(newresp)
  if (n_rows != nobs(fit)) {
    mlm_abort(c("{.arg newresp} must have one value per observation of the fit ({nobs(fit)}).",
                x = "It has {n_rows}."), "mlmfit_error_argument")
  }
  trials <- spec_trials(spec)
  prior <- spec_weights(spec)
  if (!is.null(trials) && !is.null(prior)) prior <- ifelse(trials == 0, 0, prior / pmax(trials, 1e-300))
  if (identical(fam$response_kind, "cbind") && !is.matrix(newresp)) {
    mlm_abort("{.arg newresp} must be a two-column matrix of successes and failures, as the response of the fit.",
              "mlmfit_error_argument")
  }
  resp <- glmm_response(newresp, if (is.null(trials)) prior, fam, "newresp")
  if (!is.null(trials) && any(abs(resp$trials - trials) > 1e-8)) {
    mlm_abort("The rows of {.arg newresp} must have the numbers of trials of the fit's response.",
              "mlmfit_error_argument")
  }
  if (anyNA(resp$y)) mlm_abort("{.arg newresp} has missing values.", "mlmfit_error_argument")
  spec <- spec_with_response(spec, resp$y, newresp)
  r <- engine_fit(spec, control, nAGQ = fit_nagq(fit))
  r$spec <- spec
  r
}

# newresp as a double vector with one value per observation of the fit.
checked_new_response <- function(object, newresp) {
  newresp <- if (is.null(newresp)) spec_y(object) else response_rows(object, newresp)
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
