# glmm() on a database table. A GLMM's likelihood depends on the rows only
# through sums over rows that share every value of the model's variables:
# when those values repeat (binary outcomes, counts, categorical
# predictors, group identifiers), one GROUP BY over every column the model
# reads turns the table into a small table of distinct rows with their
# counts, which the in-memory engine fits exactly with the counts as
# frequency weights. Otherwise the fit runs PIRLS with one aggregate query
# per iteration (db-pirls.R).

db_glmm <- function(mc, formula, data, fam, nAGQ, na.action, control, caller_env) {
  if (!fam$dist %in% c("binomial", "poisson")) {
    mlm_abort(c("A database fit of {.fn glmm} is available for the binomial and Poisson families.",
                i = "Collect the rows with {.fn dplyr::collect} and fit in memory for the {.val {fam$family$family}} family."),
              "mlmfit_error_database_rows")
  }
  parsed <- parse_mixed_formula(formula)
  db_require()
  log <- db_new_log(dbplyr::remote_con(data))
  on.exit(db_drop_temp_tables(log), add = TRUE)
  spec <- db_prepare_spec(mc, parsed, data, caller_env, na.action, log, "any")
  t0 <- proc.time()[["elapsed"]]
  cells <- db_compress(spec, log)
  if (!is.null(cells)) {
    fit <- db_glmm_compressed(cells, spec, mc, formula, fam, nAGQ, control, log)
  } else {
    if (nAGQ != 1L) {
      mlm_abort(c("This model's variables take too many distinct values for an exact compression of the table, and a fit with one query per PIRLS iteration uses the Laplace approximation only.",
                  i = "Use {.code nAGQ = 1}."),
                "mlmfit_error_nagq")
    }
    fit <- db_glmm_pirls(spec, mc, formula, parsed, fam, control, log)
  }
  fit$db$glmm_seconds <- proc.time()[["elapsed"]] - t0
  report_glmm_problems(fit)
  fit
}

# The columns of the table that the model reads (response, predictors,
# grouping factors, weights and offset).
db_model_columns <- function(spec) {
  exprs <- c(lapply(spec$vars, `[[`, "inner"), spec$extra_exprs)
  used <- unique(unlist(lapply(exprs, expression_vars)))
  intersect(spec$columns$names, used)
}

# One GROUP BY over the columns the model reads, for the rows that pass
# `subset`; the incomplete rows fall into one group of their own (all
# NULL, flag 0) so that they are counted in the same pass. NULL when there
# are more distinct rows than mlmfit.db_compress_max_rows (default 1e6).
db_compress <- function(spec, log) {
  con <- spec$con
  cols <- db_model_columns(spec)
  limit <- getOption("mlmfit.db_compress_max_rows", 1e6)
  flag <- db_ident(con, "mlm_complete")
  inner <- paste0("SELECT ", paste(c(paste0("CASE WHEN ", spec$complete_sql, " THEN ", spec$columns$key_sql[cols], " END AS ",
                                           db_ident(con, cols)),
                                    paste0("CASE WHEN ", spec$complete_sql, " THEN 1.0 ELSE 0.0 END AS ", flag)),
                                  collapse = ", "),
                  " FROM (", spec$source_sql, ") ", db_ident(con, "mlm_source"),
                  if (!is.null(spec$subset_sql)) paste0(" WHERE (", spec$subset_sql, ")"))
  keys <- stats::setNames(c(db_ident(con, cols), flag), c(cols, "mlm_complete"))
  res <- db_grouped_sums(log, inner, keys, c(mlm_count = db_cast_double(con, "COUNT(*)")),
                         "counting the distinct rows of the model's columns", max_rows = limit + 1)
  if (is.null(res)) return(NULL)
  n_subset <- sum(res$mlm_count)
  complete <- res$mlm_complete == 1
  n <- sum(res$mlm_count[complete])
  db_check_counts(spec, n_subset, n)
  cells <- res[complete, c(cols, "mlm_count"), drop = FALSE]
  for (cl in cols) if (inherits(cells[[cl]], "integer64")) cells[[cl]] <- as.double(cells[[cl]])
  rownames(cells) <- NULL
  attr(cells, "n_subset") <- n_subset
  cells
}

# Empty tables and na.fail, from the counts of rows.
db_check_counts <- function(spec, n_subset, n) {
  if (n_subset == 0) {
    mlm_abort(c(if (is.null(spec$subset_sql)) "The table has no rows." else "No observations are left after {.arg subset}.",
                i = "Check the table and the condition given as {.arg subset}."),
              "mlmfit_error_empty")
  }
  if (spec$na_action == "na.fail" && n < n_subset) {
    mlm_abort(c("Some rows have missing values and {.arg na.action} is {.fn na.fail}.",
                i = "Remove those rows, or use {.code na.action = na.omit}."),
              "mlmfit_error_missing")
  }
  if (n == 0) {
    mlm_abort("No observations remain after the removal of rows with missing values.", "mlmfit_error_empty")
  }
}

