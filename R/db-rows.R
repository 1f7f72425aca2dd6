# What a database fit says about rows, written as SQL and returned as lazy
# tables: the linear predictor (fixed part, random effects joined from a
# temporary table of the conditional modes, offset), fitted values,
# residuals and predictions for another table of the same connection, the
# model frame and the model matrix. Nothing is read until the user collects
# the table.

#' @export
fitted.mlmfit_db <- function(object, ...) {
  source <- db_row_source(object)
  eta <- db_eta_query(object, fit_beta(object), fit_b(object), source, re_selection(object, NULL))
  db_with_column(object, eta, ".fitted", db_inverse_link(object, db_ident(spec_db(object)$con, ".eta")),
                 source$db$columns$names)
}

#' @export
residuals.mlmfit_db <- function(object, type = NULL, scaled = FALSE, ...) {
  glmm <- inherits(object, "mlmfit_glmm")
  type <- type %||% (if (glmm) "deviance" else "response")
  con <- spec_db(object)$con
  source <- db_row_source(object)
  eta_sql <- db_eta_query(object, fit_beta(object), fit_b(object), source, re_selection(object, NULL),
                          extra = c("response", "weights"))
  y <- db_ident(con, "mlm_y")
  w <- if (!is.null(source$db$weights_sql) || !is.null(source$db$glmm_pw_sql)) db_ident(con, "mlm_pw")
  r <- db_residual_sql(object, type, y, db_ident(con, ".eta"), w)
  if (scaled && !glmm) r <- paste0("(", r, ") / ", db_number(fit_sigma(object)))
  db_with_column(object, eta_sql, ".resid", r, source$db$columns$names)
}

# Residuals of each type in SQL (lmm: response, pearson; glmm: also
# working and deviance for the binomial and Poisson families).
db_residual_sql <- function(fit, type, y, eta, w) {
  mu <- db_inverse_link(fit, eta)
  sw <- if (is.null(w)) "" else paste0(" * SQRT(", w, ")")
  if (!inherits(fit, "mlmfit_glmm")) {
    type <- match.arg(type, c("response", "pearson", "working", "deviance"))
    r <- paste0(y, " - ", eta)
    return(if (type %in% c("pearson", "deviance")) paste0("(", r, ")", sw) else r)
  }
  type <- match.arg(type, c("deviance", "pearson", "working", "response"))
  fam <- spec_family(fit)
  ln <- db_log_sql(spec_db(fit)$con)
  switch(type,
    response = paste0(y, " - ", mu),
    working = if (fam$link == "log") paste0("(", y, " - ", mu, ") / ", mu) else
      paste0("(", y, " - ", mu, ") / (", mu, " * (1.0 - ", mu, "))"),
    pearson = if (fam$dist == "poisson") paste0("(", y, " - ", mu, ") / SQRT(", mu, ")", sw) else
      paste0("(", y, " - ", mu, ") / SQRT(", mu, " * (1.0 - ", mu, "))", sw),
    deviance = {
      d <- if (fam$dist == "poisson") {
        paste0("2.0 * (CASE WHEN ", y, " > 0 THEN ", y, " * ", ln(paste0(y, " / ", mu)), " ELSE 0.0 END - (",
               y, " - ", mu, "))")
      } else {
        paste0("-2.0 * (", y, " * ", ln(mu), " + (1.0 - ", y, ") * ", ln(paste0("1.0 - ", mu)), ")")
      }
      if (!is.null(w)) d <- paste0(w, " * ", d)
      paste0("CASE WHEN ", y, " > ", mu, " THEN SQRT(", d, ") ELSE -SQRT(", d, ") END")
    })
}

