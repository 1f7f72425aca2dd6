# Methods of a fit to a database table: what needs only the cross-products
# equals the in-memory fit's answer; what needs rows comes back as a lazy
# table computed in the database (equal to the in-memory values) or is
# refused with a classed error. On SQLite; the methods that query the rows
# again (fitted values, residuals, predictions, refits) also on DuckDB.

db_fixture <- local({
  cache <- list()
  function(backend = "SQLite") {
    hit <- cache[[backend]]
    if (!is.null(hit) && DBI::dbIsValid(hit$con)) return(hit)
    if (backend == "DuckDB") skip_if_no_duckdb()
    d <- db_pupils_na(21)
    con <- switch(backend, SQLite = DBI::dbConnect(RSQLite::SQLite(), ":memory:"),
                  DuckDB = duckdb_connect())
    # shared by the tests of this file; closed when the test run ends
    withr::defer(if (DBI::dbIsValid(con)) DBI::dbDisconnect(con), envir = testthat::teardown_env())
    DBI::dbWriteTable(con, "pupils", d)
    tb <- dplyr::tbl(con, "pupils")
    fits <- fit_mem_db(lmm(y ~ x * ses + sex + (1 + z | school) + (1 | hood), data = DATA), d, tb)
    cache[[backend]] <<- list(d = d, con = con, tb = tb, mem = fits$mem, db = fits$db)
    cache[[backend]]
  }
})

rel_err <- function(a, b) max(abs(a - b)) / max(abs(a), 1e-300)

for (backend in c("SQLite", "DuckDB")) test_that(paste("summary, ranef, coef and likelihoods equal the in-memory fit's:", backend), {
  skip_if_no_db()
  f <- db_fixture(backend)
  sm <- summary(f$mem)
  sd <- summary(f$db)
  expect_lte(rel_err(sm$coefficients[, 1:4], sd$coefficients[, 1:4]), 1e-6)
  # the quantiles of the scaled residuals, computed in the database
  expect_lte(rel_err(stats::quantile(sm$residuals), sd$residuals), 1e-7)
  expect_output(print(sd), "Scaled residuals")
  rm <- ranef(f$mem)
  rd <- ranef(f$db)
  for (g in names(rm)) {
    expect_identical(rownames(rd[[g]]), rownames(rm[[g]]))
    expect_lte(rel_err(as.matrix(rm[[g]]), as.matrix(rd[[g]])), 1e-5)
    expect_lte(rel_err(attr(rm[[g]], "postVar"), attr(rd[[g]], "postVar")), 1e-5)
  }
  expect_lte(rel_err(as.matrix(coef(f$mem)$school), as.matrix(coef(f$db)$school)), 1e-5)
  for (fun in list(logLik, AIC, BIC, function(x) deviance(x, REML = FALSE))) {
    expect_lte(rel_err(as.numeric(fun(f$mem)), as.numeric(fun(f$db))), 1e-8)
  }
  expect_identical(attr(logLik(f$db), "df"), attr(logLik(f$mem), "df"))
  expect_equal(nobs(f$db), nobs(f$mem))
})

