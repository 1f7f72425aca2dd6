# lmm() on a database table: the model spec from the table (with no
# rows: db-spec.R), its cross-products from aggregate queries
# (db-crossprod.R), then the engine and the fit object of an in-memory fit.

#' Fitting models to database tables
#'
#' `lmm()` and `glmm()` accept a lazy table of a database, `dplyr::tbl(con,
#' "table")` on any DBI connection (a table, a view, or a query built with
#' dplyr verbs), as `data`. The model is fitted where the data live: the
#' database computes the cross-products of the model matrices with a few
#' aggregate queries (one `GROUP BY` over every grouping factor at once, a
#' group per combination of levels that occurs; or, when those are too
#' many, one per grouping factor and one per pair of grouping factors
#' whose levels occur together), and only these sums, a few numbers per
#' group, come to R. The engine then fits the model exactly
#' as it fits one in memory: the estimates equal those of an in-memory fit
#' of the same rows.
#'
#' The formula is the formula of an in-memory fit: numeric, character and
#' logical columns, factors and their interactions (levels found in the
#' database), functions that dbplyr translates into the database's SQL
#' (`log(x)`, `I(x^2)`, `exp()`, `sqrt()`, `ifelse()`, arithmetic;
#' `as.integer()` truncates and `round(x)` takes halves to even as in R,
#' `round()` to other digits is refused; names of
#' constants in the formula's environment are written into the SQL), random
#' terms `(1 | g)`, `(x | g)`, `(x || g)`, `(1 | a/b)`, `(1 | a:b)` and
#' crossed terms; `weights` and `offset` as columns or expressions of
#' columns, `subset` as a condition on columns. Rows with a missing value in
#' any variable of the model are dropped (`na.omit`, counted in `print()`),
#' or refused (`na.fail`). Functions that need a whole column (`poly()`,
#' `scale()`, `ns()`) are refused: compute such columns in the table.
#'
#' @section What works how:
#' From the cross-products, exactly as for an in-memory fit: `print()`,
#' `summary()` (Satterthwaite or no degrees of freedom; its quantiles of
#' the scaled residuals are computed in the database), `fixef()`, `vcov()`,
#' `ranef()` with conditional variances, `coef()`, `VarCorr()`, `sigma()`,
#' `logLik()`, `AIC()`, `BIC()`, `deviance()`, `nobs()`, `ngrps()`,
#' `is_singular()`, `confint()` (`"Wald"` and `"profile"`), `profile()`
#' (lme4's profile object; for a GLMM, that of the fit to a compressed
#' table), `anova()` of one
#' fit (type III F tests; their contrasts come from one more aggregate
#' query) and of several (likelihood-ratio tests; REML fits are refitted by
#' ML from their cross-products), `ranova()` (each reduced model is fitted
#' in the database), `update()` (a change of `REML` alone refits from the
#' cross-products; anything else fits again in the database), `tidy()`,
#' `glance()`.
#'
#' In the database, as lazy tables (nothing is read until you
#' [dplyr::collect()] them): `fitted()` (column `.fitted`),
#' `residuals()` (`.resid`), `predict()` (`.prediction`; `newdata` a lazy
#' table of the same connection, or `NULL` for the rows of the fit; an
#' in-memory data frame gives an ordinary vector), `model.frame()` and
#' `model.matrix()`. The random effects are written to a temporary table of
#' the connection, which these lazy tables join; it lasts as long as the
#' connection.
#'
#' Refused with an error of class `mlmfit_error_database_rows` (which also
#' has the class `mlmfit_error_no_rows` of every refusal of a model kept
#' without its rows), because they need every row in memory: `simulate()`,
#' `refit()`, `parametric_bootstrap()`, `confint(method = "boot")` and
#' `lme4::bootMer()`, `influence()` (deletion refits), Kenward-Roger degrees
#' of freedom,
#' `hatvalues()`, `cooks.distance()`, `plot()` of the fit, `augment()`,
#' `weights()`, emmeans, lme4 objects (`as_lmerMod()`, `getME()`), and
#' the teaching summaries `icc()`, `r2()`, `pve()` and `plot_pooling()`
#' (averages over rows). Collect the model's columns (`dplyr::collect()`)
#' and fit in memory for these.
#'
#' @section Databases:
#' The SQL is generated from the model (quoted names, constants written
#' with 17 significant digits, counts and integer columns cast to the
#' database's double type) and uses only `SELECT`, `CASE`, `SUM`, `MIN`,
#' `MAX`, `COUNT` and `GROUP BY`, and reads the first 1,000 rows in the
#' database's own words (`LIMIT`, `TOP`), with the user's expressions
#' translated by dbplyr. Each column is summed shifted by the mean of
#' those first rows, so that no sum loses digits to a large mean; the
#' centred cross-products follow by exact algebra (a column whose first
#' rows were far from its mean is summed again about the exact mean). It is tested on SQLite and PostgreSQL, on
#' DuckDB where its package is installed (including Parquet and CSV files
#' scanned in place), and its translation with dbplyr's simulated Hive
#' (Spark SQL), Snowflake, Redshift and SQL Server connections.
#' `dplyr::show_query(fit)` prints the queries a fit sent, with their times;
#' `dplyr::explain(fit)` asks the database for their plans.
#' `options(mlmfit.db_progress = TRUE)` (the default in interactive
#' sessions) shows each query while it runs.
#'
#' @section Generalized linear mixed models:
#' `glmm()` on a table fits binomial (0/1, logical, two-level factor,
#' proportions with the numbers of trials as `weights`, `cbind(successes,
#' failures)`) and Poisson models (with offsets). When the model's columns
#' take few distinct values (binary or count outcomes with categorical
#' predictors and group identifiers), one `GROUP BY` over those columns
#' turns the table into its distinct rows with their counts, and the
#' in-memory engine fits them exactly with the counts as frequency
#' weights: every method of an in-memory fit then works (Laplace, `nAGQ >
#' 1`, profile intervals), except the per-row ones, which are lazy tables
#' as above. The compressed table may have up to
#' `getOption("mlmfit.db_compress_max_rows", 1e6)` rows. Otherwise the
#' Laplace approximation is computed with PIRLS in the database: each
#' iteration is one aggregate query with the current linear predictor (the
#' random effects in a temporary table joined to the rows, removed when
#' the fit ends), and the variance parameters and fixed effects are
#' optimised over these deviances as the in-memory engine's second stage
#' does. This takes one or two hundred passes over the table (`print()`
#' shows how many; about 140 for a binomial model with a random intercept
#' and three fixed effects); it needs the logit or log link, and profile intervals are
#' refused (Wald intervals work). Gamma and negative binomial models are
#' refused.
#'
#' A crossed design whose grouping factors' levels rarely repeat together
#' has a block of cross-products nearly as large as the table; such a fit
#' is refused (class `mlmfit_error_database_pairs`) rather than bring the
#' table to R in another form. `options(mlmfit.db_pair_share = s)` allows
#' pair blocks of up to `s` times the number of rows (default 0.5; blocks
#' under 100,000 rows are always allowed).
#'
#' A lost connection or a query the database refuses ends the fit with an
#' error of class `mlmfit_error_database`; temporary tables made during the
#' fit are removed.
#' @name database-fits
#' @examples
#' if (requireNamespace("RSQLite", quietly = TRUE) && requireNamespace("dbplyr", quietly = TRUE)) {
#'   con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
#'   DBI::dbWriteTable(con, "nels88", nels88)
#'   fit <- lmm(math ~ homework + ses + (homework | schid), data = dplyr::tbl(con, "nels88"))
#'   fit
#'   summary(fit)
#'   confint(fit, method = "Wald")
#'   dplyr::show_query(fit)
#'   # predictions computed in the database, as a lazy table
#'   dplyr::collect(utils::head(predict(fit, newdata = dplyr::tbl(con, "nels88")), 3))
#'   DBI::dbDisconnect(con)
#' }
NULL

