# Model selection: drop1() and add1() (likelihood-ratio tests of refitted
# models, as lme4's drop1(); F tests with Satterthwaite's df, as
# lmerTest's drop1()), which step() uses through extractAIC(); and the
# hypotheses of type I and II F tests for anova() (lmerTest's).

#' Add or drop single terms
#'
#' `drop1()` fits the model without each fixed-effect term that can be
#' dropped (respecting marginality: a main effect stays while an
#' interaction contains it) and `add1()` with each term of `scope` added.
#' With `test = "Chisq"` each is compared with the model by a
#' likelihood-ratio test, REML fits refitted by maximum likelihood (lme4's
#' `drop1()` for merMod fits); the AIC column is [extractAIC()]'s. For a
#' linear mixed model `drop1(test = "F")` gives instead F tests of the
#' terms with Satterthwaite's (or Kenward-Roger's, `ddf`) denominator
#' degrees of freedom without refitting (lmerTest's `drop1()`). With these
#' methods [stats::step()] selects fixed effects by AIC.
#'
#' Models are refitted with [update()], which evaluates the fit's call in
#' the environment of its formula: the data must still be there.
#'
#' @param object A fit from [lmm()] or [glmm()].
#' @param scope Terms to drop or add: a character vector or a formula (by
#'   default every term that can be dropped; `add1()` needs it).
#' @param scale Unused (for compatibility with the generics).
#' @param test `"none"`, `"Chisq"` (likelihood-ratio tests) or, for
#'   `drop1()` of a linear mixed model, `"F"`.
#' @param k Penalty per parameter of the AIC.
#' @param trace Print the models as they are fitted.
#' @param ddf For `test = "F"`: `"Satterthwaite"` or `"Kenward-Roger"`.
#' @param ... Unused.
#' @return A data frame of class `anova`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' drop1(fit, test = "Chisq")
#' drop1(fit, test = "F")
#' @name lmm-drop1
NULL

#' @rdname lmm-drop1
#' @importFrom stats drop1
#' @export
drop1.mlmfit <- function(object, scope, scale = 0, test = c("none", "Chisq", "F"), k = 2, trace = FALSE,
                         ddf = "Satterthwaite", ...) {
  warn_unused_dots(..., method = "drop1")
  test <- match.arg(test)
  droppable <- stats::drop.scope(spec_fixed_terms(object))
  scope <- if (missing(scope)) droppable else scope_terms(scope, object)
  bad <- setdiff(scope, droppable)
  if (length(bad) > 0L) {
    mlm_abort(c("{.arg scope} names {cli::qty(length(bad))}term{?s} {.val {bad}} that cannot be dropped.",
                i = "Terms that can be dropped (no interaction contains them): {.val {droppable}}."),
              "mlmfit_error_argument")
  }
  if (test == "F") {
    if (!inherits(object, "mlmfit_lmm")) {
      mlm_abort(c("F tests with {.arg ddf} are for linear mixed models.",
                  i = "Use {.code test = \"Chisq\"} (likelihood-ratio tests) for a fit from {.fn glmm}."),
                "mlmfit_error_argument")
    }
    ddf <- match_ddf(ddf)
    Ls <- marginal_contrasts(object)[scope]
    tab <- contrast_f_table(object, Ls, ddf)
    method <- switch(ddf, Satterthwaite = "Satterthwaite's", `Kenward-Roger` = "Kenward-Roger's", none = "Wald")
    return(structure(tab, heading = c(paste("Single term deletions using", method, "method:"), "\nModel:",
                                      deparse1(stats::formula(object))),
                     hypotheses = Ls, class = c("anova", "data.frame")))
  }
  refits <- lapply(scope, function(term) {
    if (trace) cat("trying -", term, "\n")
    refit_updated(object, stats::as.formula(paste("~ . -", term)))
  })
  selection_table(object, refits, scope, test, k, "Single term deletions", sign = 1)
}

