# ranova(): likelihood-ratio tests for the random-effect terms, one at a time.

#' Likelihood-ratio tests for random-effect terms
#'
#' For each random-effect term, `ranova()` refits the model without it (or,
#' with `reduce.terms = TRUE`, with the term reduced: `(1 + x | g)` becomes
#' `(1 | g)`, one row per dropped column) and compares the fits by a
#' likelihood-ratio test, as `lmerTest::ranova()` does. REML fits are
#' compared by their REML criteria, which is valid because the fixed effects
#' do not change. When the last random-effect term is dropped, the reduced
#' model is a linear model fitted by [lm()].
#'
#' **The boundary caveat.** A variance of zero lies on the boundary of the
#' parameter space, so the usual chi-square reference distribution of the
#' likelihood-ratio statistic does not hold: for a single variance the null
#' distribution is a 50:50 mixture of chi-square(0) and chi-square(1), and
#' the p-values shown (from chi-square with `Df` degrees of freedom) are
#' conservative, roughly twice too large for one variance (Self and Liang
#' 1987; Stram and Lee 1994). Halving the p-value of a test of one variance
#' is a common correction; for a random slope with its correlation
#' (`Df = 2`), the mixture of chi-square(1) and chi-square(2) applies. A
#' parametric bootstrap of the statistic avoids the approximation.
#'
#' For a fit with a residual `correlation` or `variance` structure, every
#' reduced model keeps the structure (its parameters are re-estimated); when
#' the last random-effect term is dropped, the reduced model is a
#' generalised least squares fit by [nlme::gls()] with the same structure
#' (fits with prior weights or an offset are refused there, as `gls()`
#' takes neither). Its REML criterion is comparable with that of the full
#' model, as in nlme's `anova()` of a `gls` and an `lme` fit.
#'
#' @param model A fit from [lmm()].
#' @param reduce.terms Reduce terms with several columns to simpler terms
#'   (`TRUE`, default) rather than drop them whole.
#' @param ... Unused.
#' @return A data frame of class `anova` with columns npar, logLik, AIC,
#'   LRT, Df and Pr(>Chisq); the first row is the full model.
#' @references Self, S. G. and Liang, K.-Y. (1987). Asymptotic properties of
#'   maximum likelihood estimators and likelihood ratio tests under
#'   nonstandard conditions. *Journal of the American Statistical
#'   Association* 82, 605-610.
#'
#'   Stram, D. O. and Lee, J. W. (1994). Variance components testing in the
#'   longitudinal mixed effects model. *Biometrics* 50, 1171-1177.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' ranova(fit)
#' ranova(fit, reduce.terms = FALSE)
#' @export
ranova <- function(model, reduce.terms = TRUE, ...) {
  warn_unused_dots(..., method = "ranova")
  if (!inherits(model, "mlmfit_lmm")) {
    mlm_abort("{.fn ranova} needs a fit from {.fn lmm}.", "mlmfit_error_argument")
  }
  parsed <- parse_mixed_formula(spec_formula(model))
  fixed_rhs <- parsed$fixed[[3L]]
  bars <- lapply(parsed$random, function(r) call("|", r$lhs, r$group))
  bar_text <- vapply(bars, deparse1, "")
  build <- function(keep, extra = NULL) {
    terms <- c(lapply(bars[keep], function(b) call("(", b)), extra)
    # a reduced term may repeat a term already in the model, e.g. (1 | g)
    # from (0 + x | g) beside (1 | g): the model has it once (as lme4)
    terms <- terms[!duplicated(vapply(terms, deparse1, ""))]
    rhs <- Reduce(function(a, b) call("+", a, b), c(list(fixed_rhs), terms))
    stats::as.formula(call("~", parsed$response, rhs), env = environment(spec_formula(model)))
  }
  full <- build(seq_along(bars))
  candidates <- list()
  for (i in seq_along(bars)) {
    others <- setdiff(seq_along(bars), i)
    lhs_terms <- stats::terms(stats::as.formula(call("~", parsed$random[[i]]$lhs)))
    labels <- attr(lhs_terms, "term.labels")
    if (!reduce.terms || length(labels) == 0L) {
      candidates[[paste0("(", bar_text[i], ")")]] <- build(others)
    } else {
      for (lab in labels) {
        rest <- setdiff(labels, lab)
        new_lhs <- if (length(rest) == 0L) {
          quote(1)
        } else {
          rhs <- str2lang(paste(rest, collapse = " + "))
          if (attr(lhs_terms, "intercept") == 0L) call("+", 0, rhs) else rhs
        }
        candidates[[paste(lab, "in", paste0("(", bar_text[i], ")"))]] <-
          build(others, list(call("(", call("|", new_lhs, parsed$random[[i]]$group))))
      }
    }
  }
  env <- parent.frame()
  ll_full <- stats::logLik(model)
  rows <- list(ll_full)
  for (nm in names(candidates)) {
    f <- candidates[[nm]]
    fit <- refit_formula(model, f, env)
    if (stats::nobs(fit) != stats::nobs(model)) {
      mlm_abort(c("The reduced model {.val {nm}} uses {stats::nobs(fit)} observations, the full model {stats::nobs(model)}.",
                  i = "Remove rows with missing values from the data before fitting."),
                "mlmfit_error_anova")
    }
    rows[[length(rows) + 1L]] <- if (inherits(fit, "lm")) stats::logLik(fit, REML = fit_reml(model)) else stats::logLik(fit)
  }
  npar <- vapply(rows, function(l) attr(l, "df"), numeric(1))
  ll <- vapply(rows, as.numeric, numeric(1))
  lrt <- c(NA, 2 * pmax(0, ll[1L] - ll[-1L]))
  df <- c(NA, npar[1L] - npar[-1L])
  tab <- data.frame(npar = npar, logLik = ll, AIC = -2 * ll + 2 * npar, LRT = lrt, Df = df,
                    `Pr(>Chisq)` = stats::pchisq(lrt, df, lower.tail = FALSE), check.names = FALSE,
                    row.names = c("<none>", names(candidates)))
  structure(tab, heading = c("ANOVA-like table for random-effects: Single term deletions",
                             "\nModel:", deparse1(full, collapse = " ")),
            formulae = candidates, class = c("anova", "data.frame"))
}

# The same call with another formula, evaluated where the user's data can
# be found; lm() when the formula has no random-effect term left.
refit_formula <- function(model, formula, env) {
  call <- fit_call(model)
  eval_env <- if (!is.null(call$data) && !exists_in(call$data, env)) environment(spec_formula(model)) else env
  if (length(find_bars(formula[[3L]])) == 0L && inherits(model, "mlmfit_lmm_structured")) {
    return(gls_without_random_effects(model, formula, eval_env))
  }
  if (length(find_bars(formula[[3L]])) == 0L && inherits(model, "mlmfit_db")) return(db_linear_model(model))
  if (length(find_bars(formula[[3L]])) == 0L) {
    call <- call[c(1L, match(c("data", "weights", "offset", "subset", "na.action"), names(call), 0L))]
    call[[1L]] <- quote(stats::lm)
    call$formula <- formula
  } else {
    call[[1L]] <- lmm
    call$formula <- formula
  }
  eval(call, eval_env)
}

exists_in <- function(expr, env) {
  vars <- all.vars(expr)
  all(vapply(vars, exists, logical(1), envir = env))
}
