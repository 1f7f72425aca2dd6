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
#' @param data A data frame holding the variables.
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
#'   (profile-likelihood, Wald or bootstrap intervals: [confint.mlmfit_glmm()]).
#' @references Bates, D., Maechler, M., Bolker, B. and Walker, S. (2015).
#'   Fitting linear mixed-effects models using lme4. *Journal of
#'   Statistical Software* 67(1), 1-48. \doi{10.18637/jss.v067.i01}
#' @seealso [glmm_control()], [predict.mlmfit_glmm()], [lmm()].
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
  parsed <- parse_mixed_formula(formula)
  model <- lmm_model_frame(mc, parsed, parent.frame(), na.action, response = "any")
  yname <- deparse1(parsed$response)
  resp <- glmm_response(model$y, model$weights, fam, yname)
  re <- build_re_terms(parsed$random, model$frame, model$X, environment(formula), allow_n = TRUE)
  if (nAGQ > 1L && (length(re$blocks) != 1L || re$blocks[[1L]]$q != 1L)) {
    mlm_abort(c("Adaptive Gauss-Hermite quadrature ({.code nAGQ > 1}) needs a single scalar random effect, such as {.code (1 | group)}.",
                x = "This model has {length(re$terms)} random-effect term{?s} with {sum(vapply(re$blocks, function(b) b$q, 1))} random effect{?s} per group.",
                i = "Use {.code nAGQ = 1} (the Laplace approximation)."),
              "mlmfit_error_nagq")
  }
  separated <- check_separation(model$X, resp$y, resp$weights, fam$dist, model$intercept_col, control$separation,
                                attr(model$terms, "term.labels"), model$xlevels)
  mustart <- glmm_mustart(resp$y, resp$weights, fam$dist)
  eta_start <- fam$family$linkfun(mustart)
  engine_family <- glmm_engine_family(fam, resp$y, resp$weights, mustart, resp$trials)
  blocks <- engine_blocks(re)
  if (fam$dist == "negative_binomial" && is.na(fam$nb_size)) {
    # The size by the profile likelihood (lme4's glmer.nb): a Poisson fit
    # gives the means from which a first size is estimated; the engine then
    # searches log(size) three units either side of it, widening if needed.
    pois <- glmm_family(stats::poisson(link = fam$link))
    pois_engine <- engine_call(glmm_fit_cpp(model$X, resp$y, resp$weights, model$offset, as.double(eta_start),
                                            model$intercept_col - 1L, blocks, re$theta0, re$lower,
                                            glmm_engine_family(pois, resp$y, resp$weights, mustart), nAGQ,
                                            utils::modifyList(control, list(hessian = FALSE, cond_var = FALSE))))
    if (!is.null(pois_engine$error)) {
      mlm_abort(c("The Poisson model that starts the negative binomial fit failed: {pois_engine$error}."),
                "mlmfit_error_fit")
    }
    size0 <- nb_theta_ml(resp$y, pois$family$linkinv(pois_engine$eta), resp$weights)
    engine <- engine_call(glmm_nb_fit_cpp(model$X, resp$y, resp$weights, model$offset, as.double(pois_engine$eta),
                                          model$intercept_col - 1L, blocks, as.double(pois_engine$theta), re$lower,
                                          engine_family, nAGQ, control, log(size0) - 3, log(size0) + 3))
    if (is.null(engine$error)) fam <- glmm_family(negative_binomial(engine$nb_size, link = fam$link))
  } else {
    engine <- engine_call(glmm_fit_cpp(model$X, resp$y, resp$weights, model$offset, as.double(eta_start),
                                       model$intercept_col - 1L, blocks, re$theta0, re$lower, engine_family,
                                       nAGQ, control))
  }
  if (!is.null(engine$error)) {
    found <- separation_certificate(model$X, resp$y, resp$weights, model$offset, fam$family, fam$dist)
    if (length(found) > 0L) separation_found(found, "error", fam$dist)
    mlm_abort(c("The model could not be fitted: {engine$error}.",
                i = "Check for predictors with extreme scales (rescale them), groups or categories in which every outcome is the same, or simplify the random effects."),
              "mlmfit_error_fit")
  }
  fit <- new_glmm(engine, model, resp, re, mc, formula, parsed, fam, nAGQ, control)
  if (length(separated) == 0L) separated <- check_separation_after(fit, control$separation)
  if (length(separated) > 0L) fit <- covariance_under_separation(fit)
  report_glmm_problems(fit)
  fit
}

