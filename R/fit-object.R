# The fit object: one constructor, one validator and the accessors through
# which every method reads a fit. A fit is a plain list with the package's
# own classes:
#   c("mlmfit_lmm", "mlmfit"), c("mlmfit_lmm_structured", "mlmfit_lmm", "mlmfit")
#   (a residual correlation or variance structure) and c("mlmfit_glmm", "mlmfit");
#   "mlmfit_db" before these for a fit to a database table (its spec$db).
#
# Fields of every fit:
# * spec            the model spec (spec.R): the model and its data
# * call            the matched call of lmm() or glmm() (REML = FALSE added to
#                   that of a REML fit refitted by ML)
# * control         the settings (lmm_control() or glmm_control())
# * REML            TRUE for a REML fit; FALSE for ML fits and every glmm() fit
# * version         the version of mlmfit that made the fit (text)
# * theta           relative covariance parameters at the optimum, named as
#                   lme4 names them (spec's theta template)
# * beta            fixed effects, named as the columns of X
# * sigma           residual standard deviation (1 for binomial, Poisson and
#                   negative binomial models; the scale of a Gamma model)
# * b               conditional modes of the random effects: per block (named by
#                   its label) a q x levels matrix with dimnames (columns, levels)
# * cond_var        (glmm fits) their conditional covariances: per block a
#                   q x q x levels array (including sigma^2); an empty list
#                   when not computed. lmm fits compute them when a method
#                   first asks (fit_cond_var()) and keep them in `cache`
# * vcov            covariance matrix of beta (named)
# * fitted          conditional fitted values (fixed and random effects and
#                   offset; the means of a glmm), one per observation, unnamed;
#                   NULL when the spec has no rows (a database fit)
# * devcomp         pieces of the criterion at the optimum: criterion (what was
#                   minimised: the REML criterion, -2 log-likelihood, or the
#                   Laplace or quadrature approximation of it), ld_L2 (log
#                   |L|^2), ld_RX2 (log |R_X|^2), pwrss (penalised weighted
#                   residual sum of squares), n, p; lmm fits also sum_log_weights
#                   (sum of the logs of the prior weights); glmm fits also
#                   sum_dev_resid (sum of the deviance residuals, glmer's
#                   deviance()), ussq (|u|^2), wrss (weighted residual sum of
#                   squares) and aic (-2 conditional log-likelihood)
# * optinfo         the optimiser's report: evals, converged, message, warnings
#                   (convergence warnings in words), gradient, hessian; lmm fits
#                   also iterations and ray (the deviance beyond the optimum:
#                   "rising", "flat" or "falling"); glmm fits stage1, stage2,
#                   stage1_gradient ("analytic" or "differences") and
#                   pirls_passes
# * xp              cross-products of [Z X y] (whitened at the optimum for a
#                   structured fit) from which the engine evaluates the deviance
#                   without a pass over the data; NULL for glmm fits
# * cache           (lmm fits) an environment for what methods compute from
#                   the fit on demand and keep: cond_var
# Fits with a residual structure also:
# * psi             all parameters of the structure (fixed ones too) on the
#                   optimiser's unconstrained scale, named
# * log_det_R       log |R| at the optimum
# * whitening       how the engine formed the whitened cross-products
# glmm() fits also:
# * nAGQ            quadrature points (0, 1 = Laplace, or more)
# * u               spherical conditional modes (b = Lambda u), per block as b
# * eta             linear predictor at the optimum (unnamed)
# * working_weights weights of the last PIRLS step
# * vcov_unscaled   covariance of beta given theta per unit sigma^2,
#                   (R_X'R_X)^-1
# * vcov_method     "hessian" (vcov from the Hessian of the deviance in theta
#                   and beta, as glmer's) or "conditional" (sigma^2 vcov_unscaled)

