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
fixef.mlmfit <- function(object, ...) object$beta

#' @rdname lmm-accessors
#' @export
vcov.mlmfit <- function(object, ...) object$vcov

#' @rdname lmm-accessors
#' @export
sigma.mlmfit_lmm <- function(object, ...) object$sigma

n_covariance_parameters <- function(object) length(object$theta) + n_residual_parameters(object)

#' @rdname lmm-accessors
#' @export
logLik.mlmfit_lmm <- function(object, REML = NULL, ...) {
  val <- -0.5 * deviance.mlmfit_lmm(object, REML = REML)
  structure(val, nobs = nobs(object), nall = nobs(object),
            df = length(object$beta) + n_covariance_parameters(object) + 1L, class = "logLik")
}

ml_deviance_at_estimates <- function(object) {
  dc <- object$devcomp
  n <- dc$n
  dc$ld_L2 + n * (1 + log(2 * pi * dc$pwrss / n)) - dc$sum_log_weights
}

#' @rdname lmm-accessors
#' @export
deviance.mlmfit_lmm <- function(object, REML = NULL, ...) {
  if (is.null(REML)) REML <- object$REML
  if (isTRUE(REML) && !object$REML) {
    mlm_abort("The REML criterion of an ML fit is not available; refit with {.code REML = TRUE}.",
              "mlmfit_error_argument")
  }
  if (isTRUE(REML) || !object$REML) object$devcomp$deviance else ml_deviance_at_estimates(object)
}

#' @rdname lmm-accessors
#' @export
nobs.mlmfit <- function(object, ...) nrow(object$X)

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
  vapply(object$re$blocks, function(b) as.integer(b$n_levels), integer(1))
}

#' @rdname lmm-accessors
#' @export
fitted.mlmfit <- function(object, ...) {
  stats::naresid(attr(object$frame, "na.action"), stats::setNames(object$fitted, rownames(object$frame)))
}

#' @rdname lmm-accessors
#' @export
residuals.mlmfit_lmm <- function(object, type = c("response", "pearson", "working", "deviance"), scaled = FALSE, ...) {
  type <- match.arg(type)
  r <- object$y - object$fitted
  if (type %in% c("pearson", "deviance") && !is.null(object$prior_weights)) r <- r * sqrt(object$prior_weights)
  if (scaled) r <- r / object$sigma
  stats::naresid(attr(object$frame, "na.action"), stats::setNames(as.vector(r), rownames(object$frame)))
}

#' @rdname lmm-accessors
#' @export
formula.mlmfit <- function(x, ...) {
  # stats::step() replaces the formula by the fixed-effect terms
  if (length(find_bars(x$formula[[3L]])) == 0L) return(with_random_terms(x$formula, x))
  x$formula
}

#' @rdname lmm-accessors
#' @export
model.frame.mlmfit <- function(formula, ...) formula$frame

#' @rdname lmm-accessors
#' @export
model.matrix.mlmfit <- function(object, ...) object$X

#' @rdname lmm-accessors
#' @export
terms.mlmfit <- function(x, ...) x$terms

#' @rdname lmm-accessors
#' @export
weights.mlmfit <- function(object, ...) {
  w <- object$prior_weights
  if (is.null(w)) w <- rep(1, nobs(object))
  stats::setNames(w, rownames(object$frame))
}

#' @export
getCall.mlmfit <- function(x, ...) x$call