#' @export
predict.mlmfit_db <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                              type = c("link", "response"), se.fit = FALSE, ...) {
  type <- match.arg(type)
  if (!is.null(newdata) && !inherits(newdata, "tbl_sql")) {
    # an in-memory data frame: the in-memory method, vectors as usual
    return(NextMethod())
  }
  if (se.fit) {
    mlm_abort(c("{.arg se.fit} is not available for predictions computed in the database.",
                i = "Collect the rows and call {.fn predict} with a data frame as {.arg newdata}."),
              c("mlmfit_error_database_rows", "mlmfit_error_no_rows"))
  }
  selection <- re_selection(object, re.form)
  source <- db_row_source(object, newdata)
  if (!is.null(newdata) && length(selection) && !allow.new.levels) db_check_new_levels(object, source, selection)
  eta <- db_eta_query(object, fit_beta(object), fit_b(object), source, selection, new_levels_zero = !is.null(newdata))
  value <- db_ident(spec_db(object)$con, ".eta")
  if (type == "response") value <- db_inverse_link(object, value)
  db_with_column(object, eta, ".prediction", value, source$db$columns$names)
}

#' @export
model.frame.mlmfit_db <- function(formula, ...) {
  db <- spec_db(formula)
  con <- db$con
  vars <- Filter(function(v) !is.null(v$sql), db$vars)
  select <- paste(vapply(vars, `[[`, "", "sql"), "AS", db_ident(con, names(vars)))
  db_lazy(formula, paste0("SELECT ", paste(select, collapse = ", "), " FROM (", db$source_sql, ") ",
                          db_ident(con, "mlm_source"), " WHERE (",
                          paste(c(db$subset_sql, db$complete_sql), collapse = ") AND ("), ")"))
}

#' @export
model.matrix.mlmfit_db <- function(object, ...) {
  db <- spec_db(object)
  con <- db$con
  select <- paste(db$x_sql, "AS", db_ident(con, names(db$x_sql)))
  db_lazy(object, paste0("SELECT ", paste(select, collapse = ", "), " FROM (", db_frame_sql(db), ") ",
                         db_ident(con, "mlm_frame")))
}

# Levels of newdata that the fit has not seen: an error unless
# allow.new.levels (one query over newdata).
db_check_new_levels <- function(fit, source, selection) {
  db <- spec_db(fit)
  con <- db$con
  for (b in match(names(selection), names(re_blocks(fit)))) {
    label <- re_blocks(fit)[[b]]$label
    keys <- vapply(source$db$vars[db$blocks[[b]]$keys], `[[`, "", "key_sql")
    tab <- db_ident(con, db_re_table(fit, b, fit_b(fit)[[b]], db$re_tables))
    on <- paste0(keys, " = ", tab, ".", db_ident(con, paste0("mlm_k", seq_along(keys))), collapse = " AND ")
    sql <- paste0("SELECT ", paste(keys, collapse = ", "), " FROM (", source$db$source_sql, ") ",
                  db_ident(con, "mlm_source"), " LEFT JOIN ", tab, " ON ", on, " WHERE ",
                  tab, ".", db_ident(con, "mlm_k1"), " IS NULL AND ",
                  paste(keys, "IS NOT NULL", collapse = " AND "))
    res <- db_query(db_new_log(con, progress = FALSE), sql, paste("looking for new levels of", label), max_rows = 5)
    shown <- if (is.null(res)) "more than 5" else if (nrow(res)) do.call(paste, c(lapply(res, as.character), sep = ":"))
    if (length(shown)) {
      mlm_abort(c("{.arg newdata} has levels of {.var {label}} that the fit has not seen: {.val {shown}}.",
                  i = "Use {.code allow.new.levels = TRUE} to predict those rows at the population level for this term."),
                c("mlmfit_error_new_levels", "mlmfit_error_newdata"), variable = label)
    }
  }
}

