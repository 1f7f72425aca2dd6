# augment() for glmm() fits with broom.mixed's columns for glmer fits.

#' @rdname lmm-tidiers
#' @param type.predict For `augment()` of a GLMM with `newdata`: `"link"`
#'   (default, as broom.mixed) or `"response"`.
#' @details For a fit from [glmm()], `augment()` gives broom.mixed's columns
#'   for glmer fits: `.fitted` and `.fixed` on the link scale, `.resid`
#'   (deviance residuals), `.mu` (fitted means), `.offset`, `.sqrtXwt`
#'   (square roots of the working weights), `.sqrtrwt` (of the prior
#'   weights over the variance function), `.weights` (prior weights),
#'   `.wtres` (Pearson residuals) and `.eta`; leverages and Cook's distances
#'   are not given (lme4 warns that its GLMM hat matrix may not make sense).
#' @method augment mlmfit_glmm
#' @export
augment.mlmfit_glmm <- function(x, data = stats::model.frame(x), newdata = NULL, type.predict = c("link", "response"),
                                ...) {
  type.predict <- match.arg(type.predict)
  if (!is.null(newdata)) {
    out <- as.data.frame(newdata)
    out$.fitted <- unname(predict(x, newdata = newdata, type = type.predict, ...))
    return(as_tidy_frame(out))
  }
  warn_unused_dots(..., method = "augment", hint = "Arguments for {.fn predict} are used with {.arg newdata}.")
  # one row per observation of the fit: the values on the rows of the fit
  out <- augment_data(x, data)
  n <- nobs(x)
  w <- spec_weights(x) %||% rep(1, n)
  mu <- fit_fitted(x)
  eta <- fit_eta(x)
  out$.fitted <- eta
  out$.resid <- glmm_residual_values(x, "deviance", FALSE)
  out$.fixed <- linear_predictor(x, re.form = NA)
  out$.mu <- mu
  out$.offset <- spec_offset(x) %||% rep(0, n)
  out$.sqrtXwt <- sqrt(fit_working_weights(x))
  out$.sqrtrwt <- sqrt(w / spec_family(x)$family$variance(mu))
  out$.weights <- w
  out$.wtres <- glmm_residual_values(x, "pearson", FALSE)
  out$.eta <- eta
  as_tidy_frame(out)
}