# The constructor: a fit of the class asked for, stamped with the version;
# a fit to a database table (its spec reads the rows in SQL) is also of
# class "mlmfit_db", whose methods compute what needs rows in the database.
new_mlmfit <- function(fields, class) {
  if (!is.null(fields$spec$db)) class <- c("mlmfit_db", class)
  fit <- c(fields, list(version = mlmfit_version()))
  class(fit) <- class
  validate_mlmfit(fit)
}

# (read once per session: the installed version does not change)
mlmfit_version <- function() {
  version_cache$mlmfit <- version_cache$mlmfit %||% unname(getNamespaceVersion("mlmfit"))
}
version_cache <- new.env(parent = emptyenv())

# The invariants every method relies on.
validate_mlmfit <- function(fit) {
  spec <- fit$spec
  blocks <- spec$re$blocks
  problems <- c(
    if (!inherits(spec, "mlmfit_spec")) "spec is not a model spec",
    if (!identical(names(fit$theta), names(spec$theta$start))) "theta does not match the spec's template",
    if (!identical(names(fit$beta), spec$fixed$names)) "beta does not match the columns of X",
    if (!identical(dim(fit$vcov), rep(length(fit$beta), 2L))) "vcov is not p x p",
    if (length(fit$b) != length(blocks) ||
        !all(vapply(seq_along(blocks), function(k) {
          identical(dim(fit$b[[k]]), c(blocks[[k]]$q, blocks[[k]]$n_levels))
        }, logical(1)))) "b does not match the blocks",
    if (!is.null(spec$rows) && length(fit$fitted) != spec$n) "fitted values are not one per observation",
    if (inherits(fit, "mlmfit_glmm") && is.null(spec$family)) "a glmm fit without a family",
    if (inherits(fit, "mlmfit_lmm_structured") && length(fit$psi) != length(spec$residual$engine$psi0))
      "the residual parameters do not match the structure",
    if (is.null(fit$version)) "no version stamp"
  )
  if (length(problems) > 0L) {
    mlm_abort(c("Internal error: the fit object is inconsistent.", x = problems), "mlmfit_error_internal")
  }
  fit
}

# A fit in the current layout: fits saved by an earlier version are brought
# up to date (in memory) when they are read.
current_fit <- function(fit) if (is.null(fit$version)) upgrade_fit(fit) else fit

# Accessors: the only readers of a fit's fields outside this file.
fit_field <- function(name) {
  force(name)
  function(fit) current_fit(fit)[[name]]
}
fit_spec <- fit_field("spec")
fit_call <- fit_field("call")
fit_control <- fit_field("control")
fit_reml <- function(fit) isTRUE(current_fit(fit)$REML)
fit_version <- fit_field("version")
fit_theta <- fit_field("theta")
fit_beta <- fit_field("beta")
fit_sigma <- fit_field("sigma")
fit_b <- fit_field("b")
# The conditional covariances of the random effects: glmm fits (and lmm
# fits saved by earlier versions) hold them; lmm fits compute them at the
# first call and keep them in their cache (an environment: every copy of
# the fit shares it).
fit_cond_var <- function(fit) {
  fit <- current_fit(fit)
  cache <- fit$cache
  if (is.null(cache)) return(fit$cond_var)
  cache$cond_var <- cache$cond_var %||% lmm_cond_var(fit)
}
fit_vcov <- fit_field("vcov")
fit_fitted <- fit_field("fitted")
fit_devcomp <- fit_field("devcomp")
fit_optinfo <- fit_field("optinfo")
fit_xp <- fit_field("xp")
fit_psi <- fit_field("psi")
fit_log_det_R <- fit_field("log_det_R")
fit_whitening <- fit_field("whitening")
fit_nagq <- fit_field("nAGQ")
fit_u <- fit_field("u")
fit_eta <- fit_field("eta")
fit_working_weights <- fit_field("working_weights")
fit_vcov_unscaled <- fit_field("vcov_unscaled")
fit_vcov_method <- fit_field("vcov_method")

