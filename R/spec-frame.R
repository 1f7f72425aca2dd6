# From the user's call to checked model ingredients: the model frame, the
# response, the fixed-effect model matrix (aliased columns dropped), prior
# weights and offset. Every refusal names the variable and what to do.

as_model_data <- function(data) {
  if (is.data.frame(data)) return(data)
  if (is.null(data)) {
    mlm_abort(c("{.arg data} is {.code NULL}.", i = "Pass the data frame that holds the model's variables."),
              "mlmfit_error_data")
  }
  if (is.list(data) || is.matrix(data)) {
    out <- tryCatch(as.data.frame(data, stringsAsFactors = FALSE), error = function(e) e)
    if (!inherits(out, "error")) return(out)
    mlm_abort(c("{.arg data} could not be turned into a data frame.", x = conditionMessage(out),
                i = "Pass a data frame, or a list of variables that all have the same length."),
              "mlmfit_error_data")
  }
  mlm_abort(c("{.arg data} must be a data frame (or something {.fn as.data.frame} accepts).",
              x = "It is of class {.cls {class(data)}}."),
            "mlmfit_error_data")
}

# integer64 columns (bit64; a database's bigint) keep their values in the
# bits of doubles, which model.matrix() would read as tiny numbers: they
# become doubles, exactly (values from 2^53 on may have no exact double and
# are refused).
convert_integer64 <- function(df) {
  is64 <- vapply(df, inherits, logical(1), "integer64")
  if (!any(is64)) return(df)
  if (!requireNamespace("bit64", quietly = TRUE)) {
    mlm_abort(c("{.var {names(df)[is64]}} {?is/are} of class {.cls integer64}, which needs the bit64 package.",
                i = "Install bit64, or convert the column{?s} with {.fn as.numeric}."),
              "mlmfit_error_missing_package")
  }
  for (nm in names(df)[is64]) {
    v <- df[[nm]]
    d <- suppressWarnings(as.double(v))
    if (any(abs(d) >= 2^53, na.rm = TRUE)) {
      shown <- shown_column_name(nm)
      mlm_abort(c("{.var {shown}} is an {.cls integer64} with values of 2^53 or more, which may have no exact double.",
                  i = "Rescale it, or use it as a grouping factor via {.fn as.character}."),
                "mlmfit_error_variable", variable = shown)
    }
    df[[nm]] <- d
  }
  df
}

# Names in `data` close to a misspelt one, for a hint.
close_names <- function(name, available) {
  if (length(available) == 0L || nchar(name) < 3L) return(character())
  d <- utils::adist(name, available, ignore.case = TRUE)[1L, ]
  available[d <= max(1, nchar(name) %/% 4) & d == min(d)]
}

# The variables an expression reads: all.vars() without the names picked
# out of an object by `$` or `@` (d$w reads d, not w).
expression_vars <- function(expr) {
  if (is.name(expr)) return(as.character(expr))
  if (!is.call(expr)) return(character())
  if (identical(expr[[1L]], as.name("$")) || identical(expr[[1L]], as.name("@"))) {
    return(expression_vars(expr[[2L]]))
  }
  if (identical(expr[[1L]], as.name("::")) || identical(expr[[1L]], as.name(":::"))) return(character())
  unique(unlist(lapply(as.list(expr)[-1L], expression_vars)))
}

check_variables_exist <- function(formula, data, extra_names = character(),
                                  class = "mlmfit_error_variable", what = NULL, env = environment(formula)) {
  # all.vars() reads a superset of these variables, in C: when all of them
  # are in data (the usual case) none is missing.
  if (all(all.vars(formula) %in% names(data))) return(invisible())
  vars <- setdiff(expression_vars(formula[[length(formula)]]), extra_names)
  if (length(formula) == 3L) vars <- union(expression_vars(formula[[2L]]), vars)
  missing <- vars[!vapply(vars, function(v) v %in% names(data) || exists(v, envir = env), logical(1))]
  if (length(missing) > 0L) {
    near <- unique(unlist(lapply(missing, close_names, available = names(data))))
    where <- if (is.null(what)) "" else paste0(" (used in {.arg ", what, "})")
    mlm_abort(c(paste0("{cli::qty(length(missing))}Variable{?s} {.var {missing}} {cli::qty(length(missing))}{?is/are} not in {.arg data}", where, "."),
                i = if (length(near) > 0L) "Did you mean {.var {near}}?" else "Check the spelling against {.code names(data)}."),
              class, variables = missing)
  }
}

