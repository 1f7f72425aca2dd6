# The engine interface: the only R code that calls the C++ engine (the
# *_cpp functions of src/*_glue.cpp). Each function takes the model spec
# (spec.R); the glue converts it once, with its checks, and returns all the
# caller needs in one call. The engine's refusals of sizes beyond its index
# range and failed allocations become classed errors here.

engine_call <- function(expr) {
  tryCatch(expr,
    "std::length_error" = function(e) {
      mlm_abort(c("The model is too large for the engine.", x = conditionMessage(e),
                  i = "Use fewer levels or fewer crossed random-effect terms."),
                "mlmfit_error_size")
    },
    "std::bad_alloc" = function(e) {
      mlm_abort(c("There is not enough memory to fit the model.",
                  i = "Free memory, or fit a model with fewer random effects."),
                "mlmfit_error_memory")
    })
}

# A fit of the model, by the engine its spec calls for: linear mixed model,
# with a residual structure, or generalised (a negative binomial whose size
# is to be estimated in two steps: a Poisson fit gives the first size).
# start: optional list(theta, psi, eta) to start from (refits, profiles);
# new fits start from moment estimates (lmm) or the template (glmm).
# Returns the engine's answer; a GLMM whose fit failed has `error`.
engine_fit <- function(spec, control, REML = FALSE, nAGQ = 1L, start = NULL) {
  fam <- spec_family(spec)
  if (!is.null(fam)) return(engine_fit_glmm(spec, control, nAGQ, start))
  if (!is.null(spec_residual(spec))) {
    return(engine_call(lmm_structured_fit_cpp(spec, start$theta, start$psi, REML, control)))
  }
  engine_call(lmm_fit_cpp(spec, start$theta, REML, control))
}

engine_fit_glmm <- function(spec, control, nAGQ, start) {
  fam <- spec_family(spec)
  eta_start <- as.double(start$eta %||% glmm_eta_start(spec))
  if (fam$dist != "negative_binomial" || !is.na(fam$nb_size)) {
    return(engine_call(glmm_fit_cpp(spec, start$theta, eta_start, nAGQ, control)))
  }
  # The size by the profile likelihood (lme4's glmer.nb): a Poisson fit
  # gives the means from which a first size is estimated; the engine then
  # searches log(size) three units either side of it, widening if needed.
  poisson_spec <- spec_with_family(spec, stats::poisson(link = fam$link))
  pois <- engine_call(glmm_fit_cpp(poisson_spec, start$theta, eta_start, nAGQ,
                                   utils::modifyList(control, list(hessian = FALSE, cond_var = FALSE))))
  if (!is.null(pois$error)) {
    mlm_abort(c("The Poisson model that starts the negative binomial fit failed: {pois$error}."), "mlmfit_error_fit")
  }
  rows <- spec_rows(spec)
  size0 <- nb_theta_ml(rows$y, pois$mu, rows$weights)
  engine_call(glmm_nb_fit_cpp(spec, as.double(pois$theta), as.double(pois$eta), nAGQ, control,
                              log(size0) - 3, log(size0) + 3))
}

# The linear predictor a GLMM fit starts from: the family's link of glm()'s
# starting means.
glmm_eta_start <- function(spec) {
  fam <- spec_family(spec)
  rows <- spec_rows(spec)
  fam$family$linkfun(glmm_mustart(rows$y, rows$weights, fam$dist))
}

# A linear mixed model optimised from cross-products with no pass over the
# data: stored ones (ML after REML, profiles of fixed effects), started at
# theta_start, or ones formed elsewhere (by a database, for a spec without
# rows), started from moment estimates when theta_start is NULL. With the
# fitted values when the spec has rows.
engine_refit_xp <- function(spec, xp, theta_start, REML, control) {
  if (!is.null(theta_start)) theta_start <- as.double(theta_start)
  engine_call(lmm_refit_xp_cpp(spec, xp, theta_start, REML, control))
}

# A linear mixed model refitted to the spec's response (a new one, see
# spec_with_response()) from the fit's cross-products, whose parts that
# involve the response are recomputed; the optimiser starts at theta_start.
engine_refit_response <- function(spec, xp, theta_start, REML, control) {
  engine_call(lmm_refit_response_cpp(spec, xp, as.double(theta_start), REML, control))
}

