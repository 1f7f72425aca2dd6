#' mlmfit: fast multilevel models with a C++ engine
#'
#' Linear mixed models with [lmm()]: lme4's formula syntax, lme4's answers,
#' a faster engine. See `vignette("nels88", package = "mlmfit")` for a first
#' lesson.
#'
#' @keywords internal
#' @useDynLib mlmfit, .registration = TRUE
#' @importFrom Rcpp sourceCpp
#' @importFrom stats AIC BIC coef confint fitted formula logLik model.frame model.matrix family predict simulate
#'   nobs residuals sigma terms vcov weights deviance getCall
#' @importFrom stats anova confint cooks.distance hatvalues predict simulate
"_PACKAGE"

.onLoad <- function(libname, pkgname) {
  # lme4 has its own ngrps() generic: make it find our method too.
  s3_register("lme4::ngrps", "mlmfit", ngrps.mlmfit)
  # lme4's refit() generic too, and the methods emmeans looks up.
  s3_register("lme4::refit", "mlmfit_lmm", refit.mlmfit_lmm)
  s3_register("emmeans::recover_data", "mlmfit_lmm", recover_data.mlmfit_lmm)
  s3_register("emmeans::emm_basis", "mlmfit_lmm", emm_basis.mlmfit_lmm)
  register_ecosystem_methods()
  # fits to database tables: the SQL they sent, and its plans
  s3_register("dplyr::show_query", "mlmfit_db", show_query_mlmfit_db)
  s3_register("dplyr::explain", "mlmfit_db", explain_mlmfit_db)
  s3_register("lme4::refit", "mlmfit_db", refit.mlmfit_db)
  s3_register("emmeans::recover_data", "mlmfit_db", function(object, ...) refuse_without_rows(object, "emmeans"))
  invisible()
}