# Rows of the data behind positions of the model frame: the frame keeps the
# data's row names (integers for automatic ones) through subset and NA removal.
frame_rows <- function(mf, idx) {
  rn <- attr(mf, "row.names")
  if (is.numeric(rn)) as.integer(rn[idx]) else rn[idx]
}

rows_text <- function(rows) {
  shown <- utils::head(rows, 5L)
  paste0(paste(shown, collapse = ", "), if (length(rows) > 5L) paste0(" and ", length(rows) - 5L, " more"))
}

shown_column_name <- function(nm) {
  if (nm == "(weights)") "weights" else if (nm == "(offset)") "offset" else nm
}

# Row positions (in the frame) of the TRUE entries of `bad`, for column v
# (a matrix column has several entries per row).
bad_rows <- function(v, bad) {
  idx <- which(bad)
  if (is.matrix(v)) idx <- unique((idx - 1L) %% nrow(v) + 1L)
  idx
}

check_finite_columns <- function(mf) {
  for (nm in names(mf)) {
    v <- .subset2(mf, nm)
    if (!is.numeric(v)) next
    # sum() is finite exactly when no value is infinite or NaN (unless it
    # overflows, which the exact check below then settles): no allocation.
    if (is.finite(sum(v))) next
    bad <- bad_rows(v, is.infinite(v))
    if (length(bad) > 0L) {
      shown_name <- shown_column_name(nm)
      rows <- frame_rows(mf, bad)
      mlm_abort(c("{.var {shown_name}} has infinite values ({.code Inf} or {.code -Inf}) in {cli::qty(length(rows))}row{?s} {rows_text(rows)} of {.arg data}.",
                  i = "Correct or remove those rows, for example with {.arg subset}."),
                "mlmfit_error_nonfinite", variable = shown_name, rows = rows)
    }
  }
}

# NaN is the result of an undefined computation (0/0, log(-1)), not a
# missing value: refuse it rather than let na.omit drop the row silently.
check_nan_columns <- function(mf, columns) {
  for (nm in columns) {
    v <- .subset2(mf, nm)
    if (!is.double(v)) next
    bad <- bad_rows(v, is.nan(v))
    if (length(bad) > 0L) {
      shown_name <- shown_column_name(nm)
      rows <- frame_rows(mf, bad)
      mlm_abort(c("{.var {shown_name}} is {.code NaN} (not a number) in {cli::qty(length(rows))}row{?s} {rows_text(rows)} of {.arg data}.",
                  i = "{.code NaN} comes from an undefined computation such as {.code 0/0} or {.code log(-1)}: correct those values, or set them to {.code NA} to drop the rows."),
                "mlmfit_error_nonfinite", variable = shown_name, rows = rows)
    }
  }
}

# After na.action: any value still missing (na.pass, or a custom na.action)
# would reach the engine as a number or a level that does not exist.
check_no_missing <- function(mf) {
  for (nm in names(mf)) {
    v <- .subset2(mf, nm)
    if (!anyNA(v)) next
    shown_name <- shown_column_name(nm)
    rows <- frame_rows(mf, bad_rows(v, is.na(v)))
    mlm_abort(c("{.var {shown_name}} has missing values in {cli::qty(length(rows))}row{?s} {rows_text(rows)} of {.arg data}, and {.arg na.action} kept them.",
                i = "Use {.code na.action = na.omit} to drop incomplete rows, or remove them with {.arg subset}."),
              "mlmfit_error_missing", variable = shown_name, rows = rows)
  }
}

