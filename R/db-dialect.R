# SQL for the database a table lives in: the name of its double type,
# numbers written so that they read back as the same double, quoted names
# and strings, and the user's expressions translated by dbplyr. Everything
# else in the db-* files writes plain ANSI SQL with these pieces, so the
# same queries run on SQLite, PostgreSQL, DuckDB and the SQL front ends of
# cluster engines (Spark SQL, Snowflake, ...).

db_require <- function() {
  missing <- c("DBI", "dbplyr", "dplyr", "rlang")[!vapply(c("DBI", "dbplyr", "dplyr", "rlang"), requireNamespace,
                                                          logical(1), quietly = TRUE)]
  if (length(missing) > 0L) {
    mlm_abort(c("Fitting a model to a database table needs the package{?s} {.pkg {missing}}.",
                i = "Install {?it/them}, e.g. {.code install.packages(c({paste0('\"', missing, '\"', collapse = ', ')}))}."),
              "mlmfit_error_database")
  }
}

# The type double-precision numbers are cast to: counts and integer columns
# become doubles before they are summed (integer sums overflow or become
# slow exact NUMERICs in some databases).
db_double_type <- function(con) {
  cls <- class(con)
  if (any(cls %in% c("SQLiteConnection"))) return("REAL")
  if (any(cls %in% c("duckdb_connection", "Hive", "Impala", "spark_connection", "Spark SQL", "Snowflake",
                     "MySQLConnection", "MariaDBConnection"))) return("DOUBLE")
  if (any(cls %in% c("BigQueryConnection"))) return("FLOAT64")
  if (any(cls %in% c("Microsoft SQL Server", "Teradata"))) return("FLOAT")
  if (any(cls %in% c("Oracle", "OraConnection"))) return("BINARY_DOUBLE")
  "DOUBLE PRECISION"
}

# A short name of the database for messages and the fit's print-out.
db_backend_name <- function(con) {
  cls <- class(con)
  known <- c(SQLiteConnection = "SQLite", PqConnection = "PostgreSQL", PostgreSQLConnection = "PostgreSQL",
             RedshiftConnection = "Redshift", duckdb_connection = "DuckDB", Hive = "Hive/Spark SQL",
             spark_connection = "Spark SQL", Snowflake = "Snowflake", BigQueryConnection = "BigQuery",
             `Microsoft SQL Server` = "SQL Server", Impala = "Impala", MySQLConnection = "MySQL",
             MariaDBConnection = "MariaDB", Oracle = "Oracle")
  hit <- intersect(cls, names(known))
  if (length(hit)) known[[hit[1L]]] else cls[1L]
}

db_cast_double <- function(con, sql_text) paste0("CAST(", sql_text, " AS ", db_double_type(con), ")")

# A double as SQL text that parses back to the same double: the shortest
# of 15 to 17 significant digits that round-trips, always with a decimal
# point or exponent (an approximate-number literal), negatives in
# parentheses so that they can follow any operator.
db_number <- function(x) {
  x <- as.double(x)
  if (any(!is.finite(x))) stop("internal: a non-finite constant cannot be written into SQL")
  s <- sprintf("%.15g", x)
  long <- as.numeric(s) != x
  s[long] <- sprintf("%.17g", x[long])
  plain <- !grepl("[.eE]", s)
  s[plain] <- paste0(s[plain], ".0")
  negative <- x < 0
  s[negative] <- paste0("(", s[negative], ")")
  s
}

# Quoted names. dbplyr's quoting costs about a millisecond a name and the
# queries of a fit have hundreds: its quote characters are found once per
# kind of connection and applied here (a quote character inside a name
# doubled, as every dialect escapes it).
db_ident <- function(con, x) {
  q <- db_quote_chars(con)
  paste0(q[[1L]], gsub(q[[2L]], strrep(q[[2L]], 2L), as.character(x), fixed = TRUE), q[[2L]])
}

db_quote_cache <- new.env(parent = emptyenv())

db_quote_chars <- function(con) {
  key <- paste(class(con), collapse = "/")
  hit <- db_quote_cache[[key]]
  if (!is.null(hit)) return(hit)
  probe <- as.character(dbplyr::escape(dbplyr::ident("mlm"), con = con))
  parts <- strsplit(probe, "mlm", fixed = TRUE)[[1L]]
  q <- c(parts[1L], if (length(parts) > 1L) parts[2L] else "")
  if (!nzchar(q[1L]) || !nzchar(q[2L])) q <- c("\"", "\"")
  db_quote_cache[[key]] <- q
  q
}

db_string <- function(con, x) {
  vapply(as.character(x), function(v) as.character(dbplyr::escape(v, con = con)), "", USE.NAMES = FALSE)
}

# The SQL of a value of a variable as it appears in the data (a level of a
# factor, a key of a grouping factor): strings quoted, numbers written
# exactly, logicals as TRUE/FALSE.
db_value <- function(con, x) {
  if (is.logical(x)) return(ifelse(x, "TRUE", "FALSE"))
  if (is.numeric(x) || inherits(x, "integer64")) return(db_number(as.double(x)))
  db_string(con, x)
}

# Functions of R that dbplyr writes in this database's SQL. Anything else
# in a formula would reach the database as an unknown function of the same
# name, or be computed differently: refuse it.
db_known_functions <- function(con) {
  tr <- dbplyr::sql_translation(con)
  c(ls(tr$scalar), "(", "I", "offset", "factor", "as.factor")
}

