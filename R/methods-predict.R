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

# The random effects that re.form names, as the columns of each block they
# select (a list named by block; lme4's rule): NULL -> every column of every
# block, NA or a formula without random-effect terms -> none; a formula
# `(lhs | g)` -> the columns of lhs among those of the block of g, so that a
# term of the model, several terms of one factor or a part of a term (the
# intercept of `(x | g)`) can be named.
re_selection <- function(fit, re.form) {
  blocks <- re_blocks(fit)
  if (is.null(re.form)) return(lapply(blocks, function(b) seq_len(b$q)))
  if (identical(re.form, NA) || (is.logical(re.form) && length(re.form) == 1L && is.na(re.form))) return(list())
  if (!inherits(re.form, "formula")) {
    mlm_abort("{.arg re.form} must be {.code NULL}, {.code NA}, {.code ~0} or a formula of random-effect terms.",
              "mlmfit_error_argument")
  }
  rhs <- re.form[[length(re.form)]]
  if (length(find_bars(rhs)) == 0L) return(list())
  wanted <- parse_mixed_formula(stats::as.formula(call("~", quote(.y), rhs), env = environment(re.form)))$random
  terms <- re_terms(fit)
  out <- list()
  for (w in wanted) {
    b <- match(w$label, names(blocks))
    cols <- tryCatch(spec_term_colnames(fit, w$lhs, environment(re.form)),
                     mlmfit_error = function(e) NULL, error = function(e) NULL)
    if (!is.na(b)) {
      # a term of the model: its own columns (names may repeat in a block)
      same <- Filter(function(tm) tm$label == w$label && identical(tm$colnames, cols), terms)
      pos <- if (length(same)) same[[1L]]$block_cols else match(cols, blocks[[b]]$colnames)
    }
    if (is.na(b) || is.null(cols) || anyNA(pos)) {
      shown <- vapply(terms, term_label, "")
      mlm_abort(c("The term {.code {term_label(w)}} of {.arg re.form} is not among the random effects of the model.",
                  i = "{.arg re.form} can name the model's terms {.code {shown}} or some of their columns."),
                "mlmfit_error_argument")
    }
    out[[w$label]] <- sort(unique(c(out[[w$label]], pos)))
  }
  out[intersect(names(blocks), names(out))]
}

# Levels of a grouping factor for the rows of newdata, as text: the same
# mapping of values to levels as the fit's (group_labels()).
grouping_values <- function(tm, newdata, env) {
  vals <- tryCatch(grouping_variable(tm$group_expr, tm$label, newdata, env), mlmfit_error_formula = function(e) {
    mlm_abort(c("The grouping factor {.code {tm$label}} could not be formed from {.arg newdata}.",
                x = conditionMessage(e)), "mlmfit_error_newdata")
  })
  group_labels(vals)
}

# Columns of Z of one term for the rows of newdata.
term_columns <- function(fit, tm, newdata, env) {
  f <- stats::as.formula(call("~", tm$lhs), env = env)
  vars <- all.vars(f)
  xlev <- lapply(stats::setNames(vars, vars), function(v) variable_levels(fit, v))
  xlev <- xlev[!vapply(xlev, is.null, logical(1))]
  mf <- stats::model.frame(f, newdata, na.action = stats::na.pass, xlev = if (length(xlev)) xlev)
  Z <- stats::model.matrix(f, mf)
  Z[, tm$colnames, drop = FALSE]
}

# The columns `cols` of block b's Z for the rows of newdata (the data of the
# fit when newdata is NULL), from the terms of the block that hold them.
block_columns <- function(fit, b, cols, newdata, env) {
  if (is.null(newdata)) return(block_z(fit, b, cols))
  blk <- re_blocks(fit)[[b]]
  Z <- matrix(0, nrow(newdata), blk$q)
  for (tm in re_terms(fit)[blk$terms]) {
    if (!any(tm$block_cols %in% cols)) next
    Z[, tm$block_cols] <- term_columns(fit, tm, newdata, env)
  }
  Z[, cols, drop = FALSE]
}

