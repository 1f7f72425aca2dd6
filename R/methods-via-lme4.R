# Methods that hand the fit to a package's own lme4 method through the
# bridge (as_lmerMod(), as_glmerMod()): for packages that accept only the
# model classes they list (parameters, through insight's list of known
# classes) or whose merMod methods read lme4's slots (car, effects). The
# numbers are mlmfit's (the merMod is at mlmfit's estimates); the cost is
# lme4's model matrices, built once per call. Registered in .onLoad()
# (methods-registration.R) when the package is installed.

#' Support for parameters, car and effects
#'
#' When these packages are installed, `parameters::model_parameters()`,
#' `car::Anova()`, `car::linearHypothesis()`, `car::vif()` and the effects
#' package's `Effect()`, `predictorEffect()` and `allEffects()` work on
#' fits from [lmm()] and [glmm()]. They hand the fit to the package's
#' method for lme4 fits through [as_lmerMod()] or [as_glmerMod()], so the
#' results are those of the lme4 method at mlmfit's estimates (the same
#' numbers as for the lme4 fit of the same model, to the accuracy of the
#' two fits), at the cost of building lme4's model matrices once per call.
#' Fits with a residual structure are refused with an error of class
#' `mlmfit_error_residual_structure` (lme4 has no such model).
#' `performance::compare_performance()` takes the same way (see
#' [mlmfit-insight]).
#'
#' @param model,mod A fit from [lmm()] or [glmm()].
#' @param focal.predictors,predictor Passed to the effects package.
#' @param ... Passed to the package's method for lme4 fits.
#' @name mlmfit-via-lme4
#' @keywords internal
#' @examplesIf requireNamespace("car", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' data(Penicillin, package = "lme4")
#' car::Anova(lmm(diameter ~ plate + (1 | sample), Penicillin))
NULL

# The lme4 object of a fit.
as_merMod <- function(fit) {
  if (inherits(fit, "mlmfit_glmm")) as_glmerMod(fit) else as_lmerMod(fit)
}

parameters_model_parameters <- function(model, ...) {
  out <- parameters::model_parameters(as_merMod(model), ...)
  attr(out, "object_name") <- deparse1(substitute(model))
  out
}

car_Anova <- function(mod, ...) car::Anova(as_merMod(mod), ...)

car_linearHypothesis <- function(model, ...) car::linearHypothesis(as_merMod(model), ...)

car_vif <- function(mod, ...) car::vif(as_merMod(mod), ...)

effects_Effect <- function(focal.predictors, mod, ...) effects::Effect(focal.predictors, as_merMod(mod), ...)

effects_allEffects <- function(mod, ...) effects::allEffects(as_merMod(mod), ...)

effects_predictorEffect <- function(predictor, mod, ...) effects::predictorEffect(predictor, as_merMod(mod), ...)

effects_predictorEffects <- function(mod, ...) effects::predictorEffects(as_merMod(mod), ...)

# insight's ellipsis_info() gathers the models of compare_performance()
# (and of performance's test_*() functions), which then keep only the
# classes on insight's fixed list of supported models. With a fit from
# mlmfit first, the fits are handed on as their lme4 objects (as for
# parameters above), so the comparison has the numbers of the lme4 fits
# of the same models; insight's own method then does the gathering.
insight_ellipsis_info <- function(objects, ..., only_models = TRUE, verbose = TRUE) {
  call <- match.call(expand.dots = FALSE)
  models <- c(list(objects), list(...))
  if (length(models) == 1L) return(objects)
  names(models) <- vapply(c(list(call$objects), as.list(call$...)), deparse1, "")
  models <- lapply(models, function(m) if (inherits(m, "mlmfit")) as_merMod(m) else m)
  insight::ellipsis_info(models, only_models = only_models, verbose = verbose)
}

# lme4 defines leverages and Cook's distances of a GLMM from its factor
# (with a warning that the hat matrix may not make sense for GLMMs);
# performance's check_model() and check_outliers() read them.

#' @rdname lmm-influence
#' @export
hatvalues.mlmfit_glmm <- function(model, ...) stats::hatvalues(as_glmerMod(model), ...)

#' @rdname lmm-influence
#' @export
cooks.distance.mlmfit_glmm <- function(model, ...) stats::cooks.distance(as_glmerMod(model), ...)
