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
#' @param add.dropped For `fixef()`: add `NA` for the columns of the
#'   fixed-effect model matrix dropped as aliased, in their places (lme4's).
#' @export
fixef.mlmfit <- function(object, add.dropped = FALSE, ...) {
  warn_unused_dots(..., method = "fixef")
  beta <- fit_beta(object)
  if (!isTRUE(add.dropped) || length(spec_dropped(object)) == 0L) return(beta)
  all_columns <- full_x_names(object)
  out <- stats::setNames(rep(NA_real_, length(all_columns)), all_columns)
  out[names(beta)] <- beta
  out
}

# Every column of the fixed-effect model matrix before aliased ones were
# dropped, in model.matrix()'s order (from one row of the model frame).
full_x_names <- function(object) {
  one_row <- spec_frame(object)[1L, , drop = FALSE]
  colnames(stats::model.matrix(spec_fixed_terms(object), one_row, contrasts.arg = spec_contrasts(object)))
}

#' @rdname lmm-accessors
#' @export
vcov.mlmfit <- function(object, ...) {
  warn_unused_dots(..., method = "vcov")
  fit_vcov(object)
}

#' @rdname lmm-accessors
#' @export
sigma.mlmfit_lmm <- function(object, ...) {
  warn_unused_dots(..., method = "sigma")
  fit_sigma(object)
}

n_covariance_parameters <- function(object) length(fit_theta(object)) + n_residual_parameters(object)

#' @rdname lmm-accessors
#' @export
logLik.mlmfit_lmm <- function(object, REML = NULL, ...) {
  warn_unused_dots(..., method = "logLik")
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
  warn_unused_dots(..., method = "deviance")
  fitted_reml <- fit_reml(object)
  if (is.null(REML)) REML <- fitted_reml
  if (isTRUE(REML) && !fitted_reml) {
    mlm_abort("The REML criterion of an ML fit is not available; refit with {.code REML = TRUE}.",
              "mlmfit_error_argument")
  }
  if (isTRUE(REML) || !fitted_reml) fit_devcomp(object)$criterion else ml_deviance_at_estimates(object)
}

#' @rdname lmm-accessors
#' @param use.fallback For `nobs()`: the generic's argument (a fit always
#'   knows the observations it used).
#' @export
nobs.mlmfit <- function(object, use.fallback = FALSE, ...) {
  # use.fallback: the generic's argument (step() passes it); a fit always knows its rows
  warn_unused_dots(..., method = "nobs")
  spec_nobs(object)
}

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
  warn_unused_dots(..., method = "ngrps")
  vapply(re_blocks(object), function(b) as.integer(b$n_levels), integer(1))
}

#' @rdname lmm-accessors
#' @export
fitted.mlmfit <- function(object, ...) {
  warn_unused_dots(..., method = "fitted")
  observation_vector(object, fit_fitted(object))
}

#' @rdname lmm-accessors
#' @export
residuals.mlmfit_lmm <- function(object, type = c("response", "pearson", "working", "deviance"), scaled = FALSE, ...) {
  warn_unused_dots(..., method = "residuals")
  observation_vector(object, residual_values(object, match.arg(type), scaled))
}

# Residuals of a fit on its rows (see observation_vector() for the rows of
# the data): one rule per kind of fit.
residual_values <- function(object, type, scaled = FALSE) {
  if (inherits(object, "mlmfit_glmm")) return(glmm_residual_values(object, type, scaled))
  if (is_structured(object)) return(structured_residual_values(object, type, scaled))
  r <- spec_y(object) - fit_fitted(object)
  w <- spec_weights(object)
  if (type %in% c("pearson", "deviance") && !is.null(w)) r <- r * sqrt(w)
  if (scaled) r <- r / fit_sigma(object)
  r
}

#' @rdname lmm-accessors
#' @param fixed.only,random.only For `formula()`, `terms()` and
#'   `model.frame()`: only the fixed part or only the random-effect terms,
#'   as lme4's methods (`terms()` gives the fixed part by default).
#' @export
formula.mlmfit <- function(x, fixed.only = FALSE, random.only = FALSE, ...) {
  warn_unused_dots(..., method = "formula")
  check_only_one_part(fixed.only, random.only)
  if (fixed.only) return(spec_fixed_formula(x))
  if (random.only) return(random_only_formula(x))
  spec_formula(x)
}

check_only_one_part <- function(fixed.only, random.only) {
  if (isTRUE(fixed.only) && isTRUE(random.only)) {
    mlm_abort("Give at most one of {.arg fixed.only} and {.arg random.only}.", "mlmfit_error_argument")
  }
}

