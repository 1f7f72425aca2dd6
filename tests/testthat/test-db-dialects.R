# The SQL of a database fit in the dialects of other engines, with dbplyr's
# simulated connections (Spark SQL is Hive's dialect in dbplyr): the same
# queries as on SQLite and PostgreSQL, with each engine's quoting, double
# type and translations of the formula's functions. The queries are made
# from a sample of the rows (the engines cannot run here).

dialect_statements <- function(con, formula, sample, weights = NULL, subset = NULL) {
  mc <- as.call(c(list(as.name("lmm"), formula = formula), list(weights = weights, subset = subset)))
  mc <- mc[!vapply(as.list(mc), is.null, NA)]
  parsed <- parse_mixed_formula(formula)
  tbl <- dbplyr::tbl_lazy(sample, con = con, name = "pupils")
  src <- db_source(mc, parsed, tbl, environment(formula), stats::na.omit, sample = sample)
  # levels as the database would report them
  for (nm in db_design_variables(src)) {
    v <- src$vars[[nm]]
    if (v$kind != "factor") next
    vals <- sort(unique(stats::na.omit(sample[[as.character(v$inner)]])))
    src$vars[[nm]]$levels <- as.character(vals)
    src$vars[[nm]]$level_values <- vals
  }
  src <- db_design(src)
  blocks <- db_raw_blocks(src$random)
  plan <- db_sum_plan(src$X$sql, db_response_sql(src), blocks)
  m <- length(plan$vars)
  weighted <- !is.null(src$weights_sql)
  keys <- unique(unlist(plan$keys))
  between <- utils::combn(length(blocks), 2L, simplify = FALSE)
  # the sums per combination of levels (with the checks of the weights),
  # and of the fallback: per level of one factor, and per pair of levels
  cells <- db_sums_query(src, plan, rep(0.5, m), keys, seq_len(m), db_plan_pairs(plan, between = between), weighted,
                         if (weighted) db_weight_aggregates(src), db_counting_frame(src))
  level <- db_sums_query(src, plan, rep(0.5, m), plan$keys[[1L]], seq_len(m), db_plan_pairs(plan, 1L), weighted)
  pair <- db_sums_query(src, plan, rep(0.5, m), keys, sort(unique(unlist(plan$z))),
                        db_plan_pairs(plan, integer(), FALSE, between), weighted)
  sums <- unlist(lapply(list(cells, level, pair), function(q) db_sums_sql(con, q$design, q$keys, q$aggregates)))
  c(sums, sample = db_sample_sql(src, plan))
}

dialects <- function() {
  list(hive_spark = list(con = dbplyr::simulate_hive(), double = "DOUBLE", log = "LN(", first = "LIMIT 1000"),
       snowflake = list(con = dbplyr::simulate_snowflake(), double = "DOUBLE", log = "LN(", first = "LIMIT 1000"),
       redshift = list(con = dbplyr::simulate_redshift(), double = "DOUBLE PRECISION", log = "LN(", first = "LIMIT 1000"),
       sql_server = list(con = dbplyr::simulate_mssql(), double = "FLOAT", log = "LOG(", first = "TOP 1000"),
       postgres = list(con = dbplyr::simulate_postgres(), double = "DOUBLE PRECISION", log = "LN(", first = "LIMIT 1000"))
}

test_that("the queries of a fit are written in each engine's dialect", {
  skip_if_no_db()
  d <- db_pupils(41, 200)
  d$school <- as.integer(d$school)
  f <- y ~ log(x) + I(z^2) + ses * sex + (1 + z | school) + (1 | hood)
  for (nm in names(dialects())) {
    dl <- dialects()[[nm]]
    sql <- dialect_statements(dl$con, f, d, weights = quote(w), subset = quote(region != 2))
    all_sql <- paste(sql[names(sql) != "sample"], collapse = "\n")
    expect_length(sql, 4L)
    # integer columns and counts cast to the engine's double type
    expect_true(grepl(paste0("AS ", dl$double, ")"), all_sql, fixed = TRUE), label = nm)
    # the formula's functions translated (log, the square written as a product)
    expect_true(grepl(dl$log, all_sql, fixed = TRUE), label = nm)
    expect_false(grepl("POWER", all_sql, fixed = TRUE), label = nm)
    expect_false(grepl("log(", all_sql, fixed = TRUE), label = nm)
    # factor levels as string constants, grouping by the keys
    expect_true(grepl("'mid'", all_sql, fixed = TRUE), label = nm)
    expect_true(grepl("GROUP BY", all_sql, fixed = TRUE), label = nm)
    # only the SQL every engine has: no LIMIT, no window functions, no CTEs
    expect_false(grepl("LIMIT|OVER \\(|WITH ", all_sql), label = nm)
    # the first rows (approximate centres) in the engine's own words
    expect_true(grepl(dl$first, sql[["sample"]], fixed = TRUE), label = nm)
  }
})

test_that("functions an engine cannot compute are refused before any query", {
  skip_if_no_db()
  d <- db_pupils(42, 100)
  for (nm in c("hive_spark", "snowflake")) {
    expect_error(dialect_statements(dialects()[[nm]]$con, y ~ splines::ns(x, 3) + (1 | school), d),
                 class = "mlmfit_error_database_translation")
    expect_error(dialect_statements(dialects()[[nm]]$con, y ~ my_transform(x) + (1 | school), d),
                 class = "mlmfit_error_database_translation")
  }
})

test_that("as.integer() truncates towards zero as in R on every backend (a CAST rounds in DuckDB and PostgreSQL)", {
  skip_if_no_db()
  d <- db_pupils(43, 300)
  d$x <- d$x - 10  # negative and positive fractions
  for (backend in db_backends()) {
    con <- local_db(list(pupils = d), backend)
    fits <- fit_mem_db(lmm(y ~ as.integer(x) + (1 | school), data = DATA), d, db_tbl(con, "pupils"))
    expect_db_fit_equal(fits$db, fits$mem)
    mm <- dplyr::collect(model.matrix(fits$db))
    expect_equal(sort(mm[["as.integer(x)"]]), sort(as.integer(d$x)), label = backend)
  }
})

test_that("round() takes halves to even as in R on every backend; other digits are refused", {
  skip_if_no_db()
  d <- db_pupils(44, 300)
  # exact halves (SQLite's ROUND takes 2.5 to 3, R to 2) and other fractions
  d$x <- sample(c(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.2, 0.7, 1.2), nrow(d), replace = TRUE)
  d$y <- d$y + 0.8 * round(d$x)
  for (backend in db_backends()) {
    con <- local_db(list(pupils = d), backend)
    fits <- fit_mem_db(lmm(y ~ round(x) + (1 | school), data = DATA), d, db_tbl(con, "pupils"))
    expect_db_fit_equal(fits$db, fits$mem)
    mm <- dplyr::collect(model.matrix(fits$db))
    expect_equal(sort(mm[["round(x)"]]), sort(round(d$x)), label = backend)
    expect_error(lmm(y ~ round(x, 1) + (1 | school), data = db_tbl(con, "pupils")),
                 class = "mlmfit_error_database_translation")
  }
})
