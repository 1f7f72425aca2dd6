# print() and summary(), laid out like lme4's so the two can be read side by side.

fit_title <- function(x) {
  paste0("Linear mixed model fit by ", if (fit_reml(x)) "REML" else "maximum likelihood", " ['lmm']")
}

print_header <- function(x) {
  cat(fit_title(x), "\n", sep = "")
  print_call_lines(x)
}

# Formula, data, weights, offset and subset of the call, as lme4 prints them.
print_call_lines <- function(x) {
  cat("Formula: ", deparse1(spec_formula(x), collapse = " "), "\n", sep = "")
  call <- fit_call(x)
  if (!is.null(call$data)) cat("   Data: ", deparse1(call$data), "\n", sep = "")
  if (!is.null(call$weights)) cat("Weights: ", deparse1(call$weights), "\n", sep = "")
  if (!is.null(call$offset)) cat(" Offset: ", deparse1(call$offset), "\n", sep = "")
  if (!is.null(call$subset)) cat(" Subset: ", deparse1(call$subset), "\n", sep = "")
}

information_criteria <- function(x) {
  ll <- logLik(x, REML = FALSE)
  c(AIC = stats::AIC(ll), BIC = stats::BIC(ll), logLik = as.numeric(ll), deviance = -2 * as.numeric(ll),
    df.resid = residual_df(x))
}

print_groups_line <- function(x) {
  ng <- ngrps(x)
  cat("Number of obs: ", nobs(x), ", groups:  ", paste(names(ng), ng, sep = ", ", collapse = "; "), "\n", sep = "")
}

#' @export
print.mlmfit_lmm <- function(x, digits = max(3, getOption("digits") - 3), ...) {
  warn_unused_dots(..., method = "print")
  print_header(x)
  if (fit_reml(x)) {
    cat("REML criterion at convergence: ", format(round(deviance(x), 4)), "\n", sep = "")
  } else {
    print(information_criteria(x), digits = digits + 2)
  }
  cat("Random effects:\n")
  print(VarCorr(x), digits = digits, comp = "Std.Dev.")
  print_groups_line(x)
  cat("Fixed Effects:\n")
  print(fixef(x), digits = digits)
  print_dropped_note(x)
  print_fit_notes(x)
  invisible(x)
}

#' Summarise a linear mixed model fit
#'
#' The summary holds what lme4's does: the criterion at convergence (REML,
#' or AIC, BIC, log-likelihood and deviance for ML fits), quantiles of the
#' scaled residuals, the variance components, the number of observations
#' and groups, and the fixed effects with standard errors and t values.
#' The fixed-effects table also has the degrees of freedom and p-values of
#' the t tests, as lmerTest's: with Satterthwaite's degrees of freedom by
#' default, or Kenward-Roger's (which also adjusts the standard errors, as
#' `pbkrtest::vcovAdj()`; REML fits only); with `ddf = "none"` the table has
#' Wald z tests instead.
#'
#' For a fit with a residual `correlation` or `variance` structure,
#' Satterthwaite's degrees of freedom differentiate the covariance of the
#' fixed effects with respect to the random-effect parameters, the residual
#' standard deviation and the free parameters of the structure (numerically,
#' one evaluation of the structured engine per point), whose joint
#' covariance is the inverse Hessian of the deviance; Kenward-Roger's method
#' is not available for such fits.
#'
#' @param object A fit from [lmm()].
#' @param ddf Degrees of freedom of the t tests: `"Satterthwaite"`
#'   (default), `"Kenward-Roger"` or `"none"` (Wald z tests).
#' @param x A `mlmfit_lmm_summary` object.
#' @param digits Digits to print.
#' @param correlation Print the correlation of the fixed effects (default:
#'   when there are at most 12 of them).
#' @param ... Unused.
#' @return A list of class `mlmfit_lmm_summary` with components `coefficients`
#'   (Estimate, Std. Error, df, t value, Pr(>|t|); or Estimate, Std. Error,
#'   z value, Pr(>|z|) with `ddf = "none"`), `ddf`, `varcor`, `residuals`
#'   (scaled Pearson residuals, one per observation of the fit), `ngrps`,
#'   `nobs`, `criterion` and `AICtab` (as lme4's: the REML criterion of a
#'   REML fit; AIC, BIC, log-likelihood, deviance and residual df of an ML
#'   fit), `logLik`, `sigma`, `call`, `REML` and `singular`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' s <- summary(fit)
#' s
#' s$coefficients
#' summary(fit, ddf = "Kenward-Roger")$coefficients
#' @export
summary.mlmfit_lmm <- function(object, ddf = "Satterthwaite", ...) {
  warn_unused_dots(..., method = "summary")
  ddf <- match_ddf(ddf)
  coefs <- fixed_effects_table(object, ddf)
  rownames(coefs) <- names(fixef(object))
  reml <- fit_reml(object)
  criterion <- if (reml) c(REML = deviance(object)) else information_criteria(object)
  structure(list(
    fit = object, coefficients = coefs, ddf = ddf, varcor = VarCorr(object),
    residuals = summary_residuals(object),
    ngrps = ngrps(object), nobs = nobs(object), REML = reml,
    criterion = criterion, AICtab = criterion, logLik = stats::logLik(object), sigma = sigma(object),
    call = fit_call(object),
    singular = is_singular(object), vcov = vcov(object), residual_parameters = residual_parameters(object)
  ), class = "mlmfit_lmm_summary")
}

