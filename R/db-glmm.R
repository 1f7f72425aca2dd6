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
    refuse_without_rows(NULL, paste("A fit of the", fam$family$family, "family"))
  }
  fit <- db_run_fit(mc, formula, data, caller_env, na.action, "any", function(src, parsed, log) {
    cells <- db_compress(src, log)
    if (!is.null(cells)) return(db_glmm_compressed(cells, src, mc, formula, parsed, fam, nAGQ, control, log))
    if (nAGQ != 1L) {
      mlm_abort(c("This model's variables take too many distinct values for an exact compression of the table, and a fit with one query per PIRLS iteration uses the Laplace approximation only.",
                  i = "Use {.code nAGQ = 1}."),
                "mlmfit_error_nagq")
    }
    db_glmm_pirls(src, mc, formula, parsed, fam, control, log)
  })
  report_convergence(fit_optinfo(fit)$warnings)
  report_singular(fit)
  fit
}

# The columns of the table that the model reads (response, predictors,
# grouping factors, weights and offset).
db_model_columns <- function(src) {
  exprs <- c(lapply(src$vars, `[[`, "inner"), src$extra_exprs)
  used <- unique(unlist(lapply(exprs, expression_vars)))
  intersect(src$columns$names, used)
}

# One GROUP BY over the columns the model reads, for the rows that pass
# `subset`; the incomplete rows fall into one group of their own (all
# NULL, flag 0) so that they are counted in the same pass. NULL when there
# are more distinct rows than mlmfit.db_compress_max_rows (default 1e6).
db_compress <- function(src, log) {
  con <- src$con
  cols <- db_model_columns(src)
  limit <- getOption("mlmfit.db_compress_max_rows", 1e6)
  flag <- db_ident(con, "mlm_complete")
  inner <- paste0("SELECT ", paste(c(paste0("CASE WHEN ", src$complete_sql, " THEN ", src$columns$key_sql[cols], " END AS ",
                                           db_ident(con, cols)),
                                    paste0("CASE WHEN ", src$complete_sql, " THEN 1.0 ELSE 0.0 END AS ", flag)),
                                  collapse = ", "),
                  " FROM (", src$source_sql, ") ", db_ident(con, "mlm_source"),
                  if (!is.null(src$subset_sql)) paste0(" WHERE (", src$subset_sql, ")"))
  keys <- stats::setNames(c(db_ident(con, cols), flag), c(cols, "mlm_complete"))
  res <- db_grouped_sums(log, inner, keys, c(mlm_count = db_cast_double(con, "COUNT(*)")),
                         "counting the distinct rows of the model's columns", max_rows = limit + 1)
  if (is.null(res)) return(NULL)
  n_subset <- sum(res$mlm_count)
  complete <- res$mlm_complete == 1
  n <- sum(res$mlm_count[complete])
  db_check_rows(src, log, n_subset, n)
  cells <- res[complete, c(cols, "mlm_count"), drop = FALSE]
  for (cl in cols) if (inherits(cells[[cl]], "integer64")) cells[[cl]] <- as.double(cells[[cl]])
  rownames(cells) <- NULL
  attr(cells, "n_subset") <- n_subset
  cells
}

