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
#' Fits with a residual `correlation` or `variance` structure are supported
#' where the method does not need lme4's matrices.
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
  eta <- unname(as.vector(do.call(stats::predict, args)))
  linkinv <- if (inherits(x, "mlmfit_glmm")) family(x)$linkinv else identity
  out <- if (link_scale) eta else linkinv(eta)
  ci_data <- NULL
  if (!is.null(ci) && !conditional) {
    se <- unname(predict(x, newdata = args$newdata, re.form = NA, se.fit = TRUE)$se.fit)
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
  data <- getData.mlmfit(x)
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
