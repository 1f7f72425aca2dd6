# Support for the emmeans package (estimated marginal means, contrasts):
# recover_data() and emm_basis() methods, registered when emmeans is loaded
# (see .onLoad). The degrees of freedom of each estimate are Satterthwaite's
# (default) or Kenward-Roger's, as for summary() and anova().

#' emmeans support for linear mixed models
#'
#' When the emmeans package is installed, `emmeans::emmeans()`,
#' `emmeans::emtrends()`, `pairs()` and `contrast()` work on fits from
#' [lmm()]. Degrees of freedom come from Satterthwaite's method by default;
#' pass `lmer.df = "kenward-roger"` (which also uses the Kenward-Roger
#' adjusted covariance of the fixed effects) or `lmer.df = "asymptotic"`
#' (infinite df) to `emmeans()`, as for lme4 fits.
#'
#' @param object A fit from [lmm()].
#' @param trms,xlev,grid Supplied by emmeans.
#' @param vcov. A covariance matrix of the fixed effects to use instead of
#'   the model's.
#' @param lmer.df,mode Degrees-of-freedom method: `"satterthwaite"`,
#'   `"kenward-roger"` or `"asymptotic"` (`mode` is a synonym).
#' @param ... Passed on by emmeans.
#' @name lmm-emmeans
#' @keywords internal
#' @examples
#' if (requireNamespace("emmeans", quietly = TRUE)) {
#'   nels88$sctype <- factor(nels88$sctype)
#'   fit <- lmm(math ~ homework + sctype + (1 | schid), nels88)
#'   emmeans::emmeans(fit, ~ sctype)
#'   emmeans::emmeans(fit, ~ sctype, lmer.df = "kenward-roger")
#' }
NULL

#' @rdname lmm-emmeans
recover_data.mlmfit_lmm <- function(object, ...) {
  fcall <- fit_call(object)
  fcall$formula <- spec_formula(object)
  frame <- spec_frame(object)
  emmeans::recover_data(fcall, stats::delete.response(stats::terms(object)), attr(frame, "na.action"),
                        frame = frame, ...)
}

#' @rdname lmm-emmeans
emm_basis.mlmfit_lmm <- function(object, trms, xlev, grid, vcov., lmer.df, mode, ...) {
  method <- if (!missing(lmer.df)) lmer.df else if (!missing(mode)) mode else "satterthwaite"
  method <- match_ddf(method)
  m <- stats::model.frame(trms, grid, na.action = stats::na.pass, xlev = xlev)
  X <- stats::model.matrix(trms, m, contrasts.arg = spec_contrasts(object))
  beta <- fixef(object)
  kept <- match(names(beta), colnames(X))
  bhat <- rep(NA_real_, ncol(X))
  bhat[kept] <- beta
  names(bhat) <- colnames(X)
  if (anyNA(bhat)) {
    Xfull <- stats::model.matrix(trms, spec_frame(object), contrasts.arg = spec_contrasts(object))
    nbasis <- estimability::nonest.basis(Xfull)
  } else {
    nbasis <- estimability::all.estble
  }
  basis <- if (method == "none") NULL else ddf_basis(object, method)
  V <- if (!missing(vcov.)) {
    as.matrix(vcov.)
  } else if (method == "Kenward-Roger") {
    basis$vcov_adjusted
  } else {
    vcov(object)
  }
  # emmeans keeps dffun without its environment: the df computation travels
  # in dfargs as a closure of this package.
  df_of <- function(k) {
    k <- k[kept]
    switch(method, none = Inf, Satterthwaite = satterthwaite_1d(basis, k)$df,
           `Kenward-Roger` = kenward_roger_1d(basis, k)$df)
  }
  dffun <- function(k, dfargs) dfargs$df_of(k)
  attr(dffun, "mesg") <- switch(method, Satterthwaite = "satterthwaite", `Kenward-Roger` = "kenward-roger",
                                none = "asymptotic")
  list(X = X, bhat = bhat, nbasis = nbasis, V = unname(V), dffun = dffun, dfargs = list(df_of = df_of),
       misc = list())
}
