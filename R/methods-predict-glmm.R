# Predictions from a glmm() fit, on the scale of the linear predictor or of
# the response, for the data of the fit or new data, with all, some or none
# of the random effects (the arguments of lme4's predict.merMod).

#' Predictions from a generalized linear mixed model
#'
#' @param object A fit from [glmm()].
#' @param newdata Optional data frame to predict for; by default the data
#'   of the fit.
#' @param re.form Which random effects to include: `NULL` (default) all of
#'   them, `NA` or `~0` none (population-level predictions), or a formula
#'   with some of the model's random-effect terms, e.g. `~ (1 | school)`.
#' @param allow.new.levels With `newdata`, whether levels of a grouping
#'   factor not seen in the fit are allowed; their random effects are then
#'   zero (the population level).
#' @param type `"link"` (default) for the linear predictor or `"response"`
#'   for the mean (e.g. probabilities).
#' @param random.only Only the random-effect part of the linear predictor
#'   (no fixed effects, no offset).
#' @param na.action How to treat missing values in `newdata`
#'   (`stats::na.pass` keeps the rows and predicts `NA`).
#' @param ... Unused.
#' @return A named numeric vector.
#' @examples
#' nels88$pass <- nels88$math >= 50
#' fit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' head(predict(fit, type = "response"))
#' new <- data.frame(homework = 0:3, schid = nels88$schid[1])
#' predict(fit, new, type = "response")
#' predict(fit, new, re.form = NA, type = "response")
#' @export
predict.mlmfit_glmm <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                         type = c("link", "response"), random.only = FALSE, na.action = stats::na.pass, ...) {
  type <- match.arg(type)
  terms_used <- selected_re_terms(object, re.form)
  if (is.null(newdata)) {
    if (length(terms_used) == length(object$re$terms) && !random.only) {
      eta <- object$eta
    } else {
      eta <- if (random.only) numeric(nobs(object)) else
        drop(object$X %*% object$beta) + (if (is.null(object$offset)) 0 else object$offset)
      for (t in terms_used) eta <- eta + fitted_term_contribution(object, t)
      names(eta) <- rownames(object$frame)
    }
    if (type == "response") eta[] <- object$family$linkinv(eta)
    return(stats::napredict(attr(object$frame, "na.action"), eta))
  } else {
    newdata <- as_model_data(newdata)
    tt <- stats::delete.response(object$terms)
    mf <- tryCatch(stats::model.frame(tt, newdata, na.action = na.action, xlev = object$xlevels),
                   error = function(e) {
                     mlm_abort(c("{.arg newdata} lacks what the fixed part of the model needs.", x = conditionMessage(e)),
                               "mlmfit_error_newdata")
                   })
    X <- stats::model.matrix(tt, mf, contrasts.arg = object$contrasts)
    X <- X[, colnames(object$X), drop = FALSE]
    eta <- drop(X %*% object$beta)
    off <- stats::model.offset(mf)
    if (!is.null(off)) eta <- eta + off
    if (random.only) eta[] <- 0
    rows <- rownames(mf)
    if (length(terms_used) > 0L) {
      nd <- newdata[rows, , drop = FALSE]
      for (t in terms_used) eta <- eta + new_term_contribution(object, t, nd, allow.new.levels)
    }
    names(eta) <- rows
  }
  if (type == "response") eta[] <- object$family$linkinv(eta)
  eta
}

# The indices of the random-effect terms that re.form asks for.
selected_re_terms <- function(object, re.form) {
  all_terms <- seq_along(object$re$terms)
  if (is.null(re.form)) return(all_terms)
  if (length(re.form) == 1L && !inherits(re.form, "formula") && is.na(re.form)) return(integer())
  if (!inherits(re.form, "formula")) {
    mlm_abort("{.arg re.form} must be {.code NULL}, {.code NA} or a formula such as {.code ~ (1 | g)}.",
              "mlmfit_error_argument")
  }
  rhs <- re.form[[length(re.form)]]
  if (identical(rhs, 0) || identical(rhs, quote(0)) || identical(rhs, 0L)) return(integer())
  bars <- find_bars(rhs)
  if (length(bars) == 0L) return(integer())
  labels <- unlist(lapply(bars, function(b) vapply(expand_slash(b[[3L]]), deparse1, "")))
  have <- vapply(object$re$terms, function(t) t$label, "")
  unknown <- setdiff(labels, have)
  if (length(unknown) > 0L) {
    mlm_abort(c("{.arg re.form} names {cli::qty(length(unknown))}grouping factor{?s} {.var {unknown}} that the model does not have.",
                i = "The model's grouping factors: {.var {unique(have)}}."),
              "mlmfit_error_argument")
  }
  which(have %in% labels)
}