# The source of a fit's rows, or of newdata: the database part of the spec
# with the SQL of every variable of the model over its columns (aliases as
# in the fit), and the conditions on its rows.
db_row_source <- function(fit, newdata = NULL) {
  db <- spec_db(fit)
  if (is.null(newdata)) {
    # na.exclude keeps the incomplete rows, with NULL values (as NA)
    exclude <- identical(db$na_action, "na.exclude")
    return(list(db = db, where = c(db$subset_sql, if (!exclude) db$complete_sql),
                complete_sql = if (exclude) db$complete_sql))
  }
  con <- dbplyr::remote_con(newdata)
  if (!identical(con, db$con)) {
    mlm_abort(c("{.arg newdata} must be a table of the connection the model was fitted on.",
                i = "Copy it there, e.g. with {.fn dplyr::copy_to}, or collect it and pass a data frame."),
              "mlmfit_error_newdata")
  }
  columns <- db_table_columns(newdata, con)
  new <- db
  new$source_sql <- as.character(dbplyr::sql_render(newdata))
  new$columns <- columns[c("names", "sql", "key_sql")]
  # the variables a prediction reads (not the response, weights or offset argument)
  needed <- setdiff(names(db$vars), db$response)
  new$vars <- lapply(db$vars[needed], function(v) {
    nv <- db_variable(v$expr, columns, db$formula_env, con, v$role)
    v$sql <- nv$sql
    v$key_sql <- nv$key_sql
    v
  })
  new$weights_sql <- NULL
  new$glmm_pw_sql <- NULL
  new$offset_sql <- {
    offs <- Filter(function(v) is.call(v$expr) && identical(v$expr[[1L]], as.name("offset")), new$vars)
    if (length(offs)) paste0("(", paste(vapply(offs, `[[`, "", "sql"), collapse = " + "), ")")
  }
  list(db = new, where = NULL)
}

# A temporary table of the conditional modes b (q x levels) of block k:
# its key columns (mlm_k1, ...) and mlm_b1..mlm_bq, with a primary key on
# the keys (a lookup per row when joined, not a scan). `cache`: an
# environment that keeps the tables made for a fit (by block and values);
# during a fit the log records the table, removed at its end; afterwards
# it lasts with the connection, for the lazy tables that join it.
db_re_table <- function(x, k, b, cache = NULL, log = NULL) {
  db <- spec_db(x)
  key <- paste(k, rlang::hash(unname(b)))
  if (!is.null(cache) && !is.null(cache[[key]]) && db_table_exists(db$con, cache[[key]])) return(cache[[key]])
  keys <- db$blocks[[k]]$key_values
  df <- stats::setNames(as.data.frame(keys, stringsAsFactors = FALSE), paste0("mlm_k", seq_along(keys)))
  vals <- t(b)
  for (a in seq_len(ncol(vals))) df[[paste0("mlm_b", a)]] <- unname(vals[, a])
  if (is.null(log)) log <- db_new_log(db$con, progress = FALSE)
  name <- db_temp_table(log, df, "ranef", key = paste0("mlm_k", seq_along(keys)))
  if (!is.null(cache)) cache[[key]] <- name
  name
}

