#' Fit a generalized linear mixed model
#'
#' Fits a generalized linear mixed-effects (multilevel) model by maximum
#' likelihood: a binary, binomial, count or positive continuous outcome
#' with random effects written as in lme4 (`(1 | g)`, `(1 + x | g)`,
#' `(x || g)`, `(1 | a/b)`, crossed terms; see [lmm()]).
#'
#' The likelihood integrates over the random effects. `nAGQ = 1` (the
#' default) uses the Laplace approximation; `nAGQ > 1` uses adaptive
#' Gauss-Hermite quadrature with that many points, more accurate and
#' available when the model has a single scalar random effect, such as
#' `(1 | g)`; `nAGQ = 0` is a faster, rougher fit in which the fixed effects
#' are estimated together with the random effects' conditional modes.
#' The fit follows `lme4::glmer()`: penalized iteratively reweighted least
#' squares (PIRLS) for the conditional modes, first over the variance
#' parameters alone (the `nAGQ = 0` criterion), then over the variance
#' parameters and fixed effects together. Everything runs in C++.
#'
#' Responses of the binomial family may be 0/1, logical, a two-level factor
#' (the first level is "failure"), proportions with the numbers of trials
#' as `weights`, or `cbind(successes, failures)`. Poisson responses are
#' counts; exposures enter as `offset(log(exposure))`.
#'
#' As in lme4, `logLik()` is minus half the approximate deviance that was
#' minimised. For `nAGQ > 1` it leaves out the constant that depends only
#' on the data (lme4 does the same), so log-likelihoods of fits with
#' `nAGQ > 1` can be compared with each other but not with Laplace fits of
#' binomial counts or Poisson data. `deviance()` is, as for glmer, the sum of
#' the squared deviance residuals.
#'
#' Complete or quasi-complete separation (a fixed effect that predicts the
#' outcome perfectly, so that its estimate is infinite) is detected and
#' reported as an error of class `mlmfit_error_separation` (or a warning,
#' see [glmm_control()]).
#'
#' @param formula A two-sided formula with fixed effects and at least one
#'   random-effect term, e.g. `y ~ x + (1 | g)`.
#' @param data A data frame holding the variables, or a lazy table of a
#'   database (`dplyr::tbl()`): see [database-fits].
#' @param family A family object, family function or its name:
#'   `binomial` (links logit, probit, cauchit, cloglog, log), `poisson`
#'   (log, identity, sqrt), `Gamma` (log, inverse, identity), or
#'   [negative_binomial()] (log link; its size `theta` estimated, or fixed as
#'   with `MASS::negative.binomial(theta)`).
#' @param nAGQ Number of adaptive Gauss-Hermite quadrature points: 1
#'   (Laplace), 2 to 25 for a single scalar random effect, or 0.
#' @param weights Optional prior weights; for a binomial proportion, the
#'   numbers of trials.
#' @param offset Optional known term added to the linear predictor.
#' @param subset Optional expression selecting rows of `data`.
#' @param na.action How to handle missing values; rows with any missing
#'   variable are dropped by default.
#' @param control Settings from [glmm_control()].
#' @return An object of class `c("mlmfit_glmm", "mlmfit")`. Besides the methods of
#'   [lmm()] fits ([fixef()], [ranef()], [coef()], [VarCorr()], [vcov()],
#'   [ngrps()], [nobs()], [formula()], ...) it has methods for [family()],
#'   [predict()] (`type = "link"` or `"response"`), [residuals()] (types
#'   deviance, pearson, working, response), [simulate()], [summary()] with z
#'   tests, [logLik()], [AIC()], [BIC()], [deviance()] and [confint()]
#'   (profile-likelihood, Wald or bootstrap intervals: [confint.mlmfit()]).
#' @references Bates, D., Maechler, M., Bolker, B. and Walker, S. (2015).
#'   Fitting linear mixed-effects models using lme4. *Journal of
#'   Statistical Software* 67(1), 1-48. \doi{10.18637/jss.v067.i01}
#' @seealso [glmm_control()], [predict.mlmfit()], [lmm()].
#' @examples
#' nels88$pass <- nels88$math >= 50
#' fit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' fit
#' summary(fit)
#' exp(fixef(fit))  # odds ratios
#'
#' # adaptive Gauss-Hermite quadrature with 9 points
#' glmm(pass ~ homework + (1 | schid), nels88, family = binomial, nAGQ = 9)
#' @export
glmm <- function(formula, data, family = stats::binomial, nAGQ = 1L, weights = NULL, offset = NULL, subset,
                 na.action = stats::na.omit, control = glmm_control()) {
  mc <- match.call()
  fam <- glmm_family(family, parent.frame())
  if (!is.numeric(nAGQ) || length(nAGQ) != 1L || is.na(nAGQ) || nAGQ < 0 || nAGQ > 25 || nAGQ != round(nAGQ)) {
    mlm_abort(c("{.arg nAGQ} must be a whole number from 0 to 25.",
                i = "Use 1 for the Laplace approximation, more for adaptive Gauss-Hermite quadrature."),
              "mlmfit_error_argument")
  }
  nAGQ <- as.integer(nAGQ)
  if (!inherits(control, "glmm_control")) {
    mlm_abort("{.arg control} must come from {.fn glmm_control}.", "mlmfit_error_argument")
  }
  data <- if (!missing(data)) data
  if (inherits(data, "tbl_sql")) return(db_glmm(mc, formula, data, fam, nAGQ, na.action, control, parent.frame()))
  spec <- model_spec(formula, mc, parent.frame(), na.action, family = fam, data = data)
  blocks <- re_blocks(spec)
  if (nAGQ > 1L && (length(blocks) != 1L || blocks[[1L]]$q != 1L)) {
    mlm_abort(c("Adaptive Gauss-Hermite quadrature ({.code nAGQ > 1}) needs a single scalar random effect, such as {.code (1 | group)}.",
                x = "This model has {length(re_terms(spec))} random-effect term{?s} with {sum(vapply(blocks, function(b) b$q, 1))} random effect{?s} per group.",
                i = "Use {.code nAGQ = 1} (the Laplace approximation)."),
              "mlmfit_error_nagq")
  }
  X <- spec_X(spec)
  separated <- check_separation(X, spec_y(spec), spec_weights(spec), fam$dist, spec_intercept_col(spec),
                                control$separation, attr(spec_fixed_terms(spec), "term.labels"), spec_xlevels(spec))
  engine <- engine_fit(spec, control, nAGQ = nAGQ)
  if (!is.null(engine$error)) {
    found <- separation_certificate(X, spec_y(spec), spec_weights(spec), spec_offset(spec), fam$family, fam$dist)
    if (length(found) > 0L) separation_found(found, "error", fam$dist)
    mlm_abort(c("The model could not be fitted: {engine$error}.",
                i = "Check for predictors with extreme scales (rescale them), groups or categories in which every outcome is the same, or simplify the random effects."),
              "mlmfit_error_fit")
  }
  if (!is.null(engine$nb_size)) spec <- spec_with_family(spec, negative_binomial(engine$nb_size, link = fam$link))
  fit <- new_glmm_fit(spec, engine, mc, nAGQ, control)
  if (length(separated) == 0L) separated <- check_separation_after(fit, control$separation)
  if (length(separated) > 0L) fit <- covariance_under_separation(fit)
  report_convergence(fit_optinfo(fit)$warnings)
  report_unused_step(fit, control)
  report_singular(fit)
  fit
}

