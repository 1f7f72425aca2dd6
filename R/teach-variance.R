# How much variance lies at each level, and how much predictors explain:
# intraclass correlations, R-squared measures and proportions of variance
# explained. All are arithmetic on the estimates of a fit; only r2() may fit
# one more model (the empty model), and it says so.

check_lmm_fit <- function(fit, arg = "fit") {
  if (!inherits(fit, "mlmfit_lmm")) {
    mlm_abort(c("{.arg {arg}} must be a linear mixed model fitted by {.fn lmm}.",
                x = "It is of class {.cls {class(fit)}}."),
              "mlmfit_error_argument")
  }
}

# The variance each grouping factor contributes to an observation, averaged
# over the observations: mean of z' Sigma z over the rows (the random
# intercept variance when a factor has no random slopes). This is the
# definition of Nakagawa, Johnson and Schielzeth (2017) that performance uses.
random_variances <- function(fit) {
  per_term <- term_variances(fit)
  labels <- vapply(re_terms(fit), function(t) t$label, "")
  groups <- unique(labels)
  stats::setNames(vapply(groups, function(g) sum(per_term[labels == g]), numeric(1)), groups)
}

# The same for each random-effect term.
term_variances <- function(fit) {
  vc <- VarCorr(fit)
  terms <- re_terms(fit)
  vapply(seq_along(terms), function(k) {
    Z <- term_z(fit, terms[[k]])
    S <- unclass(vc[[k]])
    attributes(S) <- list(dim = dim(S))
    mean(rowSums((Z %*% S) * Z))
  }, numeric(1))
}

has_random_slopes <- function(fit) {
  any(vapply(re_terms(fit), function(t) !identical(t$colnames, "(Intercept)"), logical(1)))
}

# Is factor g nested in factor h (each level of g inside one level of h)?
is_nested_in <- function(g, h) {
  nlevels(g) > nlevels(h) && nrow(unique(data.frame(g = as.integer(g), h = as.integer(h)))) == nlevels(g)
}

#' Intraclass correlations
#'
#' The share of the variance of the response that lies at each grouping
#' level of a linear mixed model. For the empty model `y ~ 1 + (1 | g)` the
#' intraclass correlation is `tau^2 / (tau^2 + sigma^2)`: the correlation of
#' two observations in the same group, and the proportion of variance that
#' lies between groups.
#'
#' With several grouping factors, `icc` is each factor's share of the total
#' variance, and `correlation` is the correlation of two observations that
#' share the group: for nested factors (classes within schools) it adds the
#' variances of the groups that contain it (the class ICC counts the school
#' variance too). For crossed factors the two columns agree.
#'
#' With random slopes the variance between groups depends on the
#' predictors; `variance` is then its average over the observations (the
#' mean of \eqn{z_i' \Sigma z_i}, as in Nakagawa, Johnson and Schielzeth
#' 2017, and `performance::icc()`). The ICCs are "adjusted": the variance
#' explained by fixed effects is left out of the total.
#'
#' For a fit from [glmm()] the variances are on the latent (link) scale
#' (Nakagawa, Johnson and Schielzeth 2017): the residual variance is the
#' distribution-specific variance (\eqn{\pi^2/3} for the logit link, 1 for
#' probit, \eqn{\pi^2/6} for cloglog; for counts with a log link
#' \eqn{\ln(1 + 1/\lambda)} by the lognormal approximation or
#' \eqn{1/\lambda} by the delta method, \eqn{\lambda} the mean of the
#' model without predictors, plus \eqn{1/\theta} for a negative binomial)
#' plus the variance of observation-level random effects, as in
#' `performance::icc()`.
#'
#' @param fit A fit from [lmm()] or [glmm()].
#' @param approximation For count GLMMs with a log link: `"lognormal"`
#'   (default, performance's) or `"delta"`.
#' @return A data frame of class `mlmfit_icc` with one row per grouping
#'   factor: `group`, `variance`, `icc` and `correlation`; the residual
#'   variance is in the attribute `"residual_variance"`.
#' @references Snijders, T. A. B. and Bosker, R. J. (2012). *Multilevel
#'   Analysis*, 2nd ed. London: Sage. Section 3.3.
#'
#'   Nakagawa, S., Johnson, P. C. D. and Schielzeth, H. (2017). The
#'   coefficient of determination R2 and intra-class correlation coefficient
#'   from generalized linear mixed-effects models revisited and expanded.
#'   *Journal of the Royal Society Interface* 14, 20170213.
#' @seealso [r2()], [pve()]
#' @examples
#' fit <- lmm(math ~ 1 + (1 | schid), nels88)
#' icc(fit)
#' # three levels: nurses in wards in hospitals
#' icc(lmm(stress ~ 1 + (1 | hospital) + (1 | hospital:ward), nurses))
#' @export
icc <- function(fit, approximation = c("lognormal", "delta")) {
  approximation <- match.arg(approximation)
  latent <- latent_variances(fit, approximation)
  v <- random_variances(fit)
  # observation-level terms of a GLMM are overdispersion: part of the residual
  blocks <- re_blocks(fit)
  v <- v[vapply(names(v), function(g) blocks[[g]]$n_levels < nobs(fit), logical(1))]
  resid <- latent$var.residual
  total <- sum(v) + resid
  factors <- lapply(stats::setNames(names(v), names(v)), function(b) block_factor(fit, b))
  shared <- vapply(names(v), function(g) {
    containing <- vapply(names(v), function(h) h != g && is_nested_in(factors[[g]], factors[[h]]), logical(1))
    v[[g]] + sum(v[containing])
  }, numeric(1))
  out <- data.frame(group = names(v), variance = unname(v), icc = unname(v) / total,
                    correlation = unname(shared) / total, stringsAsFactors = FALSE)
  structure(out, class = c("mlmfit_icc", "data.frame"), residual_variance = resid,
            random_slopes = has_random_slopes(fit), latent = inherits(fit, "mlmfit_glmm"))
}

