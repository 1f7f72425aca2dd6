# emmeans for glmm() fits: the basis of lmm() fits (methods-emmeans.R) with
# asymptotic (z) degrees of freedom and the family's link, so that
# emmeans(type = "response") back-transforms as for glmer fits.

#' @rdname lmm-emmeans
emm_basis.mlmfit_glmm <- function(object, trms, xlev, grid, vcov., ...) {
  basis <- if (missing(vcov.)) {
    emm_basis.mlmfit_lmm(object, trms, xlev, grid, lmer.df = "asymptotic")
  } else {
    emm_basis.mlmfit_lmm(object, trms, xlev, grid, vcov. = vcov., lmer.df = "asymptotic")
  }
  basis$misc <- emmeans::.std.link.labels(family(object), basis$misc)
  basis
}
