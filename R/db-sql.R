# The SQL of a database fit, from the spec: the model frame (the rows that
# pass `subset` and have no missing value, with one column per variable of
# the model), the design (the columns of X centred as the in-memory path
# centres them, the response minus the offset, the columns of Z and the
# grouping keys) and the aggregate expressions whose values are the
# cross-products of [Z X y]'W[Z X y].

# The model frame. complete_flag: keep incomplete rows and add a column
# mlm_complete (1.0 or 0.0), to count them in the same pass.
db_frame_sql <- function(spec, complete_flag = FALSE) {
  con <- spec$con
  vars <- Filter(function(v) !is.null(v$sql), spec$vars)  # not cbind(): its parts are variables
  select <- paste(vapply(vars, `[[`, "", "sql"), "AS", spec$alias[names(vars)])
  select <- c(select,
              if (!is.null(spec$weights_sql)) paste(spec$weights_sql, "AS", db_ident(con, "mlm_w")),
              if (!is.null(spec$offset_sql)) paste(spec$offset_sql, "AS", db_ident(con, "mlm_o")))
  where <- spec$subset_sql
  if (complete_flag) {
    select <- c(select, paste0("CASE WHEN ", spec$complete_sql, " THEN 1.0 ELSE 0.0 END AS ",
                               db_ident(con, "mlm_complete")))
    # a computed variable missing where the columns it reads are not: an
    # undefined value (NaN in R, e.g. log(-1)), which is refused, not dropped
    for (i in db_computed_variables(spec)) {
      v <- vars[[i]]
      inputs <- intersect(expression_vars(v$inner), spec$columns$names)
      cond <- paste(c(paste(v$sql, "IS NULL"), paste(spec$columns$key_sql[inputs], "IS NOT NULL")), collapse = " AND ")
      select <- c(select, paste0("CASE WHEN ", cond, " THEN 1.0 ELSE 0.0 END AS ", db_ident(con, paste0("mlm_nan", i))))
    }
  } else {
    where <- c(where, spec$complete_sql)
  }
  paste0("SELECT ", paste(select, collapse = ",\n  "), "\nFROM (", spec$source_sql, ") ", db_ident(con, "mlm_source"),
         if (length(where)) paste0("\nWHERE (", paste(where, collapse = ")\n  AND ("), ")"))
}

# Names of the design's columns: b<j> for the columns of X (j = 1..p) and
# b<p+1> for the response minus the offset; z<f>_<a> for column a of block
# f; k<f>_<i> for key i of block f; w for the weights.
db_b_name <- function(j) paste0("mlm_b", j)
db_z_name <- function(f, a) paste0("mlm_z", f, "_", a)
db_k_name <- function(f, i) paste0("mlm_k", f, "_", i)

# The design over the model frame. center: NULL (no centring), or the
# length p + 1 vector of the in-memory path (the intercept's entry 0).
# blocks: list of list(keys = frame variable names, z_sql = SQL of Z's
# columns over the frame).
db_design_sql <- function(spec, blocks, center = NULL, frame_sql = db_frame_sql(spec), x_sql = spec$X$sql) {
  con <- spec$con
  p <- length(x_sql)
  response <- spec$alias[[spec$response$name]]
  if (!is.null(spec$offset_sql)) response <- paste0(response, " - ", db_ident(con, "mlm_o"))
  b_sql <- c(unname(x_sql), response)
  if (!is.null(center)) {
    shift <- center != 0
    b_sql[shift] <- paste0(b_sql[shift], " - ", db_number(center[shift]))
  }
  select <- paste(b_sql, "AS", db_ident(con, db_b_name(seq_len(p + 1L))))
  for (f in seq_along(blocks)) {
    blk <- blocks[[f]]
    select <- c(select, paste(blk$z_sql, "AS", db_ident(con, db_z_name(f, seq_along(blk$z_sql)))),
                paste(spec$alias[blk$keys], "AS", db_ident(con, db_k_name(f, seq_along(blk$keys)))))
  }
  if (!is.null(spec$weights_sql)) select <- c(select, db_ident(con, "mlm_w"))
  if (!is.null(frame_sql)) {
    return(paste0("SELECT ", paste(select, collapse = ",\n  "), "\nFROM (", frame_sql, ") ", db_ident(con, "mlm_frame")))
  }
  select
}

