# Methods for generics of suggested packages (lme4, insight, performance,
# parameters, car, emmeans, effects, ggeffects, lattice), registered when
# the package is loaded (or now, if it already is): mlmfit does not import
# them. Called from .onLoad().
register_ecosystem_methods <- function() {
  for (generic in c("getME", "isREML", "isLMM", "isGLMM")) {
    s3_register(paste0("lme4::", generic), "mlmfit", get(paste0(generic, ".mlmfit")))
  }
  invisible()
}
