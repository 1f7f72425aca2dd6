# Methods of fits to database tables (class "mlmfit_db" before the class of
# the in-memory fit; the spec has no rows and says in spec$db how to read
# them). What needs only the cross-products is inherited; what needs rows
# is computed in the database as a lazy table (db-rows.R), or refused by
# refuse_without_rows() with an error that says how to get the rows (see
# ?database-fits).

#' @export
print.mlmfit_db <- function(x, ...) {
  NextMethod()
  db <- spec_db(x)
  n <- nobs(x)
  dropped <- db$n_subset - n
  q <- db$queries
  cat("Database: ", db$backend, "; ", format(n, big.mark = ","), " rows used",
      if (dropped > 0) paste0(", ", format(dropped, big.mark = ","), " dropped for missing values"),
      "; ", nrow(q), if (nrow(q) == 1L) " query, " else " queries, ", format(round(sum(q$seconds), 2)), " s",
      if (identical(db$method, "compressed")) paste0("; fitted from ", format(db$cells, big.mark = ","), " distinct rows"),
      if (identical(db$method, "pirls")) paste0("; PIRLS in the database: ", fit_optinfo(x)$pirls_passes, " passes"),
      "\n", sep = "")
  invisible(x)
}

#' @export
summary.mlmfit_db <- function(object, ...) {
  dots <- list(...)
  if (!is.null(dots$ddf) && match_ddf(dots$ddf) == "Kenward-Roger") {
    refuse_without_rows(object, "Kenward-Roger degrees of freedom")
  }
  NextMethod()
}

#' @export
confint.mlmfit_db <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"), ...) {
  method <- match.arg(method)
  if (method == "boot") refuse_without_rows(object, "A parametric bootstrap")
  if (method == "profile" && inherits(object, "mlmfit_glmm")) {
    if (!identical(spec_db(object)$method, "compressed")) {
      refuse_without_rows(object, "Profile-likelihood intervals of a GLMM fitted by PIRLS in the database")
    }
    # the profile of the fit to the distinct rows, which has the same
    # likelihood up to a constant
    return(stats::confint(db_compressed_fit(object), parm = parm, level = level, method = method, ...))
  }
  NextMethod()
}

# profile() as confint(method = "profile"): from the cross-products for a
# linear mixed model; for a GLMM, the profile of the fit to the distinct
# rows of a compressed table (the same likelihood up to a constant),
# refused after PIRLS in the database.
#' @export
profile.mlmfit_db <- function(fitted, ...) {
  if (inherits(fitted, "mlmfit_glmm")) {
    if (!identical(spec_db(fitted)$method, "compressed")) {
      refuse_without_rows(fitted, "The likelihood profile of a GLMM fitted by PIRLS in the database")
    }
    return(stats::profile(db_compressed_fit(fitted), ...))
  }
  NextMethod()
}

#' @export
update.mlmfit_db <- function(object, formula., ..., evaluate = TRUE) {
  dots <- list(...)
  # a change of REML alone: refit from the cross-products, no query
  if (missing(formula.) && identical(names(dots), "REML") && inherits(object, "mlmfit_lmm") &&
      is.logical(dots$REML) && length(dots$REML) == 1L && !is.na(dots$REML) && evaluate) {
    if (identical(dots$REML, fit_reml(object))) return(object)
    call <- fit_call(object)
    call$REML <- dots$REML
    return(new_lmm_fit(fit_spec(object), lmm_refit_engine(object, REML = dots$REML), call, dots$REML,
                       fit_control(object)))
  }
  NextMethod()
}

#' @export
weights.mlmfit_db <- function(object, ...) refuse_without_rows(object, "weights()")
#' @export
simulate.mlmfit_db <- function(object, ...) refuse_without_rows(object, "simulate()")
#' @export
refit.mlmfit_db <- function(object, ...) refuse_without_rows(object, "refit()")
#' @export
hatvalues.mlmfit_db <- function(model, ...) refuse_without_rows(model, "hatvalues()")
#' @export
cooks.distance.mlmfit_db <- function(model, ...) refuse_without_rows(model, "cooks.distance()")
#' @export
plot.mlmfit_db <- function(x, ...) refuse_without_rows(x, "plot() of the fit")
#' @export
augment.mlmfit_db <- function(x, ...) refuse_without_rows(x, "augment()")
#' @export
influence.mlmfit_db <- function(model, ...) refuse_without_rows(model, "influence() (refits without each observation or group)")

