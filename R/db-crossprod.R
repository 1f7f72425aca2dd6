# The cross-products of [Z X y]'W[Z X y] from aggregate queries, in the
# layout of the engine's CrossProducts (src/engine/cross_products.h, as
# cross_products_to_r() returns it).
#
# The passes over the table: one GROUP BY over the keys of every grouping
# factor at once (a cell per combination of levels that occurs: a level
# of a nested factor, a pair of levels of crossed ones), or, when there are
# too many cells, one GROUP BY per grouping factor and one per pair of
# factors. The first of these also counts the rows that pass `subset`, so
# that no pass over the table is only a count (db_counted_sums()). Each
# query sums, per
# group, the weights, each distinct column of [X y] and Z (once, however
# many times the model uses it) and the products the model needs. Every
# column whose first rows' mean is farther from 0 than their standard
# deviation enters shifted by that mean (an approximate centre), so that
# no sum loses digits to a large mean; the cross-products
# are then formed in R by exact algebra on these sums: the in-memory
# path's centring by the exact means (of X and y, when X has an
# intercept), raw sums for Z, per level and per pair of levels. A column
# whose first rows were far from its mean (more than 30 standard
# deviations) is summed again about the exact mean. The checks of the
# in-memory path run on these sums.

# Everything a fit needs from the table: the cross-products (xp), the
# random-effect layout, the key values of each level, the rows counted,
# the columns of X kept (aliased ones dropped). glmm: the checks of a GLMM
# (the response may be constant within groups; a random effect per
# observation is allowed).
db_cross_products <- function(src, log, glmm = FALSE) {
  raw_terms <- src$random
  blocks <- db_raw_blocks(raw_terms)
  plan <- db_sum_plan(src$X$sql, db_response_sql(src), blocks)
  shift <- db_sample_centres(src, plan, log)
  sums <- db_counted_sums(src, plan, shift, log, attr(shift, "incomplete"))
  n_subset <- sums$n_subset
  n <- sum(sums$total$n)
  db_check_rows(src, log, n_subset, n)
  db_check_sums(src, plan, sums$total)
  intercept_col <- match("(Intercept)", src$X$names, nomatch = 0L)
  center <- if (intercept_col > 0L) db_exact_centres(plan, sums) else NULL
  if (!is.null(center) && db_far_from_centre(plan, sums, center)) {
    sums <- db_sums(src, plan, db_shift_to(plan, shift, center), log, n_subset, main = TRUE,
                    what = "(about the exact means)")
  }
  levels <- lapply(sums$levels, `[[`, "levels")
  layout <- re_layout(Map(function(t, b) c(t, list(levels = levels[[b]])), raw_terms,
                          match(vapply(raw_terms, `[[`, "", "label"), names(blocks))), n, allow_n = glmm)
  db_check_columns(plan, sums, layout, blocks)
  if (!glmm) db_check_response(src, log, plan, sums, layout, blocks, intercept_col)
  xp <- db_assemble_xp(plan, sums, layout, blocks, center, intercept_col, n, sums$total$extra$slw %||% 0)
  keep <- seq_along(src$X$names)
  dropped <- character()
  alias <- db_aliased_columns(xp)
  if (length(alias) > 0L) {
    dropped <- src$X$names[alias]
    inform_dropped_columns(dropped)
    xp <- xp_drop_columns(xp, alias)
    keep <- setdiff(keep, alias)
  }
  list(xp = xp, layout = layout, raw_terms = raw_terms, n_subset = n_subset, keep = keep, dropped = dropped,
       key_values = lapply(sums$levels, `[[`, "key_values"))
}

# The rows a query sums over: the SQL of a frame, the name of its column
# of weights, and its columns that the aggregates read as they are.
db_frame <- function(src, sql = db_frame_sql(src), weight = "mlm_w", carry = character()) {
  list(sql = sql, weight = weight, carry = carry)
}

# The grouping factors as the formula gives them, each with the keys (frame
# variables) of its levels and the columns of Z of its terms in turn.
db_raw_blocks <- function(raw_terms) {
  labels <- vapply(raw_terms, `[[`, "", "label")
  # a factor's terms in the order the layout gives them (re_layout())
  position <- vapply(seq_along(raw_terms), function(i) as.numeric(raw_terms[[i]]$lme4_order %||% i), 0)
  out <- lapply(unique(labels), function(lab) {
    tms <- raw_terms[labels == lab][order(position[labels == lab])]
    list(label = lab, keys = tms[[1L]]$keys, z_sql = unlist(lapply(tms, `[[`, "z_sql")))
  })
  stats::setNames(out, unique(labels))
}