#' @export
print.mlmfit_icc <- function(x, digits = 3, ...) {
  warn_unused_dots(..., method = "print")
  scale <- if (isTRUE(attr(x, "latent"))) "latent-scale residual variance " else "residual variance "
  cat("Intraclass correlation (", scale, format(attr(x, "residual_variance"), digits = digits), ")\n", sep = "")
  if (isTRUE(attr(x, "random_slopes"))) {
    cat("Random slopes: group variances averaged over the observations.\n")
  }
  df <- as.data.frame(unclass(x), stringsAsFactors = FALSE)
  print(format(df, digits = digits), row.names = FALSE)
  invisible(x)
}

#' R-squared for linear mixed models
#'
#' Two families of R-squared for a multilevel model:
#'
#' * Nakagawa and Schielzeth (2013): the **marginal** R-squared is the share
#'   of the total variance explained by the fixed effects,
#'   \eqn{\sigma^2_f / (\sigma^2_f + \sigma^2_u + \sigma^2)}, and the
#'   **conditional** R-squared the share explained by fixed and random
#'   effects together, \eqn{(\sigma^2_f + \sigma^2_u) / (\ldots)}.
#'   \eqn{\sigma^2_f} is the variance of the fixed-effect predictions
#'   \eqn{X\hat\beta}, \eqn{\sigma^2_u} the variance of the random effects
#'   (averaged over the observations with random slopes, as for [icc()]).
#'   These agree with `performance::r2_nakagawa()`.
#' * Snijders and Bosker (1994): the proportional reduction of prediction
#'   error against the empty model `y ~ 1 + (1 | g)`. At level 1, for an
#'   individual outcome: \eqn{1 - (\sigma^2 + \tau^2) / (\sigma^2_0 + \tau^2_0)}.
#'   At level 2, for a group mean of `n` observations:
#'   \eqn{1 - (\sigma^2 / n + \tau^2) / (\sigma^2_0 / n + \tau^2_0)}. The
#'   level-2 measure is given for models with one grouping factor; `n` is the
#'   harmonic mean of the group sizes unless `group_size` is given.
#'
#' For a fit from [glmm()], `marginal` and `conditional` are on the latent
#' scale with the variances of [icc()] (`performance::r2_nakagawa()`'s);
#' Snijders and Bosker's measures are `NA` (they are defined for linear
#' models). For count models the mean of the null model (intercept and the
#' fit's random effects) is needed: `r2()` fits it unless given as `null`.
#'
#' The empty model is fitted by `r2()` (with the same rows, weights, offset
#' and estimation method as `fit`) unless it is passed as `null`.
#'
#' Snijders and Bosker define their measures for random-intercept models: with
#' random slopes the variance between groups changes with the predictors and
#' a model can seem to explain a negative share. For a fit with random slopes
#' `level1` and `level2` are therefore `NA`; compute them from the
#' random-intercept model with the same fixed effects, as the authors advise.
#'
#' @param fit A fit from [lmm()] or [glmm()].
#' @param null Optional: the empty model fitted to the same data, e.g.
#'   `lmm(y ~ 1 + (1 | g), data)`. Fitted by `r2()` when not given.
#' @param approximation For count GLMMs with a log link: `"lognormal"`
#'   (default) or `"delta"` (see [icc()]).
#' @param group_size Group size `n` for the level-2 measure; by default the
#'   harmonic mean of the group sizes.
#' @return A named numeric vector of class `mlmfit_r2`: `marginal`,
#'   `conditional`, `level1` and `level2`.
#' @references Nakagawa, S. and Schielzeth, H. (2013). A general and simple
#'   method for obtaining R2 from generalized linear mixed-effects models.
#'   *Methods in Ecology and Evolution* 4, 133-142.
#'
#'   Snijders, T. A. B. and Bosker, R. J. (1994). Modeled variance in
#'   two-level models. *Sociological Methods & Research* 22, 342-363.
#' @seealso [icc()], [pve()]
#' @examples
#' fit <- lmm(math ~ homework + meanses + (1 | schid), nels88)
#' r2(fit)
#' @export
r2 <- function(fit, null = NULL, group_size = NULL, approximation = c("lognormal", "delta")) {
  approximation <- match.arg(approximation)
  if (inherits(fit, "mlmfit_glmm")) {
    lv <- latent_variances(fit, approximation, null = null)
    total <- lv$var.fixed + lv$var.random + lv$var.residual
    return(structure(c(marginal = lv$var.fixed / total, conditional = (lv$var.fixed + lv$var.random) / total,
                       level1 = NA_real_, level2 = NA_real_),
                     class = "mlmfit_r2", random_slopes = has_random_slopes(fit), latent = TRUE))
  }
  check_lmm_fit(fit)
  vf <- stats::var(as.vector(spec_X(fit) %*% fixef(fit)))
  vu <- sum(random_variances(fit))
  ve <- sigma(fit)^2
  total <- vf + vu + ve

  slopes <- has_random_slopes(fit)
  if (slopes) {
    return(structure(c(marginal = vf / total, conditional = (vf + vu) / total, level1 = NA_real_, level2 = NA_real_),
                     class = "mlmfit_r2", random_slopes = TRUE))
  }
  if (is.null(null)) {
    null <- fit_empty_model(fit)
  } else {
    check_lmm_fit(null, "null")
    if (nobs(null) != nobs(fit) || !isTRUE(all.equal(unname(spec_y(null)), unname(spec_y(fit))))) {
      mlm_abort(c("{.arg null} must be fitted to the same observations and response as {.arg fit}.",
                  i = "Fit it as {.code lmm(y ~ 1 + (1 | group), data)} with the data of {.arg fit}."),
                "mlmfit_error_argument")
    }
  }
  v0 <- random_variances(null)
  ve0 <- sigma(null)^2
  level1 <- 1 - (ve + vu) / (ve0 + sum(v0))
  level2 <- NA_real_
  if (length(re_blocks(fit)) == 1L && length(re_blocks(null)) == 1L) {
    g <- block_factor(fit, 1L)
    n <- group_size %||% (1 / mean(1 / tabulate(g, nlevels(g))))
    if (!is.numeric(n) || length(n) != 1L || !is.finite(n) || n <= 0) {
      mlm_abort("{.arg group_size} must be one positive number.", "mlmfit_error_argument")
    }
    level2 <- 1 - (ve / n + vu) / (ve0 / n + sum(v0))
  }
  structure(c(marginal = vf / total, conditional = (vf + vu) / total, level1 = level1, level2 = level2),
            class = "mlmfit_r2", random_slopes = FALSE, group_size = if (is.na(level2)) NULL else n)
}

