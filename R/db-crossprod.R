# The cross-products of [Z X y]'W[Z X y] from aggregate queries, in the
# layout of the engine's CrossProducts (src/engine/cross_products.h, as
# cross_products_to_r() returns it). Pass 1 counts the rows (and those
# dropped for missing values) and sums the columns: the means the
# in-memory path centres by. Pass 2 sums per level of each grouping factor
# (Z'WZ, [X y]'WZ, and [X y]'W[X y] folded into the first of these queries
# when it is small); pass 3 sums per pair of levels of two grouping factors
# that occur together. The checks of the in-memory path run on these sums.

# Pass 1: counts, means, and what the checks need.
db_moments <- function(spec, log) {
  agg <- db_moment_aggregates(spec)
  res <- db_grouped_sums(log, db_frame_sql(spec, complete_flag = TRUE), character(), agg,
                         "counting rows and summing the columns (pass 1)")
  m <- unlist(res[1L, ])
  m[is.na(m) & grepl("^(na_|n)", names(m))] <- 0
  checked <- attr(agg, "checked")
  db_check_moments(spec, m, checked)
  n <- m[["n"]]
  weighted <- !is.null(spec$weights_sql)
  sw <- if (weighted) m[["sw"]] else n
  X <- spec$X
  ic <- match("(Intercept)", X$names, nomatch = 0L)
  center <- numeric(0)
  if (ic > 0L) {
    center <- numeric(length(X$sql) + 1L)
    for (j in setdiff(seq_along(X$sql), ic)) center[j] <- m[[paste0("m_", j)]] / sw
    center[length(center)] <- m[["m_y"]] / sw
  }
  list(n = n, n_subset = m[["n_subset"]], sum_w = sw, sum_log_weights = if (weighted) m[["slw"]] else 0,
       center = center, intercept_col = ic, r_range = c(m[["r_min"]], m[["r_max"]]),
       missing = stats::setNames(m[paste0("na_", seq_along(checked))], checked))
}

# The aggregates of pass 1 over the model frame with the completeness flag
# (attribute "checked": the variables whose missing values are counted).
db_moment_aggregates <- function(spec) {
  con <- spec$con
  flag <- db_ident(con, "mlm_complete")
  when <- function(x) paste0("CASE WHEN ", flag, " = 1.0 THEN ", x, " END")
  weighted <- !is.null(spec$weights_sql)
  w <- db_ident(con, "mlm_w")
  wx <- function(x) if (weighted) paste0(w, " * (", x, ")") else x
  X <- spec$X
  ic <- match("(Intercept)", X$names, nomatch = 0L)
  r <- db_response_sql(spec)
  agg <- c(n_subset = db_cast_double(con, "COUNT(*)"), n = paste0("SUM(", flag, ")"))
  if (weighted) {
    log_w <- db_translate(con, quote(log(.w)), c(.w = w), emptyenv(), quote(log(weights)))
    positive <- paste0("CASE WHEN ", flag, " = 1.0 AND ", w, " > 0 THEN ", log_w, " END")
    agg <- c(agg, sw = paste0("SUM(", when(w), ")"), slw = paste0("SUM(", positive, ")"),
             w_min = paste0("MIN(", when(w), ")"))
  }
  for (j in setdiff(seq_along(X$sql), ic)) agg[paste0("m_", j)] <- paste0("SUM(", when(wx(X$sql[[j]])), ")")
  agg["m_y"] <- paste0("SUM(", when(wx(r)), ")")
  agg["r_min"] <- paste0("MIN(", when(r), ")")
  agg["r_max"] <- paste0("MAX(", when(r), ")")
  checked <- c(stats::setNames(spec$alias, names(spec$alias)),
               if (weighted) c(`(weights)` = w), if (!is.null(spec$offset_sql)) c(`(offset)` = db_ident(con, "mlm_o")))
  # sums that show infinite values: of the columns of X and the response
  # (above), and of the other numeric variables (weights, offset, columns
  # of Z); grouping keys are labels
  summed <- c(unlist(X$sql), spec$alias[[spec$response$name]])
  keys <- unlist(lapply(spec$random, `[[`, "keys"))
  for (i in seq_along(checked)) {
    agg[paste0("na_", i)] <- paste0("SUM(CASE WHEN ", checked[[i]], " IS NULL THEN 1.0 ELSE 0.0 END)")
    v <- spec$vars[[names(checked)[i]]]
    numeric <- is.null(v) || v$kind == "numeric"
    if (numeric && !checked[[i]] %in% summed && !names(checked)[i] %in% keys) {
      agg[paste0("fin_", i)] <- paste0("SUM(", when(checked[[i]]), ")")
    }
  }
  for (i in db_computed_variables(spec)) agg[paste0("nan_", i)] <- paste0("SUM(", db_ident(con, paste0("mlm_nan", i)), ")")
  attr(agg, "checked") <- names(checked)
  agg
}

