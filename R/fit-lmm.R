#' Fit a linear mixed model
#'
#' Fits a linear mixed-effects (multilevel) model by REML or maximum
#' likelihood. The model is written as in lme4: fixed effects as in [lm()],
#' random effects as terms `(lhs | group)`.
#'
#' Random-effect terms:
#' * `(1 | g)` a random intercept for each level of `g`;
#' * `(1 + x | g)` correlated random intercept and slope; `(0 + x | g)` a slope alone;
#' * `(1 + x || g)` intercept and slope independent;
#' * `(1 | a/b)` `b` nested in `a` (the same as `(1 | a) + (1 | b:a)`);
#' * `(1 | a) + (1 | b)` crossed factors; any number of terms.
#'
#' The engine forms the cross-products of the model matrices once and
#' optimises the profiled deviance (Bates et al. 2015) over the relative
#' covariance parameters `theta` in C++; each evaluation costs nothing per
#' observation.
#'
#' With `correlation` or `variance` the residuals within a group have
#' covariance `sigma^2 R`, `R = S C S` with `C` the correlation structure and
#' `S` the standard deviations of the variance function, as in
#' [nlme::lme()]. Their parameters are estimated with the variance
#' components by REML or ML: the engine whitens the model within groups and
#' profiles as before. For AR(1) and CAR(1) with few distinct gaps between
#' occasions, compound symmetry and `varIdent` alone, the whitened
#' cross-products are combinations of cross-products formed once, so an
#' evaluation still costs nothing per observation; otherwise it costs one
#' pass over the data. The estimates are shown by [summary()] and
#' [VarCorr()] as nlme shows them, returned by [residual_parameters()] and
#' counted in [logLik()]'s degrees of freedom; [getVarCov()],
#' [residual_covariance()] and `residuals(fit, type = "normalized")` give
#' the estimated structure. Such a fit has class
#' `c("mlmfit_lmm_structured", "mlmfit_lmm", "mlmfit")`.
#'
#' @section Methods for fits with a residual structure:
#' Every method accounts for the structure or refuses:
#' * [predict()] gives nlme's `predict.lme()` predictions (fixed part plus
#'   the random effects' conditional modes, no residual-correlation
#'   adjustment for new observations);
#' * [simulate()] draws residuals with the fitted covariance `sigma^2 R`;
#' * [refit()], [parametric_bootstrap()] and `confint(method = "boot")`
#'   refit the whole model, structure included, and report its parameters;
#' * `confint(method = "profile")` profiles the likelihood over every
#'   parameter, the structure's included; `"Wald"` covers the fixed effects;
#' * [summary()], [anova()] (one fit) and [emmeans][emmeans::emmeans()] use
#'   Satterthwaite's degrees of freedom, with the structure's parameters
#'   among the variance parameters; Kenward-Roger's method is refused;
#' * [anova()] of several fits compares log-likelihoods whose degrees of
#'   freedom count the structure's parameters (REML fits are refitted by ML,
#'   structure included, when their fixed effects differ); [ranova()] keeps
#'   the structure in each reduced model ([nlme::gls()] when no random
#'   effect is left);
#' * [hatvalues()] and [cooks.distance()] are refused.
#'
#' @section Errors and messages:
#' Input that cannot be fitted is refused with an error of class
#' `mlmfit_error` and a more specific class (`mlmfit_error_variable`,
#' `_response`, `_nonfinite`, `_missing`, `_weights`, `_offset`, `_data`,
#' `_empty`, `_grouping`, `_identifiability`, `_fit`, ...) that names the
#' variable, the rows of `data` where it applies, and what to do; `NaN` is
#' refused rather than dropped as missing. A fit on the boundary (a variance
#' estimated as zero) is not an error: it is reported with a message of
#' class `mlmfit_message_singular` (see [is_singular()]), and dropped
#' aliased columns with one of class `mlmfit_message_rank`.
#'
#' @param formula A two-sided formula with fixed effects and at least one
#'   random-effect term, e.g. `y ~ x + (1 + x | g)`.
#' @param data A data frame holding the variables, or a lazy table of a
#'   database (`dplyr::tbl()`): see [database-fits].
#' @param REML Fit by restricted maximum likelihood (`TRUE`, default) or by
#'   maximum likelihood (`FALSE`).
#' @param weights Optional prior weights: the residual variance of
#'   observation `i` is `sigma^2 / weights[i]` (lme4's meaning).
#' @param offset Optional known term added to the linear predictor.
#' @param subset Optional expression selecting rows of `data`.
#' @param na.action How to handle missing values; rows with any missing
#'   variable are dropped by default.
#' @param control Settings from [lmm_control()].
#' @param correlation Optional correlation structure of the residuals within
#'   groups, made by nlme's constructors: [nlme::corAR1()] (`form = ~ 1 | g`
#'   for the order of the observations in each group, or `~ time | g` for
#'   whole-number times with gaps where occasions are missing),
#'   [nlme::corCAR1()] (`~ time | g`, continuous time) or
#'   [nlme::corCompSymm()] (`~ 1 | g`). The groups must lie within the
#'   levels of every grouping factor of the random effects (nlme's rule);
#'   without `| g` the innermost grouping factor is used.
#' @param variance Optional variance function of the residuals, made by
#'   [nlme::varIdent()] (`form = ~ 1 | stratum`: one standard deviation per
#'   stratum), [nlme::varPower()] (`form = ~ v`: standard deviation
#'   proportional to `|v|^power`), [nlme::varExp()] (`form = ~ v`:
#'   proportional to `exp(expon * v)`) or [nlme::varConstPower()]
#'   (`form = ~ v`: proportional to `const + |v|^power`). Without `form`,
#'   `varPower()`, `varExp()` and `varConstPower()` take the fitted values
#'   `X beta + Z b` as `v` (nlme's default
#'   `form = ~ fitted(.)`): as [nlme::lme()] does, the fit alternates with
#'   updates of `v` to its fitted values until the parameters change by less
#'   than a relative 1e-6, and the last fit's fitted values are kept as the
#'   covariate (refits and bootstraps iterate again; profiles hold them).
#' @return An object of class `c("mlmfit_lmm", "mlmfit")`, with methods for
#'   [print()], [summary()], [fixef()], [ranef()], [coef()], [VarCorr()],
#'   [vcov()], [sigma()], [logLik()], [AIC()], [BIC()], [deviance()],
#'   [nobs()], [ngrps()], [fitted()], [residuals()], [predict()] and more.
#' @references Bates, D., Maechler, M., Bolker, B. and Walker, S. (2015).
#'   Fitting linear mixed-effects models using lme4. *Journal of
#'   Statistical Software* 67(1), 1-48. \doi{10.18637/jss.v067.i01}
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' fit
#' summary(fit)
#' fixef(fit)
#' VarCorr(fit)
#'
#' # maximum likelihood, and uncorrelated random effects
#' lmm(math ~ homework + (homework || schid), nels88, REML = FALSE)
#'
#' # growth curves with AR(1) residuals within subjects (nlme's Ovary data)
#' lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), nlme::Ovary,
#'     correlation = nlme::corAR1(form = ~ 1 | Mare))
#'
#' # a residual standard deviation for each sex
#' lmm(distance ~ age * Sex + (1 | Subject), nlme::Orthodont,
#'     variance = nlme::varIdent(form = ~ 1 | Sex))
#' @export
lmm <- function(formula, data, REML = TRUE, weights = NULL, offset = NULL, subset,
                na.action = stats::na.omit, control = lmm_control(), correlation = NULL, variance = NULL) {
  mc <- match.call()
  if (!is.logical(REML) || length(REML) != 1L || is.na(REML)) {
    mlm_abort("{.arg REML} must be {.code TRUE} or {.code FALSE}.", "mlmfit_error_argument")
  }
  if (!inherits(control, "lmm_control")) {
    mlm_abort("{.arg control} must come from {.fn lmm_control}.", "mlmfit_error_argument")
  }
  data <- if (!missing(data)) data
  if (inherits(data, "tbl_sql")) {
    return(db_lmm(mc, formula, data, REML, na.action, control, correlation, variance, parent.frame()))
  }
  spec <- model_spec(formula, mc, parent.frame(), na.action, correlation = correlation, variance = variance,
                     residual_method = control$residual_method, data = data)
  check_reml_identifiable(spec, REML)
  check_response_varies(spec)
  fit <- new_lmm_fit(spec, engine_fit(spec, control, REML), mc, REML, control)
  report_unbounded_variance_function(fit)
  report_singular(fit)
  fit
}

