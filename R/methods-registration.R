# Methods for generics of suggested packages (lme4, insight, performance,
# parameters, car, emmeans, effects, ggeffects, lattice), registered when
# the package is loaded (or now, if it already is): mlmfit does not import
# them. Called from .onLoad().
register_ecosystem_methods <- function() {
  for (generic in c("getME", "isREML", "isLMM", "isGLMM")) {
    s3_register(paste0("lme4::", generic), "mlmfit", get(paste0(generic, ".mlmfit")))
  }
  # lme4's bootMer() refits through lme4's generic (refit.mlmfit_lmm is
  # registered in .onLoad)
  s3_register("lme4::refit", "mlmfit_glmm", refit.mlmfit_glmm)
  insight <- c("find_formula", "get_statistic", "get_df", "find_algorithm", "is_converged",
               "get_loglikelihood", "get_variance", "get_predicted", "find_random", "find_weights", "n_obs",
               "get_data", "find_parameters", "get_parameters", "get_deviance", "get_intercept")
  for (generic in insight) {
    s3_register(paste0("insight::", generic), "mlmfit", get(paste0("insight_", generic)))
  }
  for (generic in c("r2", "check_singularity", "model_performance")) {
    s3_register(paste0("performance::", generic), "mlmfit", get(paste0("performance_", generic)))
  }
  s3_register("performance::check_model", "mlmfit_lmm_structured", performance_check_model)
  s3_register("insight::ellipsis_info", "mlmfit", insight_ellipsis_info)
  s3_register("emmeans::recover_data", "mlmfit_glmm", recover_data.mlmfit_lmm)
  s3_register("emmeans::emm_basis", "mlmfit_glmm", emm_basis.mlmfit_glmm)
  s3_register("lattice::dotplot", "ranef.mlmfit", dotplot.ranef.mlmfit)
  s3_register("lattice::qqmath", "ranef.mlmfit", qqmath.ranef.mlmfit)
  for (generic in c("xyplot", "densityplot", "splom")) {
    s3_register(paste0("lattice::", generic), "mlmfit_profile", get(paste0(generic, ".mlmfit_profile")))
  }
  # through the bridge to lme4 (methods-via-lme4.R)
  s3_register("parameters::model_parameters", "mlmfit", parameters_model_parameters)
  for (generic in c("Anova", "linearHypothesis", "vif")) {
    s3_register(paste0("car::", generic), "mlmfit", get(paste0("car_", generic)))
  }
  for (generic in c("Effect", "allEffects", "predictorEffect", "predictorEffects")) {
    s3_register(paste0("effects::", generic), "mlmfit", get(paste0("effects_", generic)))
  }
  invisible()
}