#' @rdname summary.mlmfit_lmm
#' @export
print.mlmfit_lmm_summary <- function(x, digits = max(3, getOption("digits") - 3), correlation = NULL, ...) {
  fit <- x$fit
  print_header(fit)
  cat("\n")
  if (x$REML) {
    cat("REML criterion at convergence: ", format(round(x$criterion, 1)), "\n\n", sep = "")
  } else {
    print(round(x$criterion, 1), digits = digits + 2)
    cat("\n")
  }
  print_summary_components(x, digits)
  cat("\nFixed effects", if (!is.null(x$ddf)) paste0(" (", ddf_label(x$ddf), ")"), ":\n", sep = "")
  stats::printCoefmat(x$coefficients, digits = digits, has.Pvalue = ncol(x$coefficients) >= 4L, ...)
  p <- nrow(x$coefficients)
  if (is.null(correlation)) correlation <- p > 1L && p <= 12L
  if (correlation && p > 1L) {
    se <- sqrt(diag(x$vcov))
    corr <- x$vcov / tcrossprod(se)
    rn <- abbreviate(rownames(corr), minlength = 6)
    out <- format(round(corr, 3), nsmall = 3)
    out[upper.tri(out, diag = TRUE)] <- ""
    dimnames(out) <- list(rn, rn)
    cat("\nCorrelation of Fixed Effects:\n")
    print(out[-1L, -p, drop = FALSE], quote = FALSE, right = TRUE)
  }
  print_summary_notes(x)
  invisible(x)
}

print_dropped_note <- function(x, lead = "") {
  dropped <- spec_dropped(x)
  if (length(dropped) > 0L) cat(lead, "Fixed effects dropped as aliased: ", paste(dropped, collapse = ", "), " \n", sep = "")
}

# The middle of a summary, as lme4 prints it: quantiles of the scaled
# residuals, the variance components, the numbers of observations and groups.
print_summary_components <- function(x, digits) {
  cat("Scaled residuals: \n")
  q <- zapsmall(stats::quantile(x$residuals, na.rm = TRUE), digits + 1L)
  names(q) <- c("Min", "1Q", "Median", "3Q", "Max")
  print(q, digits = digits)
  cat("\nRandom effects:\n")
  print(x$varcor, digits = digits, comp = c("Variance", "Std.Dev."))
  print_groups_line(x$fit)
}

# The notes below a summary: aliased columns, convergence and the boundary.
print_summary_notes <- function(x) {
  fit <- x$fit
  print_dropped_note(fit, lead = "\n ")
  if (length(fit_optinfo(fit)$warnings) > 0L || x$singular) cat("\n")
  print_fit_notes(fit)
}

# The scaled Pearson residuals whose quantiles summary() prints. A fit to a
# database table gives those quantiles, computed in the database
# (db_residual_quantiles(); their quantiles are themselves).
summary_residuals <- function(fit) UseMethod("summary_residuals")
summary_residuals.mlmfit_lmm <- function(fit) residual_values(fit, "pearson", scaled = TRUE)
summary_residuals.mlmfit_glmm <- function(fit) glmm_residual_values(fit, "pearson", scaled = TRUE)
summary_residuals.mlmfit_db <- function(fit) db_residual_quantiles(fit)
