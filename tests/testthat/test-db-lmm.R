# lmm() on a database table: the aggregate queries give the cross-products
# of the in-memory path (to 1e-10 relative), and the fit equals the
# in-memory fit of the same rows (deviance 1e-8 relative; fixed effects,
# standard deviations and correlations 1e-6), on SQLite, PostgreSQL and DuckDB.

db_models <- list(
  slope = quote(lmm(y ~ x + (x | school), data = DATA)),
  nested = quote(lmm(y ~ x + sex + (1 | school/class), data = DATA)),
  crossed = quote(lmm(y ~ x + (1 | school) + (1 | hood), data = DATA)),
  three_level = quote(lmm(y ~ x + z + (1 | region/school/class), data = DATA)),
  weighted = quote(lmm(y ~ x + z + (1 | school) + (1 | hood), data = DATA, weights = w)),
  factor_predictor = quote(lmm(y ~ x * ses + sex + (1 + z | school), data = DATA)),
  uncorrelated = quote(lmm(y ~ x + (x || school) + (1 | hood), data = DATA, REML = FALSE)),
  expressions = quote(lmm(y ~ log(x + 10) + I(z^2) + (1 | school), data = DATA, offset = t / 2, subset = region != 3)),
  offset_term = quote(lmm(y ~ x + offset(0.5 * z) + (0 + z | school) + (1 | school), data = DATA)),
  factor_slope = quote(lmm(y ~ x + (0 + sex | school), data = DATA))
)

for (backend in c("SQLite", "PostgreSQL", "DuckDB")) {
  test_that(paste("database fits equal in-memory fits:", backend), {
    d <- db_pupils()
    tb <- local_db_tbl(d, "pupils", backend)
    for (nm in names(db_models)) {
      fits <- eval(bquote(fit_mem_db(.(db_models[[nm]]), d, tb)))
      expect_xp_equal(fit_xp(fits$db), fit_xp(fits$mem))
      expect_db_fit_equal(fits$db, fits$mem)
      expect_equal(ngrps(fits$db), ngrps(fits$mem))
    }
  })

  test_that(paste("missing values are dropped as na.omit drops them:", backend), {
    d <- db_pupils_na()
    tb <- local_db_tbl(d, "pupils", backend)
    fits <- fit_mem_db(lmm(y ~ x + ses + (1 | school) + (1 | hood), data = DATA), d, tb)
    expect_xp_equal(fit_xp(fits$db), fit_xp(fits$mem))
    expect_db_fit_equal(fits$db, fits$mem)
    expect_equal(nobs(fits$db), nrow(d) - 9)
    expect_output(print(fits$db), "9 dropped for missing values")
    # missing values among the first rows: the rows are counted, then the complete rows summed
    expect_identical(sum(grepl("^counting the rows", spec_db(fits$db)$queries$what)), 1L)
    # none among the first rows: the first sums (per combination of levels,
    # or per level of the first factor) count them, then are taken again
    # over the complete rows
    for (max_cells in c(5e5, 10)) {
      late <- withr::with_options(list(mlmfit.db_sample_rows = 1, mlmfit.db_max_cells = max_cells),
                                  lmm(y ~ x + ses + (1 | school) + (1 | hood), data = tb))
      q <- spec_db(late)$queries$what
      expect_false(any(grepl("^counting the rows", q)))
      expect_identical(sum(grepl(if (max_cells == 10) "^summing per level of school" else "^summing per combination", q)), 2L)
      expect_output(print(late), "9 dropped for missing values")
      expect_xp_equal(fit_xp(late), fit_xp(fits$mem))
      expect_db_fit_equal(late, fits$mem)
    }
    expect_error(lmm(y ~ x + (1 | school), data = tb, na.action = na.fail), class = "mlmfit_error_missing")
  })
}

