# Methods of fits to database tables (class "mlmfit_db" before the class of
# the in-memory fit): what needs only the cross-products is inherited; what
# needs rows is computed in the database as a lazy table, or refused with
# a classed error that says how to get it (see ?database-fits).

#' @export
nobs.mlmfit_db <- function(object, ...) object$devcomp$n

#' @export
print.mlmfit_db <- function(x, ...) {
  NextMethod()
  db <- x$db
  dropped <- db$n_subset - db$n
  cat("Database: ", db$backend, "; ", format(db$n, big.mark = ","), " rows used",
      if (dropped > 0) paste0(", ", format(dropped, big.mark = ","), " dropped for missing values"),
      "; ", nrow(db$queries), if (nrow(db$queries) == 1L) " query, " else " queries, ",
      format(round(sum(db$queries$seconds), 2)), " s",
      if (identical(db$method, "compressed")) paste0("; fitted from ", format(db$cells, big.mark = ","), " distinct rows"),
      if (identical(db$method, "pirls")) paste0("; PIRLS in the database: ", db$passes, " passes"), "\n", sep = "")
  invisible(x)
}

#' @export
summary.mlmfit_db <- function(object, ...) {
  dots <- list(...)
  if (!is.null(dots$ddf) && match_ddf(dots$ddf) == "Kenward-Roger") db_needs_rows("Kenward-Roger degrees of freedom")
  out <- NextMethod()
  out$residuals <- db_residual_quantiles(object)
  out
}

#' @export
confint.mlmfit_db <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"), ...) {
  method <- match.arg(method)
  if (method == "boot") db_needs_rows("A parametric bootstrap")
  if (method == "profile" && identical(object$db$method, "pirls")) {
    db_needs_rows("Profile-likelihood intervals of a GLMM fitted by PIRLS in the database")
  }
  NextMethod()
}

#' @export
update.mlmfit_db <- function(object, formula., ..., evaluate = TRUE) {
  dots <- list(...)
  # a change of REML alone: refit from the cross-products, no query
  if (missing(formula.) && identical(names(dots), "REML") && inherits(object, "mlmfit_lmm") &&
      is.logical(dots$REML) && length(dots$REML) == 1L && !is.na(dots$REML) && evaluate) {
    if (identical(dots$REML, object$REML)) return(object)
    engine <- engine_call(lmm_refit_xp_cpp(object$xp, engine_templates(object$re), object$theta, object$lower,
                                           dots$REML, object$control))
    return(db_fit_from_engine(object, engine, dots$REML))
  }
  NextMethod()
}

#' @export
fitted.mlmfit_db <- function(object, ...) {
  source <- db_row_source(object)
  eta <- db_eta_query(object, source, seq_along(object$re$terms))
  db_with_column(object, eta, ".fitted", db_inverse_link(object, db_ident(object$db$con, ".eta")),
                 source$spec$columns$names)
}

#' @export
residuals.mlmfit_db <- function(object, type = NULL, scaled = FALSE, ...) {
  glmm <- inherits(object, "mlmfit_glmm")
  type <- type %||% (if (glmm) "deviance" else "response")
  con <- object$db$con
  source <- db_row_source(object)
  eta_sql <- db_eta_query(object, source, seq_along(object$re$terms), extra = c("response", "weights"))
  y <- db_ident(con, "mlm_y")
  w <- if (!is.null(source$spec$weights_sql) || !is.null(source$spec$glmm_pw_sql)) db_ident(con, "mlm_pw")
  r <- db_residual_sql(object, type, y, db_ident(con, ".eta"), w)
  if (scaled && !glmm) r <- paste0("(", r, ") / ", db_number(object$sigma))
  db_with_column(object, eta_sql, ".resid", r, source$spec$columns$names)
}