# Approximate centres: the means of the first rows of the design (an exact
# centre is not needed, only one near the data, so that the sums keep
# their digits): the means over the complete rows among the first rows
# that pass `subset`; attribute `incomplete`: whether any of those rows
# has a missing value.
db_sample_centres <- function(src, plan, log, n = getOption("mlmfit.db_sample_rows", 1000L)) {
  m <- length(plan$vars)
  res <- db_query(log, db_sample_sql(src, plan, n), "reading the first rows for approximate centres")
  shift <- vapply(seq_len(m), function(i) {
    v <- as.double(res[[i]])
    centre <- mean(v, na.rm = TRUE)
    spread <- if (sum(!is.na(v)) > 1L) stats::sd(v, na.rm = TRUE) else 0
    # a mean within one standard deviation of 0 costs a raw sum of squares
    # at most a bit; its subtraction costs PostgreSQL ~5% of the GROUP BY
    if (is.finite(centre) && abs(centre) > spread) centre else 0
  }, 0)
  structure(shift, incomplete = any(as.double(res$mlm_incomplete) > 0))
}

db_sample_sql <- function(src, plan, n = 1000L) {
  frame <- db_frame_sql(src, incomplete = TRUE, flag = TRUE, null_incomplete = TRUE)
  db_first_rows_sql(src$con, db_design_sql(src, plan, numeric(length(plan$vars)), character(), frame,
                                           carry = "mlm_incomplete"), n)
}

# Shifts with the centred variables of X and y moved to the exact means.
db_shift_to <- function(plan, shift, center) {
  b <- c(plan$x, plan$y)
  shift[b[b > 0]] <- center[b > 0]
  shift
}

# The first sums of a fit (db_sums()), with the count of the rows that
# pass `subset` (n_subset). When the first rows have no missing value, one
# pass does both: its query sums over every row that passes `subset` and
# counts those with a missing value; only when there are some are the sums
# taken again, over the complete rows. When the first rows have missing
# values, the rows are counted, then the complete rows summed.
db_counted_sums <- function(src, plan, shift, log, likely_incomplete = TRUE) {
  if (!likely_incomplete) {
    sums <- db_sums(src, plan, shift, log, NA, main = TRUE)
    if (sums$n_incomplete == 0) return(sums)
    n_subset <- sums$n_subset
  } else {
    n_subset <- db_count_rows(src, log)
  }
  db_sums(src, plan, shift, log, n_subset, main = TRUE)
}

# The rows that pass `subset` (those dropped for missing values are the
# difference from the rows summed).
db_count_rows <- function(src, log) as.double(db_query(log, db_count_sql(src), "counting the rows")[[1L]])

db_count_sql <- function(src) {
  con <- src$con
  paste0("SELECT ", db_cast_double(con, "COUNT(*)"), " AS ", db_ident(con, "n"), " FROM (", src$source_sql, ") ",
         db_ident(con, "mlm_source"), if (!is.null(src$subset_sql)) paste0(" WHERE (", src$subset_sql, ")"))
}

# The frame of a query that also counts the rows that pass `subset`: all
# of them, with the column mlm_incomplete (1 where a value is missing).
db_counting_frame <- function(src) {
  db_frame(src, db_frame_sql(src, incomplete = TRUE, flag = TRUE), carry = "mlm_incomplete")
}

