# What a database fit says about rows, written as SQL and returned as lazy
# tables: the linear predictor (fixed part, random effects joined from a
# temporary table of the conditional modes, offset), fitted values,
# residuals and predictions for another table of the same connection.
# Nothing is read until the user collects the table.

# The source of a fit's rows, or of newdata: its SQL and the SQL of every
# variable of the model over its columns (aliases mlm_v<i> as in the fit).
db_row_source <- function(fit, newdata = NULL) {
  spec <- fit$db$spec
  if (is.null(newdata)) {
    # na.exclude keeps the incomplete rows, with NULL values (as NA)
    exclude <- identical(spec$na_action, "na.exclude")
    return(list(spec = spec, where = c(spec$subset_sql, if (!exclude) spec$complete_sql),
                complete_sql = if (exclude) spec$complete_sql, fit_rows = TRUE))
  }
  con <- dbplyr::remote_con(newdata)
  if (!identical(con, fit$db$con)) {
    mlm_abort(c("{.arg newdata} must be a table of the connection the model was fitted on.",
                i = "Copy it there, e.g. with {.fn dplyr::copy_to}, or collect it and pass a data frame."),
              "mlmfit_error_newdata")
  }
  columns <- db_table_columns(newdata, con)
  new <- spec
  new$source_sql <- as.character(dbplyr::sql_render(newdata))
  new$columns <- columns[c("names", "sql", "key_sql")]
  # the variables a prediction reads (not the response, weights or offset argument)
  needed <- setdiff(names(spec$vars), spec$response$name)
  new$vars <- lapply(spec$vars[needed], function(v) {
    nv <- db_variable(v$expr, columns, spec$formula_env, con, v$role)
    v$sql <- nv$sql
    v$key_sql <- nv$key_sql
    v
  })
  new$weights_sql <- NULL
  new$offset_sql <- {
    offs <- Filter(function(v) is.call(v$expr) && identical(v$expr[[1L]], as.name("offset")), new$vars)
    if (length(offs)) paste0("(", paste(vapply(offs, `[[`, "", "sql"), collapse = " + "), ")")
  }
  list(spec = new, where = NULL, fit_rows = FALSE)
}

# A temporary table of the conditional modes of one block (its key
# columns and b1..bq), written once per fit and connection.
db_re_table <- function(fit, b, log = NULL) {
  blk <- fit$re$blocks[[b]]
  cache <- fit$db$re_tables
  if (!is.null(cache[[blk$label]]) && db_table_exists(fit$db$con, cache[[blk$label]])) return(cache[[blk$label]])
  keys <- fit$db$keys[[blk$label]]
  df <- stats::setNames(as.data.frame(keys, stringsAsFactors = FALSE), paste0("mlm_k", seq_along(keys)))
  vals <- t(fit$b[[b]])
  for (a in seq_len(ncol(vals))) df[[paste0("mlm_b", a)]] <- unname(vals[, a])
  # during a fit the fit's log records the table (removed at its end);
  # afterwards it lasts with the connection, for the lazy tables that join it
  if (is.null(log)) log <- db_new_log(fit$db$con, progress = FALSE)
  name <- db_temp_table(log, df, "ranef", key = paste0("mlm_k", seq_along(keys)))
  cache[[blk$label]] <- name
  name
}

