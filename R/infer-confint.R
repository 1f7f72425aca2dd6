# confint(): Wald, profile-likelihood and parametric-bootstrap intervals
# for the variance parameters and the fixed effects, laid out as lme4's.

#' Confidence intervals for a linear mixed model
#'
#' Intervals for the variance parameters (standard deviations and
#' correlations of the random effects, and the residual standard
#' deviation, named as lme4 names them: `.sig01`, ..., `.sigma`, or
#' `sd_(Intercept)|group`, ... with `oldNames = FALSE`) and for the fixed
#' effects:
#'
#' * `"profile"` (default): profile-likelihood intervals, from the ML
#'   deviance as in lme4 (a REML fit is refitted by ML first). Each limit
#'   is found by root finding on the signed square root of the deviance
#'   rise, with the other parameters re-optimised from the stored
#'   cross-products (no pass over the data).
#' * `"Wald"`: estimate plus or minus a normal quantile times the standard
#'   error, for the fixed effects only (`NA` for the variance parameters),
#'   as lme4.
#' * `"boot"`: a parametric bootstrap: `nsim` responses are simulated from
#'   the fitted model and the model is refitted to each; intervals are
#'   percentile intervals (or `"basic"` or `"norm"`, see `boot.type`). With
#'   the same `seed` the simulated responses are those of
#'   `lme4::bootMer()`. Each refit recomputes only the parts of the
#'   cross-products that involve the response and starts at the estimates.
#'   Failed refits are left out with a warning; when more than a tenth
#'   fail, `confint()` stops with an error of class
#'   `mlmfit_error_bootstrap` rather than report intervals from the rest.
#'
#' For a fit with a residual `correlation` or `variance` structure, the
#' free parameters of the structure (e.g. `Phi`, on the natural scale, as
#' [residual_parameters()] names them) follow `.sigma` among the variance
#' parameters. `"profile"` profiles the likelihood over them too (every
#' other parameter, the structure's included, is re-optimised at each
#' point); `"boot"` simulates residuals with the fitted structure and
#' refits the whole model (see [parametric_bootstrap()]); `"Wald"` gives
#' intervals for the fixed effects from [vcov()] (the covariance of the
#' fixed effects given the estimated variance parameters, as nlme's) and
#' `NA` for the variance parameters.
#'
#' @param object A fit from [lmm()].
#' @param parm Parameters: names or indices, or `"theta_"` (variance
#'   parameters) or `"beta_"` (fixed effects); all by default.
#' @param level Confidence level.
#' @param method `"profile"`, `"Wald"` or `"boot"`.
#' @param nsim Number of bootstrap simulations.
#' @param seed Seed for the bootstrap ([set.seed()]), or `NULL`.
#' @param boot.type Bootstrap interval: `"perc"`, `"basic"` or `"norm"`.
#' @param cores Number of processes for the bootstrap refits (forked with
#'   the parallel package; socket workers on Windows).
#' @param progress Show a progress bar during the bootstrap.
#' @param oldNames Name the variance parameters `.sig01`, ... (`TRUE`,
#'   lme4's default) or descriptively.
#' @param ... Unused.
#' @return A matrix with one row per parameter and columns for the lower
#'   and upper limits.
#' @seealso [parametric_bootstrap()] for the bootstrap estimates themselves.
#' @examples
#' fit <- lmm(math ~ homework + (1 | schid), nels88)
#' confint(fit, method = "Wald")
#' confint(fit)                    # profile likelihood
#' confint(fit, method = "boot", nsim = 200, seed = 1)
#' @export
confint.mlmfit_lmm <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"), nsim = 500,
                        seed = NULL, boot.type = c("perc", "basic", "norm"), cores = 1L, progress = TRUE,
                        oldNames = TRUE, ...) {
  method <- match.arg(method)
  boot.type <- match.arg(boot.type)
  check_level(level)
  vnames <- c(sdcor_names(object$re, old_names = oldNames), names(residual_parameters(object)))
  all_names <- c(vnames, names(object$beta))
  nvp <- length(vnames)
  which <- confint_which(parm, all_names, nvp, length(object$beta))
  a <- (1 + c(-level, level)) / 2
  cols <- paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")
  out <- switch(method,
    Wald = wald_limits(object, nvp, a)[which, , drop = FALSE],
    profile = profile_intervals(object, which, level),
    boot = {
      est <- parametric_bootstrap(object, nsim, seed = seed, cores = cores, progress = progress)
      t0 <- c(theta_to_sdcor(object$re, object$theta, object$sigma), residual_parameters(object), object$beta)
      check_bootstrap_failures(est, nsim)
      t(vapply(which, function(w) bootstrap_interval(est[, w], t0[w], level, boot.type), numeric(2)))
    })
  matrix(out, ncol = 2L, dimnames = list(all_names[which], cols))
}

# Intervals from the refits that succeeded are biased when many failed
# (failures are not random): refuse beyond a tenth; parametric_bootstrap()
# has warned of any failure.
check_bootstrap_failures <- function(est, nsim, max_share = 0.1) {
  n_failed <- attr(est, "n_failed") %||% sum(!stats::complete.cases(est))
  if (n_failed > max_share * nsim) {
    mlm_abort(c("{n_failed} of {nsim} bootstrap refits failed: too many for trustworthy intervals.",
                i = "Inspect the refits with {.fn parametric_bootstrap} (failed ones are rows of {.val NA}), or use {.code method = \"profile\"}."),
              "mlmfit_error_bootstrap")
  }
  invisible(n_failed)
}

# Positions of the parameters `parm` (names, indices, "theta_" or "beta_")
# among all_names: nvp variance parameters first, then p fixed effects.
confint_which <- function(parm, all_names, nvp, p) {
  which <- if (missing(parm)) {
    seq_along(all_names)
  } else if (is.numeric(parm)) {
    as.integer(parm)
  } else if (identical(parm, "theta_")) {
    seq_len(nvp)
  } else if (identical(parm, "beta_")) {
    nvp + seq_len(p)
  } else {
    m <- match(parm, all_names)
    if (anyNA(m)) {
      mlm_abort(c("Unknown parameter{?s} {.val {parm[is.na(m)]}}.", i = "The parameters are {.val {all_names}}."),
                "mlmfit_error_argument")
    }
    m
  }
  if (length(which) == 0L || anyNA(which) || any(which < 1L | which > length(all_names))) {
    mlm_abort("{.arg parm} indices must be between 1 and {length(all_names)}.", "mlmfit_error_argument")
  }
  which
}

# Wald limits at probabilities a: the fixed effects from vcov(), NA for the
# nvp variance parameters (as lme4).
wald_limits <- function(object, nvp, a) {
  se <- sqrt(diag(object$vcov))
  rbind(matrix(NA_real_, nvp, 2L), cbind(object$beta, object$beta) + se %o% stats::qnorm(a))
}