# The empty model with a random intercept for each grouping factor of fit,
# on the same rows, weights and offset (columns .w and .o of its data).
utils::globalVariables(c(".w", ".o"))
fit_empty_model <- function(fit) {
  blocks <- re_blocks(fit)
  d <- data.frame(.y = spec_y(fit))
  for (k in seq_along(blocks)) d[[paste0(".g", k)]] <- block_factor(fit, k)
  d$.w <- spec_weights(fit) %||% rep(1, nrow(d))
  d$.o <- spec_offset(fit) %||% rep(0, nrow(d))
  rhs <- paste(sprintf("(1 | .g%d)", seq_along(blocks)), collapse = " + ")
  f <- stats::as.formula(paste(".y ~ 1 +", rhs), env = baseenv())
  lmm(f, d, REML = fit_reml(fit), weights = .w, offset = .o, control = fit_control(fit))
}

#' @export
print.mlmfit_r2 <- function(x, digits = 3, ...) {
  warn_unused_dots(..., method = "print")
  v <- unclass(x)
  latent <- isTRUE(attr(x, "latent"))
  cat(if (latent) "R-squared of a generalized linear mixed model (latent scale)\n" else "R-squared of a linear mixed model\n")
  cat("  Nakagawa & Schielzeth  marginal:", format(v[["marginal"]], digits = digits),
      "  conditional:", format(v[["conditional"]], digits = digits), "\n")
  cat("  Snijders & Bosker      level 1: ", format(v[["level1"]], digits = digits),
      "  level 2:    ", format(v[["level2"]], digits = digits), "\n")
  if (latent) {
    cat("  (Snijders & Bosker's measures are for linear mixed models.)\n")
  } else if (isTRUE(attr(x, "random_slopes"))) {
    cat("  (Snijders & Bosker's measures are for random-intercept models: fit one to get them.)\n")
  } else if (!is.null(attr(x, "group_size"))) {
    cat("  (level 2 for groups of", format(attr(x, "group_size"), digits = digits), "observations)\n")
  }
  invisible(x)
}

