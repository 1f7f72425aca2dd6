# glmm() on a database table: binomial and Poisson models equal the
# in-memory fits of the same rows, whether the table is compressed exactly
# (the model's variables take few distinct values) or PIRLS runs one
# aggregate query per iteration.

db_glmm_data <- function(seed = 51, n = 1500, groups = 30) {
  set.seed(seed)
  d <- data.frame(id = seq_len(n), g = sample(seq_len(groups), n, TRUE), f = sample(c("a", "b", "c"), n, TRUE),
                  s = sample(c("m", "w"), n, TRUE), t = sample(1:3, n, TRUE), x = rnorm(n),
                  stringsAsFactors = FALSE)
  u <- rnorm(groups, 0, 0.8)
  eta <- -0.4 + 0.7 * (d$f == "b") - 0.3 * (d$s == "w") + u[d$g]
  d$y <- rbinom(n, 1, stats::plogis(eta))
  d$ok <- d$y == 1
  d$count <- rpois(n, exp(0.2 + 0.5 * (d$f == "b") + u[d$g] / 2 + log(d$t)))
  d$succ <- rbinom(n, 4, stats::plogis(eta))
  d$fail <- 4 - d$succ
  d$prop <- d$succ / 4
  d$trials <- 4
  d$yx <- rbinom(n, 1, stats::plogis(-0.2 + 0.8 * d$x + u[d$g]))
  d$cx <- rpois(n, exp(0.3 + 0.4 * d$x + u[d$g] / 2))
  d$f[c(7, 70)] <- NA
  d
}

# -2 log-likelihood (the Laplace or quadrature criterion that is
# minimised) within 1e-8 relative; the sum of squared deviance residuals,
# which moves to first order with the estimates, within dev_tol.
expect_glmm_equal <- function(db, mem, tol = 1e-6, dev_tol = 1e-8) {
  expect_s3_class(db, c("mlmfit_db", "mlmfit_glmm"))
  expect_equal(nobs(db), nobs(mem))
  expect_lte(abs(as.numeric(logLik(db)) - as.numeric(logLik(mem))) / abs(as.numeric(logLik(mem))), 1e-8,
             label = "relative log-likelihood difference")
  expect_lte(abs(deviance(db) - deviance(mem)) / deviance(mem), dev_tol, label = "relative deviance difference")
  expect_identical(names(fixef(db)), names(fixef(mem)))
  expect_lte(max(abs(fixef(db) - fixef(mem))) / max(abs(fixef(mem))), tol, label = "fixed effects")
  sd_mem <- as.data.frame(VarCorr(mem))$sdcor
  sd_db <- as.data.frame(VarCorr(db))$sdcor
  expect_lte(max(abs(sd_db - sd_mem) / sd_mem), tol, label = "standard deviations")
}

for (backend in c("SQLite", "PostgreSQL", "DuckDB")) test_that(paste("binomial and Poisson fits from an exactly compressed table equal the in-memory fits:", backend), {
  d <- db_glmm_data()
  tb <- local_db_tbl(d, "d", backend)
  models <- list(
    quote(glmm(y ~ f + s + (1 | g), data = DATA, family = binomial)),
    quote(glmm(ok ~ f + (1 | g), data = DATA, family = binomial)),
    quote(glmm(cbind(succ, fail) ~ f + s + (1 | g), data = DATA, family = binomial)),
    quote(glmm(prop ~ f + (1 | g), data = DATA, family = binomial, weights = trials)),
    quote(glmm(count ~ f + offset(log(t)) + (1 | g), data = DATA, family = poisson)),
    quote(glmm(y ~ f + (1 | g), data = DATA, family = binomial, nAGQ = 7))
  )
  for (m in models) {
    fits <- eval(bquote(fit_mem_db(.(m), d, tb)))
    expect_identical(spec_db(fits$db)$method, "compressed")
    expect_glmm_equal(fits$db, fits$mem)
  }
  # methods on the compressed fit: the rows in the database
  fits <- fit_mem_db(glmm(y ~ f + s + (1 | g), data = DATA, family = binomial), d, tb)
  expect_lte(max(abs(stats::quantile(summary(fits$mem)$residuals) - summary(fits$db)$residuals)), 1e-8)
  fv <- dplyr::collect(fitted(fits$db))
  expect_equal(fv$.fitted[order(fv$id)], unname(fitted(fits$mem)), tolerance = 1e-9)
  rd <- dplyr::collect(residuals(fits$db))
  expect_equal(rd$.resid[order(rd$id)], unname(residuals(fits$mem)), tolerance = 1e-9)
  pr <- dplyr::collect(predict(fits$db, newdata = tb, type = "response", re.form = NA))
  keep <- !is.na(d$f)
  expect_equal(pr$.prediction[order(pr$id)][keep], unname(predict(fits$mem, newdata = d[keep, ], type = "response", re.form = NA)),
               tolerance = 1e-9)
  expect_equal(confint(fits$db, method = "Wald"), confint(fits$mem, method = "Wald"), tolerance = 1e-6)
  expect_equal(confint(fits$db, parm = "fb"), confint(fits$mem, parm = "fb"), tolerance = 1e-5)
  # lme4's profile object, from the fit to the distinct rows
  expect_equal(confint(profile(fits$db, which = "fb")), confint(profile(fits$mem, which = "fb")), tolerance = 1e-5)
  expect_output(print(fits$db), "2 dropped for missing values")
  expect_error(simulate(fits$db), class = "mlmfit_error_database_rows")
})

