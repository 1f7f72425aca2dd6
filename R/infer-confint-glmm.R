# confint() for glmm() fits: profile-likelihood, Wald and parametric
# bootstrap intervals, with the arguments, default and layout of
# confint.mlmfit_lmm() (and of lme4's confint() of a glmer fit).

#' Confidence intervals for a generalized linear mixed model
#'
#' Intervals for the variance parameters (standard deviations and
#' correlations of the random effects, named as lme4 names them: `.sig01`,
#' ..., or `sd_(Intercept)|group`, ... with `oldNames = FALSE`; a Gamma
#' model adds the scale `.sigma`) and for the fixed effects, on the scale of
#' the linear predictor (exponentiate the limits of a logit model for odds
#' ratios):
#'
#' * `"profile"` (default, as lme4's): profile-likelihood intervals on the
#'   approximate deviance the fit minimised (Laplace, or adaptive
#'   Gauss-Hermite for `nAGQ > 1`). Each parameter is held at values on
#'   either side of its estimate while all the others are re-optimised; the
#'   limits are where the signed square root of the rise of the deviance
#'   crosses the normal quantiles, found by root finding. A fixed effect is
#'   held by moving its column into the offset and refitting in the engine;
#'   a variance parameter is held on the standard-deviation/correlation
#'   scale while the other parameters are optimised by [stats::nlminb()],
#'   each step an evaluation of the deviance by the engine. Not available
#'   for `nAGQ = 0` fits (refit with `nAGQ = 1`) or Gamma models.
#' * `"Wald"`: estimate plus or minus a normal quantile times the standard
#'   error from [vcov()], for the fixed effects only (`NA` for the variance
#'   parameters), as lme4's.
#' * `"boot"`: a parametric bootstrap ([parametric_bootstrap()]): `nsim`
#'   responses are simulated from the fitted model by [simulate()] and the
#'   model is refitted to each; percentile intervals (or `"basic"` or
#'   `"norm"`, see `boot.type`). Refits that fail are left out, and counted
#'   in a warning; when more than a tenth fail, `confint()` stops with an
#'   error of class `mlmfit_error_bootstrap` (as for [lmm()] fits).
#'
#' @param object A fit from [glmm()].
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
#' @seealso [confint.mlmfit_lmm()], [parametric_bootstrap()].
#' @examples
#' nels88$pass <- nels88$math >= 50
#' fit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' confint(fit)                        # profile likelihood
#' confint(fit, method = "Wald")
#' exp(confint(fit, parm = "beta_"))   # odds ratios
#' confint(fit, parm = ".sig01", method = "boot", nsim = 50, seed = 1, progress = FALSE)
#' @export
confint.mlmfit_glmm <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"), nsim = 500,
                         seed = NULL, boot.type = c("perc", "basic", "norm"), cores = 1L, progress = TRUE,
                         oldNames = TRUE, ...) {
  method <- match.arg(method)
  boot.type <- match.arg(boot.type)
  check_level(level)
  vnames <- glmm_sdcor_names(object, oldNames)
  all_names <- c(vnames, names(object$beta))
  nvp <- length(vnames)
  which <- confint_which(parm, all_names, nvp, length(object$beta))
  a <- (1 + c(-level, level)) / 2
  cols <- paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")
  out <- switch(method,
    Wald = wald_limits(object, nvp, a)[which, , drop = FALSE],
    profile = glmm_profile_intervals(object, which, level, all_names[which]),
    boot = {
      est <- parametric_bootstrap(object, nsim, seed = seed, cores = cores, progress = progress)
      glmm_bootstrap_limits(est, c(glmm_sdcor(object), object$beta), which, level, boot.type)
    })
  matrix(out, ncol = 2L, dimnames = list(all_names[which], cols))
}

# Bootstrap limits of the parameters `which` from the replicates `est` (one
# row per replicate; rows of NA are failed refits, left out and counted).
glmm_bootstrap_limits <- function(est, t0, which, level, type) {
  n_failed <- sum(!stats::complete.cases(est))
  if (n_failed > 0L) {
    mlm_warn("{n_failed} of {nrow(est)} bootstrap refit{?s} failed and {?was/were} left out.",
             "mlmfit_warning_bootstrap")
  }
  check_bootstrap_failures(est, nrow(est))
  ok <- stats::complete.cases(est)
  t(vapply(which, function(w) bootstrap_interval(est[ok, w], t0[w], level, type), numeric(2)))
}

# The variance parameters of a glmm() fit on the sdcor scale, with the scale
# only where the family has one (Gamma), and their names.
glmm_sdcor <- function(fit, theta = fit$theta, sigma = fit$sigma) {
  s <- theta_to_sdcor(fit$re, theta, sigma)
  if (isTRUE(fit$use_sc)) s else s[-length(s)]
}

glmm_sdcor_names <- function(fit, old_names = TRUE) {
  nm <- sdcor_names(fit$re, old_names = old_names)
  if (isTRUE(fit$use_sc)) nm else nm[-length(nm)]
}
