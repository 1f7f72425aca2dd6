# Predictions at the data of the fit or at new data: the fixed-effect
# design of the rows and the contribution of the random effects of the
# terms asked for (new_design()), for every kind of fit.

# The fixed-effect terms of a fit with the "safe prediction" variables of
# its model frame (poly(), scale(), ns() keep the data-dependent constants
# of the fit).
fixed_terms_for_prediction <- function(fit) {
  tt <- stats::delete.response(spec_fixed_terms(fit))
  frame_tt <- spec_frame_terms(fit)
  pv <- attr(frame_tt, "predvars")
  if (is.null(pv)) return(tt)
  fv <- vapply(as.list(attr(frame_tt, "variables"))[-1L], deparse1, "")
  pv <- as.list(pv)[-1L]
  own <- as.list(attr(tt, "variables"))[-1L]
  new_pv <- lapply(own, function(v) {
    k <- match(deparse1(v), fv)
    if (is.na(k)) v else pv[[k]]
  })
  attr(tt, "predvars") <- as.call(c(quote(list), new_pv))
  tt
}

# The random-effect terms that re.form names: NULL -> all, NA or a formula
# without random-effect terms -> none, otherwise the terms of the fit with
# the same grouping factor and columns.
select_re_terms <- function(fit, re.form) {
  terms <- re_terms(fit)
  all_terms <- seq_along(terms)
  if (is.null(re.form)) return(all_terms)
  if (identical(re.form, NA) || (is.logical(re.form) && length(re.form) == 1L && is.na(re.form))) return(integer())
  if (!inherits(re.form, "formula")) {
    mlm_abort("{.arg re.form} must be {.code NULL}, {.code NA}, {.code ~0} or a formula of random-effect terms.",
              "mlmfit_error_argument")
  }
  rhs <- re.form[[length(re.form)]]
  if (length(find_bars(rhs)) == 0L) return(integer())
  wanted <- parse_mixed_formula(stats::as.formula(call("~", quote(.y), rhs), env = environment(re.form)))$random
  fit_keys <- vapply(terms, function(tm) paste(tm$label, paste(tm$colnames, collapse = "+"), sep = "|"), "")
  out <- integer()
  for (w in wanted) {
    cols <- tryCatch(re_columns(w$lhs, spec_frame(fit), spec_X(fit), environment(re.form))$names, error = function(e) NULL)
    key <- paste(w$label, paste(cols, collapse = "+"), sep = "|")
    k <- match(key, fit_keys)
    if (is.na(k)) {
      mlm_abort(c("The term {.code ({deparse1(w$lhs)} | {w$label})} of {.arg re.form} is not a random-effect term of the model.",
                  i = "The model's terms: {.code {vapply(terms, function(tm) paste0('(', deparse1(tm$lhs), ' | ', tm$label, ')'), '')}}."),
                "mlmfit_error_argument")
    }
    out <- c(out, k)
  }
  sort(unique(out))
}

# Levels of a grouping factor for the rows of newdata, as strings.
grouping_values <- function(tm, newdata, env) {
  expr <- tm$group_expr
  if (tm$label %in% names(newdata)) return(as.character(newdata[[tm$label]]))
  if (is_interaction_of_names(expr, names(newdata))) {
    parts <- lapply(interaction_names(expr), function(v) as.character(newdata[[v]]))
    out <- do.call(paste, c(parts, sep = ":"))
    out[Reduce(`|`, lapply(parts, is.na))] <- NA_character_
    return(out)
  }
  vals <- tryCatch(eval(expr, newdata, env), error = function(e) {
    mlm_abort(c("The grouping factor {.code {tm$label}} could not be formed from {.arg newdata}.",
                x = conditionMessage(e)), "mlmfit_error_newdata")
  })
  as.character(vals)
}

# Columns of Z of one term for the rows of newdata.
term_columns <- function(fit, tm, newdata, env) {
  f <- stats::as.formula(call("~", tm$lhs), env = env)
  vars <- all.vars(f)
  frame <- spec_frame(fit)
  xlev <- lapply(stats::setNames(vars, vars), function(v) if (is.factor(frame[[v]])) levels(frame[[v]]))
  xlev <- xlev[!vapply(xlev, is.null, logical(1))]
  mf <- stats::model.frame(f, newdata, na.action = stats::na.pass, xlev = if (length(xlev)) xlev)
  Z <- stats::model.matrix(f, mf)
  Z[, tm$colnames, drop = FALSE]
}