#' Proportion of variance explained at each level
#'
#' When predictors are added to a multilevel model, each variance component
#' shrinks by the part the predictors account for. For each component
#' present in both fits, `pve()` gives \eqn{(v_0 - v_1) / v_0}: for example,
#' adding the school mean of SES to the High School and Beyond empty model
#' reduces the school variance from 8.61 to 2.64, so it explains
#' (8.61 - 2.64) / 8.61 = 0.69 of the variance between schools (Raudenbush
#' and Bryk 2002). A component can grow when a predictor is added (the
#' proportion is then negative); that is a known property of these measures,
#' not an error.
#'
#' @param fit0 The smaller model, e.g. the empty model.
#' @param fit1 The model with the added predictors, fitted to the same data.
#' @return A data frame with one row per variance component of `fit0`
#'   (random-effect variances and the residual): `group`, `term`,
#'   `variance0`, `variance1` and `pve`.
#' @references Raudenbush, S. W. and Bryk, A. S. (2002). *Hierarchical Linear
#'   Models*, 2nd ed. Thousand Oaks: Sage. Chapter 4.
#' @seealso [r2()], [icc()]
#' @examples
#' fit0 <- lmm(math ~ 1 + (1 | schid), nels88)
#' fit1 <- lmm(math ~ meanses + (1 | schid), nels88)
#' pve(fit0, fit1)
#' @export
pve <- function(fit0, fit1) {
  check_lmm_fit(fit0, "fit0")
  check_lmm_fit(fit1, "fit1")
  if (nobs(fit0) != nobs(fit1) || !isTRUE(all.equal(unname(fit0$y), unname(fit1$y)))) {
    mlm_abort(c("{.arg fit0} and {.arg fit1} must be fitted to the same observations and response.",
                i = "Fit both models to the same data (missing values in an added predictor drop rows)."),
              "mlmfit_error_argument")
  }
  v0 <- as.data.frame(VarCorr(fit0))
  v1 <- as.data.frame(VarCorr(fit1))
  v0 <- v0[is.na(v0$var2), ]
  v1 <- v1[is.na(v1$var2), ]
  key0 <- paste(v0$grp, v0$var1, sep = "\r")
  key1 <- paste(v1$grp, v1$var1, sep = "\r")
  variance1 <- v1$vcov[match(key0, key1)]
  if (all(is.na(variance1[v0$grp != "Residual"]))) {
    mlm_abort(c("{.arg fit0} and {.arg fit1} share no random-effect variance.",
                i = "Both need the same grouping factors and terms, e.g. {.code (1 | g)} in each."),
              "mlmfit_error_argument")
  }
  out <- data.frame(group = v0$grp, term = ifelse(is.na(v0$var1), "", v0$var1), variance0 = v0$vcov,
                    variance1 = variance1, pve = (v0$vcov - variance1) / v0$vcov, stringsAsFactors = FALSE)
  rownames(out) <- NULL
  out
}