test_that("confint (Wald and profile), anova and ranova equal the in-memory results", {
  skip_if_no_db()
  f <- db_fixture()
  expect_equal(confint(f$db, method = "Wald"), confint(f$mem, method = "Wald"), tolerance = 1e-6)
  parm <- c(".sig01", ".sigma", "x")
  expect_equal(confint(f$db, parm = parm), confint(f$mem, parm = parm), tolerance = 1e-5)
  a_mem <- anova(f$mem)
  a_db <- anova(f$db)
  expect_equal(a_db[, c("Sum Sq", "NumDF", "F value")], a_mem[, c("Sum Sq", "NumDF", "F value")], tolerance = 1e-6)
  expect_equal(a_db$DenDF, a_mem$DenDF, tolerance = 1e-5)
  withr::with_options(list(contrasts = c("contr.sum", "contr.poly")), {
    fits <- fit_mem_db(lmm(y ~ x * ses + (1 | school), data = DATA), f$d, f$tb)
    expect_equal(anova(fits$db, ddf = "none")[, 1:5], anova(fits$mem, ddf = "none")[, 1:5], tolerance = 1e-6)
  })
  small <- fit_mem_db(lmm(y ~ x + ses + (1 + z | school) + (1 | hood), data = DATA), f$d, f$tb)
  expect_message(lrt_db <- anova(small$db, f$db), class = "mlmfit_message_refit")
  lrt_mem <- suppressMessages(anova(small$mem, f$mem))
  expect_equal(lrt_db$Chisq, lrt_mem$Chisq, tolerance = 1e-6)
  expect_equal(lrt_db$logLik, lrt_mem$logLik, tolerance = 1e-8)
  expect_error(anova(small$db, f$mem), class = "mlmfit_error_anova")
  r_db <- ranova(f$db)
  r_mem <- ranova(f$mem)
  expect_equal(r_db$LRT, r_mem$LRT, tolerance = 1e-6)
  expect_equal(r_db$logLik, r_mem$logLik, tolerance = 1e-8)
  # the last random-effect term dropped: a linear model from the cross-products
  d2 <- db_pupils(22, 800)
  DBI::dbWriteTable(f$con, "complete", d2, overwrite = TRUE)
  tb2 <- dplyr::tbl(f$con, "complete")
  one <- fit_mem_db(lmm(y ~ x + (1 | school), data = DATA), d2, tb2)
  expect_equal(ranova(one$db)$logLik, ranova(one$mem)$logLik, tolerance = 1e-10)
  w <- fit_mem_db(lmm(y ~ x + (1 | school), data = DATA, weights = w, REML = FALSE), d2, tb2)
  expect_equal(ranova(w$db)$logLik, ranova(w$mem)$logLik, tolerance = 1e-10)
})

for (backend in c("SQLite", "DuckDB")) test_that(paste("update() refits from the cross-products when only REML changes, and in the database otherwise:", backend), {
  skip_if_no_db()
  f <- db_fixture(backend)
  ml <- update(f$db, REML = FALSE)
  expect_identical(nrow(ml$db$queries), nrow(f$db$db$queries))
  expect_db_fit_equal(ml, update(f$mem, REML = FALSE), dev_tol = 1e-7, tol = 1e-5)
  tb <- f$tb
  smaller <- update(f$db, . ~ . - sex)
  expect_db_fit_equal(smaller, update(f$mem, . ~ . - sex))
})

for (backend in c("SQLite", "DuckDB")) test_that(paste("fitted values, residuals and predictions are lazy tables equal to the in-memory values:", backend), {
  skip_if_no_db()
  f <- db_fixture(backend)
  d <- f$d
  keep <- stats::complete.cases(d[c("y", "x", "ses", "sex", "z", "school", "hood")])
  fv <- dplyr::collect(fitted(f$db))
  expect_s3_class(fitted(f$db), "tbl_lazy")
  expect_equal(fv$.fitted[order(fv$id)], unname(fitted(f$mem)), tolerance = 1e-9)
  rs <- dplyr::collect(residuals(f$db, type = "pearson", scaled = TRUE))
  expect_equal(rs$.resid[order(rs$id)], unname(residuals(f$mem, type = "pearson", scaled = TRUE)), tolerance = 1e-9)
  new <- d[keep, ][1:50, ]
  new$id <- seq_len(50)
  DBI::dbWriteTable(f$con, "new_pupils", new, overwrite = TRUE)
  nt <- dplyr::tbl(f$con, "new_pupils")
  p <- dplyr::collect(predict(f$db, newdata = nt))
  expect_equal(p$.prediction[order(p$id)], unname(predict(f$mem, newdata = new)), tolerance = 1e-9)
  p0 <- dplyr::collect(predict(f$db, newdata = nt, re.form = NA))
  expect_equal(p0$.prediction[order(p0$id)], unname(predict(f$mem, newdata = new, re.form = NA)), tolerance = 1e-9)
  p1 <- dplyr::collect(predict(f$db, newdata = nt, re.form = ~ (1 | hood)))
  expect_equal(p1$.prediction[order(p1$id)], unname(predict(f$mem, newdata = new, re.form = ~ (1 | hood))),
               tolerance = 1e-9)
  # a part of a term: the intercept of (1 + z | school), its slope with the hood's term
  p2 <- dplyr::collect(predict(f$db, newdata = nt, re.form = ~ (1 | school)))
  expect_equal(p2$.prediction[order(p2$id)], unname(predict(f$mem, newdata = new, re.form = ~ (1 | school))),
               tolerance = 1e-9)
  p3 <- dplyr::collect(predict(f$db, newdata = nt, re.form = ~ (0 + z | school) + (1 | hood)))
  expect_equal(p3$.prediction[order(p3$id)],
               unname(predict(f$mem, newdata = new, re.form = ~ (0 + z | school) + (1 | hood))), tolerance = 1e-9)
  expect_false(isTRUE(all.equal(p2$.prediction, p$.prediction)))
  expect_error(predict(f$db, newdata = nt, re.form = ~ (1 | nowhere)), class = "mlmfit_error_argument")
  # a data frame as newdata: an ordinary vector
  expect_equal(predict(f$db, newdata = new), predict(f$mem, newdata = new), tolerance = 1e-9)
  new$school[1:3] <- 999L
  DBI::dbWriteTable(f$con, "new_pupils", new, overwrite = TRUE)
  expect_error(predict(f$db, newdata = dplyr::tbl(f$con, "new_pupils")), class = "mlmfit_error_new_levels")
  pn <- dplyr::collect(predict(f$db, newdata = dplyr::tbl(f$con, "new_pupils"), allow.new.levels = TRUE))
  expect_equal(pn$.prediction[order(pn$id)], unname(predict(f$mem, newdata = new, allow.new.levels = TRUE)),
               tolerance = 1e-9)
  mm <- dplyr::collect(model.matrix(f$db))
  expect_equal(unname(as.matrix(mm)), unname(model.matrix(f$mem)), tolerance = 1e-12, ignore_attr = TRUE)
  expect_equal(nrow(dplyr::collect(model.frame(f$db))), nobs(f$mem))
})

