# Fits to database tables: connections (SQLite always; PostgreSQL when a
# server can be reached or started; DuckDB where its package is installed), a simulated data set with nested,
# crossed and three-level grouping, weights, factors and missing values,
# and comparisons of a database fit with the in-memory fit of the same rows.

skip_if_no_db <- function() {
  for (p in c("DBI", "dbplyr", "dplyr", "RSQLite", "rlang")) skip_if_not_installed(p)
}

# A connection with the given data frames as tables, closed after the test.
local_db <- function(tables, backend = "SQLite", env = parent.frame()) {
  con <- switch(backend, SQLite = DBI::dbConnect(RSQLite::SQLite(), ":memory:"), PostgreSQL = pg_connect(),
                DuckDB = duckdb_connect())
  # PostgreSQL's server outlives the test: its tables are temporary
  for (nm in names(tables)) DBI::dbWriteTable(con, nm, tables[[nm]], overwrite = TRUE, temporary = backend == "PostgreSQL")
  withr::defer(DBI::dbDisconnect(con), envir = env)
  con
}

# dplyr::tbl() without dbplyr's note that RPostgreSQL uses its older interface.
db_tbl <- function(con, name) {
  withCallingHandlers(dplyr::tbl(con, name), warning = function(w) {
    if (grepl("old dbplyr interface", conditionMessage(w))) invokeRestart("muffleWarning")
  })
}

# The data frame d as the table `name` of a database of the backend, as a
# lazy table, the connection closed after the test; skips the test when
# the backend's packages or server are not available.
local_db_tbl <- function(d, name, backend, env = parent.frame()) {
  skip_if_no_db()
  if (backend == "PostgreSQL") skip_if_no_pg()
  if (backend == "DuckDB") skip_if_no_duckdb()
  db_tbl(local_db(stats::setNames(list(d), name), backend, env), name)
}

# The backends the equality tests run on: SQLite, PostgreSQL when a
# server is available (tools/postgres.sh starts one; .ci/run does so), and
# DuckDB where its package is installed (not in CI: it builds from source
# for hours).
db_backends <- function() c("SQLite", if (pg_available()) "PostgreSQL", if (duckdb_available()) "DuckDB")

duckdb_available <- function() requireNamespace("duckdb", quietly = TRUE)

# An in-memory DuckDB database (without the note on where its extensions go).
duckdb_connect <- function() DBI::dbConnect(duckdb::duckdb(shared_home = FALSE), ":memory:")

skip_if_no_duckdb <- function() {
  if (!duckdb_available()) skip("duckdb is not installed (it builds from source for about two CPU-hours; not in CI)")
}

# The temporary tables of this session whose names mlmfit gives them.
db_temp_tables_left <- function(con, backend) {
  sql <- switch(backend, SQLite = "SELECT name FROM sqlite_temp_master",
                PostgreSQL = "SELECT relname AS name FROM pg_class WHERE relnamespace = pg_my_temp_schema()",
                DuckDB = "SELECT table_name AS name FROM duckdb_tables() WHERE temporary")
  grep("^mlmfit_", DBI::dbGetQuery(con, sql)$name, value = TRUE)
}

pg_settings <- function() {
  list(host = Sys.getenv("MLMFIT_PG_HOST", ""), port = Sys.getenv("MLMFIT_PG_PORT", ""),
       user = Sys.getenv("MLMFIT_PG_USER", "postgres"), dbname = Sys.getenv("MLMFIT_PG_DB", "postgres"))
}

pg_connect <- function() {
  s <- pg_settings()
  DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = s$host, port = as.integer(s$port), user = s$user, dbname = s$dbname)
}

pg_available <- local({
  ok <- NULL
  function() {
    if (!is.null(ok)) return(ok)
    ok <<- FALSE
    if (!requireNamespace("RPostgreSQL", quietly = TRUE) || !nzchar(pg_settings()$port)) return(ok)
    con <- tryCatch(pg_connect(), error = function(e) NULL)
    if (!is.null(con)) {
      DBI::dbDisconnect(con)
      ok <<- TRUE
    }
    ok
  }
})

skip_if_no_pg <- function() {
  if (!pg_available()) {
    skip(paste("no PostgreSQL server: run the tests through .ci/run, or start one with",
               "`eval $(sh tools/postgres.sh start)` (Debian's postgresql and RPostgreSQL)"))
  }
}