# The same for each column of Y, returning only the estimates (theta, beta,
# sigma, deviance, number of convergence warnings; NA where a refit failed).
engine_refit_responses <- function(spec, xp, Y, theta_start, REML, control) {
  storage.mode(Y) <- "double"
  engine_call(lmm_refit_responses_cpp(spec, xp, Y, as.double(theta_start), REML, control))
}

# Everything at given parameters, without optimising: a linear mixed model
# at theta (from stored cross-products), a structured one at (theta, psi),
# a GLMM at (theta, beta).
engine_evaluate_lmm <- function(spec, xp, theta, REML, cond_var = FALSE, fitted = TRUE) {
  engine_call(lmm_evaluate_cpp(spec, xp, as.double(theta), REML, cond_var, fitted))
}

engine_evaluate_structured <- function(spec, theta, psi, REML, cond_var = FALSE) {
  engine_call(lmm_structured_evaluate_cpp(spec, as.double(theta), as.double(psi), REML, cond_var))
}

engine_evaluate_glmm <- function(spec, theta, beta, eta_start, nAGQ, control) {
  engine_call(glmm_evaluate_cpp(spec, as.double(eta_start), as.double(theta), as.double(beta), nAGQ, control))
}

# The deviance (REML criterion or -2 log-likelihood) at each column of
# params: theta for a linear mixed model (from its cross-products xp; with
# gradient = TRUE also the analytic gradient, one column per point), or
# (theta, psi) for a structured one. Inf outside the parameter space.
engine_deviance <- function(spec, params, REML, xp = NULL, gradient = FALSE) {
  params <- as.matrix(params)
  storage.mode(params) <- "double"
  if (is.null(spec_residual(spec))) return(engine_call(lmm_deviance_cpp(spec, xp, params, REML, gradient)))
  if (gradient) {
    mlm_abort("Internal error: no analytic gradient for models with a residual structure.", "mlmfit_error_internal")
  }
  list(deviance = engine_call(lmm_structured_deviance_cpp(spec, params, REML)))
}

# The pieces of the deviance at each column of params (theta; or (theta,
# psi) with a residual structure), for profiles and Satterthwaite's degrees
# of freedom: ok (FALSE outside the parameter space), ld_L2, ld_RX2, pwrss,
# log_det_R (log |R| of the residual covariance sigma^2 R; minus the sum of
# the logs of the prior weights without a structure) and, with with_vcov,
# the covariance of beta per unit sigma^2 (p x p x points).
engine_deviance_terms <- function(spec, params, REML, xp = NULL, with_vcov = FALSE) {
  params <- as.matrix(params)
  storage.mode(params) <- "double"
  if (is.null(spec_residual(spec))) {
    tm <- engine_call(lmm_deviance_terms_cpp(spec, xp, params, with_vcov))
    tm$log_det_R <- rep(-xp$sum_log_weights, ncol(params))
    return(tm)
  }
  p <- length(spec_x_names(spec))
  tm <- engine_call(lmm_structured_terms_cpp(spec, params, REML, with_vcov))
  ok <- is.finite(tm[1L, ])
  vcov <- if (with_vcov) array(sweep(tm[-(1:6), , drop = FALSE], 2L, tm[5L, ]^2, "/"), c(p, p, ncol(params)))
  list(ok = ok, ld_L2 = tm[2L, ], ld_RX2 = tm[3L, ], pwrss = tm[4L, ], log_det_R = tm[6L, ],
       vcov = vcov %||% numeric())
}

# The relative covariance factors T of each block at theta (the engine's
# conversion, the only one), named by block with the blocks' column names.
relative_factors <- function(x, theta) {
  spec <- as_spec(x)
  Tb <- engine_call(relative_factors_cpp(spec, as.double(theta)))
  blocks <- re_blocks(spec)
  for (b in seq_along(Tb)) dimnames(Tb[[b]]) <- list(blocks[[b]]$colnames, blocks[[b]]$colnames)
  stats::setNames(Tb, names(blocks))
}

# Kenward-Roger's matrices P, Q and K at theta (params: block and columns of
# each variance parameter); list(error = ) when the model is too large.
engine_kenward_roger_terms <- function(spec, theta, sigma2, params, max_component) {
  engine_call(kenward_roger_terms_cpp(spec, as.double(theta), sigma2, params, max_component))
}

# The diagonal of the hat matrix of the conditional fitted values at theta.
engine_leverages <- function(spec, theta) engine_call(leverages_cpp(spec, as.double(theta)))