# The sums of `plan` per level of each grouping factor and per pair of
# levels of two factors that occur together (`pairs`, named "f:g" by the
# positions of the blocks), and over all rows (`total`), with the shifts
# of the variables (`shift`). One query over the keys of every factor when
# its cells are few enough; otherwise one per factor and one per pair
# (n_rows: the rows, for the limit on the pairs; NA: not yet counted: the
# first query then sums over every row of the model frame of `src` that
# passes `subset` and counts them (n_subset) and those with a missing
# value (n_incomplete); when there are such rows, its sums are not those
# of the model frame and only the counts are returned). main: the first
# query also sums what the checks of the weights need. extra: more
# aggregates of the first query (named; summed over its groups into
# `total$extra`).
db_sums <- function(src, plan, shift, log, n_rows, main = FALSE, what = "", extra = character(),
                    frame = db_frame(src)) {
  nb <- length(plan$z)
  weighted <- !is.null(src$weights_sql)
  m <- length(plan$vars)
  checks <- if (main && weighted) db_weight_aggregates(src)
  count <- is.na(n_rows)
  first_frame <- if (count) db_counting_frame(src) else frame
  counts_only <- function(res) list(n_subset = res$n_subset, n_incomplete = res$n_incomplete)
  max_cells <- getOption("mlmfit.db_max_cells", 5e5)
  if (nb > 1L) {
    keys <- unique(unlist(plan$keys))
    between <- utils::combn(nb, 2L, simplify = FALSE)
    cells <- db_run_sums(src, plan, shift, keys, seq_len(m), db_plan_pairs(plan, between = between), weighted, log,
                         paste("summing per combination of levels of", paste(names(plan$z), collapse = ", "), what),
                         c(checks, extra), first_frame,
                         max_rows = if (count) max_cells else min(max_cells, db_pair_limit(n_rows)), count = count)
    if (count && !is.null(cells)) {
      if (cells$n_incomplete > 0) return(counts_only(cells))
      n_rows <- cells$n_subset
      count <- FALSE
      # more cells than a pair block may have: the queries per factor and pair decide
      if (length(cells$n) > db_pair_limit(n_rows)) cells <- NULL
    }
    if (!is.null(cells)) {
      out <- list(levels = lapply(seq_len(nb), function(f) db_sums_per_level(cells, match(plan$keys[[f]], keys))),
                  pairs = list(), total = db_sums_total(cells))
      for (fg in between) out$pairs[[paste(fg, collapse = ":")]] <- db_sums_by_pair(cells, keys, plan$keys, fg)
      names(out$levels) <- names(plan$z)
      out$shift <- shift
      out$n_subset <- n_rows
      out$n_incomplete <- 0
      return(out)
    }
  }
  out <- list(levels = list(), pairs = list(), total = NULL)
  for (f in seq_len(nb)) {
    vars_f <- sort(unique(c(plan$x, plan$y, plan$z[[f]])))
    res <- db_run_sums(src, plan, shift, plan$keys[[f]], vars_f[vars_f > 0],
                       db_plan_pairs(plan, f, xx = f == 1L), weighted, log,
                       paste("summing per level of", names(plan$z)[f], what), if (f == 1L) c(checks, extra),
                       if (f == 1L) first_frame else frame, count = f == 1L && count)
    if (f == 1L && count) {
      if (res$n_incomplete > 0) return(counts_only(res))
      n_rows <- res$n_subset
    }
    out$levels[[names(plan$z)[f]]] <- db_sums_per_level(res, seq_along(plan$keys[[f]]))
    if (f == 1L) out$total <- db_sums_total(res)
  }
  for (fg in if (nb > 1L) utils::combn(nb, 2L, simplify = FALSE)) {
    out$pairs[[paste(fg, collapse = ":")]] <- db_pair_sums(src, plan, shift, fg, weighted, log, what, frame, n_rows)
  }
  out$shift <- shift
  out$n_subset <- n_rows
  out$n_incomplete <- 0
  out
}

# The aggregates the checks of the weights need: their sum of logs (the
# log-likelihood's constant) and their smallest value.
db_weight_aggregates <- function(src) {
  con <- src$con
  w <- db_ident(con, "mlm_w")
  c(slw = paste0("SUM(CASE WHEN ", w, " > 0 THEN ", db_log_sql(con)(w), " END)"), w_min = paste0("MIN(", w, ")"))
}

# One grouped query of the sums of the variables `vars` and the products
# `pairs` over the design, by the frame variables `keys`: a list with the
# key values (keys), n, W, L (groups x variables, columns named by the
# variables' indices), P (groups x products, named "i_j") and the extra
# aggregates; NULL when there are more than max_rows groups. count: the
# frame is a counting frame (db_counting_frame()), whose rows (n_subset)
# and rows with a missing value (n_incomplete) are counted too.
db_run_sums <- function(src, plan, shift, keys, vars, pairs, weighted, log, what, extra = character(),
                        frame = db_frame(src), max_rows = Inf, count = FALSE) {
  q <- db_sums_query(src, plan, shift, keys, vars, pairs, weighted, extra, frame)
  if (count) {
    q$aggregates <- c(q$aggregates,
                      n_incomplete = db_cast_double(src$con, paste0("SUM(", db_ident(src$con, "mlm_incomplete"), ")")))
  }
  res <- db_grouped_sums(log, q$design, q$keys, q$aggregates, what, max_rows = max_rows)
  if (is.null(res)) return(NULL)
  key_sql <- q$keys
  # keys of integer columns come back as the doubles they are summed as:
  # integers again, so that their levels are labelled as in memory
  # ("100000", not "1e+05")
  for (j in which(vapply(keys, function(k) isTRUE(src$vars[[k]]$integer), NA))) {
    res[[names(key_sql)[j]]] <- as.integer(res[[names(key_sql)[j]]])
  }
  n <- res$n
  columns <- function(prefix, ids) {
    vals <- if (length(ids)) unlist(res[paste0(prefix, ids)], use.names = FALSE) else numeric()
    matrix(vals, length(n), length(ids), dimnames = list(NULL, ids))
  }
  list(keys = res[names(key_sql)], n = n, W = if (weighted) res$w else n, L = columns("l", vars),
       P = columns("p", pairs), extra = res[names(extra)],
       n_subset = if (count) sum(n), n_incomplete = if (count) sum(res$n_incomplete))
}

