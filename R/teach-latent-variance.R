# The variance decomposition of Nakagawa, Johnson and Schielzeth (2017) on
# the latent (link) scale, for lmm() and glmm() fits: the variance of the
# fixed-effect predictions, of the random effects (averaged over the
# observations), the distribution-specific variance of the family and the
# overdispersion carried by observation-level random effects. icc(), r2()
# and insight's get_variance() (which performance reads) are arithmetic on
# it.

variance_approximations <- c("lognormal", "delta")

# A list with var.fixed, var.random, var.distribution, var.dispersion,
# var.residual and the per-group pieces var.intercept, var.slope,
# cor.slope_intercept, as insight::get_variance() names them.
latent_variances <- function(fit, approximation = "lognormal", null = NULL) {
  refuse_unsupported_latent(fit)
  approximation <- match.arg(approximation, variance_approximations)
  n <- nobs(fit)
  vc <- VarCorr(fit)
  per_term <- term_variances(fit)
  # Terms with one level per observation model overdispersion (GLMMs).
  observation_level <- vapply(re_terms(fit), function(tm) tm$n_levels == n, logical(1))
  distribution <- if (inherits(fit, "mlmfit_lmm")) sigma(fit)^2 else distribution_variance(fit, approximation, null)
  intercepts <- vapply(vc, function(S) if (colnames(S)[1L] == "(Intercept)") S[1L, 1L] else NA_real_, numeric(1))
  slopes <- unlist(lapply(names(vc), function(g) {
    S <- vc[[g]]
    keep <- colnames(S) != "(Intercept)"
    if (!any(keep)) return(NULL)
    stats::setNames(diag(S)[keep], paste(g, colnames(S)[keep], sep = "."))
  }))
  correlations <- unlist(lapply(names(vc), function(g) {
    R <- attr(vc[[g]], "correlation")
    if (ncol(R) < 2L || colnames(R)[1L] != "(Intercept)") return(NULL)
    stats::setNames(R[-1L, 1L], if (ncol(R) == 2L) g else paste(g, colnames(R)[-1L], sep = "."))
  }))
  out <- list(var.fixed = stats::var(as.vector(spec_X(fit) %*% fixef(fit))),
              var.random = sum(per_term[!observation_level]),
              var.residual = distribution + sum(per_term[observation_level]),
              var.distribution = distribution,
              var.dispersion = sum(per_term[observation_level]),
              var.intercept = intercepts[!is.na(intercepts)],
              var.slope = if (length(slopes)) slopes,
              cor.slope_intercept = if (length(correlations)) correlations)
  Filter(Negate(is.null), out)
}

refuse_unsupported_latent <- function(fit) {
  if (!inherits(fit, c("mlmfit_lmm", "mlmfit_glmm"))) {
    mlm_abort(c("This needs a fit from {.fn lmm} or {.fn glmm}.", x = "It is of class {.cls {class(fit)}}."),
              "mlmfit_error_argument")
  }
  if (!inherits(fit, "mlmfit_glmm")) return(invisible())
  fam <- spec_family(fit)
  dist <- fam$dist
  link <- fam$link
  ok <- switch(dist, binomial = link %in% c("logit", "probit", "cloglog"),
               poisson = , negative_binomial = link %in% c("log", "sqrt"), Gamma = TRUE, FALSE)
  if (!ok) {
    mlm_abort(c("The latent-scale variance of the {.val {dist}} family with the {.val {link}} link is not defined here.",
                i = "It is available for binomial (logit, probit, cloglog), Poisson and negative binomial (log, sqrt) and Gamma models."),
              "mlmfit_error_family")
  }
}

# The distribution-specific variance on the latent scale (Nakagawa et al.
# 2017, table 1): pi^2/3 (logit), 1 (probit), pi^2/6 (cloglog) for binomial
# models; for counts with a log link ln(1 + 1/lambda + 1/size) (lognormal
# approximation; 1/lambda + 1/size by the delta method), with lambda the
# mean of the null model (the fit's random effects and offset, no
# predictors), as performance computes it; 0.25 with a sqrt link; the
# variance function at sigma for Gamma models.
distribution_variance <- function(fit, approximation, null) {
  fam <- spec_family(fit)
  dist <- fam$dist
  link <- fam$link
  if (dist == "binomial") return(switch(link, logit = pi^2 / 3, probit = 1, cloglog = pi^2 / 6))
  if (dist == "Gamma") return(fam$family$variance(fit_sigma(fit)))
  if (link == "sqrt") return(0.25)
  if (is.null(null)) null <- null_glmm(fit)
  lambda <- exp(unname(fixef(null)[[1L]]))
  cv2 <- 1 / lambda + if (dist == "negative_binomial") 1 / fam$nb_size else 0
  if (approximation == "delta") cv2 else log1p(cv2)
}

# The null model of a count GLMM: intercept, the fit's random-effect terms
# and offset, on the same rows.
null_glmm <- function(fit) {
  d <- spec_frame(fit)
  y <- d[[1L]]
  d <- d[-1L]
  d$.y <- y
  f <- stats::as.formula(paste(".y ~ 1 +", paste(random_term_text(fit), collapse = " + ")),
                         env = environment(spec_formula(fit)))
  d$.o <- spec_offset(fit) %||% rep(0, nrow(d))
  d$.w <- spec_weights(fit) %||% rep(1, nrow(d))
  fam <- spec_family(fit)
  family <- if (fam$dist == "negative_binomial") negative_binomial(link = fam$link) else fam$family
  suppressMessages(glmm(f, d, family = family, offset = .o, weights = .w, control = fit_control(fit)))
}