# REML needs more observations than fixed effects.
check_reml_identifiable <- function(spec, REML) {
  n <- spec_nobs(spec)
  p <- length(spec_x_names(spec))
  if (REML && p >= n) {
    mlm_abort("There are {p} fixed effects for {n} observations: REML needs more observations than fixed effects.",
              "mlmfit_error_identifiability")
  }
}

#' Settings for fitting linear mixed models
#'
#' @param max_evals Largest number of deviance evaluations.
#' @param tolerance Convergence tolerance: the optimiser stops when the
#'   decrease it predicts for the deviance (measured from its value at the
#'   start) is below `tolerance * (1 + |change|)`, or below the rounding
#'   noise of the deviance (about `1e-13 * |deviance|`, so that fits of
#'   millions of rows stop where the deviance cannot resolve more).
#' @param step Relative step of the finite differences used for gradients.
#' @param boundary_tol Diagonal entries of the relative covariance factor
#'   below this are tried at zero (a singular fit) and kept there when the
#'   deviance does not rise.
#' @param cond_var Make the conditional variances of the random effects
#'   available (`ranef(condVar = TRUE)` and the methods built on it). They
#'   are computed when a method first asks for them, and kept with the fit.
#' @param residual_method How a fit with a `correlation` or `variance`
#'   structure forms its whitened cross-products at each evaluation:
#'   `"auto"` (default) combines cross-products formed once where the
#'   structure allows it and makes one pass over the data otherwise;
#'   `"classes"` and `"pass"` force one way (for checks and benchmarks).
#' @return A list of class `lmm_control`.
#' @examples
#' lmm_control(tolerance = 1e-12)
#' @export
lmm_control <- function(max_evals = 20000L, tolerance = 1e-12, step = 1e-5, boundary_tol = 1e-3,
                        cond_var = TRUE, residual_method = c("auto", "classes", "pass")) {
  settings <- optimizer_settings(max_evals, tolerance, step, boundary_tol, cond_var)
  settings$residual_method <- match.arg(residual_method)
  class(settings) <- "lmm_control"
  settings
}