# The in-memory fit of the distinct rows, their counts as frequency weights
# (times the prior weights), and the fit object of the table's rows: its
# number of observations, and for binomial counts (trials > 1) the
# log-likelihood's constant of the rows rather than of the merged rows.
db_glmm_compressed <- function(cells, spec, mc, formula, fam, nAGQ, control, log) {
  if (".mlm_count" %in% names(cells)) stop("internal: a column is named .mlm_count")
  names(cells)[names(cells) == "mlm_count"] <- ".mlm_count"
  weights <- if (is.null(mc$weights)) quote(.mlm_count) else call("*", quote(.mlm_count), call("(", mc$weights))
  call <- call("glmm", formula = formula, data = cells, family = fam$family, nAGQ = nAGQ, weights = weights,
               control = control)
  if (!is.null(mc$offset)) call$offset <- mc$offset
  fit <- eval(call, list(glmm = glmm))
  counts <- cells$.mlm_count
  fit$devcomp$n <- sum(counts)
  if (fam$dist == "binomial" && nAGQ <= 1L) {
    shift <- db_binomial_constant(fit, counts)
    fit$devcomp$aic <- fit$devcomp$aic + shift
    fit$devcomp$criterion <- fit$devcomp$criterion + shift
  }
  fit$call <- mc
  fit$re <- db_attach_block_sql(fit$re, spec)
  spec <- db_glmm_response_sql(spec, fit$response_levels)
  cp <- list(keys = db_keys_from_fit(fit, spec), keep = match(colnames(fit$X), spec$X$names),
             moments = list(n_subset = attr(cells, "n_subset"), n = sum(counts), missing = NULL))
  fit$db <- db_fit_info(spec, cp, log)
  fit$db$method <- "compressed"
  fit$db$cells <- nrow(cells)
  class(fit) <- c("mlmfit_db", class(fit))
  fit
}

# -2 log-likelihood of the table's rows minus that of the merged rows: a
# row of c rows with k successes of m trials each (trials given as
# weights) has the binomial coefficient choose(c m, c k) where the rows had
# choose(m, k)^c. (With cbind() the trials are kept per row: no change.)
db_binomial_constant <- function(fit, counts) {
  if (!is.null(fit$trials)) return(0)
  w <- fit$prior_weights %||% rep(1, length(counts))
  m <- w / counts
  k <- round(fit$y * m)
  -2 * sum(counts * lchoose(m, k) - lchoose(counts * m, counts * k))
}

# The key values of each level of each grouping factor of an in-memory fit
# of the distinct rows (for the temporary tables of random effects).
db_keys_from_fit <- function(fit, spec) {
  lapply(stats::setNames(names(fit$re$blocks), names(fit$re$blocks)), function(lab) {
    blk <- fit$re$blocks[[lab]]
    term <- spec$random[[match(lab, vapply(spec$random, `[[`, "", "label"))]]
    frame <- fit$frame
    cols <- lapply(term$keys, function(k) frame[[k]])
    first <- match(blk$levels, as.character(blk$factor))
    out <- lapply(cols, function(v) {
      v <- v[first]
      if (is.factor(v)) as.character(v) else v
    })
    stats::setNames(as.data.frame(out, stringsAsFactors = FALSE), paste0("key", seq_along(out)))
  })
}

# The grouping keys and the SQL of the columns of Z of each block of an
# in-memory fit's random-effect layout (what the lazy tables of fitted
# values and predictions join and multiply).
db_attach_block_sql <- function(re, spec) {
  keys <- vapply(spec$random, function(t) paste(t$label, deparse1(t$lhs)), "")
  for (b in seq_along(re$blocks)) {
    z <- character()
    for (t in re$blocks[[b]]$terms) {
      tm <- re$terms[[t]]
      z <- c(z, spec$random[[match(paste(tm$label, deparse1(tm$lhs)), keys)]]$z_sql)
    }
    first <- spec$random[[match(re$blocks[[b]]$label, vapply(spec$random, `[[`, "", "label"))]]
    re$blocks[[b]]$z_sql <- z
    re$blocks[[b]]$keys <- first$keys
  }
  re
}

# The response of a binomial or Poisson model as numbers in SQL (over the
# table's columns): 0/1 for a logical or two-level factor (the second
# level is success), proportions for cbind(successes, failures); and the
# prior weights (the numbers of trials times the weights).
db_glmm_response_sql <- function(spec, levels = NULL) {
  v <- spec$response
  con <- spec$con
  w <- spec$weights_sql
  y <- switch(v$kind,
    numeric = v$sql,
    logical = paste0("CASE WHEN ", v$key_sql, " THEN 1.0 ELSE 0.0 END"),
    factor = {
      if (length(levels) != 2L) {
        mlm_abort(c("The response {.var {v$name}} has {length(levels)} distinct value{?s}; a binomial model needs two.",
                    i = "Make a logical that says which outcome counts as success, e.g. {.code {v$name} == \"...\"}."),
                  "mlmfit_error_response", variable = v$name)
      }
      paste0("CASE WHEN ", v$key_sql, " = ", db_value(con, levels[2L]), " THEN 1.0 ELSE 0.0 END")
    },
    matrix = {
      s <- v$parts[[1L]]$sql
      f <- v$parts[[2L]]$sql
      paste0("CASE WHEN (", s, " + ", f, ") > 0 THEN ", s, " / (", s, " + ", f, ") ELSE 0.0 END")
    })
  trials <- if (v$kind == "matrix") paste0("(", v$parts[[1L]]$sql, " + ", v$parts[[2L]]$sql, ")")
  pw <- if (!is.null(trials) && !is.null(w)) paste0(trials, " * ", w) else trials %||% w
  spec$glmm_y_sql <- y
  spec$glmm_pw_sql <- pw
  spec
}