# The user's R expression as SQL. Names of columns are replaced by their SQL
# (cast to double where they are integer columns, so that arithmetic is
# R's); other names are looked up in env and written as constants.
db_translate <- function(con, expr, column_sql, env, what) {
  expr <- db_inline(expr, column_sql, env, what)
  unknown <- setdiff(db_call_names(expr), db_known_functions(con))
  if (length(unknown) > 0L) {
    mlm_abort(c("{.code {deparse1(what)}} uses {.fn {unknown}}, which cannot be computed in the database.",
                i = "Compute the variable in the table (e.g. with {.fn dplyr::mutate} before {.fn lmm}), or fit in memory after {.fn dplyr::collect}."),
              "mlmfit_error_database_translation", variable = deparse1(what))
  }
  out <- tryCatch(dbplyr::translate_sql_(list(rlang::new_quosure(expr, emptyenv())), con = con, window = FALSE),
                  error = function(e) {
                    mlm_abort(c("{.code {deparse1(what)}} could not be translated to SQL.", x = conditionMessage(e),
                                i = "Compute the variable in the table, or fit in memory after {.fn dplyr::collect}."),
                              "mlmfit_error_database_translation", variable = deparse1(what))
                  })
  as.character(out[[1L]])
}

db_call_names <- function(expr) {
  if (!is.call(expr)) return(character())
  head <- if (is.name(expr[[1L]])) as.character(expr[[1L]]) else character()
  unique(c(head, unlist(lapply(as.list(expr)[-1L], db_call_names))))
}

# Replace names by SQL fragments or constants; strip I(), write small
# whole powers as products (SQLite has no POWER without an extension) and
# as.integer() as R's truncation and round() as R's rounding of halves to
# even.
db_inline <- function(expr, column_sql, env, what) {
  if (is.name(expr)) {
    nm <- as.character(expr)
    if (nm %in% names(column_sql)) return(dbplyr::sql(column_sql[[nm]]))
    val <- if (nzchar(nm) && exists(nm, envir = env)) get(nm, envir = env) else NULL
    if (is.numeric(val) && length(val) == 1L && is.finite(val)) return(dbplyr::sql(db_number(as.double(val))))
    if (is.logical(val) && length(val) == 1L && !is.na(val)) return(val)
    mlm_abort(c("{.var {nm}} in {.code {deparse1(what)}} is not a column of the table.",
                i = "The table's columns: {.var {names(column_sql)}}."),
              "mlmfit_error_variable", variable = nm)
  }
  if (!is.call(expr)) return(expr)
  fun <- expr[[1L]]
  if (identical(fun, as.name("I")) && length(expr) == 2L) return(db_inline(expr[[2L]], column_sql, env, what))
  if (identical(fun, as.name("^")) && is.numeric(expr[[3L]]) && expr[[3L]] %in% 2:4) {
    base <- db_inline(expr[[2L]], column_sql, env, what)
    out <- base
    for (k in seq_len(expr[[3L]] - 1L)) out <- call("*", out, base)
    return(call("(", out))
  }
  if (identical(fun, as.name("as.integer")) && length(expr) == 2L) {
    # R truncates towards zero; a CAST to INTEGER rounds in DuckDB and
    # PostgreSQL (2 for 1.5): the truncation is written out
    inner <- db_inline(expr[[2L]], column_sql, env, what)
    return(call("as.integer", call("ifelse", call("<", inner, 0), call("ceiling", inner), call("floor", inner))))
  }
  if (identical(fun, as.name("round"))) return(db_round_half_even(expr, column_sql, env, what))
  for (i in seq_along(expr)[-1L]) {
    if (!is.null(expr[[i]])) expr[[i]] <- db_inline(expr[[i]], column_sql, env, what)
  }
  expr
}

# round(x) as R computes it, halves to even (IEC 60559): SQLite's ROUND
# takes them away from zero (2.5 -> 3), as PostgreSQL's does on the NUMERIC
# dbplyr casts to. Other digits are refused: R rounds to the nearer of the
# two decimal candidates in binary (round(0.15, 1) is 0.1), the engines
# their decimal text (0.2).
db_round_half_even <- function(expr, column_sql, env, what) {
  args <- as.list(expr)[-1L]
  digits <- if (length(args) >= 2L) args[[2L]] else 0
  if (length(args) < 1L || length(args) > 2L || !is.numeric(digits) || length(digits) != 1L || digits != 0) {
    mlm_abort(c("{.code {deparse1(what)}} rounds to other than whole numbers, which a database does not compute as R does.",
                i = "Compute the variable in the table, or fit in memory after {.fn dplyr::collect}."),
              "mlmfit_error_database_translation", variable = deparse1(what))
  }
  x <- db_inline(args[[1L]], column_sql, env, what)
  down <- call("floor", x)
  up <- call("+", down, 1)
  frac <- call("-", x, down)
  even_down <- call("==", call("*", call("floor", call("/", down, 2)), 2), down)
  call("ifelse", call("<", frac, 0.5), down,
       call("ifelse", call(">", frac, 0.5), up, call("ifelse", even_down, down, up)))
}

# A clause that keeps SQLite from merging a subquery into the aggregate
# above it (LIMIT -1 is its documented fence). Merged, each use of a
# computed column (a centred variable, the inverse link of the linear
# predictor) calls its functions again in every sum that reads it; kept
# apart, once per row: a third of a PIRLS pass's time. PostgreSQL's fence
# (OFFSET 0) would stop its parallel aggregation, which gains more (bench:
# twice the time of a nested fit with it); other engines get no clause.
db_fence <- function(con) {
  if (any(class(con) %in% "SQLiteConnection")) "\nLIMIT -1" else ""
}