# Pupils in classes in schools in regions, crossed with neighbourhoods.
db_pupils <- function(seed = 13, n = 3000) {
  set.seed(seed)
  region <- sample(1:5, 60, TRUE)
  school <- sample(1:60, n, TRUE)
  class <- sample(1:4, n, TRUE)
  d <- data.frame(id = seq_len(n), region = region[school], school = school, class = class,
                  hood = sample(sprintf("n%02d", 1:25), n, TRUE),
                  x = rnorm(n, 10, 3), z = rnorm(n), sex = sample(c("f", "m"), n, TRUE),
                  ses = sample(c("low", "mid", "high"), n, TRUE), w = runif(n, 0.5, 2), t = runif(n, 1, 3),
                  stringsAsFactors = FALSE)
  u_school <- rnorm(60, 0, 2)
  slope <- rnorm(60, 0, 0.3)
  u_class <- rnorm(240)
  u_hood <- rnorm(25, 0, 0.7)
  d$y <- 20 + (0.5 + slope[d$school]) * d$x + 0.3 * d$z + (d$sex == "m") + 0.5 * (d$ses == "high") +
    u_school[d$school] + u_class[(d$school - 1) * 4 + d$class] + u_hood[match(d$hood, sprintf("n%02d", 1:25))] +
    rnorm(5)[d$region] + rnorm(n, 0, 1.5)
  d
}

# The same data with missing values in several variables.
db_pupils_na <- function(seed = 14) {
  d <- db_pupils(seed)
  d$x[c(5, 17, 200)] <- NA
  d$ses[c(9, 300)] <- NA
  d$school[c(40, 41)] <- NA
  d$y[c(2, 1000)] <- NA
  d
}

# One call evaluated with a data frame and with a lazy table.
fit_mem_db <- function(call, data, tbl, env = parent.frame()) {
  call <- substitute(call)
  mem <- eval(do.call(substitute, list(call, list(DATA = data))), env)
  db <- eval(do.call(substitute, list(call, list(DATA = tbl))), env)
  list(mem = mem, db = db)
}

# Each component of two cross-product lists agrees relative to its size.
expect_xp_equal <- function(db, mem, tol = 1e-10) {
  for (nm in c("n", "p", "intercept_col", "k1", "q1", "sec_levels", "sec_q", "r1_ptr", "r1_row", "rr_row", "rr_col")) {
    expect_equal(as.double(db[[nm]]), as.double(mem[[nm]]), tolerance = 0, label = paste("xp$", nm))
  }
  for (nm in c("sum_log_weights", "center", "D1", "C1", "XX", "rr_diag", "rr_vals", "r1_vals", "CR")) {
    a <- as.vector(mem[[nm]])
    b <- as.vector(db[[nm]])
    expect_identical(length(b), length(a), label = paste("length of xp$", nm))
    if (length(a) == 0L) next
    err <- max(abs(a - b)) / max(abs(a), 1e-300)
    expect_lte(err, tol, label = paste("relative error of xp$", nm))
  }
}

# Cross-products centred about the means `center` instead (exact algebra:
# each centred column of [X y] moves by the change of its mean times the
# intercept's column). Two paths that centre about means computed in
# different ways (the in-memory path sums in one pass; the database's
# means come from sums about nearby centres) are compared at one centre.
xp_at_centre <- function(xp, center) {
  if (length(xp$center) == 0L) return(xp)
  ic <- xp$intercept_col + 1L
  S <- diag(length(center))
  S[ic, ] <- -(center - xp$center)
  S[ic, ic] <- 1
  xp$C1 <- crossprod(S, xp$C1)
  xp$CR <- crossprod(S, xp$CR)
  xp$XX <- crossprod(S, xp$XX %*% S)
  xp$center <- center
  xp
}

# A database fit equals the in-memory fit of the same rows: deviance within
# 1e-8 relative; fixed effects, standard deviations and correlations within
# 1e-6 relative (to the largest of each kind).
expect_db_fit_equal <- function(db, mem, dev_tol = 1e-8, tol = 1e-6) {
  expect_s3_class(db, "mlmfit_db")
  expect_equal(nobs(db), nobs(mem))
  expect_lte(abs(deviance(db) - deviance(mem)) / abs(deviance(mem)), dev_tol, label = "relative deviance difference")
  rel <- function(a, b) max(abs(a - b)) / max(abs(a), 1e-8)
  expect_identical(names(fixef(db)), names(fixef(mem)))
  expect_lte(rel(fixef(mem), fixef(db)), tol, label = "fixed effects")
  vm <- as.data.frame(VarCorr(mem))
  vd <- as.data.frame(VarCorr(db))
  expect_identical(vd[, 1:3], vm[, 1:3])
  sds <- is.na(vm$var2)
  expect_lte(rel(vm$sdcor[sds], vd$sdcor[sds]), tol, label = "standard deviations")
  if (any(!sds)) expect_lte(max(abs(vm$sdcor[!sds] - vd$sdcor[!sds])), tol, label = "correlations")
}
