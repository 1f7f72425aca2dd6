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
  spec <- db_model_spec(mc, parsed, tbl, environment(formula), stats::na.omit, sample = sample)
  # levels as the database would report them
  for (nm in db_design_variables(spec)) {
    v <- spec$vars[[nm]]
    if (v$kind != "factor") next
    vals <- sort(unique(stats::na.omit(sample[[as.character(v$inner)]])))
    spec$vars[[nm]]$levels <- as.character(vals)
    spec$vars[[nm]]$level_values <- vals
  }
  spec <- db_design(spec)
  labels <- vapply(spec$random, `[[`, "", "label")
  blocks <- lapply(unique(labels), function(lab) {
    tms <- spec$random[labels == lab]
    list(label = lab, keys = tms[[1L]]$keys, z_sql = unlist(lapply(tms, `[[`, "z_sql")))
  })
  p <- length(spec$X$sql)
  design <- db_design_sql(spec, blocks, center = c(0, rep(0.5, p)))
  weighted <- !is.null(spec$weights_sql)
  c(db_sums_sql(con, db_frame_sql(spec, complete_flag = TRUE), character(), db_moment_aggregates(spec)),
    db_sums_sql(con, design, db_block_keys(con, 1L, blocks[[1L]]),
                c(db_block_aggregates(con, 1L, blocks[[1L]], p, weighted, 1L, TRUE), db_xx_aggregates(con, p, weighted, 1L))),
    if (length(blocks) > 1L) {
      keys <- c(db_block_keys(con, 2L, blocks[[2L]]), db_block_keys(con, 1L, blocks[[1L]]))
      names(keys) <- c("f1", "g1")
      db_sums_sql(con, design, keys, db_pair_aggregates(con, 2L, blocks[[2L]], 1L, blocks[[1L]], weighted))
    })
}

dialects <- function() {
  list(hive_spark = list(con = dbplyr::simulate_hive(), double = "DOUBLE", log = "LN("),
       snowflake = list(con = dbplyr::simulate_snowflake(), double = "DOUBLE", log = "LN("),
       redshift = list(con = dbplyr::simulate_redshift(), double = "DOUBLE PRECISION", log = "LN("),
       sql_server = list(con = dbplyr::simulate_mssql(), double = "FLOAT", log = "LOG("),
       postgres = list(con = dbplyr::simulate_postgres(), double = "DOUBLE PRECISION", log = "LN("))
}

test_that("the queries of a fit are written in each engine's dialect", {
  skip_if_no_db()
  d <- db_pupils(41, 200)
  d$school <- as.integer(d$school)
  f <- y ~ log(x) + I(z^2) + ses * sex + (1 + z | school) + (1 | hood)
  for (nm in names(dialects())) {
    dl <- dialects()[[nm]]
    sql <- dialect_statements(dl$con, f, d, weights = quote(w), subset = quote(region != 2))
    all_sql <- paste(sql, collapse = "\n")
    expect_length(sql, 3L)
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