db_lmm <- function(mc, formula, data, REML, na.action, control, correlation, variance, caller_env) {
  if (!is.null(correlation) || !is.null(variance)) {
    refuse_without_rows(NULL, "A residual correlation or variance structure")
  }
  db_run_fit(mc, formula, data, caller_env, na.action, "numeric", function(src, parsed, log) {
    cp <- db_cross_products(src, log)
    spec <- db_model_spec(src, cp, formula, parsed)
    check_reml_identifiable(spec, REML)
    engine <- engine_refit_xp(spec, cp$xp, NULL, REML, control)
    fit <- new_lmm_fit(db_with_queries(spec, log), engine, mc, REML, control)
    report_singular(fit)
    fit
  })
}

# A fit to a database table: fit(src, parsed, log) with the database part
# of the spec (its levels and design columns found) and the log of the
# queries; the temporary tables made are removed whatever happens.
db_run_fit <- function(mc, formula, data, caller_env, na.action, response, fit) {
  db_require()
  log <- db_new_log(dbplyr::remote_con(data))
  on.exit(db_drop_temp_tables(log), add = TRUE)
  parsed <- parse_mixed_formula(formula)
  src <- db_source(mc, parsed, data, caller_env, na.action, response)
  src <- db_discover_levels(src, log)
  fit(db_design(src), parsed, log)
}