# glmm_control(step = ) sets the differences of the first stage: a first
# stage on its analytic gradient takes none.
report_unused_step <- function(fit, control) {
  if (identical(fit_optinfo(fit)$stage1_gradient, "analytic") && !identical(control$step_rel, formals(glmm_control)$step)) {
    mlm_warn(c("{.arg step} of {.fn glmm_control} is not used for this model.",
               i = "Its first stage has the analytic gradient (canonical link) and takes no finite differences."),
             c("mlmfit_warning_unused_argument", "mlmfit_warning_argument"))
  }
}

#' Settings for fitting generalized linear mixed models
#'
#' @param max_evals Largest number of deviance evaluations in each stage.
#' @param tolerance Convergence tolerance of the optimiser: it stops when the
#'   decrease it predicts for the deviance is below
#'   `tolerance * (1 + |deviance|)`.
#' @param step Relative step of the finite differences of the first stage,
#'   where it has no analytic gradient (links other than the canonical logit
#'   and log). With a canonical link the first stage uses its
#'   analytic gradient and a `step` other than the default is reported as
#'   unused.
#' @param boundary_tol A variance parameter (diagonal entry of the relative
#'   covariance factor, in units of 1 / root mean square of its random-effect
#'   column) that ends below this is tried at zero and kept there when the
#'   deviance does not rise (lme4's `boundary.tol`; the same rule and default
#'   as [lmm_control()]).
#' @param pirls_tol PIRLS stops when no conditional mode moves by more than
#'   this. On data large enough that the first stage only gives the second
#'   its starting values (no Newton polish of its own) and with the first
#'   stage on its analytic gradient (scalar terms), the first stage's
#'   evaluations stop at 1e-7 or this, whichever is larger.
#' @param pirls_max_iter Largest number of PIRLS iterations per evaluation.
#' @param hessian Compute the Hessian of the deviance at the optimum (as
#'   glmer does): it gives the standard errors of the fixed effects with the
#'   uncertainty of the variance parameters taken into account, and checks
#'   convergence. With `FALSE` the standard errors are those given the
#'   variance parameters.
#' @param cond_var Compute the conditional variances of the random effects.
#' @param separation What to do when a fixed effect separates the outcomes
#'   (its estimate would be infinite): `"error"` (default) or `"warning"`
#'   (return the fit, whose estimate for that effect is meaningless).
#' @return A list of class `glmm_control`.
#' @examples
#' glmm_control(separation = "warning")
#' @export
glmm_control <- function(max_evals = 20000L, tolerance = 1e-12, step = 1e-5, boundary_tol = 1e-3,
                         pirls_tol = 1e-11, pirls_max_iter = 100L, hessian = TRUE, cond_var = TRUE,
                         separation = c("error", "warning")) {
  separation <- match.arg(separation)
  structure(c(optimizer_settings(max_evals, tolerance, step, boundary_tol, cond_var),
              list(pirls_tol = as.double(pirls_tol), pirls_max_iter = as.integer(pirls_max_iter),
                   hessian = isTRUE(hessian), separation = separation)),
            class = "glmm_control")
}

