# From the user's call to checked model ingredients: the model frame, the
# response, the fixed-effect model matrix (aliased columns dropped), prior
# weights and offset. Every refusal names the variable and what to do.

as_model_data <- function(data) {
  if (is.data.frame(data)) return(data)
  if (is.null(data)) {
    mlm_abort(c("{.arg data} is {.code NULL}.", i = "Pass the data frame that holds the model's variables."),
              "mlmfit_error_data")
  }
  if (is.list(data) || is.matrix(data) || is.environment(data)) {
    out <- tryCatch(as.data.frame(data), error = function(e) NULL)
    if (!is.null(out)) return(out)
  }
  mlm_abort(c("{.arg data} must be a data frame (or something {.fn as.data.frame} accepts).",
              x = "It is of class {.cls {class(data)}}."),
            "mlmfit_error_data")
}

check_variables_exist <- function(formula, data, extra_names = character()) {
  vars <- setdiff(all.vars(formula), extra_names)
  env <- environment(formula)
  missing <- vars[!vapply(vars, function(v) v %in% names(data) || exists(v, envir = env), logical(1))]
  if (length(missing) > 0L) {
    mlm_abort(c("{cli::qty(length(missing))}Variable{?s} {.var {missing}} {cli::qty(length(missing))}{?is/are} not in {.arg data}.",
                i = "Check the spelling against {.code names(data)}."),
              "mlmfit_error_variable", variables = missing)
  }
}

rows_text <- function(rows) {
  shown <- utils::head(rows, 5L)
  paste0(paste(shown, collapse = ", "), if (length(rows) > 5L) paste0(" and ", length(rows) - 5L, " more"))
}

check_finite_columns <- function(mf) {
  for (nm in names(mf)) {
    v <- mf[[nm]]
    if (!is.numeric(v)) next
    # sum() is finite exactly when no value is infinite or NaN (unless it
    # overflows, which the exact check below then settles): no allocation.
    if (is.finite(sum(v))) next
    bad <- which(!is.finite(v))
    if (length(bad) > 0L) {
      if (is.matrix(v)) bad <- unique((bad - 1L) %% nrow(v) + 1L)
      shown_name <- if (nm == "(weights)") "weights" else if (nm == "(offset)") "offset" else nm
      mlm_abort(c("{.var {shown_name}} has infinite values in row{?s} {rows_text(bad)} of the model frame.",
                  i = "Remove or correct those rows, for example with {.arg subset}."),
                "mlmfit_error_nonfinite", variable = shown_name, rows = bad)
    }
  }
}

# Columns of X that are linear combinations of earlier columns, found by
# the pivoted QR that lm() and lme4 use. A cheap check on X'X comes first so
# that a full-rank X (the usual case) is never copied.
aliased_columns <- function(X) {
  p <- ncol(X)
  if (p == 0L) return(integer())
  xtx <- crossprod(X)
  d <- sqrt(pmax(diag(xtx), 0))
  if (all(d > 0)) {
    r <- xtx / tcrossprod(d)
    ev <- eigen(r, symmetric = TRUE, only.values = TRUE)$values
    if (min(ev) > 1e-8 * max(ev)) return(integer())
  }
  qx <- qr(X, tol = 1e-7, LAPACK = FALSE)
  if (qx$rank == p) return(integer())
  sort(qx$pivot[(qx$rank + 1L):p])
}

# Missing values: the frame is built with na.pass and rows are dropped here
# only when some are incomplete (na.omit would copy every column even when
# nothing is missing). na.omit and na.exclude drop the rows and record them
# as the "na.action" attribute; na.fail refuses; any other function is
# applied to the frame.
apply_na_action <- function(mf, na.action) {
  if (is.character(na.action)) na.action <- get(na.action, mode = "function")
  has_na <- vapply(mf, anyNA, logical(1), recursive = TRUE)
  if (!any(has_na)) return(mf)
  if (identical(na.action, stats::na.fail)) {
    mlm_abort(c("{cli::qty(sum(has_na))}Variable{?s} {.var {names(mf)[has_na]}} {?has/have} missing values and {.arg na.action} is {.fn na.fail}.",
                i = "Remove those rows, or use {.code na.action = na.omit}."),
              "mlmfit_error_missing", variables = names(mf)[has_na])
  }
  if (identical(na.action, stats::na.omit) || identical(na.action, stats::na.exclude)) {
    incomplete <- Reduce(`|`, lapply(mf[has_na], function(v) if (is.matrix(v)) rowSums(is.na(v)) > 0 else is.na(v)))
    omit <- which(incomplete)
    names(omit) <- rownames(mf)[omit]
    class(omit) <- if (identical(na.action, stats::na.exclude)) "exclude" else "omit"
    out <- mf[!incomplete, , drop = FALSE]
    attr(out, "na.action") <- omit
    return(out)
  }
  na.action(mf)
}