# Residuals of each type in SQL (lmm: response, pearson; glmm: also
# working and deviance for the binomial and Poisson families).
db_residual_sql <- function(fit, type, y, eta, w) {
  mu <- db_inverse_link(fit, eta)
  sw <- if (is.null(w)) "" else paste0(" * SQRT(", w, ")")
  if (!inherits(fit, "mlmfit_glmm")) {
    type <- match.arg(type, c("response", "pearson", "working", "deviance"))
    r <- paste0(y, " - ", eta)
    return(if (type %in% c("pearson", "deviance")) paste0("(", r, ")", sw) else r)
  }
  type <- match.arg(type, c("deviance", "pearson", "working", "response"))
  dist <- fit$family_info$dist
  con <- fit$db$con
  log_of <- function(x) db_translate(con, quote(log(.x)), c(.x = x), emptyenv(), quote(log(mu)))
  switch(type,
    response = paste0(y, " - ", mu),
    working = if (fit$family$link == "log") paste0("(", y, " - ", mu, ") / ", mu) else
      paste0("(", y, " - ", mu, ") / (", mu, " * (1.0 - ", mu, "))"),
    pearson = if (dist == "poisson") paste0("(", y, " - ", mu, ") / SQRT(", mu, ")", sw) else
      paste0("(", y, " - ", mu, ") / SQRT(", mu, " * (1.0 - ", mu, "))", sw),
    deviance = {
      d <- if (dist == "poisson") {
        paste0("2.0 * (CASE WHEN ", y, " > 0 THEN ", y, " * ", log_of(paste0(y, " / ", mu)), " ELSE 0.0 END - (",
               y, " - ", mu, "))")
      } else {
        paste0("-2.0 * (", y, " * ", log_of(mu), " + (1.0 - ", y, ") * ", log_of(paste0("1.0 - ", mu)), ")")
      }
      if (!is.null(w)) d <- paste0(w, " * ", d)
      paste0("CASE WHEN ", y, " > ", mu, " THEN SQRT(", d, ") ELSE -SQRT(", d, ") END")
    })
}

#' @export
predict.mlmfit_db <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                              type = c("link", "response"), se.fit = FALSE, ...) {
  type <- match.arg(type)
  if (!is.null(newdata) && !inherits(newdata, "tbl_sql")) {
    # an in-memory data frame: the in-memory method, vectors as usual
    return(NextMethod())
  }
  if (se.fit) {
    mlm_abort(c("{.arg se.fit} is not available for predictions computed in the database.",
                i = "Collect the rows and call {.fn predict} with a data frame as {.arg newdata}."),
              "mlmfit_error_database_rows")
  }
  terms_used <- db_select_terms(object, re.form)
  source <- db_row_source(object, newdata)
  if (!is.null(newdata) && length(terms_used) && !allow.new.levels) db_check_new_levels(object, source, terms_used)
  eta <- db_eta_query(object, source, terms_used, new_levels_zero = !is.null(newdata))
  value <- db_ident(object$db$con, ".eta")
  if (type == "response") value <- db_inverse_link(object, value)
  db_with_column(object, eta, ".prediction", value, source$spec$columns$names)
}

# re.form for a database fit: NULL (all terms), NA or ~0 (none), or
# a formula naming some of the model's terms.
db_select_terms <- function(fit, re.form) {
  if (is.null(re.form)) return(seq_along(fit$re$terms))
  if (identical(re.form, NA) || (inherits(re.form, "formula") && length(find_bars(re.form[[length(re.form)]])) == 0L)) {
    return(integer())
  }
  wanted <- parse_mixed_formula(stats::as.formula(call("~", quote(.y), re.form[[length(re.form)]])))$random
  keys <- vapply(fit$re$terms, function(tm) paste(tm$label, deparse1(tm$lhs)), "")
  idx <- match(vapply(wanted, function(w) paste(w$label, deparse1(w$lhs)), ""), keys)
  if (anyNA(idx)) {
    mlm_abort("{.arg re.form} names a random-effect term that is not in the model.", "mlmfit_error_argument")
  }
  sort(unique(idx))
}