for (backend in c("SQLite", "PostgreSQL", "DuckDB")) test_that(paste("PIRLS with one query per iteration equals the in-memory fit (binomial and Poisson):", backend), {
  skip_unless_full_tests()  # several hundred queries
  d <- db_glmm_data(52, n = 500, groups = 20)
  tb <- local_db_tbl(d, "d", backend)
  withr::local_options(mlmfit.db_compress_max_rows = 10)
  bin <- fit_mem_db(glmm(yx ~ x + s + (1 | g), data = DATA, family = binomial), d, tb)
  expect_identical(spec_db(bin$db)$method, "pirls")
  expect_gt(fit_optinfo(bin$db)$pirls_passes, 10)
  expect_glmm_equal(bin$db, bin$mem, dev_tol = 1e-6)
  expect_equal(sqrt(diag(vcov(bin$db))), sqrt(diag(vcov(bin$mem))), tolerance = 1e-4)
  expect_equal(ranef(bin$db)$g[[1]], ranef(bin$mem)$g[[1]], tolerance = 1e-5)
  expect_equal(attr(ranef(bin$db)$g, "postVar"), attr(ranef(bin$mem)$g, "postVar"), tolerance = 1e-5)
  pois <- fit_mem_db(glmm(cx ~ x + (1 | g), data = DATA, family = poisson), d, tb)
  expect_glmm_equal(pois$db, pois$mem, dev_tol = 1e-6)
  # warm starts from the lowest deviance, moved along the modes' measured
  # derivatives when beta moves, and the optimiser in units of standard
  # errors (passes on SQLite with none: 311 and 308; with the warm starts:
  # 221 and 235; with both: 137 and 114)
  expect_lte(fit_optinfo(bin$db)$pirls_passes, 160)
  expect_lte(fit_optinfo(pois$db)$pirls_passes, 135)
  # the per-row inverse link and working quantities behind a fence that
  # keeps the database from computing them again at each use
  # (DuckDB computes each projected column once by itself: no clause)
  if (backend == "DuckDB") {
    expect_no_match(paste(spec_db(bin$db)$queries$sql, collapse = "\n"), "LIMIT -1|OFFSET 0")
  } else {
    expect_output(dplyr::show_query(bin$db), if (backend == "SQLite") "LIMIT -1" else "OFFSET 0")
  }
  # the temporary tables of random effects are gone (this session's: other
  # sessions of the server may have their own)
  expect_length(db_temp_tables_left(dbplyr::remote_con(tb), backend), 0L)
  expect_output(dplyr::show_query(pois$db), "PIRLS pass")
  expect_error(profile(pois$db), class = "mlmfit_error_database_rows")
  expect_error(glmm(yx ~ x + (1 | g), data = tb, family = binomial(link = "probit")), class = "mlmfit_error_family")
  expect_error(glmm(yx ~ x + (1 | g), data = tb, family = binomial, nAGQ = 3), class = "mlmfit_error_nagq")
})

test_that("PIRLS in the database: the modes' derivatives from moves (Broyden), the fence per backend", {
  # a move along one parameter sets that parameter's column to change / step
  slope <- db_modes_slope(NULL, c(0.2, -0.4), c(0, 0.1, 0))
  expect_equal(slope, cbind(0, c(2, -4), 0))
  # any move: the updated derivatives reproduce the change (secant), and
  # leave their action on directions orthogonal to the move as it was
  move <- c(0.05, -0.02, 0.01)
  updated <- db_modes_slope(slope, c(0.3, 0.1), move)
  expect_equal(as.vector(updated %*% move), c(0.3, 0.1))
  expect_equal(updated %*% c(0.02, 0.05, 0), slope %*% c(0.02, 0.05, 0))
  expect_identical(db_modes_slope(slope, c(NaN, 1), move), slope)
  b <- list(matrix(1:6 / 10, 2, 3), matrix(c(-1, 1), 1, 2))
  expect_identical(db_modes_vector(b), c(1:6 / 10, -1, 1))
  expect_identical(db_modes_relist(db_modes_vector(b) * 2, b), lapply(b, `*`, 2))
  skip_if_not_installed("dbplyr")
  expect_identical(db_row_fence(dbplyr::simulate_postgres()), "\nOFFSET 0")
  # engines that share common subexpressions themselves get no clause
  expect_identical(db_row_fence(dbplyr::simulate_hive()), "")
  expect_identical(db_row_fence(dbplyr::simulate_snowflake()), "")
})

test_that("a connection lost or a query refused during PIRLS leaves no temporary table", {
  skip_if_no_db()
  d <- db_glmm_data(53, n = 200, groups = 10)
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(if (DBI::dbIsValid(con)) DBI::dbDisconnect(con), add = TRUE)
  DBI::dbWriteTable(con, "d", d)
  tb <- dplyr::tbl(con, "d")
  withr::local_options(mlmfit.db_compress_max_rows = 10, mlmfit.db_before_query = function(log, what) {
    if (grepl("PIRLS pass 3\\)", what)) stop("the server went away")
  })
  expect_error(glmm(yx ~ x + (1 | g), data = tb, family = binomial), "the server went away")
  expect_false(any(grepl("^mlmfit_", DBI::dbListTables(con))))
  withr::local_options(mlmfit.db_before_query = function(log, what) {
    if (grepl("PIRLS pass 2\\)", what)) DBI::dbDisconnect(log$con)
  })
  expect_error(glmm(yx ~ x + (1 | g), data = tb, family = binomial), class = "mlmfit_error_database_connection")
})

test_that("families other than binomial and Poisson are refused", {
  skip_if_no_db()
  d <- db_glmm_data(54, n = 100, groups = 10)
  d$pos <- d$count + 1
  con <- local_db(list(d = d))
  expect_error(glmm(pos ~ x + (1 | g), data = dplyr::tbl(con, "d"), family = Gamma(link = "log")),
               class = "mlmfit_error_database_rows")
})
