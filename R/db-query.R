# Sending SQL: every query of a fit goes through db_query(), which shows
# progress (cli), records the SQL and its time in the fit's log (for
# show_query() and explain()), turns a refusal or a lost connection into a
# classed error, and reads large results in chunks with a cap on their
# size. Temporary tables made during a fit are recorded in the log and
# removed when the fit ends, whether it succeeds or fails.

db_new_log <- function(con, progress = getOption("mlmfit.db_progress", interactive())) {
  log <- new.env(parent = emptyenv())
  log$con <- con
  log$progress <- isTRUE(progress)
  log$queries <- list()
  log$temp_tables <- character()
  log$started <- proc.time()[["elapsed"]]
  log
}

# The queries sent so far, as a data frame (what, sql, seconds, rows).
db_log_table <- function(log) {
  q <- log$queries
  data.frame(what = vapply(q, `[[`, "", "what"), sql = vapply(q, `[[`, "", "sql"),
             seconds = vapply(q, `[[`, 0, "seconds"), rows = vapply(q, `[[`, 0, "rows"), stringsAsFactors = FALSE)
}

# Run one query and return its result as a data frame. With max_rows, a
# result longer than that is not read: the function returns NULL and the
# caller says why (e.g. a pair block as large as the data).
db_query <- function(log, sql, what, max_rows = Inf) {
  hook <- getOption("mlmfit.db_before_query")  # test seam: lose the connection mid-fit
  if (is.function(hook)) hook(log, what)
  if (log$progress) cli::cli_progress_step("Database: {what}", spinner = TRUE, .envir = environment())
  t0 <- proc.time()[["elapsed"]]
  res <- tryCatch(db_fetch(log$con, sql, max_rows), error = function(e) db_error(e, what, log$con))
  seconds <- proc.time()[["elapsed"]] - t0
  log$queries[[length(log$queries) + 1L]] <- list(what = what, sql = sql, seconds = seconds,
                                                  rows = if (is.null(res)) NA_real_ else nrow(res))
  if (log$progress) cli::cli_progress_done()
  res
}

db_fetch <- function(con, sql, max_rows) {
  if (!is.finite(max_rows)) return(DBI::dbGetQuery(con, sql))
  rs <- DBI::dbSendQuery(con, sql)
  on.exit(DBI::dbClearResult(rs))
  out <- DBI::dbFetch(rs, n = max_rows + 1)
  if (nrow(out) > max_rows) return(NULL)
  out
}

# Statements that change the database (temporary tables).
db_execute <- function(log, sql, what, shown = sql) {
  hook <- getOption("mlmfit.db_before_query")
  if (is.function(hook)) hook(log, what)
  t0 <- proc.time()[["elapsed"]]
  tryCatch(DBI::dbExecute(log$con, sql), error = function(e) db_error(e, what, log$con))
  log$queries[[length(log$queries) + 1L]] <- list(what = what, sql = shown, seconds = proc.time()[["elapsed"]] - t0,
                                                  rows = NA_real_)
  invisible()
}

# Does a table (temporary ones included) exist on the connection?
db_table_exists <- function(con, name) {
  isTRUE(tryCatch({
    DBI::dbGetQuery(con, paste("SELECT 1 FROM", db_ident(con, name), "WHERE 1 = 0"))
    TRUE
  }, error = function(e) FALSE))
}

db_error <- function(e, what, con = NULL) {
  if (inherits(e, "mlmfit_error")) stop(e)
  lost <- !is.null(con) && !db_is_valid(con)
  if (lost) {
    mlm_abort(c("The connection to the database was lost while {what}.", x = conditionMessage(e),
                i = "Nothing was written to the database; reconnect and fit again."),
              c("mlmfit_error_database_connection", "mlmfit_error_database"), parent = e)
  }
  mlm_abort(c("The database could not run the query for {what}.", x = conditionMessage(e),
              i = "See the SQL with {.code options(mlmfit.db_progress = TRUE)} and {.fn dplyr::show_query} on the fit, or check the table and the formula."),
            "mlmfit_error_database", parent = e)
}