# The level of each row of newdata (the data of the fit when NULL) among
# the levels of block b: codes into the fit's levels, NA for levels the fit
# has not seen (an error unless allow.new.levels) and missing values.
block_codes <- function(fit, b, newdata, env, allow.new.levels) {
  if (is.null(newdata)) return(as.integer(block_factor(fit, b)))
  blk <- re_blocks(fit)[[b]]
  tm <- re_terms(fit)[[blk$terms[1L]]]
  g <- grouping_values(tm, newdata, env)
  idx <- match(g, blk$levels)
  new <- is.na(idx)
  if (any(new) && !allow.new.levels) {
    shown <- unique(g[new])
    mlm_abort(c("{.arg newdata} has {cli::qty(length(shown))}level{?s} of {.var {tm$label}} that the fit has not seen: {.val {utils::head(shown, 5)}}{if (length(shown) > 5) ' ...' else ''}.",
                i = "Use {.code allow.new.levels = TRUE} to predict those rows at the population level for this term."),
              c("mlmfit_error_new_levels", "mlmfit_error_newdata"), variable = tm$label, levels = shown)
  }
  attr(idx, "labels") <- g
  idx
}

# Z b of the selected random effects (a re_selection()) for the rows of
# newdata (the data of the fit when NULL); rows of new or missing levels
# contribute zero.
random_part <- function(fit, selection, newdata, env, allow.new.levels) {
  n <- if (is.null(newdata)) spec_nobs(fit) else nrow(newdata)
  b <- fit_b(fit)
  re <- numeric(n)
  for (blk in names(selection)) {
    cols <- selection[[blk]]
    idx <- block_codes(fit, blk, newdata, env, allow.new.levels)
    Z <- block_columns(fit, blk, cols, newdata, env)
    seen <- !is.na(idx)
    B <- matrix(0, n, length(cols))
    B[seen, ] <- t(b[[blk]][cols, idx[seen], drop = FALSE])
    re <- re + rowSums(Z * B)
  }
  re
}

# newdata as predictions read it: a data frame (integer64 columns as
# double), with the rows na.action drops (judged on the variables the
# prediction uses: `needed`) left out and recorded.
prepare_newdata <- function(fit, newdata, needed, na.action, env) {
  newdata <- convert_integer64(as_model_data(newdata))
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
  structure(newdata, omitted = omitted)
}

# The variables a prediction reads: the fixed part, and the columns and
# grouping factors of the blocks selected.
prediction_variables <- function(fit, selection) {
  terms <- re_terms(fit)
  blocks <- re_blocks(fit)
  used <- unlist(lapply(names(selection), function(b) blocks[[b]]$terms))
  unique(c(all.vars(fixed_terms_for_prediction(fit)),
           unlist(lapply(terms[used], function(tm) c(all.vars(tm$lhs), all.vars(tm$group_expr))))))
}

#' Design of new data for predictions (internal)
#'
#' The fixed-effect model matrix of new rows, their offset (from `offset()`
#' terms of the formula, as lme4), and the contribution `Z b` of the
#' random effects selected by `re.form` (see re_selection()). Levels of
#' grouping factors that the fit has not seen contribute zero when
#' `allow.new.levels` is `TRUE` and are an error otherwise. `newdata` in
#' the answer is the new data of the rows kept (NULL for the data of the
#' fit).
#' @noRd
new_design <- function(fit, newdata = NULL, re.form = NULL, allow.new.levels = FALSE, na.action = stats::na.pass) {
  env <- environment(spec_formula(fit))
  selection <- re_selection(fit, re.form)
  if (is.null(newdata)) {
    X <- spec_X(fit)
    return(list(X = X, offset = spec_offset(fit) %||% numeric(nrow(X)),
                re = random_part(fit, selection, NULL, env, allow.new.levels),
                na.action = NULL, rownames = rownames(spec_frame(fit)), newdata = NULL))
  }
  tt <- fixed_terms_for_prediction(fit)
  newdata <- prepare_newdata(fit, newdata, prediction_variables(fit, selection), na.action, env)
  mf <- stats::model.frame(tt, newdata, na.action = stats::na.pass, xlev = spec_xlevels(fit))
  X <- stats::model.matrix(tt, mf, contrasts.arg = spec_contrasts(fit))
  X <- X[, spec_x_names(fit), drop = FALSE]
  offset <- numeric(nrow(X))
  if (!is.null(off <- attr(tt, "offset"))) {
    for (i in off) offset <- offset + eval(attr(tt, "variables")[[i + 1L]], newdata, env)
  }
  list(X = X, offset = offset, re = random_part(fit, selection, newdata, env, allow.new.levels),
       na.action = attr(newdata, "omitted"), rownames = rownames(newdata), newdata = newdata)
}