# The pieces of that query: the design it sums over, its keys (named
# key1, ...) and its aggregates (named).
db_sums_query <- function(src, plan, shift, keys, vars, pairs, weighted, extra = character(), frame = db_frame(src)) {
  list(design = db_design_sql(src, plan, shift, keys, frame$sql, frame$weight, frame$carry),
       keys = db_key_refs(src$con, length(keys)),
       aggregates = c(db_sum_aggregates(src$con, vars, pairs, weighted), extra))
}

# The design's key columns mlm_k1.. mlm_k<n>, named key1.. key<n>.
db_key_refs <- function(con, n) {
  if (n == 0L) return(character())
  stats::setNames(db_ident(con, paste0("mlm_k", seq_len(n))), paste0("key", seq_len(n)))
}

# Sums added up over groups of rows of a sums list (rowsum by `group`, a
# code 1..k per row).
db_sums_rowsum <- function(s, group, k) {
  # one row per group (the sums per level of a factor of their own query):
  # placed, not added
  unique_groups <- !anyDuplicated(group)
  present <- sort(unique(group))
  agg <- function(x) {
    if (is.null(dim(x))) x <- matrix(x)
    out <- matrix(0, k, ncol(x), dimnames = list(NULL, colnames(x)))
    if (unique_groups) {
      out[group, ] <- x
    } else {
      out[present, ] <- rowsum(x, group, reorder = TRUE)
    }
    out
  }
  list(n = agg(s$n)[, 1L], W = agg(s$W)[, 1L], L = agg(s$L), P = agg(s$P))
}

# The sums over all groups; of the extra aggregates, the smallest weight
# is a minimum and the others sums.
db_sums_total <- function(s) {
  out <- db_sums_rowsum(s, rep(1L, length(s$n)), 1L)
  out$extra <- lapply(stats::setNames(names(s$extra), names(s$extra)), function(nm) {
    v <- as.double(s$extra[[nm]])
    if (all(is.na(v))) NA_real_ else if (nm == "w_min") min(v, na.rm = TRUE) else sum(v, na.rm = TRUE)
  })
  out
}

# Per level of a grouping factor (its keys: columns `cols` of s$keys): the
# sums, the levels in the in-memory order and the key values of each.
db_sums_per_level <- function(s, cols) {
  info <- db_level_labels(unname(as.list(s$keys[cols])))
  code <- info$code
  out <- db_sums_rowsum(s, code, length(info$levels))
  first <- match(seq_along(info$levels), code)
  out$levels <- info$levels
  out$key_values <- stats::setNames(as.data.frame(lapply(s$keys[cols], function(v) {
    v <- if (inherits(v, "integer64")) as.double(v) else v
    v[first]
  }), stringsAsFactors = FALSE), paste0("key", seq_along(cols)))
  out
}

# Per pair of levels of blocks fg = c(f, g) from the sums per cell: the
# labels of the two levels of each pair, and the sums.
db_sums_by_pair <- function(cells, keys, block_keys, fg) {
  info <- lapply(fg, function(f) db_level_labels(unname(as.list(cells$keys[match(block_keys[[f]], keys)]))))
  id <- (info[[1L]]$code - 1) * length(info[[2L]]$levels) + info[[2L]]$code
  u <- unique(id)
  code <- match(id, u)
  first <- match(seq_along(u), code)
  out <- db_sums_rowsum(cells, code, length(u))
  out$labels <- lapply(info, function(x) x$levels[x$code[first]])
  out
}

