# Inference for fits with a residual correlation or variance structure
# where it differs from fits without one: the reduced model of ranova()
# without random effects (nlme's gls with the same structure), and the
# refusal of leverages.

# ranova()'s reduced model when the last random-effect term is dropped
# from a fit with a residual structure: nlme::gls() with the same
# correlation and variance structure (their groups as the fit resolved
# them), started at the fit's estimates; parameters held fixed stay fixed.
gls_without_random_effects <- function(model, formula, eval_env) {
  if (!is.null(spec_weights(model)) || !is.null(spec_offset(model))) {
    mlm_abort(c("{.fn ranova} cannot drop the last random-effect term of this model: the reduced model, a generalised least squares fit by {.fn nlme::gls}, takes no prior weights or offset.",
                i = "Compare the models with and without the term by {.fn anova} on fits you make yourself."),
              "mlmfit_error_anova")
  }
  res <- spec_residual(model)
  par <- fit_residual_natural(model)
  n_cor <- if (is.null(res$correlation)) 0L else 1L
  cor_obj <- NULL
  if (!is.null(cs <- res$correlation)) {
    ctor <- getExportedValue("nlme", cs$class)
    cor_obj <- ctor(value = unname(par[[1L]]), form = cs$formula, fixed = !res$free[[1L]])
  }
  var_obj <- NULL
  if (!is.null(vs <- res$variance)) {
    ctor <- getExportedValue("nlme", vs$class)
    vpar <- par[vs$names]
    vfree <- res$free[n_cor + seq_along(vs$names)]
    var_obj <- if (vs$kind == "ident") {
      args <- list(form = vs$formula)
      if (any(vfree)) args$value <- vpar[vfree]
      if (any(!vfree)) args$fixed <- vpar[!vfree]
      do.call(ctor, args)
    } else if (vs$kind == "const_power") {
      args <- c(list(form = vs$formula), as.list(vpar[vfree]))
      if (any(!vfree)) args$fixed <- as.list(vpar[!vfree])
      do.call(ctor, args)
    } else if (vfree) {
      ctor(value = unname(vpar), form = vs$formula)
    } else {
      ctor(value = unname(vpar), form = vs$formula, fixed = unname(vpar))
    }
  }
  call <- fit_call(model)
  gcall <- call("gls", model = formula)
  gcall[[1L]] <- quote(nlme::gls)
  gcall$data <- call$data
  if (!is.null(call$subset)) gcall$subset <- call$subset
  gcall$na.action <- call$na.action %||% quote(stats::na.omit)
  gcall$correlation <- cor_obj
  gcall$weights <- var_obj
  gcall$method <- if (fit_reml(model)) "REML" else "ML"
  eval(gcall, eval_env)
}

#' @rdname lmm-influence
#' @export
hatvalues.mlmfit_lmm_structured <- function(model, ...) refuse_structured_leverages()

refuse_structured_leverages <- function() {
  mlm_abort(c("Leverages and Cook's distances are not available for fits with a residual {.arg correlation} or {.arg variance} structure.",
              i = "The hat matrix of such a fit is not the one computed for independent residuals; {.code residuals(fit, type = \"normalized\")} gives residuals to inspect."),
            "mlmfit_error_residual_structure")
}