test_that("levels of an integer grouping column are labelled as in memory (100000, not 1e+05)", {
  skip_if_no_db()
  set.seed(18)
  d <- data.frame(g = rep(c(1L, 2L, 100000L, 300000L, 2000000L), each = 20), h = rep(c(7L, 1000000L), 50), x = rnorm(100))
  d$y <- d$x + rnorm(5)[match(d$g, unique(d$g))] + rnorm(100)
  for (backend in db_backends()) {
    con <- local_db(list(d = d), backend)
    fits <- fit_mem_db(lmm(y ~ x + (1 | g) + (1 | h), data = DATA), d, db_tbl(con, "d"))
    expect_identical(lapply(ranef(fits$db), rownames), lapply(ranef(fits$mem), rownames))
    expect_db_fit_equal(fits$db, fits$mem)
  }
})

test_that("factor(x) keeps a level seen only in rows with missing values, whose column is dropped, as in memory", {
  skip_if_no_db()
  d <- db_pupils(15, 600)
  d$ses[d$ses == "mid"][1] <- "other"
  d$x[d$ses == "other"] <- NA
  con <- local_db(list(pupils = d))
  tb <- db_tbl(con, "pupils")
  expect_message(fits <- fit_mem_db(lmm(y ~ x + factor(ses) + (1 | school), data = DATA), d, tb),
                 class = "mlmfit_message_rank")
  expect_identical(spec_dropped(fits$db), "factor(ses)other")
  expect_identical(spec_dropped(fits$db), spec_dropped(fits$mem))
  expect_db_fit_equal(fits$db, fits$mem)
})

test_that("one aggregate query sums per combination of levels; with too many combinations, one per factor and per pair", {
  skip_if_no_db()
  d <- db_pupils(16, 500)
  con <- local_db(list(pupils = d))
  tb <- db_tbl(con, "pupils")
  mem <- lmm(y ~ x + (1 | school) + (1 | hood) + (1 | region), data = d)
  fit <- lmm(y ~ x + (1 | school) + (1 | hood) + (1 | region), data = tb)
  q <- spec_db(fit)$queries$what
  expect_equal(sum(grepl("^summing per combination of levels", q)), 1)
  # with no missing value, that query counts the rows too: no pass of its own
  expect_identical(q[1L], "reading the first rows for approximate centres")
  expect_length(q, 2L)
  expect_equal(sum(grepl("^summing per (level|pair)", q)), 0)
  expect_output(dplyr::show_query(fit), "GROUP BY")
  expect_xp_equal(fit_xp(fit), fit_xp(mem))
  split <- withr::with_options(list(mlmfit.db_max_cells = 10),
                               lmm(y ~ x + (1 | school) + (1 | hood) + (1 | region), data = tb))
  q <- spec_db(split)$queries$what
  expect_false(any(grepl("^counting the rows", q)))
  expect_equal(sum(grepl("^summing per level", q)), 3)
  expect_equal(sum(grepl("^summing per pair", q)), 3)
  expect_xp_equal(fit_xp(split), fit_xp(mem))
  expect_db_fit_equal(split, mem)
})

test_that("the sums keep their digits for badly scaled columns and a table whose first rows are far from the mean", {
  skip_if_no_db()
  d <- db_pupils(17, 2000)
  # means of 1e6 to 1e8 with spreads of 1 to 3
  d$x <- 1e6 + d$x
  d$z <- 1e7 + d$z
  d$y <- 1e8 + d$y
  # a first row 1000 units away: with approximate centres from the first
  # row alone, x is more than 30 standard deviations from its centre and is
  # summed again about its mean
  d$x[1] <- d$x[1] + 1000
  # 15 significant digits, which every driver writes to the database exactly
  for (v in c("x", "z", "y")) d[[v]] <- as.numeric(sprintf("%.15g", d[[v]]))
  for (backend in db_backends()) {
    con <- local_db(list(pupils = d), backend)
    tb <- db_tbl(con, "pupils")
    for (first_rows in c(1000, 1)) {
      fits <- withr::with_options(list(mlmfit.db_sample_rows = first_rows),
                                  fit_mem_db(lmm(y ~ x + z + (1 + z | school) + (1 | hood), data = DATA), d, tb))
      mem <- fit_xp(fits$mem)
      db <- fit_xp(fits$db)
      # the means agree to the rounding of the in-memory path's one-pass sums
      centred <- mem$center != 0
      expect_lte(max(abs(db$center - mem$center)[centred] / abs(mem$center)[centred]), 1e-12)
      expect_xp_equal(xp_at_centre(db, mem$center), mem)
      expect_db_fit_equal(fits$db, fits$mem)
      expect_identical(any(grepl("about the exact means", spec_db(fits$db)$queries$what)), first_rows == 1)
    }
  }
})

