# A table of the same quantities from several fits, e.g. mlmfit beside
# lme4, so a lesson can show that the numbers agree.

#' Put fits side by side
#'
#' Tabulates the estimates of several mixed-model fits of the same model:
#' fixed effects and their standard errors, standard deviations and
#' correlations of the random effects, the residual standard deviation, and
#' the deviance (`-2 logLik`: the REML criterion for REML fits). It works
#' with any fit that has methods for `fixef()`, `vcov()`, `VarCorr()` (with
#' `as.data.frame()`) and `logLik()`, such as fits from [lmm()] and from
#' `lme4::lmer()`.
#'
#' @param ... Fits, named as the columns should be, e.g.
#'   `compare_fits(mlmfit = fit, lme4 = fit_lmer)`.
#' @return A data frame with a `quantity` column and one column per fit.
#' @examples
#' fit_reml <- lmm(math ~ homework + (1 | schid), nels88)
#' fit_ml <- lmm(math ~ homework + (1 | schid), nels88, REML = FALSE)
#' compare_fits(REML = fit_reml, ML = fit_ml)
#' \donttest{
#' if (requireNamespace("lme4", quietly = TRUE)) {
#'   compare_fits(mlmfit = fit_reml,
#'                lme4 = lme4::lmer(math ~ homework + (1 | schid), nels88))
#' }
#' }
#' @export
compare_fits <- function(...) {
  fits <- list(...)
  if (length(fits) == 0L) {
    mlm_abort("Give at least one fit, e.g. {.code compare_fits(mlmfit = fit)}.", "mlmfit_error_argument")
  }
  nm <- names(fits)
  if (is.null(nm)) nm <- rep("", length(fits))
  nm[nm == ""] <- paste0("fit", seq_along(fits))[nm == ""]
  tables <- lapply(fits, fit_quantities)
  quantity <- unique(unlist(lapply(tables, names)))
  out <- data.frame(quantity = quantity, stringsAsFactors = FALSE)
  for (k in seq_along(tables)) out[[nm[k]]] <- unname(tables[[k]][quantity])
  out
}

fit_quantities <- function(fit) {
  fe <- fixef(fit)
  se <- sqrt(diag(as.matrix(stats::vcov(fit))))
  vc <- as.data.frame(VarCorr(fit))
  vc_label <- ifelse(vc$grp == "Residual", "sigma",
                     ifelse(is.na(vc$var2), paste0("sd ", vc$grp, " ", vc$var1),
                            paste0("cor ", vc$grp, " ", vc$var1, ", ", vc$var2)))
  ll <- stats::logLik(fit)
  reml <- (inherits(fit, "mlmfit") && fit_reml(fit)) ||
    isTRUE(tryCatch(lme4_is_reml(fit), error = function(e) FALSE))
  dev_label <- if (reml) "REML criterion" else "deviance"
  c(stats::setNames(unname(fe), names(fe)),
    stats::setNames(unname(se), paste0("SE ", names(fe))),
    stats::setNames(vc$sdcor, vc_label),
    stats::setNames(-2 * as.numeric(ll), dev_label))
}

# isREML() for lme4 fits without importing lme4.
lme4_is_reml <- function(fit) {
  if (!inherits(fit, "merMod")) return(FALSE)
  getExportedValue("lme4", "isREML")(fit)
}