#' Design of new data for predictions (internal)
#'
#' The fixed-effect model matrix of new rows, their offset (from `offset()`
#' terms of the formula, as lme4), and the contribution `Z b` of the
#' random-effect terms selected by `re.form`. Levels of grouping factors
#' that the fit has not seen contribute zero when `allow.new.levels` is
#' `TRUE` and are an error otherwise.
#' @noRd
new_design <- function(fit, newdata = NULL, re.form = NULL, allow.new.levels = FALSE, na.action = stats::na.pass) {
  env <- environment(spec_formula(fit))
  terms <- re_terms(fit)
  b <- fit_b(fit)
  terms_used <- select_re_terms(fit, re.form)
  if (is.null(newdata)) {
    X <- spec_X(fit)
    frame <- spec_frame(fit)
    re <- numeric(nrow(X))
    for (t in terms_used) {
      tm <- terms[[t]]
      codes <- as.integer(block_factor(fit, tm$block))
      Z <- term_columns(fit, tm, frame, env)
      re <- re + rowSums(Z * t(b[[tm$block]][tm$block_cols, codes, drop = FALSE]))
    }
    return(list(X = X, offset = spec_offset(fit) %||% numeric(nrow(X)), re = re, na.action = NULL,
                rownames = rownames(frame)))
  }
  newdata <- as_model_data(newdata)
  # the rows na.action keeps, judged on every variable the prediction uses
  tt <- fixed_terms_for_prediction(fit)
  needed <- c(all.vars(tt), unlist(lapply(terms[terms_used], function(tm) c(all.vars(tm$lhs), all.vars(tm$group_expr)))))
  needed <- unique(needed)
  # as model.frame(): names that newdata lacks are looked up in the
  # formula's environment and its enclosures (constants such as pi, user
  # objects and functions)
  from_env <- vapply(setdiff(needed, names(newdata)), exists, logical(1), envir = env)
  missing_vars <- names(from_env)[!from_env]
  if (length(missing_vars)) {
    mlm_abort(c("{.arg newdata} lacks the variable{?s} {.var {missing_vars}}.",
                i = "Supply every variable of the fixed part and of the random-effect terms in {.arg re.form}."),
              "mlmfit_error_newdata", variables = missing_vars)
  }
  omitted <- NULL
  in_data <- intersect(needed, names(newdata))
  if (length(in_data)) {
    vars_frame <- stats::model.frame(stats::as.formula(paste("~", paste(sprintf("`%s`", in_data), collapse = " + "))),
                                     newdata, na.action = na.action)
    omitted <- attr(vars_frame, "na.action")
    if (!is.null(omitted)) newdata <- newdata[-as.integer(omitted), , drop = FALSE]
  }
  mf <- stats::model.frame(tt, newdata, na.action = stats::na.pass, xlev = spec_xlevels(fit))
  X <- stats::model.matrix(tt, mf, contrasts.arg = spec_contrasts(fit))
  X <- X[, spec_x_names(fit), drop = FALSE]
  offset <- numeric(nrow(X))
  if (!is.null(off <- attr(tt, "offset"))) {
    for (i in off) offset <- offset + eval(attr(tt, "variables")[[i + 1L]], newdata, env)
  }
  blocks <- re_blocks(fit)
  re <- numeric(nrow(X))
  for (t in terms_used) {
    tm <- terms[[t]]
    g <- grouping_values(tm, newdata, env)
    idx <- match(g, blocks[[tm$block]]$levels)
    new <- is.na(idx)
    if (any(new) && !allow.new.levels) {
      shown <- unique(g[new])
      mlm_abort(c("{.arg newdata} has {cli::qty(length(shown))}level{?s} of {.var {tm$label}} that the fit has not seen: {.val {utils::head(shown, 5)}}{if (length(shown) > 5) ' ...' else ''}.",
                  i = "Use {.code allow.new.levels = TRUE} to predict those rows at the population level for this term."),
                c("mlmfit_error_new_levels", "mlmfit_error_newdata"), variable = tm$label, levels = shown)
    }
    Z <- term_columns(fit, tm, newdata, env)
    B <- matrix(0, length(idx), length(tm$block_cols))
    B[!new, ] <- t(b[[tm$block]][tm$block_cols, idx[!new], drop = FALSE])
    re <- re + rowSums(Z * B)
  }
  list(X = X, offset = offset, re = re, na.action = omitted, rownames = rownames(newdata))
}