#' Settings for fitting generalized linear mixed models
#'
#' @param max_evals Largest number of deviance evaluations in each stage.
#' @param tolerance Convergence tolerance of the optimiser: it stops when the
#'   decrease it predicts for the deviance is below
#'   `tolerance * (1 + |deviance|)`.
#' @param step Relative step of the finite differences of the first stage.
#' @param boundary_tol A variance parameter (diagonal entry of the relative
#'   covariance factor, in units of 1 / root mean square of its random-effect
#'   column) that ends below this is tried at zero and kept there when the
#'   deviance does not rise (lme4's `boundary.tol`; the same rule and default
#'   as [lmm_control()]).
#' @param pirls_tol PIRLS stops when no conditional mode moves by more than
#'   this.
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
  structure(list(max_evals = as.integer(max_evals), f_tol = as.double(tolerance), step_rel = as.double(step),
                 boundary_tol = as.double(boundary_tol), pirls_tol = as.double(pirls_tol),
                 pirls_max_iter = as.integer(pirls_max_iter), hessian = isTRUE(hessian),
                 cond_var = isTRUE(cond_var), separation = separation),
            class = "glmm_control")
}

# Assemble the fit object from the engine's answer; the fields of an lmm()
# fit keep their meaning, so the shared methods work on both.
new_glmm <- function(engine, model, resp, re, mc, formula, parsed, fam, nAGQ, control) {
  X <- model$X
  n <- nrow(X)
  p <- ncol(X)
  family <- fam$family
  rn <- rownames(model$frame)
  beta <- stats::setNames(as.vector(engine$beta), colnames(X))
  theta <- stats::setNames(as.vector(engine$theta), names(re$theta0))
  eta <- as.vector(engine$eta)
  mu <- family$linkinv(eta)
  w <- if (is.null(resp$weights)) rep(1, n) else resp$weights
  y <- resp$y
  var_mu <- family$variance(mu)
  mu_eta <- family$mu.eta(eta)
  wrss <- sum(w * (y - mu)^2 / var_mu)
  use_sc <- fam$dist == "Gamma"
  sigma <- if (use_sc) sqrt((wrss + engine$ussq) / n) else 1
  aic <- glmm_aic(fam, y, resp$weights, mu, resp$trials)
  criterion <- if (nAGQ > 1L) engine$criterion else engine$ldL2 + engine$ussq + aic

  vc_unscaled <- engine$vcov_unscaled
  dimnames(vc_unscaled) <- list(colnames(X), colnames(X))
  vc <- vc_unscaled * sigma^2
  vcov_method <- "conditional"
  if (length(engine$vcov_hessian) > 0L && all(is.finite(engine$vcov_hessian))) {
    vc <- engine$vcov_hessian
    dimnames(vc) <- list(colnames(X), colnames(X))
    vcov_method <- "hessian"
  }
  b <- Map(function(bm, blk) {
    dimnames(bm) <- list(blk$colnames, blk$levels)
    bm
  }, engine$b, re$blocks)
  names(b) <- names(re$blocks)
  u <- Map(function(um, blk) {
    dimnames(um) <- list(blk$colnames, blk$levels)
    um
  }, engine$u, re$blocks)
  names(u) <- names(re$blocks)
  cond_var <- engine$cond_var
  if (length(cond_var) > 0L) {
    cond_var <- lapply(cond_var, function(a) a * sigma^2)
    names(cond_var) <- names(re$blocks)
  }
  hess <- engine$hessian
  if (length(hess) > 0L) dimnames(hess) <- list(c(names(theta), colnames(X)), c(names(theta), colnames(X)))
  grad <- engine$gradient
  if (length(grad) > 0L) names(grad) <- c(names(theta), colnames(X))

  fit <- list(
    call = mc, formula = formula, fixed_formula = parsed$fixed, REML = FALSE,
    frame = model$frame, X = X, y = y, response = model$y, response_kind = resp$kind,
    response_levels = resp$levels, trials = resp$trials,
    prior_weights = resp$weights, offset = model$offset,
    terms = model$terms, xlevels = model$xlevels, contrasts = attr(X, "contrasts"), dropped = model$dropped,
    re = re, theta = theta, lower = re$lower,
    beta = beta, vcov = vc, vcov_unscaled = vc_unscaled * sigma^2, vcov_method = vcov_method,
    sigma = sigma, use_sc = use_sc, b = b, u = u, cond_var = cond_var,
    devcomp = list(criterion = criterion, ldL2 = engine$ldL2, ldRX2 = engine$ldRX2, drsum = engine$dev,
                   ussq = engine$ussq, wrss = wrss, pwrss = wrss + engine$ussq, aic = aic, n = n, p = p),
    fitted = stats::setNames(mu, rn), eta = stats::setNames(eta, rn),
    working_weights = w * mu_eta^2 / var_mu,
    family = family, family_info = fam, nAGQ = nAGQ,
    optinfo = c(engine$optinfo, list(hessian = hess, gradient = grad)), control = control
  )
  class(fit) <- c("mlmfit_glmm", "mlmfit")
  fit
}

# Convergence and boundary problems, in words a user can act on.
report_glmm_problems <- function(fit) {
  for (w in fit$optinfo$warnings) {
    mlm_warn(c("Convergence: {w}.",
               i = "Check the estimates; rescaling predictors (centring, standardising) or a simpler random-effect structure often helps."),
             "mlmfit_warning_convergence")
  }
  report_singular(fit)
}