# Columns of X that are linear combinations of earlier columns, found by
# the pivoted QR that lm() and lme4 use. A cheap check on X'X comes first so
# that a full-rank X (the usual case) is never copied.
aliased_columns <- function(X) {
  p <- ncol(X)
  if (p == 0L) return(integer())
  xtx <- crossprod(X)
  d <- sqrt(xtx[seq.int(1L, by = p + 1L, length.out = p)])
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
  if (is.character(na.action) && length(na.action) == 1L) {
    na.action <- tryCatch(get(na.action, mode = "function"), error = function(e) NULL)
  }
  if (!is.function(na.action)) {
    mlm_abort(c("{.arg na.action} must be a function such as {.fn na.omit}, or its name.",
                i = "Use {.fn na.omit} (the default), {.fn na.exclude} or {.fn na.fail}."),
              "mlmfit_error_argument")
  }
  has_na <- vapply(mf, anyNA, logical(1), recursive = TRUE)
  if (!any(has_na)) return(mf)
  check_nan_columns(mf, names(mf)[has_na])
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

# The data of the call (evaluated once): a data frame, or the formula's
# environment when the call has no `data`. `data`: their value when the
# caller has evaluated them already (lmm() and glmm(), to tell a database
# table); NULL: evaluated here.
model_data <- function(mc, caller_env, formula, data = NULL) {
  if (is.null(mc$data)) return(environment(formula))
  data <- as_model_data(if (is.null(data)) eval(mc$data, caller_env) else data)
  if (nrow(data) == 0L) {
    mlm_abort("{.arg data} has no rows.", "mlmfit_error_empty")
  }
  data
}

# `.` in the fixed part of a formula: every column of the data but the
# response and the grouping variables of the random-effect terms (whose
# levels the random effects describe), written out, so that the spec's
# formula names each variable.
expand_formula_dot <- function(formula, data) {
  rhs <- formula[[3L]]
  if (!("." %in% all.names(rhs))) return(formula)
  fixed <- drop_bars(rhs)
  if (is.null(fixed) || !("." %in% all.names(fixed))) return(formula)
  if (is.environment(data)) {
    mlm_abort(c("The formula has {.code .} (all other variables) but no {.arg data}.",
                i = "Pass the data frame as {.arg data}, or name the predictors."),
              "mlmfit_error_formula")
  }
  grouping <- unique(unlist(lapply(find_bars(rhs), function(b) all.vars(b[[3L]]))))
  vars <- setdiff(names(data), c(all.vars(formula[[2L]]), grouping))
  sum_of_vars <- if (length(vars)) Reduce(function(a, b) call("+", a, b), lapply(vars, as.name)) else 1
  stats::as.formula(call("~", formula[[2L]], replace_dot(rhs, sum_of_vars, TRUE)), env = environment(formula))
}

# `.` replaced by `value` outside random-effect terms; in parentheses
# unless it is a summand.
replace_dot <- function(x, value, in_sum) {
  if (identical(x, as.name("."))) return(if (in_sum) value else call("(", value))
  if (!is.call(x) || is_bar(strip_parens(x))) return(x)
  sum <- identical(x[[1L]], as.name("+")) || (identical(x[[1L]], as.name("-")) && length(x) == 3L)
  for (i in seq_along(x)[-1L]) x[[i]] <- replace_dot(x[[i]], value, sum && (i == 2L || identical(x[[1L]], as.name("+"))))
  x
}

# A call such as varIdent(form = ~ 1 | g) or nlme::varPower(): nlme's
# `weights = ` habit, which mlmfit spells `variance = `.
is_variance_function_call <- function(x) {
  if (!is.call(x)) return(FALSE)
  f <- x[[1L]]
  if (is.call(f) && identical(f[[1L]], as.name("::"))) f <- f[[3L]]
  is.name(f) && grepl("^var(Ident|Power|Exp|ConstPower|Fixed|Comb)$", as.character(f))
}

# Build the model frame with the caller's data (model_data()), subset,
# weights, offset and na.action, then the checked ingredients of the fixed
# part. `response`: "numeric" (lmm(): refuse any other) or "any" (glmm()).
lmm_model_frame <- function(mc, parsed, data, caller_env, na.action, response = "numeric") {
  data_names <- if (is.environment(data)) list() else data
  check_variables_exist(parsed$frame, data_names)
  for (arg in c("weights", "offset")) {
    if (!is.null(mc[[arg]])) {
      # model.frame() looks for them in data, then in the formula's environment.
      check_variables_exist(call("~", mc[[arg]]), data_names, class = paste0("mlmfit_error_", arg), what = arg,
                            env = environment(parsed$frame))
    }
  }

  # a plain frame has rows (the data have) and no integer64 columns
  mf <- plain_model_frame(mc, parsed$frame, data)
  if (is.null(mf)) {
    mf <- stats_model_frame(mc, parsed$frame, data, caller_env)
    if (nrow(mf) == 0L) {
      mlm_abort(c("No observations are left after {.arg subset}.", i = "Check the condition given as {.arg subset}."),
                "mlmfit_error_empty")
    }
    mf <- convert_integer64(mf)
  }
  mf <- apply_na_action(mf, na.action)
  if (nrow(mf) == 0L) {
    mlm_abort(c("No observations remain after the removal of rows with missing values.",
                i = "Check which variables are missing with {.code colSums(is.na(data))}."),
              "mlmfit_error_empty")
  }
  check_no_missing(mf)
  check_finite_columns(mf)

  # The response column itself (model.response() would copy it to name it).
  y <- .subset2(mf, 1L)
  if (response == "numeric" && (!is.numeric(y) || !is.null(dim(y)))) {
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
    if (!is.numeric(y)) {
      mlm_abort(c("The response {.var {yname}} is {.cls {class(y)[1]}}: {.fn lmm} models a numeric response.",
                  i = "Convert it with {.fn as.numeric} if its values are meaningful numbers."),
                "mlmfit_error_response", variable = yname)
    }
  }
  if (response == "numeric" && (!is.double(y) || !is.null(attributes(y)))) y <- as.double(y)

  weights <- stats::model.weights(mf)
  if (!is.null(weights)) {
    if (!is.numeric(weights) || !is.null(dim(weights))) {
      mlm_abort("{.arg weights} must be a numeric vector.", "mlmfit_error_weights")
    }
    bad <- which(weights <= 0)
    if (length(bad) > 0L) {
      rows <- frame_rows(mf, bad)
      what <- if (any(weights[bad] < 0)) "negative" else "zero"
      mlm_abort(c("{.arg weights} must be positive; {cli::qty(length(rows))}row{?s} {rows_text(rows)} of {.arg data} {cli::qty(length(rows))}{?has a/have} {what} {cli::qty(length(rows))}weight{?s}.",
                  i = "Drop observations with {.arg subset} rather than giving them zero weight."),
                "mlmfit_error_weights", rows = rows)
    }
    weights <- as.double(weights)
  }
  offset <- tryCatch(stats::model.offset(mf), error = function(e) {
    mlm_abort(c("{.arg offset} must be numeric.", x = conditionMessage(e)), "mlmfit_error_offset")
  })
  if (!is.null(offset)) {
    if (!is.numeric(offset) || length(offset) != nrow(mf)) {
      mlm_abort("{.arg offset} must be numeric with one value per observation.", "mlmfit_error_offset")
    }
    offset <- as.double(offset)
  }

  fixed_terms <- stats::terms(parsed$fixed, data = mf)
  X <- fixed_model_matrix(fixed_terms, mf)
  dropped <- character()
  alias <- aliased_columns(X)
  if (length(alias) > 0L) {
    dropped <- colnames(X)[alias]
    inform_dropped_columns(dropped)
    keep <- setdiff(seq_len(ncol(X)), alias)
    assign <- attr(X, "assign")[keep]
    contr <- attr(X, "contrasts")
    X <- X[, keep, drop = FALSE]
    attr(X, "assign") <- assign
    attr(X, "contrasts") <- contr
  }
  intercept_col <- match("(Intercept)", colnames(X), nomatch = 0L)
  list(frame = mf, y = y, X = X, weights = weights, offset = offset, terms = fixed_terms,
       xlevels = fixed_xlevels(fixed_terms, mf), dropped = dropped, intercept_col = intercept_col,
       data = data)
}

# The model frame by stats::model.frame() (with na.pass: apply_na_action()
# handles missing values), its errors turned into classed ones.
stats_model_frame <- function(mc, formula, data, caller_env) {
  mf_call <- mc[c(1L, match(c("subset", "weights", "offset"), names(mc), 0L))]
  mf_call[[1L]] <- quote(stats::model.frame)
  mf_call$formula <- formula
  mf_call$data <- data
  mf_call$na.action <- quote(stats::na.pass)
  mf_call$drop.unused.levels <- TRUE
  tryCatch(eval(mf_call, caller_env), error = function(e) {
    msg <- conditionMessage(e)
    for (arg in c("weights", "offset")) {
      if (grepl(paste0("(", arg, ")"), msg, fixed = TRUE)) {
        rows <- if (is.environment(data)) "" else paste0(" (", nrow(data), ")")
        hint <- if (arg == "weights" && is_variance_function_call(mc$weights)) {
          c(i = "nlme's variance functions go in {.arg variance}: {.code variance = {deparse1(mc$weights)}}.")
        }
        mlm_abort(c("{.arg {arg}} must be a numeric vector with one value per row of {.arg data}{rows}.", x = msg, hint),
                  c(paste0("mlmfit_error_", arg), "mlmfit_error_frame"))
      }
    }
    mlm_abort(c("The model frame could not be built.", x = msg,
                i = "Check the variables of the formula, {.arg subset}, {.arg weights} and {.arg offset}."),
              "mlmfit_error_frame")
  })
}

# The model frame that stats::model.frame() would build, without its cost
# (a tenth of a small fit such as sleepstudy's), in the usual case: a data frame whose columns
# are the model's variables, named plainly, of basic types (numbers, text,
# logicals, factors), and no subset, weights or offset. The frame shares the
# data's columns; unused levels of factors are dropped; its terms carry
# predvars and dataClasses as model.frame() sets them. NULL in every other
# case (model.frame() then builds it).
plain_model_frame <- function(mc, formula, data) {
  if (!is.data.frame(data) || !is.null(mc$subset) || !is.null(mc$weights) || !is.null(mc$offset)) return(NULL)
  tt <- stats::terms(formula, data = data)
  vars <- attr(tt, "variables")
  var_list <- as.list(vars)[-1L]
  if (length(var_list) == 0L || !all(vapply(var_list, is.symbol, logical(1)))) return(NULL)
  names <- as.character(var_list)
  if (!all(names %in% names(data))) return(NULL)
  cols <- .subset(data, names)
  classes <- vapply(cols, plain_column_class, "")
  if (anyNA(classes)) return(NULL)
  for (k in which(classes == "factor" | classes == "ordered")) {
    x <- cols[[k]]
    if (any(tabulate(x, nlevels(x)) == 0L)) cols[[k]] <- x[, drop = TRUE]
  }
  attr(tt, "predvars") <- vars
  attr(tt, "dataClasses") <- stats::setNames(classes, names)
  attributes(cols) <- list(names = names, row.names = .row_names_info(data, 0L), class = "data.frame", terms = tt)
  cols
}

# The class model.frame() records for a column of a plain frame
# (stats::.MFclass()): NA for a column that is not plain (a classed object
# other than a factor without contrasts, a matrix, a list).
plain_column_class <- function(x) {
  if (is.factor(x)) {
    if (!is.null(attr(x, "contrasts"))) return(NA_character_)
    return(if (is.ordered(x)) "ordered" else "factor")
  }
  if (is.object(x) || !is.null(dim(x))) return(NA_character_)
  switch(typeof(x), double = , integer = "numeric", character = "character", logical = "logical", NA_character_)
}

# The levels of the factor (and text) predictors of the fixed part, named by
# variable: what stats::.getXlevels() gives (predict() and emmeans read
# them), without its deparse() of every variable and copy of the frame.
fixed_xlevels <- function(terms, mf) {
  vars <- as.list(attr(terms, "variables"))[-1L]
  response <- attr(terms, "response")
  if (response > 0L) vars <- vars[-response]
  if (length(vars) == 0L) return(NULL)
  names <- vapply(vars, frame_name, "")
  xlev <- lapply(.subset(mf, names), function(x) {
    if (is.factor(x)) levels(x) else if (is.character(x)) levels(as.factor(x))
  })
  xlev[!vapply(xlev, is.null, logical(1))]
}

# The name of a variable (an expression of a formula) in a model frame, as
# model.frame() writes it.
frame_name <- function(expr) {
  if (is.symbol(expr)) return(as.character(expr))
  paste(deparse(expr, width.cutoff = 500L, backtick = is.language(expr)), collapse = " ")
}

inform_dropped_columns <- function(dropped) {
  mlm_inform(c("The fixed-effect model matrix is rank deficient: dropping {length(dropped)} column{?s} that {?is a/are} linear combination{?s} of the others.",
               i = "Dropped: {.var {dropped}}."),
             "mlmfit_message_rank")
}

# The columns of the model frame that the terms read, in their order, as a
# model frame: model.matrix() of it is that of the whole frame, without its
# reordering copy of the frame.
frame_of_terms <- function(terms, mf) {
  names <- vapply(as.list(attr(terms, "variables"))[-1L], frame_name, "")
  if (length(names) == 0L || identical(names, names(mf)) || !all(names %in% names(mf))) return(mf)
  out <- .subset(mf, names)
  attributes(out) <- list(names = names, row.names = .row_names_info(mf, 0L), class = "data.frame",
                          terms = attr(mf, "terms"))
  out
}

# The matrix stats::model.matrix() builds when every predictor is a numeric
# column of the frame (no factor, no function of a variable, no offset):
# the intercept and one column per term, the product of its variables,
# filled into one allocation. NULL otherwise (model.matrix() builds it).
numeric_model_matrix <- function(terms, mf) {
  labels <- attr(terms, "term.labels")
  if (length(labels) == 0L || !is.null(attr(terms, "offset"))) return(NULL)
  factors <- attr(terms, "factors")
  if (any(factors > 1L)) return(NULL)
  used <- rownames(factors)[rowSums(factors) > 0L]
  if (!all(used %in% names(mf))) return(NULL)
  numeric <- vapply(.subset(mf, used), function(x) {
    !is.object(x) && is.null(dim(x)) && (is.double(x) || is.integer(x))
  }, logical(1))
  if (!all(numeric)) return(NULL)
  intercept <- attr(terms, "intercept") == 1L
  n <- .row_names_info(mf, 2L)
  X <- matrix(1, n, length(labels) + intercept)
  for (j in seq_along(labels)) {
    in_term <- rownames(factors)[factors[, j] > 0L]
    column <- .subset2(mf, in_term[1L])
    for (v in in_term[-1L]) column <- column * .subset2(mf, v)
    X[, j + intercept] <- column
  }
  names <- vapply(seq_along(labels), function(j) paste(rownames(factors)[factors[, j] > 0L], collapse = ":"), "")
  dimnames(X) <- list(row.names(mf), c(if (intercept) "(Intercept)", names))
  attr(X, "assign") <- c(if (intercept) 0L, seq_along(labels))
  X
}

# model.matrix() with its refusals turned into classed errors: a factor
# predictor needs two levels among the rows used.
fixed_model_matrix <- function(terms, mf) {
  X <- numeric_model_matrix(terms, mf) %||% tryCatch(stats::model.matrix(terms, frame_of_terms(terms, mf)), error = function(e) {
    vars <- intersect(all.vars(stats::delete.response(terms)), names(mf))
    one_level <- vars[vapply(vars, function(v) {
      x <- mf[[v]]
      (is.factor(x) || is.character(x) || is.logical(x)) && length(unique(x)) < 2L
    }, logical(1))]
    if (length(one_level) > 0L) {
      mlm_abort(c("The factor {.var {one_level}} has a single level in the rows used: it cannot be a predictor.",
                  i = "Remove it from the formula, or check {.arg subset} and the rows dropped for missing values."),
                "mlmfit_error_variable", variables = one_level)
    }
    mlm_abort(c("The fixed-effect model matrix could not be built.", x = conditionMessage(e)), "mlmfit_error_frame")
  })
  if (!is.finite(sum(X))) {
    col <- which(!is.finite(colSums(X)))[1L]
    rows <- frame_rows(mf, which(!is.finite(X[, col])))
    nm <- colnames(X)[col]
    mlm_abort(c("The model matrix column {.var {nm}} has values that are not finite in {cli::qty(length(rows))}row{?s} {rows_text(rows)} of {.arg data}.",
                i = "A product or transformation of the predictors overflowed: rescale them."),
              "mlmfit_error_nonfinite", variable = nm, rows = rows)
  }
  X
}

# A response that the random effects reproduce exactly leaves no residual
# variance: the likelihood grows without bound as sigma goes to zero, and
# no estimate exists. Two cases can be recognised before fitting: a
# constant response (with an intercept), and a response constant within
# every level of a factor with a random intercept.
check_response_varies <- function(spec) {
  offset <- spec_offset(spec)
  y <- spec_y(spec)
  r <- if (is.null(offset)) y else y - offset
  yname <- spec_response_name(spec)
  if (!is.null(offset)) yname <- paste(yname, "- offset")
  rng <- range(r)
  if (rng[1L] == rng[2L] && spec_intercept_col(spec) > 0L) refuse_constant_response(yname, r[1L])
  z <- spec_rows(spec)$z
  for (b in names(re_blocks(spec))) {
    if (!any(vapply(z[[b]], is.null, logical(1)))) next
    if (constant_within(r, block_factor(spec, b))) refuse_constant_within(yname, b)
  }
  invisible()
}

# The two refusals, wherever the response was found constant (in memory,
# or from a database's sums).
refuse_constant_response <- function(yname, value) {
  mlm_abort(c("The response {.var {yname}} has the same value ({signif(value, 6)}) in every row used: there is nothing to model.",
              i = "Check that the formula's response is the intended variable."),
            "mlmfit_error_response", variable = yname)
}

refuse_constant_within <- function(yname, b) {
  mlm_abort(c("The response {.var {yname}} is constant within every level of {.var {b}}.",
              x = "The random intercept for {.var {b}} reproduces it exactly: the residual variance is zero and the likelihood has no maximum.",
              i = "It is a property of {.var {b}}: analyse one row per level of {.var {b}} (for example with {.fn lm}), or check that the response is the intended variable."),
            "mlmfit_error_response", variable = yname, group = b)
}

# Is r the same within every level of the factor g? The first rows settle
# the usual case (some group varies) without a pass over all the data.
constant_within <- function(r, g) {
  codes <- as.integer(g)
  head_rows <- seq_len(min(length(r), 2000L))
  h <- codes[head_rows]
  if (any(r[head_rows] != r[head_rows][match(h, h)])) return(FALSE)
  first <- r[match(seq_len(nlevels(g)), codes)]
  all(r == first[codes])
}

# Is the residual sum of squares at the optimum zero to the precision of
# the cross-products (the fixed and random effects reproduce the response)?
# Then sigma is zero, the likelihood unbounded and the estimates arbitrary.
residual_vanishes <- function(engine) {
  xx <- engine$xp$XX
  if (is.null(xx)) return(FALSE)
  yy <- xx[nrow(xx), ncol(xx)]
  is.finite(engine$pwrss) && yy > 0 && engine$pwrss <= 1e-12 * yy
}

# Why the deviance could not be evaluated, for the error message.
explain_failed_fit <- function(spec) {
  generic <- "Check that the response varies within groups beyond what the random effects describe, and look for predictors with extreme values."
  if (is.null(as_spec(spec)$rows)) return(generic)
  offset <- spec_offset(spec)
  y <- spec_y(spec)
  r <- if (is.null(offset)) y else y - offset
  X <- spec_X(spec)
  if (ncol(X) > 0L) {
    res <- qr.resid(qr(X), r)
    if (max(abs(res)) <= 1e-10 * max(abs(r), 1e-300)) {
      return("The response is an exact linear function of the fixed effects: the residuals are zero.")
    }
  }
  generic
}
