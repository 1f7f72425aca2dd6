# What a fit with a residual correlation or variance structure answers
# beyond the methods of every fit: its residuals, the structure's
# parameters, the residual and marginal covariances (nlme's getVarCov) and
# the printed description of the structure.

#' Residuals of a fit with a residual correlation or variance structure
#'
#' For a fit from [lmm()] with `correlation` or `variance`: `"response"`
#' (and `"working"`) residuals are `y` minus the fitted values;
#' `"pearson"` (and `"deviance"`) residuals are divided by each
#' observation's standard-deviation multiplier (the variance function at
#' the estimates, and the prior weights); `"normalized"` residuals (nlme's)
#' are the Pearson residuals multiplied by the inverse Cholesky factor of
#' their estimated correlation matrix within each group, divided by sigma:
#' uncorrelated with unit variance when the structure is right.
#' `scaled = TRUE` divides the other types by sigma.
#'
#' @param object A fit from [lmm()] with a residual structure.
#' @param type `"response"`, `"pearson"`, `"working"`, `"deviance"` or
#'   `"normalized"`.
#' @param scaled Divide by sigma.
#' @param ... Unused.
#' @return A named numeric vector.
#' @examples
#' fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
#'            nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
#' head(residuals(fit, type = "normalized"))
#' @export
residuals.mlmfit_lmm_structured <- function(object, type = c("response", "pearson", "working", "deviance",
                                                              "normalized"), scaled = FALSE, ...) {
  warn_unused_dots(..., method = "residuals")
  observation_vector(object, structured_residual_values(object, match.arg(type), scaled))
}

structured_residual_values <- function(object, type, scaled) {
  r <- spec_y(object) - fit_fitted(object)
  if (type %in% c("pearson", "deviance", "normalized")) r <- r / residual_sd_multipliers(object)
  if (type == "normalized") r <- normalized_residuals(object, r)
  if (scaled || type == "normalized") r <- r / fit_sigma(object)
  r
}

#' Parameters of the residual correlation and variance structure
#'
#' The estimated parameters of the `correlation` and `variance` structures
#' of a fit from [lmm()], as nlme reports them:
#' `Phi` for [nlme::corAR1()] and [nlme::corCAR1()] (the correlation of
#' observations one time unit apart), `Rho` for [nlme::corCompSymm()], the
#' standard-deviation ratio of each non-reference stratum for
#' [nlme::varIdent()], `power` for [nlme::varPower()], `expon` for
#' [nlme::varExp()], `const` and `power` for [nlme::varConstPower()]. With
#' `unconstrained = TRUE` the same parameters on the unconstrained scale the
#' optimiser uses (nlme's `coef(..., unconstrained = TRUE)`):
#' `log((1 + Phi) / (1 - Phi))`, `qlogis(Phi)`, the log ratio of standard
#' deviations, `log(const)`, and so on.
#'
#' @param object A fit from [lmm()].
#' @param unconstrained Report on the optimiser's unconstrained scale.
#' @param fixed Include parameters held fixed (`fixed = TRUE` in the nlme
#'   constructor); they are not estimated and not counted in `logLik()`'s df.
#' @param ... Unused.
#' @return A named numeric vector; empty for a fit without residual structure.
#' @examples
#' fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
#'            nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
#' residual_parameters(fit)
#' @export
residual_parameters <- function(object, ...) UseMethod("residual_parameters")

#' @rdname residual_parameters
#' @export
residual_parameters.mlmfit <- function(object, unconstrained = FALSE, fixed = FALSE, ...) {
  warn_unused_dots(..., method = "residual_parameters")
  res <- spec_residual(object)
  if (is.null(res)) return(stats::setNames(numeric(), character()))
  val <- if (unconstrained) fit_psi(object) else fit_residual_natural(object)
  if (!fixed) val <- val[res$free]
  val
}

n_residual_parameters <- function(object) {
  res <- spec_residual(object)
  if (is.null(res)) 0L else sum(res$free)
}

