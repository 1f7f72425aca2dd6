# Deletion diagnostics, as lme4's influence.merMod(): the model refitted
# without each observation (or each group of observations), started at the
# estimates, and the change of the fixed effects, the variance components
# and the covariance of the fixed effects. A refit drops the rows from the
# model spec (spec_keep_rows()) and runs the engine on what is left: one
# pass over the remaining rows and an optimisation started at the
# estimates; no model frame or fit object is built.

#' Influence of observations and groups on a mixed model
#'
#' Refits the model without each observation (default) or without each
#' group of observations (`groups`), as lme4's `influence()` for `merMod`
#' fits, and returns the estimates of each refit in lme4's layout: the
#' fixed effects, the variance components (`sigma^2`, then for each
#' random-effect term the variances `v[...]` and covariances `C[...]`) and
#' the covariance matrix of the fixed effects, with and without each
#' deleted unit. `dfbeta()`, `dfbetas()` and `cooks.distance()` of the
#' result give the changes of the fixed effects, scaled changes and Cook's
#' distances as lme4 computes them, and `car::infIndexPlot()` draws them.
#'
#' Each refit drops the rows from the model and refits it from the
#' estimates of `model` (REML or ML as `model`; a [glmm()] fit with its
#' `nAGQ`, the size of a negative binomial held at its estimate). A unit
#' whose deletion leaves a fixed effect without information gives a row of
#' `NA` and a warning. Fits with a residual `correlation` or `variance`
#' structure are refused (their structure's grouping would have to be
#' rebuilt for each deletion).
#'
#' @param model A fit from [lmm()] or [glmm()].
#' @param groups Names of variables of `data` whose combinations are the
#'   units deleted together; missing: each observation.
#' @param data The data of the fit (by default the data frame of the call);
#'   its rows must include those of the fit, with the same row names.
#' @param maxfun Not used (lme4's limit of its optimiser); a value is
#'   refused with a warning.
#' @param do.coef `FALSE` returns only the leverages (`hatvalues()`), as
#'   lme4.
#' @param ncores Number of processes for the refits (forked with the
#'   parallel package; socket workers on Windows).
#' @param start Optional list with `theta`: where the refits start.
#' @param ... Unused; refused with a warning.
#' @return An object of class `c("mlmfit_influence", "influence.merMod")`,
#'   a list as lme4's: `fixed.effects`, `fixed.effects[-<unit>]` (a matrix,
#'   one row per deleted unit), `var.cov.comps`, `var.cov.comps[-<unit>]`,
#'   `vcov`, `vcov[-<unit>]` (a list), `groups`, `deleted`, `converged`
#'   and `function.evals`; `<unit>` is `case` or the names in `groups`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' inf <- influence(fit, groups = "Subject")
#' head(dfbeta(inf))
#' head(cooks.distance(inf))
#' head(cooks.distance(influence(fit)))   # each observation
#' @importFrom stats influence
#' @export
influence.mlmfit <- function(model, groups, data, maxfun = NULL, do.coef = TRUE, ncores = 1L, start = NULL, ...) {
  if (is_structured(model)) {
    mlm_abort(c("{.fn influence} is not available for fits with a residual {.arg correlation} or {.arg variance} structure.",
                i = "Refit the model without the observations of interest with {.fn update} and compare the estimates."),
              "mlmfit_error_residual_structure")
  }
  if (length(list(...)) > 0L) {
    mlm_warn("{.fn influence} ignores the argument{?s} {.arg {names(list(...))}}.", c("mlmfit_warning_unused_argument", "mlmfit_warning_argument"))
  }
  if (!is.null(maxfun)) {
    mlm_warn("{.arg maxfun} is lme4's limit on its optimiser and has no effect on mlmfit's refits.",
             c("mlmfit_warning_unused_argument", "mlmfit_warning_argument"))
  }
  if (!isTRUE(do.coef)) {
    if (!inherits(model, "mlmfit_lmm")) {
      mlm_abort("{.code do.coef = FALSE} gives leverages, which are available for fits from {.fn lmm}.",
                "mlmfit_error_argument")
    }
    return(structure(list(hat = stats::hatvalues(model)), class = c("mlmfit_influence", "influence.merMod")))
  }
  ncores <- positive_count(ncores, "ncores")
  units <- deletion_units(model, groups, if (missing(data)) NULL else data)
  theta_start <- start$theta %||% fit_theta(model)
  if (length(theta_start) != length(fit_theta(model))) {
    mlm_abort("{.arg start} must be a list with {.field theta} of length {length(fit_theta(model))}.",
              "mlmfit_error_argument")
  }
  deleted <- units$deleted
  refit_unit <- function(i) {
    keep <- which(units$unit != as.character(deleted[i]))
    if (length(keep) == nobs(model)) return(deletion_estimates(model, fit_theta(model), fit_sigma(model), fixef(model),
                                                               vcov(model), TRUE, 0L))
    deletion_refit(model, keep, theta_start)
  }
  results <- unlist(run_in_chunks(length(deleted), max(1L, ceiling(length(deleted) / (4L * ncores))),
                                  function(idx) lapply(idx, refit_unit), ncores, FALSE, "Deletion refits"),
                    recursive = FALSE)
  failed <- vapply(results, function(r) is.null(r$beta), logical(1))
  if (any(failed)) {
    mlm_warn(c("{sum(failed)} of {length(deleted)} deletion refit{?s} failed: {?its/their} row{?s} {?is/are} {.val NA}.",
               i = "Deleted: {.val {as.character(deleted[failed])}}."),
             "mlmfit_warning_influence")
  }
  full <- deletion_estimates(model, fit_theta(model), fit_sigma(model), fixef(model), vcov(model), TRUE, 0L)
  na_like <- function(x) x * NA
  take <- function(name) lapply(results, function(r) r[[name]] %||% na_like(full[[name]]))
  unit_names <- as.character(deleted)
  fixed_1 <- matrix(unlist(take("beta")), ncol = length(full$beta), byrow = TRUE,
                    dimnames = list(unit_names, names(full$beta)))
  vc_1 <- matrix(unlist(take("var_comps")), ncol = length(full$var_comps), byrow = TRUE,
                 dimnames = list(unit_names, names(full$var_comps)))
  vcov_1 <- stats::setNames(take("vcov"), unit_names)
  converged <- stats::setNames(vapply(results, function(r) isTRUE(r$converged), logical(1)), unit_names)
  evals <- stats::setNames(vapply(results, function(r) as.integer(r$evals %||% NA_integer_), integer(1)), unit_names)
  label <- units$label
  out <- list(full$beta, fixed_1, full$var_comps, vc_1, full$vcov, vcov_1, label, deleted, converged, evals)
  names(out) <- c("fixed.effects", sprintf("fixed.effects[-%s]", label), "var.cov.comps",
                  sprintf("var.cov.comps[-%s]", label), "vcov", sprintf("vcov[-%s]", label), "groups", "deleted",
                  "converged", "function.evals")
  structure(out, class = c("mlmfit_influence", "influence.merMod"))
}