# The response and the random-effect terms of the model, as lme4 writes it.
random_only_formula <- function(x) {
  f <- spec_formula(x)
  bars <- find_bars(f[[3L]])
  rhs <- Reduce(function(a, b) call("+", a, b), lapply(bars, function(b) call("(", b)))
  stats::as.formula(call("~", f[[2L]], rhs), env = environment(f))
}

#' @rdname lmm-accessors
#' @export
model.frame.mlmfit <- function(formula, fixed.only = FALSE, ...) {
  warn_unused_dots(..., method = "model.frame")
  frame <- spec_frame(formula)
  if (!isTRUE(fixed.only)) return(frame)
  vars <- vapply(as.list(attr(spec_fixed_terms(formula), "variables"))[-1L], deparse1, "")
  frame[intersect(vars, names(frame))]
}

#' @rdname lmm-accessors
#' @param type For `model.matrix()`: `"fixed"` (X), `"random"` (Z, sparse,
#'   as `lme4::getME(fit, "Z")`: a column per random effect, terms in lme4's
#'   order, levels within terms, named by the levels) or `"randomListRaw"`
#'   (the model matrix of each random-effect term's left-hand side, named
#'   `"lhs | group"`, as lme4).
#' @export
model.matrix.mlmfit <- function(object, type = c("fixed", "random", "randomListRaw"), ...) {
  warn_unused_dots(..., method = "model.matrix")
  type <- match.arg(type)
  switch(type,
    fixed = spec_X(object),
    random = {
      if (!requireNamespace("Matrix", quietly = TRUE)) {
        mlm_abort("{.code model.matrix(type = \"random\")} returns a sparse matrix: install the Matrix package.",
                  "mlmfit_error_missing_package")
      }
      Matrix::t(merMod_Zt(object, merMod_layout(object)))
    },
    randomListRaw = random_term_matrices(object))
}

# The model matrix of each random-effect term's left-hand side (rows of the
# fit, lme4's order of the terms, each with its "assign" attribute).
random_term_matrices <- function(object) {
  lay <- merMod_layout(object)
  frame <- spec_frame(object)
  out <- lapply(lay$terms, function(tm) {
    Z <- term_z(object, tm)
    rownames(Z) <- rownames(frame)
    tt <- stats::terms(stats::as.formula(call("~", tm$lhs), env = environment(spec_formula(object))))
    attr(Z, "assign") <- attr(stats::model.matrix(tt, frame[1L, , drop = FALSE]), "assign")
    Z
  })
  stats::setNames(out, lay$bar_names)
}

#' @rdname lmm-accessors
#' @export
terms.mlmfit <- function(x, fixed.only = TRUE, random.only = FALSE, ...) {
  warn_unused_dots(..., method = "terms")
  if (missing(fixed.only) && isTRUE(random.only)) fixed.only <- FALSE
  check_only_one_part(fixed.only, random.only)
  if (fixed.only) return(spec_fixed_terms(x))
  if (random.only) return(stats::terms(bars_to_plus(random_only_formula(x))))
  spec_frame_terms(x)
}

#' @rdname lmm-accessors
#' @export
weights.mlmfit <- function(object, ...) {
  warn_unused_dots(..., method = "weights")
  # the rows of the fit, unpadded even with na.exclude, as lme4's (tools
  # such as ggeffects read them so)
  as.vector(spec_weights(object) %||% rep(1, nobs(object)))
}

#' @export
getCall.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "getCall")
  fit_call(x)
}

#' @rdname lmm-accessors
#' @export
df.residual.mlmfit <- function(object, ...) {
  warn_unused_dots(..., method = "df.residual")
  residual_df(object)
}

# Observations minus the parameters logLik() counts (lme4's df.residual()
# and the df.resid of its summary).
residual_df <- function(object) nobs(object) - attr(stats::logLik(object), "df")

# Per-observation values (fitted values, residuals, weights, leverages,
# Cook's distances, predictions and simulations for the data of the fit)
# are computed on the rows of the fit; the methods users call give them
# through observation_vector(), one per row of the data: named by the rows,
# with NA in the rows na.exclude dropped for missing values (as lm's and
# lme4's methods do). Internal code and augment() use the values on the
# rows of the fit.
observation_vector <- function(fit, values, na_action = attr(spec_frame(fit), "na.action")) {
  frame <- spec_frame(fit)
  stats::naresid(na_action, stats::setNames(as.vector(values), rownames(frame)))
}

# The values of the observations of the fit alone, from a vector that
# observation_vector() padded with NA for the rows na.exclude dropped
# (augment() has one row per observation, as broom.mixed's).
fitted_rows_only <- function(fit, values) {
  omit <- attr(spec_frame(fit), "na.action")
  if (inherits(omit, "exclude")) values[-omit] else values
}