db_response_sql <- function(spec) {
  r <- spec$alias[[spec$response$name]]
  if (!is.null(spec$offset_sql)) r <- paste0(r, " - ", db_ident(spec$con, "mlm_o"))
  r
}

# The refusals of lmm_model_frame(), from the sums of pass 1.
db_check_moments <- function(spec, m, checked) {
  if (m[["n_subset"]] == 0) {
    mlm_abort(c(if (is.null(spec$subset_sql)) "The table has no rows." else "No observations are left after {.arg subset}.",
                i = "Check the table and the condition given as {.arg subset}."),
              "mlmfit_error_empty")
  }
  missing <- m[paste0("na_", seq_along(checked))]
  has_na <- checked[missing > 0]
  if (spec$na_action == "na.fail" && m[["n"]] < m[["n_subset"]]) {
    mlm_abort(c("{cli::qty(length(has_na))}Variable{?s} {.var {has_na}} {?has/have} missing values and {.arg na.action} is {.fn na.fail}.",
                i = "Remove those rows, or use {.code na.action = na.omit}."),
              "mlmfit_error_missing", variables = has_na)
  }
  if (m[["n"]] == 0) {
    mlm_abort(c("No observations remain after the removal of rows with missing values.",
                i = "Variables with missing values: {.var {has_na}}."),
              "mlmfit_error_empty")
  }
  nan <- m[grepl("^nan_", names(m))]
  if (any(nan > 0, na.rm = TRUE)) {
    k <- which(nan > 0)[1L]
    shown <- names(spec$vars)[as.integer(sub("nan_", "", names(nan)[k]))]
    mlm_abort(c("{.var {shown}} is undefined (not a number) in {nan[[k]]} row{?s} of the table where the columns it reads are not missing.",
                i = "An undefined computation such as {.code log(-1)} gives it: correct those values, or filter the rows out with {.arg subset}."),
              "mlmfit_error_nonfinite", variable = shown)
  }
  fin <- m[grepl("^(fin_|m_)", names(m))]
  bad <- names(fin)[!is.finite(fin)]
  if (length(bad)) {
    shown <- if (startsWith(bad[1L], "fin_")) checked[as.integer(sub("fin_", "", bad[1L]))] else
      if (bad[1L] == "m_y") deparse1(spec$parsed$response) else spec$X$names[as.integer(sub("m_", "", bad[1L]))]
    mlm_abort(c("{.var {shown}} has values that are not finite ({.code Inf}, {.code -Inf} or {.code NaN}) in the rows used.",
                i = "Correct or remove those rows, for example with {.arg subset}."),
              "mlmfit_error_nonfinite", variable = shown)
  }
  if (!is.null(m["w_min"]) && !is.na(m["w_min"]) && m[["w_min"]] <= 0) {
    mlm_abort(c("{.arg weights} must be positive; some rows of the table have {if (m[['w_min']] < 0) 'negative' else 'zero'} weights.",
                i = "Drop observations with {.arg subset} rather than giving them zero weight."),
              "mlmfit_error_weights")
  }
  invisible()
}