#' @rdname lmm-drop1
#' @importFrom stats add1
#' @export
add1.mlmfit <- function(object, scope, scale = 0, test = c("none", "Chisq"), k = 2, trace = FALSE, ...) {
  warn_unused_dots(..., method = "add1")
  test <- match.arg(test)
  if (missing(scope) || is.null(scope)) {
    mlm_abort("{.arg scope} must name the terms to add, e.g. {.code ~ . + x}.", "mlmfit_error_argument")
  }
  if (!is.character(scope)) scope <- stats::add.scope(spec_fixed_terms(object), stats::terms(lme4_free_fixed(scope, object)))
  if (length(scope) == 0L) {
    mlm_abort("{.arg scope} adds no term that is not in the model already.", "mlmfit_error_argument")
  }
  refits <- lapply(scope, function(term) {
    if (trace) cat("trying +", term, "\n")
    refit_updated(object, stats::as.formula(paste("~ . +", term)))
  })
  selection_table(object, refits, scope, test, k, "Single term additions", sign = -1)
}

# Term labels of a scope given as a formula (or as labels).
scope_terms <- function(scope, object) {
  if (is.character(scope)) return(scope)
  attr(stats::terms(lme4_free_fixed(scope, object)), "term.labels")
}

# The fixed part of a scope formula (with `.` expanded against the fit).
lme4_free_fixed <- function(scope, object) {
  full <- stats::update.formula(spec_fixed_formula(object), scope)
  rhs <- drop_bars(full[[length(full)]]) %||% 1
  stats::as.formula(call("~", rhs), env = environment(spec_formula(object)))
}

# The model refitted with an updated formula, in the environment of the
# formula (where its data are), as lme4's drop1() does.
refit_updated <- function(object, change) {
  call <- stats::update(object, change, evaluate = FALSE)
  fit <- suppressMessages(eval(call, environment(stats::formula(object))))
  if (nobs(fit) != nobs(object)) {
    mlm_abort(c("A refitted model uses {nobs(fit)} observations and the fit {nobs(object)}.",
                i = "Remove the rows with missing values in the terms of {.arg scope} first."),
              "mlmfit_error_anova")
  }
  fit
}

# drop1()/add1()'s table: df and AIC of each model (extractAIC()), and the
# likelihood-ratio test against the fit. sign: +1 when the refits are
# smaller than the fit, -1 when larger. Columns as drop1.default() names
# them (Df, AIC, LRT, Pr(>Chi)), which step() reads.
selection_table <- function(object, refits, labels, test, k, heading, sign) {
  base <- extractAIC(object, k = k)
  aics <- t(vapply(refits, function(f) extractAIC(f, k = k), numeric(2)))
  tab <- data.frame(Df = c(NA, sign * (base[1L] - aics[, 1L])), AIC = c(base[2L], aics[, 2L]),
                    row.names = c("<none>", labels), check.names = FALSE)
  if (test == "Chisq") {
    dev <- c(base[2L], aics[, 2L]) - k * c(base[1L], aics[, 1L])
    lrt <- sign * (dev - dev[1L])
    lrt[1L] <- NA
    tab$LRT <- lrt
    tab$`Pr(>Chi)` <- stats::pchisq(lrt, tab$Df, lower.tail = FALSE)
  }
  structure(tab, heading = c(paste0(heading, "\n"), "Model:", deparse1(stats::formula(object))),
            class = c("anova", "data.frame"))
}

# F tests of a list of hypothesis matrices (lmerTest's columns).
contrast_f_table <- function(fit, Ls, ddf) {
  basis <- ddf_basis(fit, ddf)
  cols <- c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")
  rows <- lapply(Ls, function(L) {
    if (nrow(L) == 0L) return(stats::setNames(rep(NA_real_, 6L), cols))
    f_test(fit, L, ddf, basis)
  })
  tab <- as.data.frame(do.call(rbind, rows), check.names = FALSE)
  if (length(rows) == 0L) tab <- as.data.frame(matrix(numeric(), 0L, 6L, dimnames = list(NULL, cols)), check.names = FALSE)
  rownames(tab) <- names(Ls)
  tab
}

# The hypotheses of an anova() table of one fit, by type.
anova_contrasts <- function(fit, type) {
  switch(type, I = type1_contrasts(fit), II = type2_contrasts(fit), III = type3_contrasts(fit))
}

# "I", "II" or "III" from what a user may write (1, "2", "III", ...).
match_anova_type <- function(type) {
  key <- toupper(as.character(type)[1L])
  out <- switch(key, `1` = , I = "I", `2` = , II = "II", `3` = , III = "III", NA_character_)
  if (is.na(out)) {
    mlm_abort(c("Unknown {.arg type}: {.val {type}}.", i = "Use {.val I}, {.val II} or {.val III} (or 1, 2, 3)."),
              "mlmfit_error_argument")
  }
  out
}