# The deletion unit of each observation of the fit, the units in order of
# appearance in the data (as lme4 lists them) and the label of the units:
# "case" (row names) or the names of the grouping variables.
deletion_units <- function(fit, groups, data) {
  frame_rows <- rownames(spec_frame(fit))
  if (is.null(data)) {
    data <- tryCatch(eval(fit_call(fit)$data, environment(spec_formula(fit))), error = function(e) NULL)
    if (!is.data.frame(data)) data <- as.data.frame(spec_frame(fit))
  }
  data <- as.data.frame(data)
  at <- match(frame_rows, rownames(data))
  if (anyNA(at)) {
    mlm_abort(c("The rows of {.arg data} do not include the observations of the fit.",
                i = "Pass the data frame the model was fitted to (its row names identify the observations)."),
              "mlmfit_error_argument")
  }
  if (missing(groups) || is.null(groups)) {
    return(list(unit = frame_rows, deleted = rownames(data), label = "case"))
  }
  if (!is.character(groups) || length(groups) == 0L || !all(groups %in% names(data))) {
    mlm_abort(c("{.arg groups} must name variables of the data.",
                x = if (is.character(groups)) "Not found: {.val {setdiff(groups, names(data))}}."),
              "mlmfit_error_argument")
  }
  key <- if (length(groups) == 1L) data[[groups]] else do.call(paste, c(unname(as.list(data[groups])), sep = "."))
  list(unit = as.character(key)[at], deleted = unique(key), label = paste(groups, collapse = "."))
}