# The labels of the levels in each row of key values, and the levels in the
# order the in-memory path gives them: numbers in numeric order, strings
# in the order of factor(); for a:b, by a then by b (b fastest).
db_level_labels <- function(keys) {
  keys <- lapply(keys, function(v) if (inherits(v, "integer64")) as.double(v) else v)
  parts <- lapply(keys, function(v) as.character(v))
  labels <- do.call(paste, c(parts, sep = ":"))
  ranks <- lapply(keys, function(v) {
    lev <- if (is.numeric(v)) as.character(sort(unique(v))) else levels(factor(v))
    match(as.character(v), lev)
  })
  ord <- do.call(order, unname(ranks))
  list(labels = labels, levels = labels[ord])
}

# Pass 2: one GROUP BY per grouping factor. [X y]'W[X y] is folded into the
# first when it adds no more columns than that query has; otherwise it is a
# query of its own.
db_level_sums <- function(spec, log, intercept_col, design_sql, blocks, extra = character(), what = "(pass 2)") {
  con <- spec$con
  p <- length(spec$X$sql)
  weighted <- !is.null(spec$weights_sql)
  xx <- c(db_xx_aggregates(con, p, weighted, intercept_col), extra)
  out <- list()
  xx_rows <- NULL
  for (f in seq_along(blocks)) {
    blk <- blocks[[f]]
    agg <- db_block_aggregates(con, f, blk, p, weighted, intercept_col, response_range = "1.0" %in% blk$z_sql)
    fold <- f == 1L && length(xx) <= length(agg)
    if (fold) agg <- c(agg, xx)
    res <- db_grouped_sums(log, design_sql, db_block_keys(con, f, blk), agg,
                           paste("summing per level of", blk$label, what))
    if (fold) {
      xx_rows <- colSums(as.matrix(res[names(xx)]))
      res[names(xx)] <- NULL
    }
    out[[blk$label]] <- res
  }
  if (is.null(xx_rows)) {
    res <- db_grouped_sums(log, design_sql, character(), xx, paste("summing [X y]'W[X y]", what))
    xx_rows <- unlist(res[1L, ])
  }
  list(levels = out, xx = xx_rows)
}

# Pass 3: Z_f'WZ_g per pair of levels that occur together. A pair block
# nearly as large as the table would bring the table to R in another form:
# refuse it, saying so.
db_pair_sums <- function(spec, log, design_sql, blocks, f, g, n) {
  con <- spec$con
  weighted <- !is.null(spec$weights_sql)
  limit <- max(getOption("mlmfit.db_pair_share", 0.5) * n, getOption("mlmfit.db_pair_floor", 1e5))
  keys <- c(db_block_keys(con, f, blocks[[f]]), db_block_keys(con, g, blocks[[g]]))
  names(keys) <- c(paste0("f", seq_along(blocks[[f]]$keys)), paste0("g", seq_along(blocks[[g]]$keys)))
  res <- db_grouped_sums(log, design_sql, keys, db_pair_aggregates(con, f, blocks[[f]], g, blocks[[g]], weighted),
                         paste0("summing per pair of levels of ", blocks[[f]]$label, " and ", blocks[[g]]$label, " (pass 3)"),
                         max_rows = floor(limit))
  if (is.null(res)) {
    mlm_abort(c("The levels of {.var {blocks[[f]]$label}} and {.var {blocks[[g]]$label}} occur together in more than {format(floor(limit), big.mark = ',')} pairs, for {format(n, big.mark = ',')} rows.",
                x = "Their block of cross-products is nearly as large as the table: aggregating in the database would save nothing.",
                i = "Fit this crossed model in memory (collect the columns it uses with {.fn dplyr::collect}), or allow larger pair blocks with {.code options(mlmfit.db_pair_share = 1)}."),
              "mlmfit_error_database_pairs", variables = c(blocks[[f]]$label, blocks[[g]]$label))
  }
  res
}