# SQL of the rows with the linear predictor (and what residuals need):
# SELECT the source's columns, then `.eta` (offset + X beta + Z b) over the
# frame, with a LEFT JOIN of the random effects of the blocks used.
db_eta_query <- function(fit, source, terms_used, new_levels_zero = FALSE, extra = character(), log = NULL) {
  spec <- source$spec
  con <- fit$db$con
  alias <- db_aliases(fit$db$spec)[names(spec$vars)]
  with_sql <- !vapply(spec$vars, function(v) is.null(v$sql), NA)
  frame_select <- c(paste0(db_ident(con, "mlm_source"), ".*"),
                    paste(vapply(spec$vars[with_sql], `[[`, "", "sql"), "AS", alias[with_sql]))
  if (!is.null(spec$offset_sql)) frame_select <- c(frame_select, paste(spec$offset_sql, "AS", db_ident(con, "mlm_o")))
  if (!is.null(spec$weights_sql)) frame_select <- c(frame_select, paste(spec$weights_sql, "AS", db_ident(con, "mlm_w")))
  frame <- paste0("SELECT ", paste(frame_select, collapse = ", "), " FROM (", spec$source_sql, ") ",
                  db_ident(con, "mlm_source"),
                  if (length(source$where)) paste0(" WHERE (", paste(source$where, collapse = ") AND ("), ")"))
  beta <- fit$beta
  x_sql <- fit$db$spec$X$sql[names(beta)]
  parts <- ifelse(x_sql == "1.0", db_number(beta), paste0(db_number(beta), " * ", x_sql))
  joins <- character()
  blocks_used <- unique(vapply(fit$re$terms[terms_used], `[[`, 0, "block"))
  for (b in blocks_used) {
    blk <- fit$re$blocks[[b]]
    tab <- db_ident(con, paste0("mlm_re", b))
    keys <- alias[blk$keys]
    on <- paste0(keys, " = ", tab, ".", db_ident(con, paste0("mlm_k", seq_along(keys))), collapse = " AND ")
    joins <- c(joins, paste0(" LEFT JOIN ", db_ident(con, db_re_table(fit, b, log)), " ", tab, " ON ", on))
    cols <- unlist(lapply(fit$re$terms[terms_used][vapply(fit$re$terms[terms_used], `[[`, 0, "block") == b],
                          `[[`, "block_cols"))
    for (a in cols) {
      bval <- paste0(tab, ".", db_ident(con, paste0("mlm_b", a)))
      if (new_levels_zero) bval <- paste0("COALESCE(", bval, ", 0.0)")
      parts <- c(parts, if (blk$z_sql[a] == "1.0") bval else paste0(bval, " * ", blk$z_sql[a]))
    }
  }
  if (!is.null(spec$offset_sql)) parts <- c(parts, db_ident(con, "mlm_o"))
  n_fixed <- length(x_sql)
  fixed <- paste(c(parts[seq_len(n_fixed)], if (!is.null(spec$offset_sql)) db_ident(con, "mlm_o"), "0.0"), collapse = " + ")
  eta <- paste(parts, collapse = " + ")
  if (!is.null(source$complete_sql)) eta <- paste0("CASE WHEN ", source$complete_sql, " THEN ", eta, " END")
  source_cols <- db_ident(con, spec$columns$names)
  # a GLMM's response and prior weights are numbers made from the columns
  # (0/1 from a factor or logical, proportions and trials from cbind())
  y <- if ("response" %in% extra) spec$glmm_y_sql %||% alias[[spec$response$name]]
  w <- spec$glmm_pw_sql %||% if (!is.null(spec$weights_sql)) db_ident(con, "mlm_w")
  select <- c(if ("frame" %in% extra) paste0(db_ident(con, "mlm_frame"), ".*") else
                paste0(db_ident(con, "mlm_frame"), ".", source_cols),
              paste0("(", eta, ") AS ", db_ident(con, ".eta")),
              if ("frame" %in% extra) paste0("(", fixed, ") AS ", db_ident(con, ".fixed")),
              if ("response" %in% extra) paste(y, "AS", db_ident(con, "mlm_y")),
              if ("weights" %in% extra && !is.null(w)) paste(w, "AS", db_ident(con, "mlm_pw")))
  paste0("SELECT ", paste(select, collapse = ", "), " FROM (", frame, ") ", db_ident(con, "mlm_frame"),
         paste(joins, collapse = ""))
}

db_lazy <- function(fit, sql) dplyr::tbl(fit$db$con, dplyr::sql(sql))

# The table's columns with one computed column, from the query with .eta.
db_with_column <- function(fit, eta_sql, name, expr_of_eta, source_names) {
  con <- fit$db$con
  inner <- db_ident(con, "mlm_eta")
  cols <- paste0(inner, ".", db_ident(con, source_names))
  sql <- paste0("SELECT ", paste(c(cols, paste(expr_of_eta, "AS", db_ident(con, name))), collapse = ", "),
                " FROM (", eta_sql, ") ", inner)
  db_lazy(fit, sql)
}

# The inverse link of a GLMM in SQL (identity for a linear mixed model).
db_inverse_link <- function(fit, eta) {
  if (!inherits(fit, "mlmfit_glmm")) return(eta)
  switch(fit$family$link,
         logit = paste0("1.0 / (1.0 + EXP(-(", eta, ")))"),
         log = paste0("EXP(", eta, ")"),
         identity = eta,
         mlm_abort("Predictions on the response scale in the database are available for the logit, log and identity links.",
                   "mlmfit_error_database_rows"))
}