# SQL of the rows with the linear predictor `.eta` (offset + X beta + Z b)
# at (beta, b) (and what residuals and PIRLS passes need: extra "response"
# and "weights" as mlm_y and mlm_pw, "frame" for every column of the frame
# and the fixed part `.fixed`): SELECT the source's columns over the frame,
# with a LEFT JOIN of the random effects of the blocks used. `selection`:
# the random effects to include, as re_selection() gives them.
db_eta_query <- function(x, beta, b, source, selection, new_levels_zero = FALSE, extra = character(), log = NULL,
                         cache = spec_db(x)$re_tables) {
  db <- source$db
  fit_db <- spec_db(x)
  con <- db$con
  alias <- fit_db$alias[names(db$vars)]
  with_sql <- !vapply(db$vars, function(v) is.null(v$sql), NA)
  frame_select <- c(paste0(db_ident(con, "mlm_source"), ".*"),
                    paste(vapply(db$vars[with_sql], `[[`, "", "sql"), "AS", alias[with_sql]))
  if (!is.null(db$offset_sql)) frame_select <- c(frame_select, paste(db$offset_sql, "AS", db_ident(con, "mlm_o")))
  if (!is.null(db$weights_sql)) frame_select <- c(frame_select, paste(db$weights_sql, "AS", db_ident(con, "mlm_w")))
  frame <- paste0("SELECT ", paste(frame_select, collapse = ", "), " FROM (", db$source_sql, ") ",
                  db_ident(con, "mlm_source"),
                  if (length(source$where)) paste0(" WHERE (", paste(source$where, collapse = ") AND ("), ")"))
  x_sql <- fit_db$x_sql[names(beta)]
  parts <- ifelse(x_sql == "1.0", db_number(beta), paste0(db_number(beta), " * ", x_sql))
  joins <- character()
  for (label in names(selection)) {
    k <- match(label, names(re_blocks(x)))
    blk <- fit_db$blocks[[k]]
    tab <- db_ident(con, paste0("mlm_re", k))
    keys <- alias[blk$keys]
    on <- paste0(keys, " = ", tab, ".", db_ident(con, paste0("mlm_k", seq_along(keys))), collapse = " AND ")
    joins <- c(joins, paste0(" LEFT JOIN ", db_ident(con, db_re_table(x, k, b[[k]], cache, log)), " ", tab, " ON ", on))
    for (a in selection[[label]]) {
      bval <- paste0(tab, ".", db_ident(con, paste0("mlm_b", a)))
      if (new_levels_zero) bval <- paste0("COALESCE(", bval, ", 0.0)")
      parts <- c(parts, if (blk$z_sql[a] == "1.0") bval else paste0(bval, " * ", blk$z_sql[a]))
    }
  }
  if (!is.null(db$offset_sql)) parts <- c(parts, db_ident(con, "mlm_o"))
  fixed <- paste(c(parts[seq_along(x_sql)], if (!is.null(db$offset_sql)) db_ident(con, "mlm_o"), "0.0"), collapse = " + ")
  eta <- paste(parts, collapse = " + ")
  if (!is.null(source$complete_sql)) eta <- paste0("CASE WHEN ", source$complete_sql, " THEN ", eta, " END")
  source_cols <- db_ident(con, db$columns$names)
  # a GLMM's response and prior weights are numbers made from the columns
  # (0/1 from a factor or logical, proportions and trials from cbind())
  y <- if ("response" %in% extra) db$glmm_y_sql %||% alias[[db$response]]
  w <- db$glmm_pw_sql %||% if (!is.null(db$weights_sql)) db_ident(con, "mlm_w")
  select <- c(if ("frame" %in% extra) paste0(db_ident(con, "mlm_frame"), ".*") else
                paste0(db_ident(con, "mlm_frame"), ".", source_cols),
              paste0("(", eta, ") AS ", db_ident(con, ".eta")),
              if ("frame" %in% extra) paste0("(", fixed, ") AS ", db_ident(con, ".fixed")),
              if ("response" %in% extra) paste(y, "AS", db_ident(con, "mlm_y")),
              if ("weights" %in% extra && !is.null(w)) paste(w, "AS", db_ident(con, "mlm_pw")))
  paste0("SELECT ", paste(select, collapse = ", "), " FROM (", frame, ") ", db_ident(con, "mlm_frame"),
         paste(joins, collapse = ""))
}

db_lazy <- function(fit, sql) dplyr::tbl(spec_db(fit)$con, dplyr::sql(sql))

# The table's columns with one computed column, from the query with .eta.
db_with_column <- function(fit, eta_sql, name, expr_of_eta, source_names) {
  con <- spec_db(fit)$con
  inner <- db_ident(con, "mlm_eta")
  cols <- paste0(inner, ".", db_ident(con, source_names))
  sql <- paste0("SELECT ", paste(c(cols, paste(expr_of_eta, "AS", db_ident(con, name))), collapse = ", "),
                " FROM (", eta_sql, ") ", inner)
  db_lazy(fit, sql)
}

# The inverse link of a GLMM in SQL (identity for a linear mixed model).
db_inverse_link <- function(fit, eta) {
  if (!inherits(fit, "mlmfit_glmm")) return(eta)
  switch(spec_family(fit)$link,
         logit = paste0("1.0 / (1.0 + EXP(-(", eta, ")))"),
         log = paste0("EXP(", eta, ")"),
         identity = eta,
         refuse_without_rows(fit, "Predictions on the response scale in the database for this link"))
}