# Standard-deviation multiplier of each observation: the variance function
# at the estimates divided by the square root of the prior weight.
residual_sd_multipliers <- function(object) {
  n <- nobs(object)
  s <- rep(1, n)
  var <- spec_residual(object)$variance
  if (!is.null(var)) {
    par <- fit_residual_natural(object)[var$names]
    s <- switch(var$kind,
      ident = c(1, par)[as.integer(var$strata)],
      variance_multiplier(var$kind, par, var$covariate))
  }
  w <- spec_weights(object)
  if (!is.null(w)) s <- s / sqrt(w)
  unname(s)
}

# The residual correlation matrix of observations of one residual group at
# times (or positions) `time`.
group_correlation <- function(cor, par, time) {
  m <- length(time)
  if (is.null(cor) || m == 1L) return(diag(1, m))
  switch(cor$kind,
    ar1 = ,
    car1 = par^abs(outer(time, time, "-")),
    comp_symm = {
      C <- matrix(par, m, m)
      diag(C) <- 1
      C
    })
}

#' Residual covariance of observations of a fit with a residual structure
#'
#' `residual_covariance()` returns sigma^2 R for observations of a fit from
#' [lmm()]: the covariance of their residuals given the random effects,
#' with the correlation structure within residual groups, zero between
#' groups, and the variance function (and prior weights) on the diagonal.
#' For a fit without `correlation` or `variance` it is `sigma^2 / weights`
#' on the diagonal. With `newdata`, the same for new observations at the
#' estimates (their groups, times, strata or covariates read from
#' `newdata`; positions within groups in the order of its rows where the
#' correlation has no time covariate), e.g. to simulate new residuals.
#'
#' @param object A fit from [lmm()].
#' @param rows Observations, by number or name: rows of
#'   `model.frame(object)`, or of `newdata` when it is given (all by
#'   default).
#' @param newdata Optional data frame of new observations.
#' @return A square matrix with dimnames the rows' names.
#' @seealso [getVarCov.mlmfit_lmm()] for whole groups, as nlme returns them.
#' @examples
#' fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
#'            nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
#' round(residual_covariance(fit, 1:4), 3)
#' new <- data.frame(Mare = 1, Time = c(0.1, 0.2, 0.3))
#' round(residual_covariance(fit, newdata = new), 3)
#' @export
residual_covariance <- function(object, rows = NULL, newdata = NULL) {
  if (is.null(newdata)) {
    nm <- rownames(spec_frame(object))
    n <- nobs(object)
  } else {
    newdata <- as_model_data(newdata)
    nm <- rownames(newdata)
    n <- nrow(newdata)
  }
  if (is.null(rows)) rows <- seq_len(n)
  if (is.character(rows)) rows <- match(rows, nm)
  if (anyNA(rows) || any(rows < 1L | rows > n)) {
    mlm_abort("{.arg rows} must name observations of {if (is.null(newdata)) 'the fit (rows of {.code model.frame(object)})' else '{.arg newdata}'}.",
              "mlmfit_error_argument")
  }
  parts <- if (is.null(newdata)) {
    cor <- spec_residual(object)$correlation
    list(s = residual_sd_multipliers(object), group = if (!is.null(cor)) as.integer(cor$group),
         time = if (!is.null(cor)) cor$position)
  } else {
    residual_structure_newdata(object, newdata)
  }
  s <- parts$s[rows]
  C <- diag(1, length(rows))
  cor <- spec_residual(object)$correlation
  if (!is.null(cor)) {
    par <- fit_residual_natural(object)[[1L]]
    g <- parts$group[rows]
    for (grp in unique(g)) {
      k <- which(g == grp)
      C[k, k] <- group_correlation(cor, par, parts$time[rows[k]])
    }
  }
  V <- fit_sigma(object)^2 * C * tcrossprod(s)
  dimnames(V) <- list(nm[rows], nm[rows])
  V
}