# Build the model frame with the caller's data, subset, weights, offset and
# na.action, then the checked ingredients of the fixed part.
lmm_model_frame <- function(mc, parsed, caller_env, na.action, response = c("numeric", "any")) {
  response <- match.arg(response)
  data <- if (is.null(mc$data)) environment(parsed$frame) else eval(mc$data, caller_env)
  if (!is.environment(data)) {
    data <- as_model_data(data)
    if (nrow(data) == 0L) {
      mlm_abort("{.arg data} has no rows.", "mlmfit_error_empty")
    }
  }
  check_variables_exist(parsed$frame, if (is.environment(data)) list() else data)

  mf_call <- mc[c(1L, match(c("subset", "weights", "offset"), names(mc), 0L))]
  mf_call[[1L]] <- quote(stats::model.frame)
  mf_call$formula <- parsed$frame
  mf_call$data <- data
  mf_call$na.action <- quote(stats::na.pass)
  mf_call$drop.unused.levels <- TRUE
  mf <- tryCatch(eval(mf_call, caller_env), error = function(e) {
    msg <- conditionMessage(e)
    hint <- if (grepl("(weights)", msg, fixed = TRUE)) {
      "{.arg weights} must have one value per row of {.arg data}."
    } else if (grepl("(offset)", msg, fixed = TRUE)) {
      "{.arg offset} must have one value per row of {.arg data}."
    } else {
      "Check the variables of the formula, {.arg subset}, {.arg weights} and {.arg offset}."
    }
    mlm_abort(c("The model frame could not be built.", x = msg, i = hint), "mlmfit_error_frame")
  })
  mf <- apply_na_action(mf, na.action)
  if (nrow(mf) == 0L) {
    mlm_abort(c("No observations remain after {.arg subset} and the removal of rows with missing values.",
                i = "Check which variables are missing with {.code colSums(is.na(data))}."),
              "mlmfit_error_empty")
  }
  check_finite_columns(mf)

  # The response column itself (model.response() would copy it to name it).
  y <- mf[[1L]]
  if (response == "numeric") {
    yname <- deparse1(parsed$response)
    if (is.factor(y) || is.character(y) || is.logical(y)) {
      mlm_abort(c("The response {.var {yname}} is {.cls {class(y)[1]}}: {.fn lmm} models a numeric response.",
                  i = "For a binary or count outcome use {.fn glmm}."),
                "mlmfit_error_response", variable = yname)
    }
    if (!is.null(dim(y))) {
      mlm_abort(c("The response {.var {yname}} must be a single numeric column.",
                  i = "{.fn lmm} models one response at a time."),
                "mlmfit_error_response", variable = yname)
    }
    if (!is.double(y) || !is.null(attributes(y))) y <- as.double(y)
  }

  weights <- stats::model.weights(mf)
  if (!is.null(weights)) {
    if (!is.numeric(weights) || !is.null(dim(weights))) {
      mlm_abort("{.arg weights} must be a numeric vector.", "mlmfit_error_weights")
    }
    bad <- which(weights <= 0)
    if (length(bad) > 0L) {
      mlm_abort(c("{.arg weights} must be positive; row{?s} {rows_text(bad)} {?is/are} not.",
                  i = "Drop observations with {.arg subset} rather than giving them zero weight."),
                "mlmfit_error_weights", rows = bad)
    }
    weights <- as.double(weights)
  }
  offset <- stats::model.offset(mf)
  if (!is.null(offset)) {
    if (length(offset) != nrow(mf)) {
      mlm_abort("{.arg offset} must have one value per observation.", "mlmfit_error_offset")
    }
    offset <- as.double(offset)
  }

  fixed_terms <- stats::terms(parsed$fixed, data = mf)
  X <- stats::model.matrix(fixed_terms, mf)
  dropped <- character()
  alias <- aliased_columns(X)
  if (length(alias) > 0L) {
    dropped <- colnames(X)[alias]
    mlm_inform(c("The fixed-effect model matrix is rank deficient: dropping {length(dropped)} column{?s} that {?is a/are} linear combination{?s} of the others.",
                 i = "Dropped: {.var {dropped}}."),
               "mlmfit_message_rank")
    keep <- setdiff(seq_len(ncol(X)), alias)
    assign <- attr(X, "assign")[keep]
    contr <- attr(X, "contrasts")
    X <- X[, keep, drop = FALSE]
    attr(X, "assign") <- assign
    attr(X, "contrasts") <- contr
  }
  intercept_col <- match("(Intercept)", colnames(X), nomatch = 0L)
  list(frame = mf, y = y, X = X, weights = weights, offset = offset, terms = fixed_terms,
       xlevels = stats::.getXlevels(fixed_terms, mf), dropped = dropped, intercept_col = intercept_col,
       data = data)
}
