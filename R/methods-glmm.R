# What a user asks of a glmm() fit beyond the methods it shares with lmm()
# fits: the likelihood, residuals of each type, the family, simulation, and
# print() / summary() laid out like glmer's.

#' Methods for generalized linear mixed model fits
#'
#' Methods for the generics of base R, nlme and lme4; each returns what the
#' corresponding method of lme4 returns for a `glmerMod` fit.
#'
#' * `logLik()` minus half the approximate deviance at the optimum (Laplace
#'   or adaptive Gauss-Hermite); `df` counts the fixed effects and the
#'   covariance parameters (and the scale of a Gamma model). For `nAGQ > 1`
#'   it omits the constant that depends on the data only, as lme4 does.
#' * `deviance()` the sum of squared deviance residuals (glmer's
#'   `deviance()`); `-2 * logLik()` is the approximate deviance.
#' * `residuals()` of type `"deviance"` (default), `"pearson"`, `"working"`
#'   or `"response"`; `scaled = TRUE` divides by sigma (1 except for Gamma).
#' * `fitted()` the fitted means (fixed and random effects).
#' * `family()` the family object; `sigma()` 1, or for a Gamma model the
#'   scale estimated as glmer does.
#' * `weights()` prior weights (the numbers of trials for binomial counts),
#'   or with `type = "working"` the working weights of the last PIRLS step.
#' * `vcov()` the covariance of the fixed effects from the Hessian of the
#'   deviance in the variance parameters and fixed effects (glmer's
#'   default); `use.hessian = FALSE` gives the covariance given the variance
#'   parameters.
#'
#' @param object A fit from [glmm()].
#' @param REML Must be `FALSE` or `NULL` (a GLMM has no REML criterion).
#' @param type Type of residuals or weights.
#' @param scaled Divide residuals by sigma.
#' @param use.hessian Use the Hessian-based covariance (when available).
#' @param ... Unused.
#' @name glmm-methods
#' @examples
#' nels88$pass <- nels88$math >= 50
#' fit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' logLik(fit); AIC(fit); deviance(fit)
#' head(residuals(fit, type = "pearson"))
#' family(fit)
#' sqrt(diag(vcov(fit)))
NULL

#' @rdname glmm-methods
#' @export
logLik.mlmfit_glmm <- function(object, REML = NULL, ...) {
  warn_unused_dots(..., method = "logLik")
  if (isTRUE(REML)) {
    mlm_abort("A generalized linear mixed model has no REML criterion.", "mlmfit_error_argument")
  }
  df <- length(fit_beta(object)) + length(fit_theta(object)) + as.integer(has_scale(object)) +
    as.integer(spec_family(object)$dist == "negative_binomial")
  structure(-0.5 * fit_devcomp(object)$criterion, nobs = nobs(object), nall = nobs(object), df = df, class = "logLik")
}

#' @rdname glmm-methods
#' @export
deviance.mlmfit_glmm <- function(object, ...) {
  warn_unused_dots(..., method = "deviance")
  fit_devcomp(object)$sum_dev_resid
}

#' @rdname glmm-methods
#' @export
residuals.mlmfit_glmm <- function(object, type = c("deviance", "pearson", "working", "response"), scaled = FALSE, ...) {
  warn_unused_dots(..., method = "residuals")
  observation_vector(object, glmm_residual_values(object, match.arg(type), scaled))
}

glmm_residual_values <- function(object, type, scaled) {
  y <- spec_y(object)
  mu <- fit_fitted(object)
  w <- spec_weights(object) %||% rep(1, length(y))
  fam <- spec_family(object)$family
  r <- switch(type,
    deviance = {
      d <- sqrt(pmax(fam$dev.resids(y, mu, w), 0))
      ifelse(y > mu, d, -d)
    },
    pearson = (y - mu) * sqrt(w / fam$variance(mu)),
    working = (y - mu) / fam$mu.eta(fit_eta(object)),
    response = y - mu
  )
  if (scaled) r <- r / fit_sigma(object)
  r
}

#' @rdname glmm-methods
#' @export
family.mlmfit_glmm <- function(object, ...) {
  warn_unused_dots(..., method = "family")
  spec_family(object)$family
}

#' @rdname glmm-methods
#' @export
sigma.mlmfit_glmm <- function(object, ...) {
  warn_unused_dots(..., method = "sigma")
  fit_sigma(object)
}

#' @rdname glmm-methods
#' @export
weights.mlmfit_glmm <- function(object, type = c("prior", "working"), ...) {
  warn_unused_dots(..., method = "weights")
  type <- match.arg(type)
  w <- if (type == "working") fit_working_weights(object) else spec_weights(object)
  as.vector(w %||% rep(1, nobs(object)))  # the rows of the fit, as lme4's
}

#' @rdname glmm-methods
#' @export
vcov.mlmfit_glmm <- function(object, use.hessian = NULL, ...) {
  warn_unused_dots(..., method = "vcov")
  if (isFALSE(use.hessian)) return(fit_vcov_unscaled(object) * fit_sigma(object)^2)
  if (isTRUE(use.hessian) && !identical(fit_vcov_method(object), "hessian")) {
    mlm_abort(c("The Hessian-based covariance is not available for this fit.",
                i = "It is computed for {.code nAGQ >= 1} with {.code glmm_control(hessian = TRUE)} when the Hessian is positive definite."),
              "mlmfit_error_argument")
  }
  fit_vcov(object)
}