# Levels of newdata that the fit has not seen: an error unless
# allow.new.levels (one query over newdata).
db_check_new_levels <- function(fit, source, terms_used) {
  con <- fit$db$con
  for (b in unique(vapply(fit$re$terms[terms_used], `[[`, 0, "block"))) {
    blk <- fit$re$blocks[[b]]
    keys <- vapply(source$spec$vars[blk$keys], `[[`, "", "key_sql")
    tab <- db_ident(con, db_re_table(fit, b))
    on <- paste0(keys, " = ", tab, ".", db_ident(con, paste0("mlm_k", seq_along(keys))), collapse = " AND ")
    sql <- paste0("SELECT ", paste(keys, collapse = ", "), " FROM (", source$spec$source_sql, ") ",
                  db_ident(con, "mlm_source"), " LEFT JOIN ", tab, " ON ", on, " WHERE ",
                  tab, ".", db_ident(con, "mlm_k1"), " IS NULL AND ",
                  paste(keys, "IS NOT NULL", collapse = " AND "))
    log <- db_new_log(con, progress = FALSE)
    res <- db_query(log, sql, paste("looking for new levels of", blk$label), max_rows = 5)
    shown <- if (is.null(res)) "more than 5" else if (nrow(res)) do.call(paste, c(lapply(res, as.character), sep = ":"))
    if (length(shown)) {
      mlm_abort(c("{.arg newdata} has levels of {.var {blk$label}} that the fit has not seen: {.val {shown}}.",
                  i = "Use {.code allow.new.levels = TRUE} to predict those rows at the population level for this term."),
                "mlmfit_error_new_levels", variable = blk$label)
    }
  }
}

#' @export
model.frame.mlmfit_db <- function(formula, ...) {
  spec <- formula$db$spec
  con <- formula$db$con
  select <- paste(vapply(spec$vars, `[[`, "", "sql"), "AS", db_ident(con, names(spec$vars)))
  db_lazy(formula, paste0("SELECT ", paste(select, collapse = ", "), " FROM (", spec$source_sql, ") ",
                          db_ident(con, "mlm_source"), " WHERE (",
                          paste(c(spec$subset_sql, spec$complete_sql), collapse = ") AND ("), ")"))
}

#' @export
model.matrix.mlmfit_db <- function(object, ...) {
  spec <- object$db$spec
  con <- object$db$con
  select <- paste(spec$X$sql, "AS", db_ident(con, spec$X$names))
  db_lazy(object, paste0("SELECT ", paste(select, collapse = ", "), " FROM (", db_frame_sql(spec), ") ",
                         db_ident(con, "mlm_frame")))
}

# `what`: plain text, e.g. "simulate()".
db_needs_rows <- function(what) {
  mlm_abort(c("{what} needs every row of the data in memory, and this model was fitted in a database.",
              i = "Collect the columns the model uses with {.fn dplyr::collect} and fit again with a data frame."),
            "mlmfit_error_database_rows")
}

#' @export
weights.mlmfit_db <- function(object, ...) db_needs_rows("weights()")
#' @export
simulate.mlmfit_db <- function(object, ...) db_needs_rows("simulate()")
#' @export
refit.mlmfit_db <- function(object, ...) db_needs_rows("refit()")
#' @export
hatvalues.mlmfit_db <- function(model, ...) db_needs_rows("hatvalues()")
#' @export
cooks.distance.mlmfit_db <- function(model, ...) db_needs_rows("cooks.distance()")
#' @export
plot.mlmfit_db <- function(x, ...) db_needs_rows("plot() of the fit")
#' @export
augment.mlmfit_db <- function(x, ...) db_needs_rows("augment()")

# The quantiles of the scaled (Pearson) residuals that summary() shows,
# computed in the database: one sort (a window function numbers the
# residuals), then R's default quantile (type 7) from the ranks around
# each probability.
db_residual_quantiles <- function(fit) {
  con <- fit$db$con
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
  log <- db_new_log(con)
  at <- db_query(log, sql, "quantiles of the residuals")
  v <- as.double(at[[1L]])[match(ranks, as.double(at[[2L]]))]
  lo <- v[match(floor(h), ranks)]
  hi <- v[match(ceiling(h), ranks)]
  lo + (h - floor(h)) * (hi - lo)
}

# show_query() and explain() of dplyr for a fit: the SQL it sent.
show_query_mlmfit_db <- function(x, ...) {
  q <- x$db$queries
  cat("<", nrow(q), " queries sent to ", x$db$backend, ", ", format(round(sum(q$seconds), 3)), " s>\n", sep = "")
  for (i in seq_len(nrow(q))) {
    cat("\n-- ", i, ". ", q$what[i], " (", format(round(q$seconds[i], 3)), " s, ", q$rows[i], " rows)\n", sep = "")
    cat(q$sql[i], "\n", sep = "")
  }
  invisible(x)
}

