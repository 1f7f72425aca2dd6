# tidy(), glance() and augment() on the generics of the `generics`
# package, with broom.mixed's column conventions, so that tables and plots
# built on broom.mixed's output for lme4 fits work unchanged. Also
# hatvalues() and cooks.distance(), which augment() reports.

#' @importFrom generics tidy glance augment
#' @export
generics::tidy
#' @export
generics::glance
#' @export
generics::augment

as_tidy_frame <- function(df) {
  rownames(df) <- NULL
  if (requireNamespace("tibble", quietly = TRUE)) tibble::as_tibble(df) else df
}

#' Tidy summaries of a mixed model fit
#'
#' `tidy()` returns one row per parameter with broom.mixed's columns:
#' `effect` (`"fixed"`, `"ran_pars"`, `"ran_vals"` or `"ran_coefs"`),
#' `group`, `level` (random effects), `term`, `estimate`, `std.error`,
#' `statistic`, `df` and `p.value` (fixed effects of linear mixed models,
#' with Satterthwaite's or Kenward-Roger's df as [summary.mlmfit_lmm()]), and with
#' `conf.int = TRUE` `conf.low` and `conf.high`. Variance parameters are
#' named as broom.mixed names them (`sd__(Intercept)`,
#' `cor__(Intercept).x`, `sd__Observation` for the residual; `var__` and
#' `cov__` with `scales = "vcov"`).
#'
#' `glance()` returns one row: `nobs`, `sigma`, `logLik`, `AIC`, `BIC`,
#' `REMLcrit` (REML fits) or `deviance` (ML fits), and `df.residual`.
#'
#' `augment()` returns the model frame with `.fitted`, `.resid`, `.hat`
#' (leverages), `.cooksd`, `.fixed` (population-level fitted values),
#' `.mu`, `.offset`, `.sqrtXwt`, `.sqrtrwt`, `.weights` and `.wtres`, as
#' broom.mixed does for lme4 fits. With `newdata`, it returns `newdata`
#' with `.fitted` (and `.resid` when `newdata` has the response; see
#' [predict.mlmfit()] for `re.form` and `allow.new.levels`).
#'
#' @param x A fit from [lmm()].
#' @param effects Which parameters: any of `"fixed"`, `"ran_pars"`,
#'   `"ran_vals"` (conditional modes with their conditional standard
#'   errors) and `"ran_coefs"` (per-group coefficients).
#' @param scales For `"ran_pars"`: `"sdcor"` (default) or `"vcov"`.
#' @param conf.int Add confidence limits.
#' @param conf.level Confidence level.
#' @param conf.method For fixed effects and variance parameters:
#'   `"Wald"` (default; t intervals with the model's df for fixed effects of
#'   linear mixed models, none for variance parameters), `"profile"` or
#'   `"boot"` (see [confint.mlmfit()]).
#' @param ddf.method Degrees of freedom of the fixed-effect tests:
#'   `"Satterthwaite"` (default), `"Kenward-Roger"` or `"none"`.
#' @param exponentiate Exponentiate fixed effects and their limits (for
#'   log or logit links; unusual for a linear mixed model).
#' @param data Data to augment (default: the model frame).
#' @param newdata New data to predict for instead.
#' @param ... Passed to [confint.mlmfit()] (e.g. `nsim`, `seed`) or to
#'   [predict.mlmfit()] by `augment()`.
#' @return A data frame (a tibble when the tibble package is installed).
#' @name lmm-tidiers
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' tidy(fit)
#' tidy(fit, conf.int = TRUE)
#' tidy(fit, effects = "ran_vals")
#' glance(fit)
#' head(augment(fit))
NULL