# The sums per pair of levels of blocks fg = c(f, g), by its own query. A
# pair block nearly as large as the table would bring the table to R in
# another form: refuse it, saying so.
db_pair_sums <- function(src, plan, shift, fg, weighted, log, what, frame, n_rows) {
  f <- fg[1L]
  g <- fg[2L]
  keys <- unique(c(plan$keys[[f]], plan$keys[[g]]))
  limit <- db_pair_limit(n_rows)
  vars <- sort(unique(c(plan$z[[f]], plan$z[[g]])))
  labels <- names(plan$z)
  res <- db_run_sums(src, plan, shift, keys, vars[vars > 0], db_plan_pairs(plan, integer(), FALSE, list(fg)), weighted,
                     log, paste0("summing per pair of levels of ", labels[f], " and ", labels[g], " ", what),
                     frame = frame, max_rows = floor(limit))
  if (is.null(res)) {
    mlm_abort(c("The levels of {.var {labels[f]}} and {.var {labels[g]}} occur together in more than {format(floor(limit), big.mark = ',')} pairs, for {format(n_rows, big.mark = ',')} rows.",
                x = "Their block of cross-products is nearly as large as the table: aggregating in the database would save nothing.",
                i = "Fit this crossed model in memory (collect the columns it uses with {.fn dplyr::collect}), or allow larger pair blocks with {.code options(mlmfit.db_pair_share = 1)}."),
              "mlmfit_error_database_pairs", variables = labels[fg])
  }
  db_sums_by_pair(res, keys, plan$keys, fg)
}

# The most pairs of levels a block of cross-products may have: a share of
# the rows (an option; blocks under a floor are always allowed).
db_pair_limit <- function(n_rows) {
  floor(max(getOption("mlmfit.db_pair_share", 0.5) * n_rows, getOption("mlmfit.db_pair_floor", 1e5)))
}

# Sum over rows of w (v - tv)(u - tu) per group, for columns given by their
# variable (0: the constant 1) and the value they are centred about, from
# the sums of the shifted variables.
db_cross_sum <- function(s, shift, v, tv, u, tu) {
  if (v == 0L && u == 0L) return(s$W)
  if (v == 0L) return(s$L[, as.character(u)] + (shift[u] - tu) * s$W)
  if (u == 0L) return(db_cross_sum(s, shift, u, tu, v, tv))
  av <- shift[v] - tv
  au <- shift[u] - tu
  s$P[, paste0(min(u, v), "_", max(u, v))] + av * s$L[, as.character(u)] + au * s$L[, as.character(v)] + av * au * s$W
}

# The exact (weighted) means of the columns of [X y], the in-memory path's
# centre (0 for the intercept).
db_exact_centres <- function(plan, sums) {
  total <- sums$total
  vapply(c(plan$x, plan$y), function(v) if (v == 0L) 0 else sums$shift[v] + total$L[, as.character(v)] / total$W, 0)
}

# Were the first rows' means far from the exact ones (more than 30
# standard deviations), so that the shifted sums lost digits?
db_far_from_centre <- function(plan, sums, center) {
  b <- c(plan$x, plan$y)
  total <- sums$total
  any(vapply(seq_along(b), function(j) {
    v <- b[j]
    if (v == 0L) return(FALSE)
    W <- total$W
    sd <- sqrt(max(total$P[, paste0(v, "_", v)] / W - (total$L[, as.character(v)] / W)^2, 0))
    sd > 0 && abs(sums$shift[v] - center[j]) > 30 * sd
  }, logical(1)))
}