# The settings of the optimiser and of its tests at the optimum that
# lmm_control() and glmm_control() share, in the form the engine reads.
optimizer_settings <- function(max_evals, tolerance, step, boundary_tol, cond_var) {
  list(max_evals = as.integer(max_evals), f_tol = as.double(tolerance), step_rel = as.double(step),
       boundary_tol = as.double(boundary_tol), cond_var = isTRUE(cond_var))
}

# The fit object of a linear mixed model (with or without a residual
# structure) from the engine's answer: a fit, a refit or an evaluation at
# given parameters (then `engine$theta` and, with a structure, `engine$psi`
# are the parameters). Refuses answers that are not estimates, and reports
# convergence problems.
new_lmm_fit <- function(spec, engine, call, REML, control) {
  check_lmm_engine_answer(spec, engine)
  spec <- spec_with_fitted_covariate(spec, engine)
  report_convergence(engine$optinfo$warnings)
  p_names <- spec_x_names(spec)
  vc <- engine$vcov
  dimnames(vc) <- list(p_names, p_names)
  fields <- c(list(spec = spec, call = call, control = control, REML = REML), engine_estimates(spec, engine), list(
    vcov = vc, fitted = as.vector(engine$fitted),
    devcomp = list(criterion = engine$deviance, ld_L2 = engine$ld_L2, ld_RX2 = engine$ld_RX2, pwrss = engine$pwrss,
                   n = spec_nobs(spec), p = length(p_names), sum_log_weights = engine$xp$sum_log_weights),
    optinfo = engine$optinfo %||% list(warnings = character()), xp = engine$xp,
    cache = new.env(parent = emptyenv())
  ))
  class <- c("mlmfit_lmm", "mlmfit")
  if (!is.null(res <- spec_residual(spec))) {
    fields$psi <- stats::setNames(as.vector(engine$psi), residual_parameter_names(res))
    fields$log_det_R <- engine$log_det_R
    fields$whitening <- engine$whitening
    class <- c("mlmfit_lmm_structured", class)
  }
  new_mlmfit(fields, class)
}

