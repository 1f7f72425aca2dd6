# anova(): F tests of the fixed-effect terms of one fit, or likelihood-ratio
# tests between several nested fits.

#' Analysis of variance for mixed models
#'
#' With one fit, `anova()` gives a type III (or, with `type`, type II or
#' sequential type I) F test of each fixed-effect term, with Satterthwaite's or Kenward-Roger's denominator degrees of
#' freedom (the table of `lmerTest::anova()`: sums of squares, mean
#' squares, numerator and denominator df, F value and p-value). With
#' `ddf = "none"` the F statistics are referred to an F distribution with
#' infinite denominator df (Wald chi-square tests divided by their df).
#'
#' With several fits, `anova()` gives likelihood-ratio tests between
#' successive models, ordered by their number of parameters (the table of
#' `lme4::anova()`: npar, AIC, BIC, logLik, deviance, Chisq, Df,
#' Pr(>Chisq)). REML criteria of models with different fixed effects cannot
#' be compared, so REML fits are then refitted by maximum likelihood first
#' (from the stored cross-products, without a pass over the data) and a
#' message says so. When all fits are REML fits with the same fixed effects,
#' the REML criteria are compared (a test of the random effects).
#' Linear models from [lm()] may be among the fits.
#'
#' Likelihood-ratio tests of a variance at zero are conservative: the null
#' value is on the boundary of the parameter space (see [ranova()]).
#'
#' Fits with a residual `correlation` or `variance` structure: the F tests
#' of one fit use Satterthwaite's degrees of freedom with the structure's
#' parameters among the variance parameters (see [summary.mlmfit_lmm()]);
#' Kenward-Roger's method is refused. In likelihood-ratio tests the
#' structure's free parameters count in the degrees of freedom (as in
#' nlme's `anova()`), so AR(1) residuals can be tested against independence;
#' a REML fit refitted by ML is refitted in full, the structure's
#' parameters included.
#'
#' @param object A fit from [lmm()].
#' @param ... Further fits to compare with `object`.
#' @param type Type of hypotheses for one fit: `"III"` (default), `"II"` or
#'   `"I"` (or 3, 2, 1), as lmerTest's `anova()` defines them.
#' @param ddf Denominator degrees of freedom: `"Satterthwaite"` (default),
#'   `"Kenward-Roger"` (REML fits only) or `"none"`.
#' @param refit For several fits: refit REML fits by ML? `NULL` (default):
#'   when their fixed effects differ; `TRUE`: always; `FALSE`: never.
#' @param model.names Names for the fits in the table (default: as
#'   written in the call).
#' @return A data frame of class `anova`.
#' @references Kuznetsova, A., Brockhoff, P. B. and Christensen, R. H. B.
#'   (2017). lmerTest package: tests in linear mixed effects models.
#'   *Journal of Statistical Software* 82(13). \doi{10.18637/jss.v082.i13}
#'
#'   Kenward, M. G. and Roger, J. H. (1997). Small sample inference for
#'   fixed effects from restricted maximum likelihood. *Biometrics* 53,
#'   983-997.
#' @seealso [ranova()] for the random effects, [summary.mlmfit_lmm()] for t tests.
#' @examples
#' fit <- lmm(math ~ homework * public + (1 | schid), nels88)
#' anova(fit)
#' anova(fit, ddf = "Kenward-Roger")
#'
#' # likelihood-ratio test of the interaction (refitted by ML)
#' fit0 <- lmm(math ~ homework + public + (1 | schid), nels88)
#' anova(fit0, fit)
#' @export
anova.mlmfit <- function(object, ..., type = "III", ddf = "Satterthwaite", refit = NULL, model.names = NULL) {
  dots <- list(...)
  is_model <- vapply(dots, function(d) inherits(d, c("mlmfit", "lm", "merMod")), logical(1))
  if (!all(is_model)) {
    nms <- names(dots) %||% rep("", length(dots))
    shown <- ifelse(nzchar(nms), nms, "(unnamed)")[!is_model]
    mlm_warn("{.fn anova} compares fits only: {cli::qty(length(shown))}the argument{?s} {.arg {shown}} {?is/are} ignored.",
             "mlmfit_warning_unused_argument", arguments = shown)
  }
  if (any(is_model)) {
    mc <- match.call(expand.dots = TRUE)
    arg_exprs <- as.list(mc)[-1L]
    arg_exprs <- arg_exprs[names(arg_exprs) %in% c("", "object") | is.null(names(arg_exprs))]
    names_in_call <- vapply(arg_exprs, function(e) deparse1(e), "")
    models <- c(list(object), dots[is_model])
    if (is.null(model.names)) model.names <- names_in_call[seq_along(models)]
    return(lrt_table(models, model.names, refit))
  }
  type <- match_anova_type(type)
  ddf <- match_ddf(ddf)
  if (!inherits(object, "mlmfit_lmm")) ddf <- "none"
  anova_type_table(object, ddf, type)
}