# Does the model have a residual scale (lmm fits, Gamma glmm fits)?
has_scale <- function(x) {
  fam <- spec_family(x)
  is.null(fam) || identical(fam$dist, "Gamma")
}

is_structured <- function(x) !is.null(spec_residual(x))

# The structure's parameters on their natural scale (all of them, named).
fit_residual_natural <- function(fit) natural_residual_parameters(spec_residual(fit), fit_psi(fit))

# A fit made by mlmfit 0.1.0 (no version stamp; model, data and estimates
# side by side) in the current layout.
upgrade_fit <- function(old) {
  re <- old$re
  X <- old$X
  glmm <- inherits(old, "mlmfit_glmm")
  spec <- list(
    formula = old$formula, fixed_formula = old$fixed_formula, response_name = deparse1(old$formula[[2L]]),
    n = nrow(X),
    fixed = list(names = colnames(X), terms = old$terms, frame_terms = attr(old$frame, "terms"),
                 xlevels = old$xlevels, contrasts = old$contrasts, assign = attr(X, "assign"),
                 dropped = old$dropped, intercept_col = match("(Intercept)", colnames(X), nomatch = 0L)),
    re = list(terms = lapply(re$terms, function(tm) tm[setdiff(names(tm), "factor")]),
              blocks = lapply(re$blocks, function(b) {
                b[c("label", "levels", "n_levels", "q", "colnames", "terms", "theta_index")]
              })),
    theta = list(start = re$theta0, lower = re$lower),
    family = NULL, residual = NULL,
    rows = list(frame = old$frame, X = X, y = old$y, response = old$response %||% old$y,
                weights = old$prior_weights, trials = old$trials, offset = old$offset,
                groups = lapply(re$blocks, `[[`, "factor"), z = lapply(re$blocks, `[[`, "refs"))
  )
  class(spec) <- "mlmfit_spec"
  dc <- old$devcomp
  fields <- list(spec = spec, call = old$call, control = old$control, REML = isTRUE(old$REML),
                 theta = old$theta, beta = old$beta, sigma = old$sigma, b = old$b,
                 cond_var = old$cond_var %||% list(), vcov = old$vcov, fitted = unname(as.vector(old$fitted)),
                 optinfo = old$optinfo, xp = old$xp)
  if (glmm) {
    fam <- old$family_info
    spec$family <- c(fam[c("family", "dist", "link", "nb_size")],
                     list(response_kind = old$response_kind, response_levels = old$response_levels))
    spec$family$constants <- family_constants(spec)
    fields$spec <- spec
    fields$devcomp <- list(criterion = dc$criterion, ld_L2 = dc$ldL2, ld_RX2 = dc$ldRX2, pwrss = dc$pwrss,
                           n = dc$n, p = dc$p, sum_dev_resid = dc$drsum, ussq = dc$ussq, wrss = dc$wrss,
                           aic = dc$aic)
    # 0.1.0 kept sigma^2 (R_X'R_X)^-1 under this name
    fields <- c(fields, list(nAGQ = old$nAGQ, u = old$u, eta = unname(as.vector(old$eta)),
                             working_weights = old$working_weights,
                             vcov_unscaled = old$vcov_unscaled / old$sigma^2, vcov_method = old$vcov_method))
    return(new_mlmfit(fields, class(old)))
  }
  fields$devcomp <- list(criterion = dc$deviance, ld_L2 = dc$ld_L2, ld_RX2 = dc$ld_RX2, pwrss = dc$pwrss,
                         n = dc$n, p = dc$p, sum_log_weights = dc$sum_log_weights)
  if (!is.null(old$residual)) {
    res <- old$residual
    spec$residual <- list(correlation = res$correlation, variance = res$variance, free = res$free,
                          engine = res$engine)
    fields$spec <- spec
    fields <- c(fields, list(psi = res$psi, log_det_R = res$log_det, whitening = res$whitening))
  }
  new_mlmfit(fields, class(old))
}