# The linear predictor on the rows of the fit with the random effects
# re.form selects (the population level for NA), for internal use.
linear_predictor <- function(fit, re.form = NULL) {
  d <- new_design(fit, NULL, re.form)
  drop(d$X %*% fit_beta(fit)) + d$offset + d$re
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
#'   linear predictor; with `type = "response"` on the scale of the mean by
#'   the delta method (times `|d mu / d eta|`). They ignore the uncertainty
#'   of the random effects: with random effects in the predictions a
#'   message (class `mlmfit_message_se_fixed_part`) says so.
#' @param random.only Return only the random-effect contribution.
#' @param na.action What to do with rows of `newdata` with missing values:
#'   [stats::na.pass] (default: predictions are `NA`), [stats::na.omit] or
#'   [stats::na.exclude]. Without `newdata`, a function given here changes
#'   how the rows the fit dropped for missing values are shown, as lme4:
#'   `na.exclude` pads the predictions with `NA` in those rows.
#' @param ... Not used: other arguments (e.g. `interval`) are reported in a
#'   warning of class `mlmfit_warning_unused_argument`.
#' @return A named numeric vector, or with `se.fit = TRUE` a list with
#'   components `fit` and `se.fit`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' head(predict(fit))                       # conditional on the schools
#' head(predict(fit, re.form = NA))         # population level
#' nd <- data.frame(homework = 0:3, schid = "7472")
#' predict(fit, nd)
#' predict(fit, nd, re.form = NA, se.fit = TRUE)
#' # the school intercepts only, without the school slopes
#' predict(fit, nd, re.form = ~ (1 | schid))
#' # a school the fit has not seen gets the population-level prediction
#' predict(fit, data.frame(homework = 2, schid = "new"), allow.new.levels = TRUE)
#'
#' nels88$pass <- nels88$math >= 50
#' gfit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' head(predict(gfit, type = "response"))
#' new <- data.frame(homework = 0:3, schid = nels88$schid[1])
#' predict(gfit, new, type = "response")
#' predict(gfit, new, re.form = NA, type = "response", se.fit = TRUE)
#' @export
predict.mlmfit <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                           type = c("link", "response"), se.fit = FALSE, random.only = FALSE,
                           na.action = stats::na.pass, ...) {
  warn_unused_dots(..., method = "predict",
                   hint = "Standard errors come with {.code se.fit = TRUE}; intervals for parameters from {.fn confint}.")
  type <- match.arg(type)
  family <- spec_family(object)$family
  response_scale <- type == "response" && !is.null(family)
  omit <- if (is.null(newdata)) attr(spec_frame(object), "na.action")
  if (!is.null(omit) && is.null(newdata) && !missing(na.action)) {
    # lme4's rule: na.action given here says how to show the rows the fit dropped
    class(omit) <- class(attr(na.action(NA), "na.action"))
  }
  if (is.null(newdata) && is.null(re.form) && !se.fit && !random.only) {
    pred <- if (!is.null(family) && type == "link") fit_eta(object) else fit_fitted(object)
    return(observation_vector(object, pred, omit))
  }
  d <- new_design(object, newdata, re.form, allow.new.levels, na.action)
  eta <- if (random.only) d$re else drop(d$X %*% fit_beta(object)) + d$offset + d$re
  pred <- stats::setNames(as.vector(if (response_scale) family$linkinv(eta) else eta), d$rownames)
  if (!is.null(newdata)) omit <- d$na.action
  pred <- stats::napredict(omit, pred)
  if (!se.fit) return(pred)
  if (random.only) {
    mlm_abort(c("{.code se.fit = TRUE} gives standard errors of the fixed-effect part, which {.code random.only = TRUE} leaves out.",
                i = "Use {.fn ranef} with {.code condVar = TRUE} for the conditional variances of the random effects."),
              "mlmfit_error_argument")
  }
  if (length(re_selection(object, re.form)) > 0L) {
    mlm_inform(c("The standard errors cover the fixed-effect part of the predictions only.",
                 i = "The uncertainty of the random effects is not included; {.code re.form = NA} gives population-level predictions, to which they apply."),
               "mlmfit_message_se_fixed_part")
  }
  se <- sqrt(rowSums((d$X %*% vcov(object)) * d$X))
  # the delta method: the standard error of mu = linkinv(eta)
  if (response_scale) se <- se * abs(family$mu.eta(eta))
  list(fit = pred, se.fit = stats::napredict(omit, stats::setNames(as.vector(se), d$rownames)))
}