# The engine's cross-products from the sums, in the layout of `layout`
# (blocks ordered by number of levels; `blocks` are the same blocks in the
# formula's order). center: the centre of [X y] (NULL: no centring).
db_assemble_xp <- function(plan, sums, layout, blocks, center, intercept_col, n, sum_log_weights = 0) {
  shift <- sums$shift
  b <- c(plan$x, plan$y)
  P <- length(b)
  tb <- if (is.null(center)) numeric(P) else center
  raw <- match(names(layout$blocks), names(blocks))
  per_block <- lapply(seq_along(layout$blocks), function(k) {
    s <- sums$levels[[raw[k]]]
    z <- plan$z[[raw[k]]]
    q <- length(z)
    nl <- length(s$n)
    D <- array(0, c(q, q, nl))
    for (a2 in seq_len(q)) for (a1 in a2:q) D[a1, a2, ] <- D[a2, a1, ] <- db_cross_sum(s, shift, z[a1], 0, z[a2], 0)
    C <- array(0, c(P, q, nl))
    for (a in seq_len(q)) for (j in seq_len(P)) C[j, a, ] <- db_cross_sum(s, shift, b[j], tb[j], z[a], 0)
    dim(D) <- c(q, q * nl)
    dim(C) <- c(P, q * nl)
    list(D = D, C = C, levels = s$levels)
  })
  XX <- matrix(0, P, P)
  for (k in seq_len(P)) for (j in k:P) XX[j, k] <- XX[k, j] <- db_cross_sum(sums$total, shift, b[j], tb[j], b[k], tb[k])
  xp <- list(n = n, p = P - 1L, sum_log_weights = sum_log_weights, center = if (is.null(center)) numeric(0) else center,
             intercept_col = intercept_col - 1L, k1 = layout$blocks[[1L]]$n_levels, q1 = layout$blocks[[1L]]$q,
             D1 = per_block[[1L]]$D, C1 = per_block[[1L]]$C, XX = XX)
  nb <- length(layout$blocks)
  sec <- seq_len(nb)[-1L]
  xp$sec_levels <- vapply(layout$blocks[sec], function(bk) as.double(bk$n_levels), 0)
  xp$sec_q <- vapply(layout$blocks[sec], function(bk) as.integer(bk$q), 0L)
  xp$rr_diag <- as.double(unlist(lapply(per_block[sec], function(x) as.vector(x$D))))
  xp$CR <- if (nb > 1L) do.call(cbind, lapply(per_block[sec], `[[`, "C")) else matrix(0, P, 0L)
  first_level <- c(0, cumsum(xp$sec_levels))
  r1 <- list()
  rr <- list()
  for (f in sec) {
    for (g in seq_len(f - 1L)) {
      rf <- raw[f]
      rg <- raw[g]
      s <- sums$pairs[[paste(sort(c(rf, rg)), collapse = ":")]]
      lab_f <- s$labels[[if (rf < rg) 1L else 2L]]
      lab_g <- s$labels[[if (rf < rg) 2L else 1L]]
      zf <- plan$z[[rf]]
      zg <- plan$z[[rg]]
      vals <- do.call(cbind, lapply(seq_along(zg), function(bb) {
        do.call(cbind, lapply(seq_along(zf), function(a) db_cross_sum(s, shift, zf[a], 0, zg[bb], 0)))
      }))
      row <- match(lab_f, layout$blocks[[f]]$levels) - 1 + first_level[f - 1L]
      col <- match(lab_g, layout$blocks[[g]]$levels) - 1
      if (g > 1L) col <- col + first_level[g - 1L]
      piece <- list(row = row, col = col, vals = matrix(vals, nrow = length(row)))
      if (g == 1L) r1[[length(r1) + 1L]] <- piece else rr[[length(rr) + 1L]] <- piece
    }
  }
  c(xp, db_sparse_blocks(r1, "r1", xp$k1), db_sparse_blocks(rr, "rr"))
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
  vals <- do.call(rbind, lapply(pieces, `[[`, "vals"))
  ord <- order(col, row)
  values <- as.vector(t(vals[ord, , drop = FALSE]))
  if (which == "rr") {
    return(list(rr_row = as.double(row[ord]), rr_col = as.double(col[ord]), rr_vals = values))
  }
  counts <- tabulate(col + 1L, k1)
  list(r1_ptr = c(0, cumsum(as.double(counts))), r1_row = as.double(row[ord]), r1_vals = values)
}

# The levels of the key values in each row: the levels in the order the
# in-memory path gives them (numbers in numeric order, strings in the
# order of factor(); for a:b, by a then by b, b fastest), and each row's
# level (code, an index into the levels). Strings are made once per
# distinct value, not once per row (a crossed fit has a row per pair of
# levels).
db_level_labels <- function(keys) {
  keys <- lapply(keys, function(v) if (inherits(v, "integer64")) as.double(v) else v)
  id <- 0
  labels_of <- list()
  for (v in keys) {
    u <- unique(v)
    lev <- if (is.numeric(v)) as.character(sort(u)) else levels(factor(u))
    rank <- match(as.character(u), lev)[match(v, u)]
    # the combination's number: earlier keys vary slowest
    id <- id * length(lev) + (rank - 1)
    labels_of[[length(labels_of) + 1L]] <- lev
  }
  ids <- sort(unique(id))
  # the label of each distinct combination: its keys' labels joined by ":"
  parts <- vector("list", length(keys))
  rest <- ids
  for (j in rev(seq_along(keys))) {
    n_j <- length(labels_of[[j]])
    parts[[j]] <- labels_of[[j]][rest %% n_j + 1]
    rest <- rest %/% n_j
  }
  list(levels = do.call(paste, c(parts, sep = ":")), code = match(id, ids))
}

