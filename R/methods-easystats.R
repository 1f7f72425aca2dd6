# Methods for insight's generics, through which performance, parameters,
# ggeffects and sjPlot read a model: its formula split into fixed and
# random parts, the model information, statistics and degrees of freedom,
# the variance decomposition, the log-likelihood and predictions. Registered
# in .onLoad() (methods-registration.R) when insight is installed.

#' Support for insight, performance, parameters, ggeffects and sjPlot
#'
#' When the insight package is installed, its functions work on fits from
#' [lmm()] and [glmm()], and so do the packages built on it:
#' `performance::icc()`, `r2()`, `model_performance()`,
#' `compare_performance()`, `check_singularity()`, `check_model()`,
#' `parameters::model_parameters()`, `ggeffects::ggpredict()`,
#' `sjPlot::tab_model()` and `plot_model()`. The numbers are those the same
#' calls give for the corresponding lme4 fit: statistics and p-values of the
#' fixed effects as `summary()` of lme4 gives them (t with residual degrees
#' of freedom for linear mixed models unless Satterthwaite's or
#' Kenward-Roger's are asked for, z for GLMMs), and the variance
#' decomposition of Nakagawa, Johnson and Schielzeth (2017) (see [icc()]).
#' Rows left out by `na.action = na.exclude` are left out as for lme4's
#' fits (one value per observation of the fit).
#'
#' `performance::compare_performance()` and performance's `test_*()`
#' functions (`test_likelihoodratio()`, `test_performance()`, ...) gather
#' their models with insight's `ellipsis_info()` and then keep only the
#' model classes insight lists. When the first model is a fit from mlmfit,
#' its method hands every fit on as its lme4 object ([as_lmerMod()],
#' [as_glmerMod()]; lme4's model matrices are built once per fit), so the
#' table is that of the lme4 fits, with "lmerMod" or "glmerMod" in its
#' `Model` column. Put a fit from mlmfit first: after another package's
#' model, performance drops it as unsupported (with a warning, or an error
#' when one model is left).
#'
#' `insight::find_statistic()` is not supported: it is no generic and
#' accepts only the classes it lists, so it stops with "The entered object
#' is not a model object" (never a wrong answer). The name of the statistic
#' is the `"statistic"` attribute of `insight::get_statistic(fit)`
#' ("t-statistic" for fits from [lmm()], "z-statistic" for fits from
#' [glmm()], as for lme4's).
#'
#' Fits with a residual `correlation` or `variance` structure are supported
#' where the method does not need lme4's objects: insight's accessors,
#' `icc()`, `r2()` and `model_performance()` (with the residual variance of
#' the reference stratum, as insight takes it for `nlme::lme` fits),
#' `ggpredict()`. The calls that need lme4's objects (`model_parameters()`,
#' `tab_model()`, `plot_model()`, `compare_performance()`) and
#' `check_model()` (which needs leverages) stop with an error of class
#' `mlmfit_error_residual_structure`.
#'
#' @param x,model A fit from [lmm()] or [glmm()].
#' @param ... Passed on, or unused.
#' @name mlmfit-insight
#' @keywords internal
#' @examplesIf requireNamespace("performance", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' performance::icc(fit)
#' performance::r2(fit)
#' insight::find_formula(fit)
NULL

insight_find_formula <- function(x, verbose = TRUE, ...) {
  f <- stats::formula(x)
  bars <- find_bars(f[[3L]])
  random <- lapply(bars, function(b) stats::as.formula(call("~", b), env = environment(f)))
  if (length(random) == 1L) random <- random[[1L]]
  out <- list(conditional = spec_fixed_formula(x), random = random)
  structure(out, class = c("insight_formula", "list"))
}

# insight's model_info() reads family(); a linear mixed model is gaussian.
#' @rdname mlmfit-insight
#' @export
family.mlmfit_lmm <- function(object, ...) {
  warn_unused_dots(..., method = "family")
  stats::gaussian()
}

insight_find_statistic <- function(x, ...) {
  if (has_scale(x)) "t-statistic" else "z-statistic"
}

insight_get_statistic <- function(x, ...) {
  beta <- fixef(x)
  out <- data.frame(Parameter = names(beta), Statistic = unname(beta / sqrt(diag(vcov(x)))),
                    stringsAsFactors = FALSE)
  attr(out, "statistic") <- insight_find_statistic(x)
  out
}