# Everything above, assembled into the engine's cross-products and the
# random-effect layout (blocks ordered by number of levels). glmm: the
# checks of a GLMM (the response may be constant within groups; a random
# effect per observation is allowed).
db_cross_products <- function(spec, log, glmm = FALSE) {
  moments <- db_moments(spec, log)
  center <- if (length(moments$center)) moments$center else NULL
  raw_blocks <- db_raw_blocks(spec)
  design_sql <- db_design_sql(spec, raw_blocks, center)
  sums <- db_level_sums(spec, log, moments$intercept_col, design_sql, raw_blocks)
  level_info <- lapply(sums$levels, function(res) db_level_labels(res[grepl("^key", names(res))]))
  re <- db_re_layout(spec$random, lapply(level_info, `[[`, "levels"))
  n <- moments$n
  db_check_levels(re, sums, level_info, n, moments, spec, glmm)
  xp <- db_assemble_xp(spec, log, re, sums, level_info, design_sql, raw_blocks, n, length(spec$X$sql),
                       moments$sum_log_weights, moments$center, moments$intercept_col)
  # the key values of each level, in the order of the levels (for the
  # temporary tables of random effects that predictions join)
  keys <- lapply(names(re$blocks), function(lab) {
    res <- sums$levels[[lab]]
    k <- res[grepl("^key", names(res))]
    k[match(re$blocks[[lab]]$levels, level_info[[lab]]$labels), , drop = FALSE]
  })
  names(keys) <- names(re$blocks)
  list(xp = xp, re = re, moments = moments, design_sql = design_sql, raw_blocks = raw_blocks, keys = keys)
}

# The blocks as the formula gives them (one per grouping factor, its terms'
# columns of Z in turn).
db_raw_blocks <- function(spec) {
  labels <- vapply(spec$random, `[[`, "", "label")
  lapply(unique(labels), function(lab) {
    tms <- spec$random[labels == lab]
    list(label = lab, keys = tms[[1L]]$keys, z_sql = unlist(lapply(tms, `[[`, "z_sql")))
  })
}

# The engine's cross-products from the per-level sums (pass 2) and the
# pair blocks (pass 3, queried here) in the layout `re`.
db_assemble_xp <- function(spec, log, re, sums, level_info, design_sql, raw_blocks, n, p, sum_log_weights,
                           center, intercept_col) {
  P <- p + 1L
  order_raw <- match(names(re$blocks), vapply(raw_blocks, `[[`, "", "label"))
  per_block <- lapply(seq_along(re$blocks), function(b) {
    blk <- re$blocks[[b]]
    res <- sums$levels[[blk$label]]
    idx <- match(level_info[[blk$label]]$labels, blk$levels)
    db_block_arrays(res, idx, blk$q, blk$n_levels, P)
  })
  xx <- matrix(0, P, P)
  for (k in seq_len(P)) for (j in k:P) xx[j, k] <- xx[k, j] <- sums$xx[[paste0("x_", j, "_", k)]]
  xp <- list(n = n, p = p, sum_log_weights = sum_log_weights, center = center,
             intercept_col = intercept_col - 1L, k1 = re$blocks[[1L]]$n_levels, q1 = re$blocks[[1L]]$q,
             D1 = per_block[[1L]]$D, C1 = per_block[[1L]]$C, XX = xx)
  nb <- length(re$blocks)
  sec <- seq_len(nb)[-1L]
  xp$sec_levels <- vapply(re$blocks[sec], function(b) as.double(b$n_levels), 0)
  xp$sec_q <- vapply(re$blocks[sec], function(b) as.integer(b$q), 0L)
  xp$rr_diag <- as.double(unlist(lapply(per_block[sec], function(x) as.vector(x$D))))
  xp$CR <- if (nb > 1L) do.call(cbind, lapply(per_block[sec], `[[`, "C")) else matrix(0, P, 0L)
  first_level <- cumsum(c(0, xp$sec_levels))[seq_along(sec)]
  r1 <- list()
  rr <- list()
  for (f in sec) {
    for (g in seq_len(f - 1L)) {
      res <- db_pair_sums(spec, log, design_sql, raw_blocks, order_raw[f], order_raw[g], n)
      keys_f <- res[grepl("^f[0-9]", names(res))]
      keys_g <- res[grepl("^g[0-9]", names(res))]
      names(keys_f) <- names(keys_g) <- NULL
      row <- match(db_level_labels(keys_f)$labels, re$blocks[[f]]$levels) - 1 + first_level[f - 1L]
      col <- match(db_level_labels(keys_g)$labels, re$blocks[[g]]$levels) - 1
      if (g > 1L) col <- col + first_level[g - 1L]
      vals <- as.matrix(res[grepl("^p_", names(res))])
      piece <- list(row = row, col = col, vals = vals)
      if (g == 1L) r1[[length(r1) + 1L]] <- piece else rr[[length(rr) + 1L]] <- piece
    }
  }
  c(xp, db_sparse_blocks(r1, "r1", xp$k1), db_sparse_blocks(rr, "rr"))
}