# Columns of X of each term (and the intercept).
fixed_term_columns <- function(fit) {
  tt <- spec_fixed_terms(fit)
  fixed_term_map(attr(tt, "term.labels"), attr(tt, "intercept") > 0, spec_assign(fit))
}

# Each term's own coefficients (lmerTest's marginal hypotheses).
marginal_contrasts <- function(fit) {
  x_names <- spec_x_names(fit)
  I <- diag(length(x_names))
  dimnames(I) <- list(x_names, x_names)
  lapply(fixed_term_columns(fit)[attr(spec_fixed_terms(fit), "term.labels")], function(cols) I[cols, , drop = FALSE])
}

# Sequential (type I) hypotheses: rows of the Cholesky factor of X'X (the
# unit-triangular factor of lmerTest, up to the scale of each row, which
# does not change the tests).
type1_contrasts <- function(fit) {
  X <- spec_fixed_designs(fit, TRUE, rd = FALSE)$X
  R <- chol(crossprod(X))
  dimnames(R) <- list(colnames(X), colnames(X))
  lapply(fixed_term_columns(fit)[attr(spec_fixed_terms(fit), "term.labels")], function(cols) R[cols, , drop = FALSE])
}

# Type II hypotheses: a term contained in no other is tested by its own
# coefficients; a term contained in others is tested after every term but
# those (its columns and theirs placed last in the sequential factor).
type2_contrasts <- function(fit) {
  X <- spec_fixed_designs(fit, TRUE, rd = FALSE)$X
  tt <- spec_fixed_terms(fit)
  labels <- attr(tt, "term.labels")
  data_classes <- attr(spec_frame_terms(fit), "dataClasses")
  contained_in <- term_containment(tt, data_classes)
  map <- fixed_term_columns(fit)
  marginal <- marginal_contrasts(fit)
  out <- lapply(stats::setNames(labels, labels), function(term) {
    within <- contained_in[[term]]
    if (length(within) == 0L) return(marginal[[term]])
    last <- unlist(map[c(term, within)])
    ord <- c(setdiff(seq_len(ncol(X)), last), last)
    R <- chol(crossprod(X[, ord, drop = FALSE]))
    L <- matrix(0, ncol(X), ncol(X))
    L[, ord] <- R
    L <- L[match(map[[term]], ord), , drop = FALSE]
    dimnames(L) <- list(colnames(X)[map[[term]]], colnames(X))
    L
  })
  out
}

#' Update and refit a mixed model
#'
#' `update()` changes the call of a fit (its formula with
#' [stats::update.formula()], or other arguments) and by default evaluates
#' it again, as for other models. A formula that has lost its
#' random-effect terms (as [stats::step()] leaves it, since it works on the
#' fixed-effect terms) gets the fit's random-effect terms back.
#'
#' @param object A fit from [lmm()] or [glmm()].
#' @param formula. Changes to the formula, e.g. `~ . - x`.
#' @param ... Other arguments of the call to change.
#' @param evaluate Refit (`TRUE`, default) or return the call.
#' @return A new fit, or its call.
#' @examples
#' fit <- lmm(math ~ homework + ses + (1 | schid), nels88)
#' fixef(update(fit, ~ . - ses))
#' @importFrom stats update
#' @export
update.mlmfit <- function(object, formula., ..., evaluate = TRUE) {
  call <- stats::getCall(object)
  current <- stats::formula(object)
  if (length(find_bars(current[[3L]])) == 0L) current <- with_random_terms(current, object)
  call$formula <- if (missing(formula.)) current else stats::update.formula(current, formula.)
  extras <- match.call(expand.dots = FALSE)$...
  for (nm in names(extras)) call[[nm]] <- extras[[nm]]
  if (evaluate) eval(call, parent.frame()) else call
}

# The formula with the random-effect terms of the fit added back.
with_random_terms <- function(formula, fit) {
  bars <- random_term_text(fit)
  rhs <- paste(c(deparse1(formula[[3L]]), bars), collapse = " + ")
  stats::as.formula(paste(deparse1(formula[[2L]]), "~", rhs), env = environment(formula))
}

# The random-effect terms of the fit as they are written in a formula.
random_term_text <- function(fit) {
  vapply(re_terms(fit), function(tm) paste0("(", deparse1(tm$lhs), " | ", deparse1(tm$group_expr), ")"), "")
}