# A data frame as a temporary table of the connection (the random effects
# joined into per-row queries), written with our own SQL: CREATE TEMPORARY
# TABLE, then INSERTs of a few hundred rows each (not every driver's
# dbWriteTable() honours `temporary`). Recorded in the log so that
# db_drop_temp_tables() removes it.
db_temp_table <- function(log, df, stem, key = character()) {
  con <- log$con
  name <- paste0("mlmfit_", stem, "_", paste(sample(c(letters, 0:9), 10L, replace = TRUE), collapse = ""))
  types <- vapply(df, function(v) {
    if (is.numeric(v)) db_double_type(con) else if (is.logical(v)) "BOOLEAN" else "VARCHAR(1000)"
  }, "")
  log$temp_tables <- c(log$temp_tables, name)
  # a primary key on the join columns: an index, so that joining the table
  # to the rows is a lookup, not a scan of the table for every row
  pk <- if (length(key)) paste0(", PRIMARY KEY (", paste(db_ident(con, key), collapse = ", "), ")")
  db_execute(log, paste0("CREATE TEMPORARY TABLE ", db_ident(con, name), " (",
                         paste(db_ident(con, names(df)), types, collapse = ", "), pk, ")"),
             paste("making the temporary table of", stem))
  values <- do.call(paste, c(lapply(df, function(v) {
    out <- db_value(con, v)
    out[is.na(v)] <- "NULL"
    out
  }), sep = ", "))
  chunks <- split(values, ceiling(seq_along(values) / 500))
  for (ch in chunks) {
    db_execute(log, paste0("INSERT INTO ", db_ident(con, name), " VALUES (", paste(ch, collapse = "), ("), ")"),
               paste("writing the temporary table of", stem),
               shown = paste0("INSERT INTO ", db_ident(con, name), " VALUES ... (", length(ch), " rows)"))
  }
  name
}

db_drop_temp_table <- function(log, name) {
  if (!name %in% log$temp_tables) return(invisible())
  log$temp_tables <- setdiff(log$temp_tables, name)
  # a lost connection has taken its temporary tables with it
  if (db_is_valid(log$con)) try(DBI::dbExecute(log$con, paste("DROP TABLE", db_ident(log$con, name))), silent = TRUE)
  invisible()
}

db_drop_temp_tables <- function(log) {
  for (name in log$temp_tables) db_drop_temp_table(log, name)
  invisible()
}

# Grouped (or, with no keys, global) sums of many expressions over `from`:
# split into queries of at most `chunk` aggregates (databases limit the
# columns of a result) and joined on the keys. `aggregates` is a named
# character vector of SQL aggregate expressions; keys a named character
# vector of key expressions. max_rows: see db_query().
db_grouped_sums <- function(log, from, keys, aggregates, what, max_rows = Inf) {
  # the same sum asked for under several names (e.g. the count as an entry
  # of Z'WZ and of X'WX) is computed once
  all_names <- names(aggregates)
  first <- match(aggregates, aggregates)
  aggregates <- aggregates[!duplicated(aggregates)]
  statements <- db_sums_sql(log$con, from, keys, aggregates)
  out <- NULL
  for (k in seq_along(statements)) {
    agg <- aggregates[attr(statements, "pieces")[[k]]]
    label <- if (length(statements) > 1L) paste0(what, " (part ", k, " of ", length(statements), ")") else what
    res <- db_query(log, statements[[k]], label, max_rows)
    if (is.null(res)) return(NULL)
    for (j in names(agg)) res[[j]] <- as.double(res[[j]])
    if (is.null(out)) {
      out <- res
    } else {
      idx <- match(db_key_strings(out[names(keys)]), db_key_strings(res[names(keys)]))
      out[names(agg)] <- lapply(names(agg), function(j) res[[j]][idx])
    }
  }
  dup <- which(first != seq_along(first))
  for (i in dup) out[[all_names[i]]] <- out[[all_names[first[i]]]]
  out
}

# One string per row of a data frame of key values (for matching rows).
db_key_strings <- function(keys) {
  if (length(keys) == 0L) return(rep("", max(1L, nrow(keys))))
  do.call(paste, c(lapply(keys, function(v) if (is.double(v)) sprintf("%.17g", v) else as.character(v)), sep = "\r"))
}

# The SQL of db_grouped_sums(): one SELECT per chunk of aggregates.
db_sums_sql <- function(con, from, keys, aggregates, chunk = getOption("mlmfit.db_max_columns", 400L)) {
  pieces <- split(seq_along(aggregates), ceiling(seq_along(aggregates) / chunk))
  out <- vapply(pieces, function(idx) {
    agg <- aggregates[idx]
    select <- c(if (length(keys)) paste(keys, "AS", db_ident(con, names(keys))),
                paste(agg, "AS", db_ident(con, names(agg))))
    paste0("SELECT ", paste(select, collapse = ", "), "\nFROM (", from, db_fence(con), ") ", db_ident(con, "mlm_design"),
           if (length(keys)) paste0("\nGROUP BY ", paste(keys, collapse = ", ")))
  }, "")
  attr(out, "pieces") <- unname(pieces)
  out
}

# Is the connection usable? (Some drivers, e.g. RPostgreSQL, have no
# dbIsValid() method: then a trivial query answers.)
db_is_valid <- function(con) {
  valid <- tryCatch(DBI::dbIsValid(con), error = function(e) NA)
  if (!is.na(valid)) return(isTRUE(valid))
  isTRUE(tryCatch({
    DBI::dbGetQuery(con, "SELECT 1 AS one")
    TRUE
  }, error = function(e) FALSE))
}