# Z_t b_t for the data of the fit, from the columns the engine used.
fitted_term_contribution <- function(object, t) {
  tm <- object$re$terms[[t]]
  blk <- object$re$blocks[[tm$block]]
  codes <- as.integer(blk$factor)
  bm <- object$b[[tm$block]]
  out <- numeric(length(codes))
  for (k in seq_along(tm$block_cols)) {
    col <- tm$block_cols[k]
    ref <- blk$refs[[col]]
    z <- if (is.null(ref)) 1 else if (is.integer(ref) && length(ref) == 1L) object$X[, ref] else ref
    out <- out + z * bm[col, codes]
  }
  out
}

# The grouping factor of a term, evaluated in new data, as character.
new_group_values <- function(tm, data, env) {
  expr <- tm$group_expr
  if (tm$label %in% names(data)) return(as.character(data[[tm$label]]))
  if (is_interaction_of_names(expr, names(data))) {
    parts <- lapply(interaction_names(expr), function(v) as.character(data[[v]]))
    out <- do.call(paste, c(parts, sep = ":"))
    out[Reduce(`|`, lapply(parts, is.na))] <- NA_character_
    return(out)
  }
  vals <- tryCatch(eval(expr, data, env), error = function(e) {
    mlm_abort(c("The grouping factor {.code {tm$label}} cannot be formed from {.arg newdata}.", x = conditionMessage(e)),
              "mlmfit_error_newdata")
  })
  as.character(vals)
}

# The grouping values and the columns of Z of one term in new data.
new_term_design <- function(object, t, data) {
  tm <- object$re$terms[[t]]
  g <- new_group_values(tm, data, environment(object$formula))
  tt <- stats::terms(stats::as.formula(call("~", tm$lhs)))
  vars <- all.vars(tm$lhs)
  xlev <- lapply(object$frame[intersect(vars, names(object$frame))], function(v) if (is.factor(v)) levels(v))
  xlev <- xlev[!vapply(xlev, is.null, logical(1))]
  mf <- tryCatch(stats::model.frame(tt, data, na.action = stats::na.pass, xlev = if (length(xlev)) xlev),
                 error = function(e) {
                   mlm_abort(c("{.arg newdata} lacks what the random-effect term {.code ({deparse1(tm$lhs)} | {tm$label})} needs.",
                               x = conditionMessage(e)), "mlmfit_error_newdata")
                 })
  Z <- stats::model.matrix(tt, mf)
  list(group = g, Z = Z[, tm$colnames, drop = FALSE])
}

# Z_t b_t for new data, the levels matched to those of the fit.
new_term_contribution <- function(object, t, data, allow.new.levels) {
  tm <- object$re$terms[[t]]
  blk <- object$re$blocks[[tm$block]]
  des <- new_term_design(object, t, data)
  idx <- match(des$group, blk$levels)
  new <- is.na(idx)
  if (any(new) && !allow.new.levels) {
    lev <- unique(des$group[new])
    mlm_abort(c("{.arg newdata} has {cli::qty(length(lev))}level{?s} {.val {lev}} of {.var {tm$label}} that the fit has not seen.",
                i = "Use {.code allow.new.levels = TRUE} to predict at the population level (random effect zero) for them."),
              "mlmfit_error_newdata", levels = lev)
  }
  bm <- object$b[[tm$block]][tm$block_cols, , drop = FALSE]
  out <- numeric(nrow(data))
  ok <- !new
  if (any(ok)) out[ok] <- rowSums(des$Z[ok, , drop = FALSE] * t(bm[, idx[ok], drop = FALSE]))
  out
}