# The residual structure's variables for new observations: standard
# deviation multipliers, residual groups and times (positions in the order
# of the rows where the correlation has no time covariate).
residual_structure_newdata <- function(object, newdata) {
  res <- spec_residual(object)
  env <- environment(spec_formula(object))
  n <- nrow(newdata)
  out <- list(s = rep(1, n), group = NULL, time = NULL)
  if (!is.null(var <- res$variance)) {
    par <- fit_residual_natural(object)[var$names]
    if (var$kind == "ident") {
      st <- as.character(varident_strata(nlme::getGroupsFormula(var$formula), newdata, env))
      k <- match(st, levels(var$strata))
      if (anyNA(k)) {
        mlm_abort("{.arg newdata} has strata of {.fn varIdent} that the fit has not seen: {.val {unique(st[is.na(k)])}}.",
                  "mlmfit_error_newdata")
      }
      out$s <- c(1, par)[k]
    } else {
      rhs <- nlme::getCovariateFormula(var$formula)[[2L]]
      v <- if (isTRUE(var$fitted)) {
        stats::predict(object, newdata = newdata)
      } else {
        structure_covariate(rhs, newdata, env, paste0(var$class, "()"))
      }
      out$s <- variance_multiplier(var$kind, par, v)
    }
  }
  if (!is.null(cor <- res$correlation)) {
    g <- structure_grouping(nlme::getGroupsFormula(cor$formula), newdata, env)$factor
    out$group <- as.integer(g)
    out$time <- if (is.null(cor$time)) {
      stats::ave(seq_len(n), out$group, FUN = seq_along)
    } else {
      structure_covariate(nlme::getCovariateFormula(cor$formula)[[2L]], newdata, env, paste0(cor$class, "()"))
    }
  }
  out
}

# Residual groups as nlme's "individuals": the correlation groups, else the
# innermost grouping factor of the random effects.
individual_factor <- function(object) {
  cor <- spec_residual(object)$correlation
  if (!is.null(cor)) return(cor$group)
  block_factor(object, innermost_block_of_fit(object))
}

# The label of the innermost block of a fit (the first when the factors are
# crossed).
innermost_block_of_fit <- function(object) {
  groups <- spec_rows(object)$groups
  innermost_block(groups) %||% names(groups)[1L]
}

# Z (sigma^2 T T') Z' for the given rows: random effects shared through a
# common level of each grouping factor.
random_effect_covariance <- function(object, rows) {
  Tb <- relative_factors(object, fit_theta(object))
  sigma <- fit_sigma(object)
  V <- matrix(0, length(rows), length(rows))
  for (b in names(re_blocks(object))) {
    Z <- block_z(object, b, rows = rows)
    codes <- as.integer(block_factor(object, b))[rows]
    same <- outer(codes, codes, "==")
    V <- V + same * (Z %*% tcrossprod(sigma^2 * tcrossprod(Tb[[b]]), Z))
  }
  V
}