#' @rdname lmm-tidiers
#' @method tidy mlmfit
#' @export
tidy.mlmfit <- function(x, effects = c("ran_pars", "fixed"), scales = NULL, conf.int = FALSE, conf.level = 0.95,
                        conf.method = "Wald", ddf.method = "Satterthwaite", exponentiate = FALSE, ...) {
  known <- c("fixed", "ran_pars", "ran_vals", "ran_coefs")
  bad <- setdiff(effects, known)
  if (length(bad)) {
    mlm_abort(c("Unknown {.arg effects}: {.val {bad}}.", i = "Use any of {.val {known}}."), "mlmfit_error_argument")
  }
  conf.method <- match.arg(conf.method, c("Wald", "profile", "boot"))
  scales <- if (is.null(scales)) "sdcor" else match.arg(scales, c("sdcor", "vcov"))
  out <- list()
  ci <- NULL
  if (conf.int && conf.method != "Wald" && any(c("fixed", "ran_pars") %in% effects)) {
    ci <- confint(x, level = conf.level, method = conf.method, oldNames = TRUE, ...)
  } else {
    warn_unused_dots(..., method = "tidy", hint = "Arguments for {.fn confint} are used with {.code conf.int = TRUE} and {.arg conf.method} {.val profile} or {.val boot}.")
  }
  if ("fixed" %in% effects) {
    ddf <- if (inherits(x, "mlmfit_lmm")) match_ddf(ddf.method) else "none"
    tab <- fixed_effects_table(x, ddf)
    has_df <- "df" %in% colnames(tab)
    fx <- data.frame(effect = "fixed", group = NA_character_, term = rownames(tab), estimate = tab[, 1L],
                     std.error = tab[, 2L], statistic = tab[, if (has_df) 4L else 3L], stringsAsFactors = FALSE)
    if (has_df) fx$df <- tab[, "df"]
    fx$p.value <- tab[, ncol(tab)]
    if (conf.int) {
      if (is.null(ci)) {
        q <- if (has_df) stats::qt((1 + conf.level) / 2, fx$df) else stats::qnorm((1 + conf.level) / 2)
        fx$conf.low <- fx$estimate - q * fx$std.error
        fx$conf.high <- fx$estimate + q * fx$std.error
      } else {
        fx$conf.low <- unname(ci[fx$term, 1L])
        fx$conf.high <- unname(ci[fx$term, 2L])
      }
    }
    if (exponentiate) {
      fx$std.error <- fx$std.error * exp(fx$estimate)
      for (nm in intersect(c("estimate", "conf.low", "conf.high"), names(fx))) fx[[nm]] <- exp(fx[[nm]])
    }
    out$fixed <- fx
  }
  if ("ran_pars" %in% effects) {
    out$ran_pars <- ran_pars_frame(x, scales, conf.int, ci, has_fixed = "fixed" %in% effects,
                                   has_df = !is.null(out$fixed$df))
  }
  if ("ran_vals" %in% effects) {
    rv <- as.data.frame(ranef(x, condVar = TRUE))
    out$ran_vals <- data.frame(effect = "ran_vals", group = as.character(rv$grpvar), level = as.character(rv$grp),
                               term = as.character(rv$term), estimate = rv$condval, std.error = rv$condsd,
                               stringsAsFactors = FALSE)
  }
  if ("ran_coefs" %in% effects) {
    cf <- stats::coef(x)
    rows <- lapply(names(cf), function(g) {
      m <- as.matrix(cf[[g]])
      data.frame(effect = "ran_coefs", group = g, level = rep(rownames(m), ncol(m)),
                 term = rep(colnames(m), each = nrow(m)), estimate = as.vector(m), stringsAsFactors = FALSE)
    })
    out$ran_coefs <- do.call(rbind, rows)
  }
  res <- Reduce(function(a, b) merge_rows(a, b), out[intersect(c("fixed", "ran_pars", "ran_vals", "ran_coefs"), names(out))])
  # broom.mixed's column order; no group column for fixed effects alone
  cols <- c("effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
            "conf.low", "conf.high")
  if (identical(names(out), "fixed")) cols <- setdiff(cols, "group")
  res <- res[intersect(cols, names(res))]
  as_tidy_frame(res)
}

# rbind with the union of columns, in order of first appearance.
merge_rows <- function(a, b) {
  cols <- union(names(a), names(b))
  for (nm in setdiff(cols, names(a))) a[[nm]] <- if (is.character(b[[nm]])) NA_character_ else rep(NA, nrow(a))
  for (nm in setdiff(cols, names(b))) b[[nm]] <- if (is.character(a[[nm]])) NA_character_ else rep(NA, nrow(b))
  rbind(a[cols], b[cols])
}

# Variance parameters in broom.mixed's order (lme4's lower-triangle order
# within each term: theta's order), then the residual.
ran_pars_frame <- function(x, scales, conf.int, ci, has_fixed, has_df) {
  lay <- theta_layout(x)
  sigma <- fit_sigma(x)
  sdcor <- theta_to_sdcor(x, fit_theta(x), sigma)
  terms <- re_terms(x)
  vc <- VarCorr(x)
  k <- nrow(lay)
  term <- character(k)
  group <- character(k)
  est <- numeric(k)
  for (i in seq_len(k)) {
    tm <- terms[[lay$term[i]]]
    S <- vc[[lay$term[i]]]
    r <- lay$row[i]
    c <- lay$col[i]
    group[i] <- names(vc)[lay$term[i]]
    if (r == c) {
      term[i] <- paste0(if (scales == "sdcor") "sd__" else "var__", tm$colnames[r])
      est[i] <- if (scales == "sdcor") sdcor[i] else S[r, r]
    } else {
      term[i] <- paste0(if (scales == "sdcor") "cor__" else "cov__", tm$colnames[c], ".", tm$colnames[r])
      est[i] <- if (scales == "sdcor") sdcor[i] else S[r, c]
    }
  }
  has_resid <- !is.null(attr(vc, "sc")) && !identical(attr(vc, "useSc"), FALSE)
  if (has_resid) {
    group <- c(group, "Residual")
    term <- c(term, paste0(if (scales == "sdcor") "sd__" else "var__", "Observation"))
    est <- c(est, if (scales == "sdcor") sigma else sigma^2)
  }
  rp <- data.frame(effect = "ran_pars", group = group, term = term, estimate = est, stringsAsFactors = FALSE)
  if (conf.int) {
    rp$conf.low <- NA_real_
    rp$conf.high <- NA_real_
    if (!is.null(ci) && scales == "sdcor") {
      rp$conf.low <- ci[seq_len(nrow(rp)), 1L]
      rp$conf.high <- ci[seq_len(nrow(rp)), 2L]
    }
  }
  rp
}