# One deletion refit: the model fitted to the rows `keep`, started at
# theta_start; its estimates as deletion_estimates() lists them, or a list
# without `beta` when the refit failed.
deletion_refit <- function(fit, keep, theta_start) {
  spec <- spec_keep_rows(fit_spec(fit), keep)
  X <- spec_X(spec)
  if (qr(X)$rank < ncol(X)) return(list())
  control <- utils::modifyList(fit_control(fit), list(cond_var = FALSE))
  if (inherits(fit, "mlmfit_glmm")) {
    r <- tryCatch(engine_fit(spec, control, nAGQ = fit_nagq(fit),
                             start = list(theta = theta_start, eta = fit_eta(fit)[keep])),
                  error = function(e) list(error = conditionMessage(e)))
    if (!is.null(r$error)) return(list())
    refit <- new_glmm_fit(spec, r, fit_call(fit), fit_nagq(fit), fit_control(fit))
    opt <- fit_optinfo(refit)
    return(deletion_estimates(refit, fit_theta(refit), fit_sigma(refit), fixef(refit), vcov(refit),
                              length(opt$warnings) == 0L, opt$evals))
  }
  r <- tryCatch(engine_fit(spec, control, REML = fit_reml(fit), start = list(theta = theta_start)),
                error = function(e) NULL)
  if (is.null(r) || !is.finite(r$deviance)) return(list())
  names_x <- spec_x_names(spec)
  deletion_estimates(fit, r$theta, r$sigma, stats::setNames(as.vector(r$beta), names_x),
                     matrix(r$vcov, length(names_x), dimnames = list(names_x, names_x)),
                     isTRUE(r$optinfo$converged) && length(r$optinfo$warnings) == 0L, r$optinfo$evals)
}

# The estimates influence() reports for one fit, in lme4's layout: the
# fixed effects, the variance components (sigma^2, then the lower triangle
# of each term's covariance matrix, column by column, named v[...] and
# C[...], prefixed by the term when there are several), the covariance of
# the fixed effects, convergence and the number of evaluations.
deletion_estimates <- function(fit, theta, sigma, beta, vcov, converged, evals) {
  Tb <- relative_factors(fit, theta)
  terms <- re_terms(fit)
  several <- length(terms) > 1L
  comps <- c(`sigma^2` = sigma^2)
  for (tm in terms) {
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    S <- sigma^2 * tcrossprod(Tt)
    cn <- tm$colnames
    labels <- outer(cn, cn, function(a, b) paste0("C[", a, ",", b, "]"))
    diag(labels) <- paste0("v[", cn, "]")
    low <- lower.tri(S, diag = TRUE)
    comps <- c(comps, stats::setNames(S[low], paste0(if (several) paste0(tm$display, ":"), labels[low])))
  }
  list(beta = beta, var_comps = comps, vcov = vcov, converged = converged, evals = evals)
}

#' @rdname influence.mlmfit
#' @param which `"fixed"` (the fixed effects) or `"var.cov"` (the variance
#'   components).
#' @importFrom stats dfbeta
#' @export
dfbeta.mlmfit_influence <- function(model, which = c("fixed", "var.cov"), ...) {
  which <- match.arg(which)
  part <- if (which == "fixed") 1L else 3L
  full <- model[[part]]
  model[[part + 1L]] - matrix(full, nrow(model[[part + 1L]]), length(full), byrow = TRUE)
}

#' @rdname influence.mlmfit
#' @importFrom stats dfbetas
#' @export
dfbetas.mlmfit_influence <- function(model, ...) {
  se <- t(vapply(model[[6L]], function(v) sqrt(diag(v)), numeric(ncol(model[[6L]][[1L]]))))
  dfbeta(model) / se
}

# Cook's distance of each deleted unit as lme4 (and car) compute it: the
# change of the fixed effects in the metric of their covariance, times
# (n - p) / (n p) with n the number of deleted units.
#' @rdname influence.mlmfit
#' @export
cooks.distance.mlmfit_influence <- function(model, ...) {
  db <- dfbeta(model)
  n <- nrow(db)
  p <- ncol(db)
  V_inv <- solve(model$vcov)
  stats::setNames(rowSums((db %*% V_inv) * db) * (n - p) / (n * p), rownames(db))
}