#' Covariance matrices of a linear mixed model, as nlme's getVarCov
#'
#' For a fit from [lmm()]: `type = "random.effects"` gives the covariance
#' matrix of the random effects of the innermost grouping factor;
#' `"conditional"` the covariance of the residuals of each individual given
#' the random effects (sigma^2 R_i, with the correlation and variance
#' structure); `"marginal"` their covariance including the random effects
#' (Z_i G Z_i' + sigma^2 R_i). Individuals are the groups of the correlation
#' structure, or else the levels of the innermost grouping factor.
#'
#' @param obj A fit from [lmm()].
#' @param individuals Individuals (levels, or their numbers) for the
#'   conditional and marginal covariances; the first by default.
#' @param type `"random.effects"`, `"conditional"` or `"marginal"`.
#' @param ... Unused.
#' @return As nlme's: a matrix (random effects) or a named list of
#'   matrices, of class `c(type, "VarCov")`, printed by nlme's method.
#' @examples
#' fit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont,
#'            correlation = nlme::corAR1(form = ~ 1 | Subject))
#' nlme::getVarCov(fit, type = "marginal")
#' @importFrom nlme getVarCov
#' @method getVarCov mlmfit_lmm
#' @export
getVarCov.mlmfit_lmm <- function(obj, individuals, type = c("random.effects", "conditional", "marginal"), ...) {
  warn_unused_dots(..., method = "getVarCov")
  type <- match.arg(type)
  if (type == "random.effects") {
    b <- re_blocks(obj)[[innermost_block_of_fit(obj)]]
    Tb <- relative_factors(obj, fit_theta(obj))[[b$label]]
    S <- fit_sigma(obj)^2 * tcrossprod(Tb)
    dimnames(S) <- list(b$colnames, b$colnames)
    return(structure(S, group.levels = b$label, class = c("random.effects", "VarCov")))
  }
  ind <- individual_factor(obj)
  if (missing(individuals)) individuals <- levels(ind)[1L]
  if (is.numeric(individuals)) individuals <- levels(ind)[individuals]
  bad <- setdiff(as.character(individuals), levels(ind))
  if (length(bad) > 0L || anyNA(individuals)) {
    mlm_abort("{.arg individuals} must be levels of the residual groups; {.val {bad}} {?is/are} not.", "mlmfit_error_argument")
  }
  out <- lapply(as.character(individuals), function(i) {
    rows <- which(ind == i)
    cor <- spec_residual(obj)$correlation
    if (!is.null(cor)) rows <- rows[order(cor$position[rows])]
    V <- residual_covariance(obj, rows)
    if (type == "marginal") V <- V + random_effect_covariance(obj, rows)
    V
  })
  names(out) <- as.character(individuals)
  cor <- spec_residual(obj)$correlation
  glabel <- if (!is.null(cor)) cor$group_label else innermost_block_of_fit(obj)
  structure(out, group.levels = glabel, class = c(type, "VarCov"))
}

# Residuals multiplied by the inverse Cholesky factor of their estimated
# correlation matrix within each residual group (nlme's "normalized"):
# uncorrelated with unit variance when the structure is right.
normalized_residuals <- function(object, r) {
  cor <- spec_residual(object)$correlation
  if (is.null(cor)) return(r)
  par <- fit_residual_natural(object)[[1L]]
  out <- r
  for (rows in split(seq_along(r), cor$group, drop = TRUE)) {
    rows <- rows[order(cor$position[rows])]
    if (length(rows) == 1L) next
    L <- t(chol(group_correlation(cor, par, cor$position[rows])))
    out[rows] <- forwardsolve(L, r[rows])
  }
  out
}

# The nlme-style description of the structures, for print and summary.
format_residual_structure <- function(fit, digits = 4) {
  res <- spec_residual(fit)
  if (is.null(res)) return(character())
  par <- fit_residual_natural(fit)
  fixed_note <- function(nms) {
    fx <- nms[!res$free[match(nms, residual_parameter_names(res))]]
    if (length(fx)) paste0(" (held fixed: ", paste(fx, collapse = ", "), ")") else ""
  }
  out <- character()
  if (!is.null(cor <- res$correlation)) {
    out <- c(out, paste0("Correlation structure: ", cor$label),
             paste0(" Formula: ", deparse1(cor$formula)),
             paste0(" Parameter estimate(s)", fixed_note(cor$names), ":"),
             utils::capture.output(print(signif(par[cor$names], digits + 3))))
  }
  if (!is.null(var <- res$variance)) {
    shown <- par[var$names]
    if (var$kind == "ident") shown <- c(stats::setNames(1, var$reference), shown)
    out <- c(out, "Variance function:", paste0(" Structure: ", var$label),
             paste0(" Formula: ", deparse1(var$formula)),
             paste0(" Parameter estimates", fixed_note(var$names), ":"),
             utils::capture.output(print(signif(shown, digits + 3))))
  }
  out
}