# Under separation the likelihood has no maximum: the Hessian where the
# search stopped describes that point only, while the covariance given
# theta shows the standard errors of the separated effects running off, as
# glm's do.
covariance_under_separation <- function(fit) {
  fit$vcov <- fit_vcov_unscaled(fit) * fit_sigma(fit)^2
  fit$vcov_method <- "conditional"
  fit
}

# The fit object of a GLMM from the engine's answer (engine.R), which holds
# everything at the optimum: the means, sigma and the criterion included.
new_glmm_fit <- function(spec, engine, call, nAGQ, control) {
  p_names <- spec_x_names(spec)
  par_names <- c(names(theta_start(spec)), p_names)
  vc_unscaled <- engine$vcov_unscaled
  dimnames(vc_unscaled) <- list(p_names, p_names)
  vc <- vc_unscaled * engine$sigma^2
  vcov_method <- "conditional"
  if (length(engine$vcov_hessian) > 0L && all(is.finite(engine$vcov_hessian))) {
    vc <- engine$vcov_hessian
    dimnames(vc) <- list(p_names, p_names)
    vcov_method <- "hessian"
  }
  hess <- engine$hessian
  if (length(hess) > 0L) dimnames(hess) <- list(par_names, par_names)
  grad <- engine$gradient
  if (length(grad) > 0L) names(grad) <- par_names
  fields <- c(list(spec = spec, call = call, control = control, REML = FALSE), engine_estimates(spec, engine), list(
    cond_var = per_block(engine$cond_var, spec), vcov = vc, fitted = as.vector(engine$mu), devcomp = engine$devcomp,
    optinfo = c(engine$optinfo, list(hessian = hess, gradient = grad)), xp = NULL,
    nAGQ = nAGQ, u = per_block(engine$u, spec), eta = as.vector(engine$eta),
    working_weights = as.vector(engine$working_weights), vcov_unscaled = vc_unscaled, vcov_method = vcov_method
  ))
  new_mlmfit(fields, c("mlmfit_glmm", "mlmfit"))
}