# D (q x q k) and C ((p+1) x q k) of one block from its per-level sums.
db_block_arrays <- function(res, idx, q, k, P) {
  D <- array(0, c(q, q, k))
  for (b in seq_len(q)) for (a in b:q) {
    v <- res[[paste0("d_", a, "_", b)]]
    D[a, b, idx] <- v
    D[b, a, idx] <- v
  }
  C <- array(0, c(P, q, k))
  for (a in seq_len(q)) for (j in seq_len(P)) C[j, a, idx] <- res[[paste0("c_", j, "_", a)]]
  dim(D) <- c(q, q * k)
  dim(C) <- c(P, q * k)
  list(D = D, C = C)
}

# Sparse blocks (r1: secondary x primary levels; rr: between secondary
# factors) ordered by column, then row, as the engine stores them.
db_sparse_blocks <- function(pieces, which, k1 = NULL) {
  if (length(pieces) == 0L) {
    empty <- numeric(0)
    if (which == "rr") return(list(rr_row = empty, rr_col = empty, rr_vals = empty))
    return(list(r1_ptr = numeric(k1 + 1), r1_row = empty, r1_vals = empty))
  }
  row <- unlist(lapply(pieces, `[[`, "row"))
  col <- unlist(lapply(pieces, `[[`, "col"))
  vals <- lapply(pieces, function(pc) split(pc$vals, row(pc$vals)))
  vals <- unlist(vals, recursive = FALSE)
  ord <- order(col, row)
  values <- unlist(vals[ord], use.names = FALSE)
  if (is.null(values)) values <- numeric(0)
  if (which == "rr") {
    return(list(rr_row = as.double(row[ord]), rr_col = as.double(col[ord]), rr_vals = values))
  }
  counts <- tabulate(col + 1L, k1)
  list(r1_ptr = c(0, cumsum(as.double(counts))), r1_row = as.double(row[ord]), r1_vals = values)
}