anova_type_table <- function(fit, ddf, type = "III") {
  Ls <- anova_contrasts(fit, type)
  structure(contrast_f_table(fit, Ls, ddf), heading = paste("Type", type, "Analysis of Variance Table with", ddf_label(ddf)),
            hypotheses = Ls, class = c("anova", "data.frame"))
}

same_fixed_effects <- function(models) {
  X1 <- fixed_design_values(models[[1L]])
  all(vapply(models[-1L], function(m) {
    X <- fixed_design_values(m)
    identical(dim(X), dim(X1)) && identical(colnames(X), colnames(X1)) && isTRUE(all.equal(unname(X), unname(X1)))
  }, logical(1)))
}

lrt_table <- function(models, model_names, refit) {
  n <- vapply(models, stats::nobs, numeric(1))
  if (length(unique(n)) > 1L) {
    mlm_abort(c("The fits use different numbers of observations: {n}.",
                i = "Likelihood-ratio tests compare fits to the same rows; check missing values and {.arg subset}."),
              "mlmfit_error_anova")
  }
  y <- lapply(models, response_values)
  if (!all(vapply(y[-1L], function(v) isTRUE(all.equal(v, y[[1L]])), logical(1)))) {
    mlm_abort("The fits have different responses: likelihood-ratio tests need the same response.",
              "mlmfit_error_anova")
  }
  if (anyDuplicated(model_names) || any(nchar(model_names) > 200L)) model_names <- paste0("MODEL", seq_along(models))
  names(models) <- model_names
  is_reml <- vapply(models, function(m) inherits(m, "mlmfit_lmm") && fit_reml(m), logical(1))
  if (is.null(refit)) refit <- any(is_reml) && (!all(is_reml) || !same_fixed_effects(models))
  if (isTRUE(refit) && any(is_reml)) {
    mlm_inform("Refitting {cli::qty(sum(is_reml))}model{?s} {.val {model_names[is_reml]}} with ML (instead of REML): REML criteria of models with different fixed effects cannot be compared.",
               "mlmfit_message_refit")
    models[is_reml] <- lapply(models[is_reml], refit_ml)
  } else if (any(is_reml) && !all(is_reml)) {
    mlm_warn("Some fits are REML fits and some are not: their likelihoods are not comparable.",
             "mlmfit_warning_anova")
  }
  lls <- lapply(models, stats::logLik)
  npar <- vapply(lls, function(l) attr(l, "df"), numeric(1))
  ord <- order(npar)
  lls <- lls[ord]
  npar <- npar[ord]
  ll <- vapply(lls, as.numeric, numeric(1))
  chisq <- 2 * pmax(0, c(NA, diff(ll)))
  df <- c(NA, diff(npar))
  tab <- data.frame(npar = npar, AIC = vapply(lls, stats::AIC, numeric(1)), BIC = vapply(lls, stats::BIC, numeric(1)),
                    logLik = ll, deviance = -2 * ll, Chisq = chisq, Df = df,
                    `Pr(>Chisq)` = ifelse(df == 0, NA, stats::pchisq(chisq, df, lower.tail = FALSE)),
                    row.names = names(models)[ord], check.names = FALSE)
  forms <- vapply(models[ord], function(m) deparse1(stats::formula(m), collapse = " "), "")
  data_expr <- stats::getCall(models[[1L]])$data
  heading <- c(if (!is.null(data_expr)) paste("Data:", deparse1(data_expr)), "Models:",
               paste0(names(models)[ord], ": ", forms))
  structure(tab, heading = heading, class = c("anova", "data.frame"))
}

# What must agree between fits compared by likelihood-ratio tests: the
# response and the fixed-effect design, by their values; for a fit to a
# database table, by the SQL that reads them (db_rows_identity()).
response_values <- function(m) {
  if (inherits(m, "mlmfit_db")) return(db_rows_identity(m, "response"))
  unname(as.vector(stats::model.response(stats::model.frame(m))))
}

fixed_design_values <- function(m) {
  if (inherits(m, "mlmfit_db")) return(db_rows_identity(m, "design"))
  stats::model.matrix(m)
}