# The quantiles of the scaled (Pearson) residuals that summary() shows,
# computed in the database: one sort (a window function numbers the
# residuals), then R's default quantile (type 7) from the ranks around
# each probability.
db_residual_quantiles <- function(fit) {
  con <- spec_db(fit)$con
  res <- residuals(fit, type = "pearson", scaled = TRUE)
  n <- nobs(fit)
  h <- (n - 1) * c(0, 0.25, 0.5, 0.75, 1) + 1
  ranks <- sort(unique(c(floor(h), ceiling(h))))
  r <- db_ident(con, ".resid")
  sql <- paste0("SELECT ", r, ", ", db_ident(con, "mlm_rank"), " FROM (SELECT ", r,
                ", ROW_NUMBER() OVER (ORDER BY ", r, ") AS ", db_ident(con, "mlm_rank"),
                " FROM (", dbplyr::sql_render(res), ") ", db_ident(con, "mlm_resid"), " WHERE ", r,
                " IS NOT NULL) ", db_ident(con, "mlm_ranked"), " WHERE ", db_ident(con, "mlm_rank"), " IN (",
                paste(ranks, collapse = ", "), ")")
  at <- db_query(db_new_log(con), sql, "quantiles of the residuals")
  v <- as.double(at[[1L]])[match(ranks, as.double(at[[2L]]))]
  lo <- v[match(floor(h), ranks)]
  hi <- v[match(ceiling(h), ranks)]
  stats::setNames(lo + (h - floor(h)) * (hi - lo), c("0%", "25%", "50%", "75%", "100%"))
}

# show_query() and explain() of dplyr for a fit: the SQL it sent.
show_query_mlmfit_db <- function(x, ...) {
  q <- spec_db(x)$queries
  cat("<", nrow(q), " queries sent to ", spec_db(x)$backend, ", ", format(round(sum(q$seconds), 3)), " s>\n", sep = "")
  for (i in seq_len(nrow(q))) {
    cat("\n-- ", i, ". ", q$what[i], " (", format(round(q$seconds[i], 3)), " s, ", q$rows[i], " rows)\n", sep = "")
    cat(q$sql[i], "\n", sep = "")
  }
  invisible(x)
}

explain_mlmfit_db <- function(x, ...) {
  q <- spec_db(x)$queries
  con <- spec_db(x)$con
  prefix <- if (inherits(con, "SQLiteConnection")) "EXPLAIN QUERY PLAN " else "EXPLAIN "
  for (i in seq_len(nrow(q))) {
    if (!startsWith(q$sql[i], "SELECT")) next
    cat("\n-- ", i, ". ", q$what[i], "\n", sep = "")
    plan <- tryCatch(DBI::dbGetQuery(con, paste0(prefix, q$sql[i])), error = function(e) {
      mlm_abort(c("The database could not explain the query.", x = conditionMessage(e)), "mlmfit_error_database")
    })
    print(plan)
  }
  invisible(x)
}

# For anova() of several fits (response_values(), fixed_design_values()):
# a fit to a database table is identified by its rows (source, subset,
# missing-value rule, number) and the SQL of its response or design.
db_rows_identity <- function(fit, what = c("response", "design")) {
  db <- spec_db(fit)
  rows <- list(db$source_sql, db$subset_sql, nobs(fit))
  if (match.arg(what) == "response") return(c(rows, list(db$vars[[db$response]]$sql, db$offset_sql)))
  c(rows, list(unname(db$x_sql), spec_x_names(fit)))
}

