# Bad input to a database fit is refused with the classed errors of the
# in-memory path, found from the table's columns and from aggregates.

db_error_fixture <- function(backend = "SQLite", env = parent.frame()) {
  if (backend == "DuckDB") skip_if_no_duckdb()
  d <- db_pupils(31, 400)
  d$one <- 1L
  d$const <- 5
  d$zero <- 0
  d$neg <- d$x - 12
  d$bad_w <- ifelse(d$id == 3, 0, 1)
  d$solo <- "a"
  d$g1 <- 7L
  d$y_by_school <- d$school * 2
  d$pair <- (d$id + 1L) %/% 2L
  con <- local_db(list(pupils = d), backend, env = env)
  list(d = d, con = con, tb = dplyr::tbl(con, "pupils"))
}

for (backend in c("SQLite", "DuckDB")) test_that(paste("variables that are not columns, or not numeric where numbers are needed, are refused:", backend), {
  skip_if_no_db()
  f <- db_error_fixture(backend)
  tb <- f$tb
  expect_error(lmm(y ~ xx + (1 | school), data = tb), class = "mlmfit_error_variable")
  err <- tryCatch(lmm(y ~ x + sexx + (1 | school), data = tb), error = identity)
  expect_match(conditionMessage(err), "Did you mean")
  expect_error(lmm(sex ~ x + (1 | school), data = tb), class = "mlmfit_error_response")
  expect_error(lmm(y ~ log(sex) + (1 | school), data = tb), class = "mlmfit_error_variable")
  expect_error(lmm(y ~ x + (1 | school), data = tb, weights = sex), class = "mlmfit_error_weights")
  expect_error(lmm(y ~ poly(x, 2) + (1 | school), data = tb), class = "mlmfit_error_database_translation")
  expect_error(lmm(y ~ x + (1 | school), data = tb, correlation = nlme::corAR1()), class = "mlmfit_error_database_rows")
  expect_error(lmm(y ~ x + (1 | school), data = tb, na.action = function(x) x), class = "mlmfit_error_argument")
})

for (backend in c("SQLite", "DuckDB")) test_that(paste("empty data, one-level factors and groups, constant responses and zero columns are refused:", backend), {
  skip_if_no_db()
  f <- db_error_fixture(backend)
  tb <- f$tb
  expect_error(lmm(y ~ x + (1 | school), data = tb, subset = x > 1000), class = "mlmfit_error_empty")
  expect_error(lmm(y ~ x + (1 | school), data = dplyr::filter(tb, x > 1000)), class = "mlmfit_error_empty")
  expect_error(lmm(y ~ x + (1 | school), data = tb, subset = x > 1000 | is.na(x)), class = "mlmfit_error_empty")
  expect_error(lmm(y ~ x + solo + (1 | school), data = tb), class = "mlmfit_error_variable")
  expect_error(lmm(y ~ x + (1 | g1), data = tb), class = "mlmfit_error_grouping")
  expect_error(lmm(y ~ x + (1 | id), data = tb), class = "mlmfit_error_grouping")
  expect_error(lmm(const ~ x + (1 | school), data = tb), class = "mlmfit_error_response")
  expect_error(lmm(y_by_school ~ x + (1 | school), data = tb), class = "mlmfit_error_response")
  expect_error(lmm(y ~ x + (0 + zero | school) + (1 | school), data = tb), class = "mlmfit_error_identifiability")
  expect_error(lmm(y ~ x + (1 | school), data = tb, weights = bad_w), class = "mlmfit_error_weights")
  expect_error(lmm(y ~ log(neg) + (1 | school), data = tb), class = "mlmfit_error_nonfinite")
  expect_message(fit <- lmm(y ~ x + I(2 * x) + (1 | school), data = tb), class = "mlmfit_message_rank")
  expect_identical(spec_dropped(fit), "I(2 * x)")
})

test_that("a pair block as large as the table is refused, saying so", {
  skip_if_no_db()
  f <- db_error_fixture()
  withr::local_options(mlmfit.db_pair_floor = 0)
  expect_error(lmm(y ~ x + (1 | school) + (1 | pair), data = f$tb), class = "mlmfit_error_database_pairs")
  # allowed up to a share of the rows
  withr::local_options(mlmfit.db_pair_share = 1)
  expect_s3_class(lmm(y ~ x + (1 | school) + (1 | hood), data = f$tb), "mlmfit_db")
})

for (backend in c("SQLite", "DuckDB")) test_that(paste("a lost connection ends the fit with a classed error:", backend), {
  skip_if_no_db()
  if (backend == "DuckDB") skip_if_no_duckdb()
  d <- db_pupils(32, 300)
  con <- switch(backend, SQLite = DBI::dbConnect(RSQLite::SQLite(), ":memory:"),
                DuckDB = duckdb_connect())
  withr::defer(if (DBI::dbIsValid(con)) DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "pupils", d)
  tb <- dplyr::tbl(con, "pupils")
  withr::local_options(mlmfit.db_before_query = function(log, what) {
    if (grepl("^summing per level", what)) DBI::dbDisconnect(log$con)
  })
  expect_error(lmm(y ~ x + (1 | school), data = tb), class = "mlmfit_error_database_connection")
})

test_that("a query the database refuses is a classed error naming the step", {
  skip_if_no_db()
  f <- db_error_fixture()
  # a text column compared with a number in the subset: PostgreSQL refuses it, SQLite drops all rows
  err <- tryCatch(lmm(y ~ x + (1 | school), data = f$tb, subset = nosuch > 1), error = identity)
  expect_s3_class(err, "mlmfit_error_variable")
})