test_that("what needs the rows in memory is refused with a classed error", {
  skip_if_no_db()
  f <- db_fixture()
  rows <- "mlmfit_error_database_rows"
  expect_error(simulate(f$db), class = rows)
  expect_error(refit(f$db, rnorm(10)), class = rows)
  expect_error(hatvalues(f$db), class = rows)
  expect_error(cooks.distance(f$db), class = rows)
  expect_error(plot(f$db), class = rows)
  expect_error(weights(f$db), class = rows)
  expect_error(confint(f$db, method = "boot"), class = rows)
  expect_error(summary(f$db, ddf = "Kenward-Roger"), class = rows)
  expect_error(parametric_bootstrap(f$db, 10), class = rows)
  expect_error(icc(f$db), class = rows)
  expect_error(r2(f$db), class = rows)
  expect_error(augment(f$db), class = rows)
  expect_error(influence(f$db), class = rows)
  expect_error(influence(f$db, groups = "school"), class = rows)
  expect_error(predict(f$db, newdata = f$tb, se.fit = TRUE), class = rows)
  skip_if_not_installed("emmeans")
  expect_error(emmeans::recover_data(f$db), class = rows)
})

test_that("anova of types I and II equal the in-memory tables; lme4 objects are refused", {
  skip_if_no_db()
  f <- db_fixture()
  for (type in c("I", "II")) {
    a_mem <- anova(f$mem, type = type)
    a_db <- anova(f$db, type = type)
    expect_equal(a_db[, c("Sum Sq", "NumDF", "F value")], a_mem[, c("Sum Sq", "NumDF", "F value")], tolerance = 1e-6)
  }
  skip_if_not_installed("lme4")
  expect_error(as_lmerMod(f$db), class = "mlmfit_error_database_rows")
  expect_error(lme4::getME(f$db, "X"), class = "mlmfit_error_database_rows")
  expect_error(lme4::bootMer(f$db, fixef, nsim = 2), class = "mlmfit_error_database_rows")
})

test_that("profile() of a database fit is lme4's profile object of the in-memory fit", {
  skip_if_no_db()
  f <- db_fixture()
  fits <- fit_mem_db(lmm(y ~ x + sex + (1 | school), data = DATA), f$d, f$tb)
  p_db <- profile(fits$db)
  p_mem <- profile(fits$mem)
  expect_s3_class(p_db, "thpr")
  expect_equal(as.data.frame(p_db), as.data.frame(p_mem), tolerance = 1e-5)
  expect_equal(confint(p_db, parm = c(".sig01", "x", "sexm")), confint(p_mem, parm = c(".sig01", "x", "sexm")),
               tolerance = 1e-5)
})