#' Predictions from a mixed model
#'
#' Predictions at the data of the fit or at new data: by default
#' conditional on all the random effects (the group-specific predictions);
#' with `re.form = NA` (or `~0`) at the population level (fixed effects
#' only); with a formula such as `~ (1 | school)` conditional on the
#' random-effect terms named. For a fit from [glmm()], on the scale of the
#' linear predictor (`type = "link"`, default) or of the response
#' (`"response"`, e.g. probabilities). As in lme4, offsets in new data come
#' from `offset()` terms of the formula. Names in the formula that `newdata`
#' lacks are looked up where the formula was written, as [model.frame()]
#' does (constants such as `pi`, objects and functions of the user); only
#' names found in neither are reported missing.
#'
#' For a fit with a residual `correlation` or `variance` structure the
#' predictions are those of nlme's `predict.lme()`: the fixed part plus the
#' random effects' conditional modes (BLUPs), with no adjustment for the
#' residual correlation of new observations with observed ones.
#'
#' @param object A fit from [lmm()] or [glmm()].
#' @param newdata A data frame; by default the data of the fit.
#' @param re.form Random effects to condition on: `NULL` (all), `NA` or
#'   `~0` (none), or a formula of some of the model's random-effect terms.
#' @param allow.new.levels If `TRUE`, levels of grouping factors that the
#'   fit has not seen (and missing levels) get random effects of zero, i.e.
#'   population-level predictions for that term; if `FALSE` they are an
#'   error of class `mlmfit_error_new_levels`.
#' @param type `"link"` or `"response"`: the scale of the linear predictor
#'   or of the mean (the same for a linear mixed model).
#' @param se.fit Also return standard errors of the fixed-effect part of
#'   the predictions, `sqrt(diag(X V X'))` with `V = vcov(object)`: the
#'   standard errors of population-level predictions, on the scale of the
#'   linear predictor. (They ignore the uncertainty of the random effects.
#'   For a [glmm()] fit they are refused with `type = "response"`.)
#' @param random.only Return only the random-effect contribution.
#' @param na.action What to do with rows of `newdata` with missing values:
#'   [stats::na.pass] (default: predictions are `NA`), [stats::na.omit] or
#'   [stats::na.exclude].
#' @param ... Unused.
#' @return A named numeric vector, or with `se.fit = TRUE` a list with
#'   components `fit` and `se.fit`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' head(predict(fit))                       # conditional on the schools
#' head(predict(fit, re.form = NA))         # population level
#' nd <- data.frame(homework = 0:3, schid = "7472")
#' predict(fit, nd)
#' predict(fit, nd, re.form = NA, se.fit = TRUE)
#' # a school the fit has not seen gets the population-level prediction
#' predict(fit, data.frame(homework = 2, schid = "new"), allow.new.levels = TRUE)
#'
#' nels88$pass <- nels88$math >= 50
#' gfit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' head(predict(gfit, type = "response"))
#' new <- data.frame(homework = 0:3, schid = nels88$schid[1])
#' predict(gfit, new, type = "response")
#' predict(gfit, new, re.form = NA, type = "response")
#' @export
predict.mlmfit <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                           type = c("link", "response"), se.fit = FALSE, random.only = FALSE,
                           na.action = stats::na.pass, ...) {
  type <- match.arg(type)
  family <- spec_family(object)$family
  response_scale <- type == "response" && !is.null(family)
  if (se.fit && response_scale) {
    mlm_abort(c("Standard errors of predictions on the response scale are not available.",
                i = "Use {.code type = \"link\"} for standard errors on the scale of the linear predictor."),
              "mlmfit_error_argument")
  }
  if (is.null(newdata) && is.null(re.form) && !se.fit && !random.only) {
    pred <- if (!is.null(family) && type == "link") fit_eta(object) else fit_fitted(object)
    return(observation_vector(object, pred))
  }
  d <- new_design(object, newdata, re.form, allow.new.levels, na.action)
  eta <- if (random.only) d$re else drop(d$X %*% fixef(object)) + d$offset + d$re
  pred <- stats::setNames(as.vector(if (response_scale) family$linkinv(eta) else eta), d$rownames)
  omit <- if (is.null(newdata)) attr(spec_frame(object), "na.action") else d$na.action
  pred <- stats::napredict(omit, pred)
  if (!se.fit) return(pred)
  se <- sqrt(rowSums((d$X %*% vcov(object)) * d$X))
  list(fit = pred, se.fit = stats::napredict(omit, stats::setNames(se, d$rownames)))
}