# The refusals of build_re_terms() and check_response_varies(), from the
# sums of passes 1 and 2.
db_check_levels <- function(re, sums, level_info, n, moments, spec, glmm = FALSE) {
  limit <- if (glmm) n + 1 else n
  for (b in re$blocks) {
    if (b$n_levels < 2L) {
      mlm_abort(c("The grouping factor {.var {b$label}} has only one level in the data used.",
                  i = "A random effect needs at least two groups; drop the term or check {.arg subset} and missing values."),
                "mlmfit_error_grouping", variable = b$label)
    }
    if (b$n_levels >= limit) {
      mlm_abort(c("The grouping factor {.var {b$label}} has {b$n_levels} levels for {n} observations: one observation per level.",
                  i = "A random effect per observation cannot be told apart from the residual: drop the term, or group the rows by a coarser variable."),
                "mlmfit_error_grouping", variable = b$label)
    }
  }
  for (t in re$terms) {
    if (t$q * t$n_levels >= limit) {
      mlm_abort(c("The term {.code ({deparse1(t$lhs)} | {t$label})} has {t$q * t$n_levels} random effects for {n} observations.",
                  i = "The random effects and the residual variance cannot all be estimated: simplify the term, e.g. drop a random slope."),
                "mlmfit_error_identifiability", variable = t$label)
    }
  }
  for (b in re$blocks) {
    res <- sums$levels[[b$label]]
    for (a in seq_len(b$q)) {
      if (b$z_sql[a] == "1.0") next
      if (sum(res[[paste0("d_", a, "_", a)]]) == 0) {
        mlm_abort(c("The random-effect column {.var {b$colnames[a]}} for {.var {b$label}} is zero in every row used.",
                    i = "Its variance cannot be estimated: drop it from the random-effect term."),
                  "mlmfit_error_identifiability", variable = b$colnames[a])
      }
    }
  }
  if (glmm) return(invisible())
  yname <- deparse1(spec$parsed$response)
  if (!is.null(spec$offset_sql)) yname <- paste(yname, "- offset")
  if (moments$r_range[1L] == moments$r_range[2L] && moments$intercept_col > 0L) {
    mlm_abort(c("The response {.var {yname}} has the same value ({signif(moments$r_range[1L], 6)}) in every row used: there is nothing to model.",
                i = "Check that the formula's response is the intended variable."),
              "mlmfit_error_response", variable = yname)
  }
  for (b in re$blocks) {
    res <- sums$levels[[b$label]]
    if (is.null(res$r_min) || any(res$r_min != res$r_max)) next
    mlm_abort(c("The response {.var {yname}} is constant within every level of {.var {b$label}}.",
                x = "The random intercept for {.var {b$label}} reproduces it exactly: the residual variance is zero and the likelihood has no maximum.",
                i = "It is a property of {.var {b$label}}: analyse one row per level of {.var {b$label}} (for example with {.fn lm}), or check that the response is the intended variable."),
              "mlmfit_error_response", variable = yname, group = b$label)
  }
  invisible()
}

# Columns of X that are linear combinations of earlier ones, from X'WX: the
# residual of each column on the columns kept before it (the criterion of
# the pivoted QR that lm() and the in-memory path use, tolerance 1e-7 on
# the column's norm).
db_aliased_columns <- function(xp) {
  p <- xp$p
  if (p == 0L) return(integer())
  M <- xp_uncentre(xp)$XX[seq_len(p), seq_len(p), drop = FALSE]
  kept <- integer()
  aliased <- integer()
  for (j in seq_len(p)) {
    d <- M[j, j]
    r2 <- d
    if (length(kept) && d > 0) {
      Mk <- M[kept, kept, drop = FALSE]
      v <- M[kept, j]
      r2 <- d - sum(v * solve(Mk, v))
    }
    if (!(d > 0) || r2 <= 1e-14 * d) aliased <- c(aliased, j) else kept <- c(kept, j)
  }
  aliased
}

# The cross-products without the columns `drop` of X.
xp_drop_columns <- function(xp, drop) {
  if (length(drop) == 0L) return(xp)
  keep <- setdiff(seq_len(xp$p + 1L), drop)
  xp$XX <- xp$XX[keep, keep, drop = FALSE]
  xp$C1 <- xp$C1[keep, , drop = FALSE]
  xp$CR <- xp$CR[keep, , drop = FALSE]
  if (length(xp$center)) xp$center <- xp$center[keep]
  if (xp$intercept_col >= 0L) xp$intercept_col <- match(xp$intercept_col + 1L, keep) - 1L
  xp$p <- xp$p - length(drop)
  xp
}