glmm_title <- function(x) {
  nagq <- fit_nagq(x)
  how <- if (nagq == 1L) {
    "(Laplace Approximation)"
  } else {
    sprintf("(Adaptive Gauss-Hermite Quadrature, nAGQ = %d)", nagq)
  }
  paste("Generalized linear mixed model fit by maximum likelihood", how, "['glmm']")
}

print_glmm_header <- function(x) {
  title <- glmm_title(x)
  w <- getOption("width")
  if (nchar(title) > w) title <- paste(strwrap(title, width = w - 2, exdent = 2), collapse = "\n")
  cat(title, "\n", sep = "")
  fam <- family(x)
  cat(" Family: ", fam$family, "  ( ", fam$link, " )\n", sep = "")
  print_call_lines(x)
}

print_criteria <- function(tab, digits) {
  t4 <- round(tab, digits)
  t4f <- format(t4)
  t4f["df.resid"] <- format(t4["df.resid"])
  print(t4f, quote = FALSE)
}

#' @export
print.mlmfit_glmm <- function(x, digits = max(3, getOption("digits") - 3), ...) {
  warn_unused_dots(..., method = "print")
  print_glmm_header(x)
  print_criteria(information_criteria(x), 4)
  cat("Random effects:\n")
  print(VarCorr(x), digits = digits, comp = "Std.Dev.")
  print_groups_line(x)
  cat("Fixed Effects:\n")
  print.default(format(fixef(x), digits = digits), print.gap = 2L, quote = FALSE)
  print_dropped_note(x)
  print_fit_notes(x)
  invisible(x)
}

#' Summarise a generalized linear mixed model fit
#'
#' The summary holds what lme4's does for a glmer fit: the information
#' criteria, quantiles of the scaled Pearson residuals, the variance
#' components, the number of observations and groups, and the fixed effects
#' with standard errors, z values and two-sided p-values from the normal
#' distribution (Wald tests).
#'
#' @param object A fit from [glmm()].
#' @param x A `mlmfit_glmm_summary` object.
#' @param digits Digits to print.
#' @param correlation Print the correlation of the fixed effects (default:
#'   when there are at most 12 of them).
#' @param signif.stars Mark p-values with stars.
#' @param ... Unused.
#' @return A list of class `mlmfit_glmm_summary` with components `coefficients`
#'   (Estimate, Std. Error, z value, Pr(>|z|); "t value" for Gamma models,
#'   as in lme4), `varcor`, `residuals`, `ngrps`, `nobs`, `AICtab`,
#'   `logLik`, `sigma`, `call`, `family`, `link` and `vcov`.
#' @examples
#' nels88$pass <- nels88$math >= 50
#' s <- summary(glmm(pass ~ homework + (1 | schid), nels88, family = binomial))
#' s
#' s$coefficients
#' @export
summary.mlmfit_glmm <- function(object, ...) {
  warn_unused_dots(..., method = "summary")
  beta <- fixef(object)
  se <- sqrt(diag(vcov(object)))
  z <- beta / se
  coefs <- cbind(Estimate = beta, `Std. Error` = se, z, `Pr(>|z|)` = 2 * stats::pnorm(abs(z), lower.tail = FALSE))
  colnames(coefs)[3L] <- if (has_scale(object)) "t value" else "z value"
  rownames(coefs) <- names(beta)
  fam <- family(object)
  structure(list(
    fit = object, coefficients = coefs, varcor = VarCorr(object),
    residuals = summary_residuals(object),
    ngrps = ngrps(object), nobs = nobs(object), AICtab = information_criteria(object),
    logLik = stats::logLik(object), sigma = sigma(object), call = fit_call(object),
    family = fam$family, link = fam$link,
    singular = is_singular(object), vcov = vcov(object)
  ), class = "mlmfit_glmm_summary")
}

#' @rdname summary.mlmfit_glmm
#' @export
print.mlmfit_glmm_summary <- function(x, digits = max(3, getOption("digits") - 3), correlation = NULL,
                               signif.stars = getOption("show.signif.stars"), ...) {
  warn_unused_dots(..., method = "print")
  fit <- x$fit
  print_glmm_header(fit)
  cat("\n")
  print_criteria(x$AICtab, 1)
  cat("\n")
  print_summary_components(x, digits)
  cat("\nFixed effects:\n")
  stats::printCoefmat(x$coefficients, digits = digits, signif.stars = signif.stars)
  p <- nrow(x$coefficients)
  if (is.null(correlation)) correlation <- p > 1L && p <= 12L
  if (correlation && p > 1L) {
    se <- sqrt(diag(x$vcov))
    corr <- x$vcov / tcrossprod(se)
    rn <- abbreviate(rownames(x$coefficients), minlength = 11)
    out <- matrix(format(round(corr, 3), nsmall = 3), p, p,
                  dimnames = list(rn, abbreviate(rownames(x$coefficients), minlength = 6)))
    out[!lower.tri(out)] <- ""
    cat("\nCorrelation of Fixed Effects:\n")
    print(out[-1L, -p, drop = FALSE], quote = FALSE)
  }
  print_summary_notes(x)
  invisible(x)
}