#' @rdname lmm-tidiers
#' @method glance mlmfit
#' @export
glance.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "glance")
  ll <- stats::logLik(x)
  out <- data.frame(nobs = nobs(x), sigma = stats::sigma(x), logLik = as.numeric(ll), AIC = stats::AIC(x),
                    BIC = stats::BIC(x))
  if (fit_reml(x)) out$REMLcrit <- deviance(x) else out$deviance <- deviance(x)
  out$df.residual <- nobs(x) - attr(ll, "df")
  as_tidy_frame(out)
}

#' @rdname lmm-tidiers
#' @method augment mlmfit_lmm
#' @export
augment.mlmfit_lmm <- function(x, data = stats::model.frame(x), newdata = NULL, ...) {
  if (!is.null(newdata)) {
    out <- as.data.frame(newdata)
    out$.fitted <- unname(predict(x, newdata = newdata, ...))
    yname <- spec_response_name(x)
    if (yname %in% names(out) && is.numeric(out[[yname]])) out$.resid <- out[[yname]] - out$.fitted
    return(as_tidy_frame(out))
  }
  warn_unused_dots(..., method = "augment", hint = "Arguments for {.fn predict} are used with {.arg newdata}.")
  # one row per observation of the fit: the values on the rows of the fit
  out <- augment_data(x, data)
  n <- nobs(x)
  w <- spec_weights(x) %||% rep(1, n)
  fitted <- fit_fitted(x)
  res <- spec_y(x) - fitted
  out$.fitted <- fitted
  out$.resid <- unname(res)
  # no leverages for fits with a residual structure (see hatvalues())
  if (!inherits(x, "mlmfit_lmm_structured")) {
    h <- leverage_values(x)
    out$.hat <- h
    out$.cooksd <- cooks_distance_values(x, h)
  }
  out$.fixed <- linear_predictor(x, re.form = NA)
  out$.mu <- fitted
  out$.offset <- spec_offset(x) %||% rep(0, n)
  out$.sqrtXwt <- sqrt(w)
  out$.sqrtrwt <- sqrt(w)
  out$.weights <- w
  out$.wtres <- unname(res * sqrt(w))
  as_tidy_frame(out)
}

# The data augment() adds columns to: one row per observation of the fit.
augment_data <- function(x, data) {
  out <- as.data.frame(data)
  if (nrow(out) != nobs(x)) {
    mlm_abort("{.arg data} must have one row per observation of the fit ({nobs(x)}).", "mlmfit_error_argument")
  }
  out
}

#' Leverages and Cook's distances
#'
#' `hatvalues()` gives the diagonal of the hat matrix that maps the
#' response to the conditional fitted values (fixed plus random effects),
#' as lme4's `hatvalues()`. It is computed group by group from the model's
#' cross-products without forming the n x n hat matrix. `cooks.distance()`
#' combines them with the Pearson residuals as lme4 does:
#' `r_i^2 h_i / (sigma^2 p (1 - h_i)^2)`. Both stop with an error of class
#' `mlmfit_error_residual_structure` for a fit with a residual `correlation`
#' or `variance` structure, whose hat matrix this computation does not give
#' (`augment()` then leaves out `.hat` and `.cooksd`).
#'
#' For a fit from [glmm()] both are lme4's, computed by lme4's methods on
#' [as_glmerMod()] of the fit (lme4 builds its model matrices), with lme4's
#' warning that the hat matrix may not make sense for a GLMM;
#' `performance::check_model()` reads them.
#'
#' @param model A fit from [lmm()] or [glmm()].
#' @param ... Unused (glmm fits: passed to lme4's methods).
#' @return A named numeric vector, one value per observation, `NA` for the
#'   rows `na.action = na.exclude` left out (as lme4's).
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' summary(hatvalues(fit))
#' head(sort(cooks.distance(fit), decreasing = TRUE))
#' @name lmm-influence
NULL

#' @rdname lmm-influence
#' @export
hatvalues.mlmfit_lmm <- function(model, ...) {
  warn_unused_dots(..., method = "hatvalues")
  observation_vector(model, leverage_values(model))
}

#' @rdname lmm-influence
#' @export
cooks.distance.mlmfit_lmm <- function(model, ...) {
  warn_unused_dots(..., method = "cooks.distance")
  observation_vector(model, cooks_distance_values(model, leverage_values(model)))
}

# Leverages and Cook's distances on the rows of the fit.
leverage_values <- function(model) {
  if (is_structured(model)) refuse_structured_leverages()
  engine_leverages(fit_spec(model), fit_theta(model))
}

cooks_distance_values <- function(model, h) {
  r <- residual_values(model, "pearson")
  p <- length(fixef(model))
  d <- (r / (1 - h))^2 * h / (fit_sigma(model)^2 * p)
  d[is.infinite(d)] <- NaN
  d
}
