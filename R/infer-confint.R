# confint(): Wald, profile-likelihood and parametric-bootstrap intervals
# for the variance parameters and the fixed effects of every kind of fit,
# laid out as lme4's.

#' Confidence intervals for a mixed model
#'
#' Intervals for the variance parameters (standard deviations and
#' correlations of the random effects, and the residual standard
#' deviation, named as lme4 names them: `.sig01`, ..., `.sigma`, or
#' `sd_(Intercept)|group`, ... with `oldNames = FALSE`) and for the fixed
#' effects. A [glmm()] fit has no residual standard deviation, except the
#' scale `.sigma` of a Gamma model; its fixed effects' limits are on the
#' scale of the linear predictor (exponentiate the limits of a logit model
#' for odds ratios).
#'
#' * `"profile"` (default): profile-likelihood intervals, as lme4's. Each
#'   parameter is held at values on either side of its estimate while all
#'   the others are re-optimised; the limits are where the signed square
#'   root of the rise of the deviance crosses the normal quantiles, found by
#'   root finding. A linear mixed model is profiled on its ML deviance (a
#'   REML fit is refitted by ML first), from the stored cross-products (no
#'   pass over the data). A [glmm()] fit is profiled on the approximate
#'   deviance it minimised (Laplace, or adaptive Gauss-Hermite for
#'   `nAGQ > 1`): a fixed effect is held by moving its column into the
#'   offset and refitting in the engine, a variance parameter on the
#'   standard-deviation/correlation scale while the other parameters are
#'   optimised by [stats::nlminb()], each step an evaluation of the deviance
#'   by the engine. Not available for `nAGQ = 0` fits (refit with
#'   `nAGQ = 1`) or Gamma models.
#' * `"Wald"`: estimate plus or minus a normal quantile times the standard
#'   error from [vcov()], for the fixed effects only (`NA` for the variance
#'   parameters), as lme4.
#' * `"boot"`: a parametric bootstrap ([parametric_bootstrap()]): `nsim`
#'   responses are simulated from the fitted model and the model is refitted
#'   to each; intervals are percentile intervals (or `"basic"` or `"norm"`,
#'   see `boot.type`). With the same `seed` the simulated responses of an
#'   [lmm()] fit are those of `lme4::bootMer()`. Failed refits are left out
#'   with a warning; when more than a tenth fail, `confint()` stops with an
#'   error of class `mlmfit_error_bootstrap` rather than report intervals
#'   from the rest.
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
#' @param object A fit from [lmm()] or [glmm()].
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
#'
#' nels88$pass <- nels88$math >= 50
#' gfit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' confint(gfit)
#' exp(confint(gfit, parm = "beta_", method = "Wald"))   # odds ratios
#' @export
confint.mlmfit <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"), nsim = 500,
                           seed = NULL, boot.type = c("perc", "basic", "norm"), cores = 1L, progress = TRUE,
                           oldNames = TRUE, ...) {
  warn_unused_dots(..., method = "confint")
  # (missing() before match.arg(): an assigned argument is no longer missing)
  boot_given <- c(nsim = !missing(nsim), seed = !missing(seed), boot.type = !missing(boot.type),
                  cores = !missing(cores), progress = !missing(progress))
  method <- match.arg(method)
  boot.type <- match.arg(boot.type)
  if (method != "boot" && any(boot_given)) {
    shown <- names(boot_given)[boot_given]
    mlm_warn("{.code method = \"{method}\"} does not use the bootstrap's {cli::qty(length(shown))}argument{?s} {.arg {shown}}: {?it is/they are} ignored.",
             "mlmfit_warning_unused_argument", arguments = shown)
  }
  check_level(level)
  all_names <- parameter_names(object, oldNames)
  p <- length(fixef(object))
  nvp <- length(all_names) - p
  which <- confint_which(parm, all_names, nvp, p)
  a <- (1 + c(-level, level)) / 2
  cols <- paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")
  out <- switch(method,
    Wald = wald_limits(object, nvp, a)[which, , drop = FALSE],
    profile = profile_intervals(object, which, level, all_names[which]),
    boot = bootstrap_limits(parametric_bootstrap(object, nsim, seed = seed, cores = cores, progress = progress),
                            which, level, boot.type))
  matrix(out, ncol = 2L, dimnames = list(all_names[which], cols))
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
  beta <- fixef(object)
  se <- sqrt(diag(vcov(object)))
  rbind(matrix(NA_real_, nvp, 2L), cbind(beta, beta) + se %o% stats::qnorm(a))
}