# ranova() of a database fit whose last random-effect term is dropped: the
# linear model's log-likelihood from the same cross-products (as
# stats:::logLik.lm computes it, REML or ML).
db_linear_model <- function(model) {
  xp <- fit_xp(model)
  P <- xp$p + 1L
  XX <- xp$XX
  p <- xp$p
  A <- XX[seq_len(p), seq_len(p), drop = FALSE]
  rss <- XX[P, P] - if (p > 0L) sum(XX[P, seq_len(p)] * solve(A, XX[seq_len(p), P])) else 0
  structure(list(n = xp$n, p = p, rss = rss, sum_log_weights = xp$sum_log_weights,
                 log_det = if (p > 0L) as.numeric(determinant(A, logarithm = TRUE)$modulus) else 0),
            class = c("mlmfit_db_lm", "lm"))
}

#' @export
logLik.mlmfit_db_lm <- function(object, REML = FALSE, ...) {
  N <- object$n - if (REML) object$p else 0
  val <- 0.5 * (object$sum_log_weights - N * (log(2 * pi) + 1 - log(N) + log(object$rss)))
  if (REML) val <- val - 0.5 * object$log_det
  structure(val, nall = object$n, nobs = N, df = object$p + 1, class = "logLik")
}

#' @export
nobs.mlmfit_db_lm <- function(object, ...) object$n

# spec_fixed_designs() (R/spec.R) for a database fit: the
# columns of X, of X with treatment contrasts and of each term written out
# in full (model.matrix(~ 0 + term)) as SQL; their unweighted
# cross-products from one aggregate query; and rows R with R'R equal to
# them (a pivoted Cholesky factor), on which the hypotheses are computed as
# on the data.
db_fixed_designs <- function(fit, treatment, rd = TRUE) {
  db <- spec_db(fit)
  con <- db$con
  tt <- spec_fixed_terms(fit)
  labels <- if (rd) attr(tt, "term.labels") else character()
  X <- list(names = spec_x_names(fit), sql = db$x_sql, assign = spec_assign(fit))
  Xt <- if (!treatment) db_design_columns(db, tt, db$alias, "fixed-effect", treatment = TRUE)
  rd <- lapply(labels, function(t) {
    db_design_columns(db, stats::terms(stats::as.formula(paste("~ 0 +", t), env = db$formula_env)), db$alias,
                      "fixed-effect")
  })
  cols <- c(X$sql, Xt$sql, unlist(lapply(rd, `[[`, "sql")), "1.0")
  K <- length(cols)
  from <- paste0("SELECT ", paste(cols, "AS", db_ident(con, paste0("mlm_g", seq_len(K))), collapse = ", "),
                 " FROM (", db_frame_sql(db), ") ", db_ident(con, "mlm_frame"))
  g <- db_ident(con, paste0("mlm_g", seq_len(K)))
  agg <- character()
  for (j in seq_len(K)) for (i in j:K) agg[paste0("g_", i, "_", j)] <- db_sum_product(con, c(g[i], g[j]), FALSE)
  res <- unlist(db_grouped_sums(db_new_log(con), from, character(), agg, "cross-products of the type III designs")[1L, ])
  G <- matrix(0, K, K)
  for (j in seq_len(K)) for (i in j:K) G[i, j] <- G[j, i] <- res[[paste0("g_", i, "_", j)]]
  ch <- suppressWarnings(chol(G, pivot = TRUE))
  rank <- attr(ch, "rank")
  if (rank < K) ch[(rank + 1L):K, ] <- 0
  R <- ch[, order(attr(ch, "pivot")), drop = FALSE]
  take <- function(idx, names, assign) {
    m <- R[, idx, drop = FALSE]
    dimnames(m) <- list(NULL, names)
    if (!is.null(assign)) attr(m, "assign") <- assign
    m
  }
  p <- length(X$sql)
  pt <- length(Xt$sql)
  at <- p + pt
  rd_mats <- lapply(rd, function(r) {
    m <- take(at + seq_along(r$sql), r$names, NULL)
    at <<- at + length(r$sql)
    m
  })
  list(X = take(seq_len(p), X$names, X$assign), X_treatment = if (!treatment) take(p + seq_len(pt), Xt$names, Xt$assign),
       rd = rd_mats, ones = R[, K])
}
