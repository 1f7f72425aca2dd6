# DuckDB (where its package is installed; not in CI): a model fitted to a
# Parquet file and to a CSV file that DuckDB scans in place, with no table
# in the database, equals the in-memory fit of the same rows, and its
# predictions are computed in the same scan.

test_that("Parquet and CSV files scanned in place by DuckDB fit as in memory", {
  skip_if_no_db()
  skip_if_no_duckdb()
  d <- db_pupils(61, 2000)
  # 15 significant digits, which the CSV file keeps exactly
  for (v in c("x", "z", "w", "t", "y")) d[[v]] <- as.numeric(sprintf("%.15g", d[[v]]))
  con <- local_db(list(pupils = d), "DuckDB")
  dir <- withr::local_tempdir()
  parquet <- file.path(dir, "pupils.parquet")
  csv <- file.path(dir, "pupils.csv")
  DBI::dbExecute(con, paste("COPY pupils TO", DBI::dbQuoteString(con, parquet), "(FORMAT PARQUET)"))
  utils::write.csv(d, csv, row.names = FALSE)
  DBI::dbRemoveTable(con, "pupils")
  scans <- c(parquet = paste("SELECT * FROM read_parquet(", DBI::dbQuoteString(con, parquet), ")"),
             csv = paste("SELECT * FROM read_csv_auto(", DBI::dbQuoteString(con, csv), ")"))
  for (nm in names(scans)) {
    tb <- dplyr::tbl(con, dplyr::sql(scans[[nm]]))
    fits <- fit_mem_db(lmm(y ~ x + sex + (1 | school/class) + (1 | hood), data = DATA, weights = w), d, tb)
    expect_xp_equal(fit_xp(fits$db), fit_xp(fits$mem))
    expect_db_fit_equal(fits$db, fits$mem)
    # every query read the file
    expect_true(all(grepl(if (nm == "parquet") "read_parquet" else "read_csv_auto", spec_db(fits$db)$queries$sql)),
                label = nm)
    p <- predict(fits$db, newdata = dplyr::filter(tb, region != 3))
    expect_s3_class(p, "tbl_lazy")
    p <- dplyr::collect(p)
    keep <- d$region != 3
    expect_equal(p$.prediction[order(p$id)], unname(predict(fits$mem, newdata = d[keep, ])), tolerance = 1e-9)
  }
})