# SUM of a product of design columns (quoted names or SQL), times the
# weights; a column "1.0" is left out of the product, and the sum of no
# factor is the (weighted) count, cast to double.
db_sum_product <- function(con, factors, weighted) {
  factors <- factors[factors != "1.0"]
  if (weighted) factors <- c(db_ident(con, "mlm_w"), factors)
  if (length(factors) == 0L) return(db_cast_double(con, "COUNT(*)"))
  paste0("SUM(", paste(factors, collapse = " * "), ")")
}

# The aggregates of one block, per level: the lower triangle of Z'WZ
# (d_a_b), [X y]'WZ (c_j_a, j = 1..p+1), the count of rows, and for blocks
# with an intercept the range of the response (for the check that it is
# constant within every level).
db_block_aggregates <- function(con, f, blk, p, weighted, intercept_col = 0L, response_range = FALSE) {
  q <- length(blk$z_sql)
  z <- db_z_refs(con, f, blk)
  b <- db_b_refs(con, p, intercept_col)
  out <- c(n = db_cast_double(con, "COUNT(*)"))
  for (bb in seq_len(q)) for (a in bb:q) out[paste0("d_", a, "_", bb)] <- db_sum_product(con, c(z[a], z[bb]), weighted)
  for (a in seq_len(q)) for (j in seq_len(p + 1L)) out[paste0("c_", j, "_", a)] <- db_sum_product(con, c(b[j], z[a]), weighted)
  if (response_range) {
    out["r_min"] <- paste0("MIN(", b[p + 1L], ")")
    out["r_max"] <- paste0("MAX(", b[p + 1L], ")")
  }
  out
}

# The aggregates of the lower triangle of [X y]'W[X y] (x_j_k, j >= k).
db_xx_aggregates <- function(con, p, weighted, intercept_col = 0L) {
  b <- db_b_refs(con, p, intercept_col)
  out <- character()
  for (k in seq_len(p + 1L)) for (j in k:(p + 1L)) out[paste0("x_", j, "_", k)] <- db_sum_product(con, c(b[j], b[k]), weighted)
  out
}

# Z_f' W Z_g for the pairs of levels of blocks f and g that occur together.
db_pair_aggregates <- function(con, f, blk_f, g, blk_g, weighted) {
  zf <- db_z_refs(con, f, blk_f)
  zg <- db_z_refs(con, g, blk_g)
  out <- character()
  for (b in seq_along(zg)) for (a in seq_along(zf)) out[paste0("p_", a, "_", b)] <- db_sum_product(con, c(zf[a], zg[b]), weighted)
  out
}

db_block_keys <- function(con, f, blk) {
  stats::setNames(db_ident(con, db_k_name(f, seq_along(blk$keys))), paste0("key", seq_along(blk$keys)))
}

# The design's columns as factors of products: constant columns (the
# intercept of X, intercepts of Z) as the literal 1.0, which products omit.
db_b_refs <- function(con, p, intercept_col = 0L) {
  b <- db_ident(con, db_b_name(seq_len(p + 1L)))
  if (intercept_col > 0L) b[intercept_col] <- "1.0"
  b
}

db_z_refs <- function(con, f, blk) {
  vapply(seq_along(blk$z_sql), function(a) if (blk$z_sql[a] == "1.0") "1.0" else db_ident(con, db_z_name(f, a)), "")
}

# Variables computed from columns (not a column itself, nor a factor of one).
db_computed_variables <- function(spec) {
  which(vapply(spec$vars, function(v) v$kind == "numeric" && is.call(v$inner), logical(1)))
}