# The estimates every engine answer holds, named: theta, beta, sigma and the
# conditional modes.
engine_estimates <- function(spec, engine) {
  list(theta = stats::setNames(as.vector(engine$theta), names(theta_start(spec))),
       beta = stats::setNames(as.vector(engine$beta), spec_x_names(spec)), sigma = engine$sigma,
       b = per_block(engine$b, spec))
}

# The conditional covariances of the random effects of a linear mixed model
# (with or without a residual structure: its cross-products are whitened at
# the optimum), computed when a method first asks for them: they cost a
# selected inverse, as much as two or three deviance evaluations, which a
# fit does not need. The same numbers as at the end of the fit (the same
# factorisation at the same theta). None when the fit's control says so.
lmm_cond_var <- function(fit) {
  if (!isTRUE(fit_control(fit)$cond_var)) return(list())
  spec <- fit_spec(fit)
  ev <- engine_evaluate_lmm(spec, fit_xp(fit), fit_theta(fit), fit_reml(fit), cond_var = TRUE, fitted = FALSE)
  per_block(ev$cond_var, spec)
}

# The engine's pieces per block (conditional modes: q x levels matrices;
# conditional variances: q x q x levels arrays), named by block, with the
# blocks' columns and levels as dimnames of the matrices.
per_block <- function(pieces, spec) {
  if (length(pieces) == 0L) return(list())
  blocks <- re_blocks(spec)
  for (k in seq_along(pieces)) {
    if (length(dim(pieces[[k]])) == 2L) dimnames(pieces[[k]]) <- list(blocks[[k]]$colnames, blocks[[k]]$levels)
  }
  names(pieces) <- names(blocks)
  pieces
}

# An engine answer that is not an estimate is refused, saying why.
check_lmm_engine_answer <- function(spec, engine) {
  if (!is.finite(engine$deviance)) {
    mlm_abort(c("The model could not be fitted: the deviance is not finite.", i = explain_failed_fit(spec)),
              "mlmfit_error_fit")
  }
  if (identical(engine$optinfo$ray, "flat")) {
    mlm_abort(c("The data carry no information on the random-effect variances: the likelihood is the same for any of their values.",
                i = "Usually the fixed effects separate every group (group-level predictors with one value per group, or too few groups): remove such predictors or the random effect."),
              "mlmfit_error_identifiability")
  }
  if (residual_vanishes(engine) || identical(engine$optinfo$ray, "falling")) {
    # theta: where the deviance was found below every optimum (the evidence)
    mlm_abort(c("The model reproduces the response exactly: the residual variance is estimated as zero and the likelihood has no maximum.",
                i = explain_failed_fit(spec)),
              "mlmfit_error_fit", theta = stats::setNames(as.vector(engine$theta), names(theta_start(spec))))
  }
  if (isTRUE(engine$correlation_at_limit)) {
    mlm_abort(c("The residual correlation tends to a limit where its matrix is singular: the likelihood rises towards it without a maximum.",
                i = "Some group's residuals are fitted along the direction the limiting matrix leaves out; {.fn nlme::lme} stops somewhere along the way.",
                i = "Remove the {.arg correlation} structure or the random effect that competes with it."),
              "mlmfit_error_fit")
  }
  invisible()
}
