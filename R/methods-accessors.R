# Accessors: the generics users of lm, lme4 and nlme already know.

#' @importFrom nlme fixef ranef VarCorr
#' @export
nlme::fixef
#' @export
nlme::ranef
#' @export
nlme::VarCorr

#' Extract parts of a mixed model fit
#'
#' Methods for the generics of base R, nlme and lme4. They return what the
#' corresponding methods of lme4 return for an `lmerMod` fit.
#'
#' * `fixef()` the fixed-effect estimates; `vcov()` their covariance matrix.
#' * `sigma()` the residual standard deviation.
#' * `logLik()` the log-likelihood at the estimates: the REML
#'   log-likelihood for a REML fit unless `REML = FALSE`; `df` counts the
#'   fixed effects, the covariance parameters and sigma.
#' * `deviance()` minus twice the log-likelihood: for a REML fit the REML
#'   criterion, or with `REML = FALSE` the ML deviance at the REML estimates.
#' * `nobs()` observations used; `ngrps()` levels of each grouping factor.
#' * `fitted()` conditional fitted values (fixed plus random effects plus
#'   offset). With `na.action = na.exclude`, fitted values and residuals
#'   have `NA` in the rows dropped for missing values.
#' * `residuals()` response residuals; `type = "pearson"` multiplies by the
#'   square root of the prior weights; `scaled = TRUE` divides by sigma.
#' * `model.frame()`, `model.matrix()` (fixed effects), `terms()` (fixed part),
#'   `formula()`, `weights()` (prior weights, 1 when none were given).
#'
#' @param object,x,formula A fit from [lmm()].
#' @param REML For `logLik()` and `deviance()`: the REML (`TRUE`) or ML
#'   (`FALSE`) criterion; by default the one the model was fitted with.
#' @param type Type of residuals: `"response"` (default), `"pearson"`,
#'   `"working"` or `"deviance"` (all equal for a linear mixed model except
#'   for prior weights).
#' @param scaled Divide residuals by sigma.
#' @param ... Unused.
#' @name lmm-accessors
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' fixef(fit)
#' sqrt(diag(vcov(fit)))
#' sigma(fit)
#' logLik(fit)
#' AIC(fit); BIC(fit)
#' ngrps(fit)
#' head(residuals(fit, scaled = TRUE))
NULL

#' @rdname lmm-accessors
#' @export
fixef.mlmfit <- function(object, ...) fit_beta(object)

#' @rdname lmm-accessors
#' @export
vcov.mlmfit <- function(object, ...) fit_vcov(object)

#' @rdname lmm-accessors
#' @export
sigma.mlmfit_lmm <- function(object, ...) fit_sigma(object)

n_covariance_parameters <- function(object) length(fit_theta(object)) + n_residual_parameters(object)

#' @rdname lmm-accessors
#' @export
logLik.mlmfit_lmm <- function(object, REML = NULL, ...) {
  val <- -0.5 * deviance.mlmfit_lmm(object, REML = REML)
  structure(val, nobs = nobs(object), nall = nobs(object),
            df = length(fit_beta(object)) + n_covariance_parameters(object) + 1L, class = "logLik")
}

ml_deviance_at_estimates <- function(object) {
  dc <- fit_devcomp(object)
  n <- dc$n
  dc$ld_L2 + n * (1 + log(2 * pi * dc$pwrss / n)) - dc$sum_log_weights
}

#' @rdname lmm-accessors
#' @export
deviance.mlmfit_lmm <- function(object, REML = NULL, ...) {
  fitted_reml <- fit_reml(object)
  if (is.null(REML)) REML <- fitted_reml
  if (isTRUE(REML) && !fitted_reml) {
    mlm_abort("The REML criterion of an ML fit is not available; refit with {.code REML = TRUE}.",
              "mlmfit_error_argument")
  }
  if (isTRUE(REML) || !fitted_reml) fit_devcomp(object)$criterion else ml_deviance_at_estimates(object)
}

#' @rdname lmm-accessors
#' @export
nobs.mlmfit <- function(object, ...) spec_nobs(object)

#' Number of levels of each grouping factor
#'
#' @param object A fit from [lmm()].
#' @param ... Unused.
#' @return A named integer vector.
#' @examples
#' ngrps(lmm(math ~ homework + (homework | schid), nels88))
#' @export
ngrps <- function(object, ...) UseMethod("ngrps")

#' @rdname ngrps
#' @export
ngrps.mlmfit <- function(object, ...) {
  vapply(re_blocks(object), function(b) as.integer(b$n_levels), integer(1))
}

#' @rdname lmm-accessors
#' @export
fitted.mlmfit <- function(object, ...) {
  observation_vector(object, fit_fitted(object))
}

#' @rdname lmm-accessors
#' @export
residuals.mlmfit_lmm <- function(object, type = c("response", "pearson", "working", "deviance"), scaled = FALSE, ...) {
  type <- match.arg(type)
  r <- spec_y(object) - fit_fitted(object)
  w <- spec_weights(object)
  if (type %in% c("pearson", "deviance") && !is.null(w)) r <- r * sqrt(w)
  if (scaled) r <- r / fit_sigma(object)
  observation_vector(object, r)
}

#' @rdname lmm-accessors
#' @export
formula.mlmfit <- function(x, ...) spec_formula(x)

#' @rdname lmm-accessors
#' @export
model.frame.mlmfit <- function(formula, ...) spec_frame(formula)

#' @rdname lmm-accessors
#' @export
model.matrix.mlmfit <- function(object, ...) spec_X(object)

#' @rdname lmm-accessors
#' @export
terms.mlmfit <- function(x, ...) spec_fixed_terms(x)

#' @rdname lmm-accessors
#' @export
weights.mlmfit <- function(object, ...) {
  w <- spec_weights(object) %||% rep(1, nobs(object))
  stats::setNames(w, rownames(spec_frame(object)))
}

#' @export
getCall.mlmfit <- function(x, ...) fit_call(x)

# One value per observation of the fit, named by the rows of the model
# frame, with NA in the rows na.exclude dropped (fitted values, residuals).
observation_vector <- function(fit, values) {
  frame <- spec_frame(fit)
  stats::naresid(attr(frame, "na.action"), stats::setNames(as.vector(values), rownames(frame)))
}

# The values of the observations of the fit alone, from a vector that
# observation_vector() padded with NA for the rows na.exclude dropped
# (augment() has one row per observation, as broom.mixed's).
fitted_rows_only <- function(fit, values) {
  omit <- attr(spec_frame(fit), "na.action")
  if (inherits(omit, "exclude")) values[-omit] else values
}