test_that("columns whose first rows' mean is within a standard deviation of 0 are summed unshifted, integer keys uncast, to the same digits", {
  skip_if_no_db()
  d <- db_pupils(19, 2000)
  # x (mean 10, sd 3) and y are shifted; z (mean 0, sd 1) and v (mean 3,
  # sd 3.3: a raw sum of squares loses less than a bit) are not
  d$v <- as.numeric(sprintf("%.15g", 3 + rnorm(nrow(d), 0, 3.3)))
  d$y <- d$y + 0.4 * d$v
  for (backend in db_backends()) {
    con <- local_db(list(pupils = d), backend)
    fits <- fit_mem_db(lmm(y ~ x + z + v + (1 + v | school), data = DATA), d, db_tbl(con, "pupils"))
    q <- spec_db(fits$db)$queries
    sums_sql <- q$sql[grepl("^summing per level of school", q$what)]
    expect_length(sums_sql, 1L)
    expect_identical(lengths(regmatches(sums_sql, gregexpr("[\"`] - \\(?-?[0-9.]+", sums_sql))), 2L)
    # the integer column school only groups: it is grouped by as stored
    # (not cast to double), and its levels are labelled as in memory
    expect_match(sums_sql, "[\"`]school[\"`] AS [\"`]mlm_v")
    expect_identical(rownames(ranef(fits$db)$school), rownames(ranef(fits$mem)$school))
    mem <- fit_xp(fits$mem)
    expect_xp_equal(xp_at_centre(fit_xp(fits$db), mem$center), mem)
    expect_db_fit_equal(fits$db, fits$mem)
  }
})

# The vignette's pupils: 60,000 rows about a mean of 50, whose cross-products
# a database sums with ~1e-15 relative noise. The optimiser must reach the
# in-memory fit's optimum from them, by REML and ML (a fit once stopped
# short there), to the contract's 1e-8 relative deviance.
test_that("60,000 rows: the fit from a database's sums reaches the in-memory optimum, REML and ML", {
  skip_if_no_db()
  set.seed(2024)
  n <- 60000
  school <- sample(600, n, replace = TRUE)
  d <- data.frame(school = school, ses = rnorm(n), girl = rbinom(n, 1, 0.5))
  d$score <- 50 + 2 * d$ses + 1.5 * d$girl + rnorm(600, 0, 3)[school] + rnorm(n, 0, 8)
  d$ses[sample(n, 300)] <- NA
  for (backend in db_backends()) {
    con <- local_db(list(pupils = d), backend)
    tb <- db_tbl(con, "pupils")
    for (REML in c(TRUE, FALSE)) {
      fits <- eval(bquote(fit_mem_db(lmm(score ~ ses + girl + (1 | school), data = DATA, REML = .(REML)), d, tb)))
      expect_true(fits$db$optinfo$converged, label = paste(backend, "REML =", REML, "converged"))
      expect_length(fits$db$optinfo$warnings, 0L)
      mem <- fit_xp(fits$mem)
      expect_xp_equal(xp_at_centre(fit_xp(fits$db), mem$center), mem)
      expect_db_fit_equal(fits$db, fits$mem)
      # and the in-memory fit is lme4's (the accuracy contract)
      if (backend == "SQLite" && requireNamespace("lme4", quietly = TRUE)) {
        ref <- lme4::lmer(score ~ ses + girl + (1 | school), data = d, REML = REML)
        expect_lte(deviance(fits$db) - (if (REML) lme4::REMLcrit(ref) else deviance(ref)), 1e-4)
        expect_equal(unname(fixef(fits$db)), unname(lme4::fixef(ref)), tolerance = 1e-4)
      }
    }
  }
})
