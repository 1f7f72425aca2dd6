# lmm() on a database table: the spec from the table, the cross-products
# from aggregate queries, the fit from the cross-products (the engine's
# entry that takes them), and the fit object of an in-memory fit without
# its per-row parts. The join points with the in-memory path, to be moved
# onto the model spec: lmm()'s dispatch, new_lmm() (called with a model
# matrix of no rows), fit_from_engine() (db_fit_from_engine()), and the
# response and design comparisons of anova() (response_fingerprint(),
# fixed_design_fingerprint()).

#' Fitting models to database tables
#'
#' `lmm()` and `glmm()` accept a lazy table of a database, `dplyr::tbl(con,
#' "table")` on any DBI connection (a table, a view, or a query built with
#' dplyr verbs), as `data`. The model is fitted where the data live: the
#' database computes the cross-products of the model matrices with a few
#' aggregate queries (one `GROUP BY` per grouping factor, one per pair of
#' grouping factors whose levels occur together), and only these sums, a
#' few numbers per group, come to R. The engine then fits the model exactly
#' as it fits one in memory: the estimates equal those of an in-memory fit
#' of the same rows.
#'
#' The formula is the formula of an in-memory fit: numeric, character and
#' logical columns, factors and their interactions (levels found in the
#' database), functions that dbplyr translates into the database's SQL
#' (`log(x)`, `I(x^2)`, `exp()`, `sqrt()`, `ifelse()`, arithmetic; names of
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
#' `is_singular()`, `confint()` (`"Wald"` and `"profile"`), `anova()` of one
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
#' Refused with an error of class `mlmfit_error_database_rows`, because they
#' need every row in memory: `simulate()`, `refit()`, `parametric_bootstrap()`
#' and `confint(method = "boot")`, Kenward-Roger degrees of freedom,
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
#' `MAX`, `COUNT` and `GROUP BY`, with the user's expressions translated by
#' dbplyr. It is tested on SQLite and PostgreSQL, and its translation with
#' dbplyr's simulated Hive (Spark SQL), Snowflake, Redshift and SQL Server
#' connections; DuckDB uses the PostgreSQL dialect of dbplyr.
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
#' does. This takes a few hundred passes over the table (`print()` shows
#' how many); it needs the logit or log link, and profile intervals are
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
    mlm_abort(c("Residual {.arg correlation} and {.arg variance} structures are not available for database tables.",
                i = "Collect the rows with {.fn dplyr::collect} and fit in memory."),
              "mlmfit_error_database_rows")
  }
  parsed <- parse_mixed_formula(formula)
  db_require()
  log <- db_new_log(dbplyr::remote_con(data))
  on.exit(db_drop_temp_tables(log), add = TRUE)
  spec <- db_prepare_spec(mc, parsed, data, caller_env, na.action, log, "numeric")
  cp <- db_cross_products(spec, log)
  cp <- db_drop_aliased(cp, spec)
  xp <- cp$xp
  if (REML && xp$p >= xp$n) {
    mlm_abort("There are {xp$p} fixed effects for {xp$n} observations: REML needs more observations than fixed effects.",
              "mlmfit_error_identifiability")
  }
  engine <- engine_call(lmm_refit_xp_cpp(xp, engine_templates(cp$re), cp$re$theta0, cp$re$lower, REML, control,
                                         moment_start = TRUE))
  engine$xp <- xp
  fit <- db_new_lmm(engine, spec, cp, mc, formula, parsed, REML, control, log)
  report_singular(fit)
  fit
}

# The spec with its levels and design columns (the queries before pass 1).
db_prepare_spec <- function(mc, parsed, data, caller_env, na.action, log, response) {
  spec <- db_model_spec(mc, parsed, data, caller_env, na.action, response)
  spec <- db_discover_levels(spec, log)
  db_design(spec)
}