# Degrees of freedom as insight gives them for lme4 fits: residual
# (observations minus the parameters counted by logLik()), Inf for z tests
# ("wald" and "normal"), or Satterthwaite's and Kenward-Roger's for each
# fixed effect of a linear mixed model.
insight_get_df <- function(x, type = "residual", ...) {
  type <- match.arg(tolower(type), c("residual", "model", "analytical", "satterthwaite", "kenward", "kenward-roger",
                                     "kr", "normal", "wald"))
  residual <- nobs(x) - attr(stats::logLik(x), "df")
  switch(type,
         residual = , analytical = residual,
         model = attr(stats::logLik(x), "df"),
         normal = Inf,
         wald = if (insight_find_statistic(x) == "z-statistic") Inf else residual,
         satterthwaite = , kenward = , `kenward-roger` = , kr = {
           if (!inherits(x, "mlmfit_lmm")) return(Inf)
           ddf <- if (type == "satterthwaite") "Satterthwaite" else "Kenward-Roger"
           stats::setNames(fixed_effects_table(x, ddf)[, "df"], names(fixef(x)))
         })
}

insight_find_algorithm <- function(x, ...) {
  list(algorithm = if (fit_reml(x)) "REML" else "ML", optimizer = "mlmfit")
}

insight_is_converged <- function(x, tolerance = 0.001, ...) {
  optinfo <- fit_optinfo(x)
  structure(length(optinfo$warnings) == 0L, gradient = optinfo$gradient)
}

insight_get_loglikelihood <- function(x, estimator = NULL, REML = FALSE, check_response = FALSE, verbose = TRUE, ...) {
  if (identical(estimator, "REML")) REML <- TRUE
  if (!inherits(x, "mlmfit_lmm")) REML <- FALSE
  ll <- if (is.null(estimator) && missing(REML)) stats::logLik(x) else stats::logLik(x, REML = isTRUE(REML))
  structure(as.numeric(ll), df = attr(ll, "df"), nobs = attr(ll, "nobs"), estimator = if (isTRUE(REML)) "REML" else "ML",
            class = c("logLik", "numeric"))
}

insight_get_variance <- function(x, component = c("all", "fixed", "random", "residual", "distribution", "dispersion",
                                                  "intercept", "slope", "rho01", "rho00"),
                                 verbose = TRUE, tolerance = 1e-05, approximation = "lognormal", ...) {
  component <- match.arg(component)
  v <- latent_variances(x, approximation)
  if (is_singular(x, tol = tolerance) && !component %in% c("slope", "intercept")) {
    if (verbose) {
      mlm_warn(c("The random-effect variances are not computed: the fit is singular (a variance is estimated as zero).",
                 i = "Simplify the random effects (see {.fn is_singular})."), "mlmfit_warning_singular")
    }
    v$var.random <- NULL
  }
  if (component == "all") return(v)
  key <- switch(component, rho01 = "cor.slope_intercept", rho00 = "cor.slopes", paste0("var.", component))
  v[[key]]
}

# Predictions for insight (and ggeffects, which calls it): on new data
# population-level unless include_random = TRUE (ggeffects' default for
# lme4 fits), with confidence limits of the population-level predictions
# from vcov(beta) (t with the residual df for linear mixed models, normal
# for GLMMs), transformed by the inverse link as ggeffects does.
insight_get_predicted <- function(x, data = NULL, predict = "expectation", ci = 0.95, include_random = "default",
                                  verbose = TRUE, ...) {
  newdata <- data %||% stats::model.frame(x)
  conditional <- isTRUE(include_random) || (identical(include_random, "default") && is.null(data))
  link_scale <- identical(predict, "link")
  args <- list(x, newdata = if (is.null(data)) NULL else newdata, re.form = if (conditional) NULL else NA)
  if (inherits(x, "mlmfit_glmm")) args$type <- "link"
  # one value per observation of the fit, as insight gives for lme4's
  # na.exclude fits (predict() pads the rows left out with NA)
  own_rows <- function(v) unname(as.vector(if (is.null(data)) fitted_rows_only(x, v) else v))
  eta <- own_rows(do.call(stats::predict, args))
  linkinv <- if (inherits(x, "mlmfit_glmm")) family(x)$linkinv else identity
  out <- if (link_scale) eta else linkinv(eta)
  ci_data <- NULL
  if (!is.null(ci) && !conditional) {
    se <- own_rows(predict(x, newdata = args$newdata, re.form = NA, se.fit = TRUE)$se.fit)
    df <- insight_get_df(x, type = "wald")
    q <- if (is.finite(df)) stats::qt((1 + ci) / 2, df) else stats::qnorm((1 + ci) / 2)
    lo <- eta - q * se
    hi <- eta + q * se
    ci_data <- data.frame(SE = se, CI_low = if (link_scale) lo else linkinv(lo), CI_high = if (link_scale) hi else linkinv(hi))
  }
  structure(out, ci_data = ci_data, ci = ci, class = c("get_predicted", "numeric"))
}