# The refusals of lmm_model_frame() from the counts: an empty table or
# subset, na.fail, no complete row; and, when rows were dropped for missing
# values, computed variables that are undefined where the columns they
# read are not (NaN in R, e.g. log(-1)), which are refused rather than
# dropped.
db_check_rows <- function(src, log, n_subset, n) {
  if (n_subset == 0) {
    mlm_abort(c(if (is.null(src$subset_sql)) "The table has no rows." else "No observations are left after {.arg subset}.",
                i = "Check the table and the condition given as {.arg subset}."),
              "mlmfit_error_empty")
  }
  if (n == n_subset) return(invisible())
  counts <- db_missing_counts(src, log)
  nan <- counts[startsWith(names(counts), "nan:")]
  if (any(nan > 0)) {
    shown <- sub("^nan:", "", names(nan)[nan > 0][1L])
    mlm_abort(c("{.var {shown}} is undefined (not a number) in {nan[nan > 0][[1L]]} row{?s} of the table where the columns it reads are not missing.",
                i = "An undefined computation such as {.code log(-1)} gives it: correct those values, or filter the rows out with {.arg subset}."),
              "mlmfit_error_nonfinite", variable = shown)
  }
  na <- counts[startsWith(names(counts), "na:")]
  has_na <- sub("^na:", "", names(na)[na > 0])
  if (src$na_action == "na.fail") {
    mlm_abort(c("{cli::qty(length(has_na))}Variable{?s} {.var {has_na}} {?has/have} missing values and {.arg na.action} is {.fn na.fail}.",
                i = "Remove those rows, or use {.code na.action = na.omit}."),
              "mlmfit_error_missing", variables = has_na)
  }
  if (n == 0) {
    mlm_abort(c("No observations remain after the removal of rows with missing values.",
                i = "Variables with missing values: {.var {has_na}}."),
              "mlmfit_error_empty")
  }
  invisible()
}

# The missing values of each variable (na:<name>) and the undefined values
# of each computed variable (nan:<name>) among the rows that pass subset:
# one query over the table, made only when rows were dropped.
db_missing_counts <- function(src, log) {
  con <- src$con
  not_null <- c(vapply(src$vars, `[[`, "", "not_null"),
                if (!is.null(src$weights_sql)) c(`(weights)` = paste(src$weights_sql, "IS NOT NULL")),
                if (!is.null(src$offset_sql)) c(`(offset)` = paste(src$offset_sql, "IS NOT NULL")))
  count_if <- function(cond) paste0("SUM(CASE WHEN ", cond, " THEN 1.0 ELSE 0.0 END)")
  agg <- stats::setNames(count_if(paste0("NOT (", not_null, ")")), paste0("na", seq_along(not_null)))
  computed <- db_computed_variables(src)
  for (i in computed) {
    v <- src$vars[[i]]
    inputs <- intersect(expression_vars(v$inner), src$columns$names)
    agg[paste0("nan", i)] <- count_if(paste(c(paste(v$sql, "IS NULL"), paste(src$columns$key_sql[inputs], "IS NOT NULL")),
                                            collapse = " AND "))
  }
  from <- paste0("SELECT * FROM (", src$source_sql, ") ", db_ident(con, "mlm_source"),
                 if (!is.null(src$subset_sql)) paste0(" WHERE (", src$subset_sql, ")"))
  res <- unlist(db_grouped_sums(log, from, character(), agg, "counting the missing values")[1L, ])
  res[is.na(res)] <- 0
  out <- stats::setNames(res[paste0("na", seq_along(not_null))], paste0("na:", names(not_null)))
  if (length(computed)) out <- c(out, stats::setNames(res[paste0("nan", computed)], paste0("nan:", names(src$vars)[computed])))
  out
}

# Infinite values and weights that are not positive, from the sums over
# all rows.
db_check_sums <- function(src, plan, total) {
  bad <- which(!is.finite(c(total$W, total$L)))
  if (length(bad)) {
    v <- if (bad[1L] == 1L) NA else as.integer(colnames(total$L)[bad[1L] - 1L])
    shown <- if (is.na(v)) "weights" else db_variable_name(src, plan, v)
    mlm_abort(c("{.var {shown}} has values that are not finite ({.code Inf}, {.code -Inf} or {.code NaN}) in the rows used.",
                i = "Correct or remove those rows, for example with {.arg subset}."),
              "mlmfit_error_nonfinite", variable = shown)
  }
  w_min <- total$extra$w_min
  if (!is.null(w_min) && !is.na(w_min) && w_min <= 0) {
    mlm_abort(c("{.arg weights} must be positive; some rows of the table have {if (w_min < 0) 'negative' else 'zero'} weights.",
                i = "Drop observations with {.arg subset} rather than giving them zero weight."),
              "mlmfit_error_weights")
  }
  invisible()
}