explain_mlmfit_db <- function(x, ...) {
  q <- x$db$queries
  con <- x$db$con
  prefix <- if (inherits(con, "SQLiteConnection")) "EXPLAIN QUERY PLAN " else "EXPLAIN "
  for (i in seq_len(nrow(q))) {
    if (startsWith(q$sql[i], "--")) next
    cat("\n-- ", i, ". ", q$what[i], "\n", sep = "")
    plan <- tryCatch(DBI::dbGetQuery(con, paste0(prefix, q$sql[i])), error = function(e) {
      mlm_abort(c("The database could not explain the query.", x = conditionMessage(e)), "mlmfit_error_database")
    })
    print(plan)
  }
  invisible(x)
}

# For anova() of several fits (R/infer-anova.R): what must agree between fits
# compared by likelihood-ratio tests. A database fit is identified by its
# rows (source, subset, missing-value rule) and the SQL of its response
# and design, an in-memory fit by its values.
response_values <- function(m) {
  if (inherits(m, "mlmfit_db")) {
    s <- m$db$spec
    return(list(s$source_sql, s$subset_sql, s$response$sql, s$offset_sql, nobs(m)))
  }
  unname(as.vector(stats::model.response(stats::model.frame(m))))
}

fixed_design_values <- function(m) {
  if (inherits(m, "mlmfit_db")) {
    s <- m$db$spec
    return(list(s$source_sql, s$subset_sql, unname(s$X$sql), colnames(m$X)))
  }
  stats::model.matrix(m)
}

# ranova() of a database fit whose last random-effect term is dropped: the
# linear model's log-likelihood from the same cross-products (as
# stats:::logLik.lm computes it, REML or ML).
db_linear_model <- function(model) {
  xp <- model$xp
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

# type3_matrices() (R/infer-contrasts-type3.R) for a database fit: the columns of
# X, of X with treatment contrasts and of each term written out in full
# (model.matrix(~ 0 + term)) as SQL; their unweighted cross-products from
# one aggregate query; and rows R with R'R equal to them (a pivoted
# Cholesky factor), on which the hypotheses are computed as on the data.
db_type3_matrices <- function(fit, treatment, rd = TRUE) {
  spec <- fit$db$spec
  con <- fit$db$con
  labels <- if (rd) attr(fit$terms, "term.labels") else character()
  X <- list(names = colnames(fit$X), sql = spec$X$sql[colnames(fit$X)], assign = attr(fit$X, "assign"))
  Xt <- if (!treatment) db_design_columns(spec, fit$terms, spec$alias, "fixed-effect", treatment = TRUE)
  rd <- lapply(labels, function(t) {
    db_design_columns(spec, stats::terms(stats::as.formula(paste("~ 0 +", t), env = spec$formula_env)), spec$alias,
                      "fixed-effect")
  })
  cols <- c(X$sql, Xt$sql, unlist(lapply(rd, `[[`, "sql")), "1.0")
  K <- length(cols)
  from <- paste0("SELECT ", paste(cols, "AS", db_ident(con, paste0("mlm_g", seq_len(K))), collapse = ", "),
                 " FROM (", db_frame_sql(spec), ") ", db_ident(con, "mlm_frame"))
  g <- db_ident(con, paste0("mlm_g", seq_len(K)))
  agg <- character()
  for (j in seq_len(K)) for (i in j:K) agg[paste0("g_", i, "_", j)] <- db_sum_product(con, c(g[i], g[j]), FALSE)
  log <- db_new_log(con)
  res <- unlist(db_grouped_sums(log, from, character(), agg, "cross-products of the type III designs")[1L, ])
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
  kinds <- vapply(spec$vars, `[[`, "", "kind")
  list(X = take(seq_len(p), X$names, X$assign),
       X_treatment = if (!treatment) take(p + seq_len(pt), Xt$names, Xt$assign),
       rd = rd_mats, data_classes = ifelse(kinds == "numeric", "numeric", kinds), ones = R[, K])
}