# The in-memory fit of the distinct rows, their counts as frequency weights
# (times the prior weights), made the fit of the table's rows: a spec
# without rows for all of them (its number of observations, and the SQL of
# the blocks' keys and columns), and for binomial counts (trials > 1) the
# log-likelihood's constant of the rows rather than of the merged rows.
# The fit of the distinct rows is kept (spec$db$compressed) for profiles.
db_glmm_compressed <- function(cells, src, mc, formula, parsed, fam, nAGQ, control, log) {
  if (".mlm_count" %in% names(cells)) stop("internal: a column is named .mlm_count")
  names(cells)[names(cells) == "mlm_count"] <- ".mlm_count"
  weights <- if (is.null(mc$weights)) quote(.mlm_count) else call("*", quote(.mlm_count), call("(", mc$weights))
  call <- call("glmm", formula = formula, data = cells, family = fam$family, nAGQ = nAGQ, weights = weights,
               control = control)
  if (!is.null(mc$offset)) call$offset <- mc$offset
  # its reports (singular fit, convergence) are made once, for the table's fit
  mem <- withCallingHandlers(eval(call, list(glmm = glmm)),
                             mlmfit_message_singular = function(m) invokeRestart("muffleMessage"),
                             mlmfit_warning_convergence = function(w) invokeRestart("muffleWarning"))
  mem_spec <- fit_spec(mem)
  counts <- cells$.mlm_count
  src <- db_glmm_response_sql(src, spec_family(mem)$response_levels)
  spec <- spec_without_rows(mem_spec)
  spec$n <- sum(counts)
  X <- src$X
  keep <- match(spec_x_names(mem), X$names)
  layout <- list(terms = re_terms(mem), blocks = re_blocks(mem), theta = mem_spec$theta)
  db <- db_model_spec(src, list(xp = list(n = sum(counts)), layout = c(layout, list(order = db_term_order(src, layout))),
                                raw_terms = src$random, key_values = db_key_values(mem_spec, src),
                                n_subset = attr(cells, "n_subset"), keep = keep, dropped = spec_dropped(mem)),
                      formula, parsed)$db
  db$method <- "compressed"
  db$cells <- nrow(cells)
  db$compressed <- mem
  spec$db <- db
  fields <- unclass(mem)[setdiff(names(unclass(mem)), "version")]
  fields$spec <- db_with_queries(spec, log)
  fields$call <- mc
  fields[c("fitted", "eta", "working_weights")] <- list(NULL)
  fields$devcomp$n <- sum(counts)
  if (fam$dist == "binomial" && nAGQ <= 1L) {
    shift <- db_binomial_constant(mem_spec, counts)
    fields$devcomp$aic <- fields$devcomp$aic + shift
    fields$devcomp$criterion <- fields$devcomp$criterion + shift
  }
  new_mlmfit(fields, class(mem))
}

# The fit of a compressed table as the in-memory fit of its distinct rows
# (for the methods that need them, such as profiles: the likelihood is the
# same up to a constant).
db_compressed_fit <- function(fit) spec_db(fit)$compressed

# Each term of a layout at its position in the formula's terms (what
# re_layout() returns as `order`).
db_term_order <- function(src, layout) {
  keys <- vapply(src$random, function(t) paste(t$label, deparse1(t$lhs)), "")
  vapply(layout$terms, function(tm) match(paste(tm$label, deparse1(tm$lhs)), keys), 0L)
}

# -2 log-likelihood of the table's rows minus that of the merged rows: a
# row of c rows with k successes of m trials each (trials given as
# weights) has the binomial coefficient choose(c m, c k) where the rows had
# choose(m, k)^c. (With cbind() the trials are kept per row: no change.)
db_binomial_constant <- function(spec, counts) {
  if (!is.null(spec_trials(spec))) return(0)
  w <- spec_weights(spec) %||% rep(1, length(counts))
  m <- w / counts
  k <- round(spec_y(spec) * m)
  -2 * sum(counts * lchoose(m, k) - lchoose(counts * m, counts * k))
}

# The key values of each level of each grouping factor of an in-memory
# spec of the distinct rows (for the temporary tables of random effects).
db_key_values <- function(spec, src) {
  lapply(re_blocks(spec), function(blk) {
    term <- src$random[[match(blk$label, vapply(src$random, `[[`, "", "label"))]]
    frame <- spec_frame(spec)
    first <- match(blk$levels, as.character(block_factor(spec, blk$label)))
    out <- lapply(term$keys, function(k) {
      v <- frame[[k]][first]
      if (is.factor(v)) as.character(v) else v
    })
    stats::setNames(as.data.frame(out, stringsAsFactors = FALSE), paste0("key", seq_along(out)))
  })
}

# The response of a binomial or Poisson model as numbers in SQL (over the
# table's columns): 0/1 for a logical or two-level factor (the second
# level is success), proportions for cbind(successes, failures); and the
# prior weights (the numbers of trials times the weights).
db_glmm_response_sql <- function(src, levels = NULL) {
  v <- src$response
  con <- src$con
  w <- src$weights_sql
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
  src$glmm_y_sql <- y
  src$glmm_pw_sql <- pw
  src
}