insight_find_random <- function(x, split_nested = FALSE, flatten = FALSE) {
  bars <- find_bars(stats::formula(x)[[3L]])
  groups <- unique(unlist(lapply(bars, function(b) {
    g <- b[[3L]]
    if (split_nested) vapply(expand_slash(g), deparse1, "") else deparse1(g)
  })))
  if (split_nested) groups <- unique(unlist(strsplit(groups, ":", fixed = TRUE)))
  if (flatten) groups else list(random = groups)
}

insight_find_weights <- function(x, ...) {
  w <- fit_call(x)$weights
  if (is.null(w)) NULL else deparse1(w)
}

insight_n_obs <- function(x, ...) nobs(x)

insight_get_data <- function(x, effects = "all", source = "environment", verbose = TRUE, ...) {
  effects <- match.arg(effects, c("all", "fixed", "random"))
  data <- fit_data_rows(x)
  vars <- switch(effects,
                 all = all.vars(stats::formula(x)),
                 fixed = all.vars(spec_fixed_formula(x)),
                 random = insight_find_random(x, split_nested = TRUE, flatten = TRUE))
  call <- fit_call(x)
  extra <- c(all.vars(call$weights %||% quote(NULL)), all.vars(call$offset %||% quote(NULL)))
  data[intersect(unique(c(vars, extra)), names(data))]
}

# performance::r2() is a generic of its own: its method for these fits
# is r2_nakagawa(), as for lme4 fits.
performance_r2 <- function(model, ci = NULL, tolerance = 1e-05, ...) {
  performance::r2_nakagawa(model, ci = ci, tolerance = tolerance, ...)
}

performance_check_singularity <- function(x, tolerance = 1e-05, ...) is_singular(x, tol = tolerance)

# check_model() draws Cook's distances, which a fit with a residual
# structure does not have (see hatvalues()); performance would only say
# that the class is not implemented.
performance_check_model <- function(x, ...) {
  mlm_abort(c("{.fn performance::check_model} needs leverages and Cook's distances, which a fit with a residual {.arg correlation} or {.arg variance} structure does not have.",
              i = "Inspect {.code residuals(fit, type = \"normalized\")} (nlme's normalized residuals) against {.code fitted(fit)}."),
            "mlmfit_error_residual_structure")
}

# performance's summary of a merMod fit reads the model only through
# generics (AIC, r2(), icc(), RMSE, sigma), which all work on these fits.
performance_model_performance <- function(model, ...) {
  method <- utils::getS3method("model_performance", "merMod", envir = asNamespace("performance"))
  method(model, ...)
}

insight_find_parameters <- function(x, effects = c("all", "fixed", "random"), flatten = FALSE, ...) {
  effects <- match.arg(effects)
  out <- list(conditional = names(fixef(x)))
  if (effects != "fixed") out$random <- lapply(ranef(x, condVar = FALSE), names)
  if (effects == "random") out <- out["random"]
  if (flatten) unique(unlist(out)) else out
}

insight_get_parameters <- function(x, effects = c("fixed", "random"), ...) {
  effects <- match.arg(effects)
  if (effects == "random") return(lapply(unclass(ranef(x, condVar = FALSE)), function(d) {
    attr(d, "postVar") <- NULL
    d
  }))
  beta <- fixef(x)
  data.frame(Parameter = names(beta), Estimate = unname(beta), stringsAsFactors = FALSE)
}

# As insight for lme4 fits: the ML deviance of a linear mixed model, minus
# twice the log-likelihood of a GLMM.
insight_get_deviance <- function(x, ...) {
  if (inherits(x, "mlmfit_lmm")) deviance(x, REML = FALSE) else -2 * as.numeric(stats::logLik(x))
}

insight_get_intercept <- function(x, ...) {
  beta <- fixef(x)
  if ("(Intercept)" %in% names(beta)) beta[["(Intercept)"]] else NA
}