# The name a user knows a variable of the plan by (a column of X, the
# response, or a column of Z).
db_variable_name <- function(src, plan, v) {
  j <- match(v, plan$x)
  if (!is.na(j)) return(src$X$names[j])
  if (identical(plan$y, v)) return(src$response$name)
  for (b in src$random) if (!is.na(a <- match(plan$vars[v], b$z_sql))) return(b$colnames[a])
  plan$vars[v]
}

# A random-effect column that is zero in every row used (the refusal of
# check_re_columns()), from the sums of its squares.
db_check_columns <- function(plan, sums, layout, blocks) {
  shift <- sums$shift
  for (blk in layout$blocks) {
    z <- plan$z[[match(blk$label, names(blocks))]]
    for (a in seq_along(z)) {
      if (z[a] == 0L) next
      if (sum(db_cross_sum(sums$levels[[blk$label]], shift, z[a], 0, z[a], 0)) == 0) refuse_zero_re_column(blk, a)
    }
  }
}

# A response (minus the offset) that is the same in every row, or within
# every level of a factor with a random intercept (the refusals of
# check_response_varies()). The sums show where it may be (a spread of the
# response, overall or within levels, below 1e-8 of its size); a query of
# its smallest and largest values there decides exactly.
db_check_response <- function(src, log, plan, sums, layout, blocks, intercept_col) {
  y <- plan$y
  shift <- sums$shift
  spread <- function(s) {
    ss <- db_cross_sum(s, shift, y, 0, y, 0)
    sum(pmax(ss - db_cross_sum(s, shift, y, 0, 0L, 0)^2 / s$W, 0))
  }
  size <- sum(db_cross_sum(sums$total, shift, y, 0, y, 0)) + 1e-300
  yname <- deparse1(src$parsed$response)
  if (!is.null(src$offset_sql)) yname <- paste(yname, "- offset")
  r <- db_ident(src$con, "mlm_v1")
  one_y <- list(vars = plan$vars[y], x = integer(), y = 1L, z = list(), keys = list())
  range_of <- function(keys) {
    db_grouped_sums(log, db_design_sql(src, one_y, 0, keys), db_key_refs(src$con, length(keys)),
                    c(lo = paste0("MIN(", r, ")"), hi = paste0("MAX(", r, ")")), "the range of the response")
  }
  if (intercept_col > 0L && spread(sums$total) <= 1e-8 * size) {
    rng <- range_of(character())
    if (rng$lo == rng$hi) refuse_constant_response(yname, rng$lo)
  }
  for (blk in layout$blocks) {
    raw <- match(blk$label, names(blocks))
    if (!any(plan$z[[raw]] == 0L) || spread(sums$levels[[blk$label]]) > 1e-8 * size) next
    rng <- range_of(plan$keys[[raw]])
    if (all(rng$lo == rng$hi)) refuse_constant_within(yname, blk$label)
  }
  invisible()
}

# Columns of X that are linear combinations of earlier ones, from X'WX: the
# residual of each column on the columns kept before it, against the
# column's (uncentred) size (the criterion of the pivoted QR that lm() and
# the in-memory path use, tolerance 1e-7 on the column's norm). With an
# intercept, the centred cross-products give the residuals (the centred
# columns are orthogonal to the intercept) without losing digits to large
# means.
db_aliased_columns <- function(xp) {
  p <- xp$p
  if (p == 0L) return(integer())
  M <- xp$XX[seq_len(p), seq_len(p), drop = FALSE]
  size <- diag(M)
  ic <- xp$intercept_col + 1L
  centred <- ic > 0L && length(xp$center) > 0L
  if (centred) size <- size + M[ic, ic] * xp$center[seq_len(p)]^2
  kept <- if (centred) ic else integer()
  aliased <- integer()
  for (j in setdiff(seq_len(p), kept)) {
    r2 <- M[j, j]
    K <- setdiff(kept, if (centred) ic)
    if (length(K) && r2 > 0) {
      v <- M[K, j]
      r2 <- r2 - sum(v * qr.solve(M[K, K, drop = FALSE], v, tol = 1e-14))
    }
    if (!(size[j] > 0) || r2 <= 1e-14 * size[j]) aliased <- c(aliased, j) else kept <- c(kept, j)
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