# Aliased columns of X dropped, with the in-memory path's message.
db_drop_aliased <- function(cp, spec) {
  alias <- db_aliased_columns(cp$xp)
  cp$dropped <- character()
  if (length(alias) == 0L) return(cp)
  X <- spec$X
  dropped <- X$names[alias]
  mlm_inform(c("The fixed-effect model matrix is rank deficient: dropping {length(dropped)} column{?s} that {?is a/are} linear combination{?s} of the others.",
               i = "Dropped: {.var {dropped}}."),
             "mlmfit_message_rank")
  cp$xp <- xp_drop_columns(cp$xp, alias)
  cp$dropped <- dropped
  cp$keep <- setdiff(seq_along(X$names), alias)
  cp
}

# A zero-row model matrix that carries the names, assign and contrasts of X
# (what new_lmm() and the methods read from it).
db_model_matrix_stub <- function(spec, cp) {
  keep <- cp$keep %||% seq_along(spec$X$names)
  X <- matrix(numeric(0), 0L, length(keep), dimnames = list(NULL, spec$X$names[keep]))
  attr(X, "assign") <- spec$X$assign[keep]
  attr(X, "contrasts") <- spec$X$contrasts
  X
}

# What the fit keeps of the database: enough to write the SQL of the rows
# (fitted values, residuals, predictions) and to show the queries sent.
db_fit_info <- function(spec, cp, log) {
  keep <- cp$keep %||% seq_along(spec$X$names)
  spec$X$sql <- spec$X$sql[keep]
  spec$X$names <- spec$X$names[keep]
  spec$X$assign <- spec$X$assign[keep]
  spec$tbl <- NULL
  list(con = spec$con, backend = spec$backend, spec = spec, blocks_sql = cp$raw_blocks, keys = cp$keys,
       n_subset = cp$moments$n_subset, n = cp$moments$n, missing = cp$moments$missing,
       queries = db_log_table(log), seconds = proc.time()[["elapsed"]] - log$started,
       re_tables = new.env(parent = emptyenv()))
}

db_new_lmm <- function(engine, spec, cp, mc, formula, parsed, REML, control, log) {
  if (!is.finite(engine$deviance)) {
    mlm_abort(c("The model could not be fitted: the deviance is not finite.",
                i = "Check that the response varies within groups beyond what the random effects describe, and look for predictors with extreme values."),
              "mlmfit_error_fit")
  }
  if (residual_vanishes(engine) || identical(engine$optinfo$ray, "falling")) {
    mlm_abort(c("The model reproduces the response exactly: the residual variance is estimated as zero and the likelihood has no maximum.",
                i = "Check that the response is the intended variable and not a function of the predictors."),
              "mlmfit_error_fit")
  }
  model <- list(frame = NULL, X = db_model_matrix_stub(spec, cp), y = NULL, weights = NULL, offset = NULL,
                terms = spec$X$terms, xlevels = spec$X$xlevels, dropped = cp$dropped)
  fit <- new_lmm(engine, model, cp$re, mc, formula, parsed, REML, control)
  fit$devcomp$n <- cp$xp$n
  fit$db <- db_fit_info(spec, cp, log)
  class(fit) <- c("mlmfit_db", class(fit))
  fit
}

# fit_from_engine() for a database fit: a new engine result (e.g. the ML
# refit of a REML fit) on the same cross-products.
db_fit_from_engine <- function(fit, engine, REML) {
  engine$xp <- fit$xp
  mc <- fit$call
  if (!identical(REML, fit$REML)) mc$REML <- REML
  model <- list(frame = NULL, X = fit$X, y = NULL, weights = NULL, offset = NULL, terms = fit$terms,
                xlevels = fit$xlevels, dropped = fit$dropped)
  out <- new_lmm(engine, model, fit$re, mc, fit$formula, list(fixed = fit$fixed_formula), REML, fit$control)
  out$devcomp$n <- fit$devcomp$n
  out$db <- fit$db
  class(out) <- class(fit)
  out
}
