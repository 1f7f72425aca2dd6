# The SQL of a database fit, from its database part (`src`, db-spec.R):
# the model frame (the rows that pass `subset` and have no missing value,
# one column per variable of the model), the design over it (each distinct
# column of [X y] and Z once, shifted by an approximate centre, and the
# grouping keys), and the aggregates whose values are the sums from which
# the cross-products of [Z X y]'W[Z X y] follow (db-crossprod.R).

# The model frame: the rows that pass `subset` (and, unless incomplete =
# TRUE, have no missing value), with the variables under their aliases,
# the weights (mlm_w) and the offset (mlm_o). flag: (with incomplete =
# TRUE) a column mlm_incomplete, 1 in the rows with a missing value and 0
# in the others (integers: a literal 1.0 is an exact NUMERIC in some
# databases, whose sums are several times slower). null_incomplete: every
# column NULL in those rows (CASE evaluates a column only where the row is
# complete, so that no function meets the values of an incomplete row,
# e.g. a logarithm of a negative number beside a missing response).
db_frame_sql <- function(src, incomplete = FALSE, flag = FALSE, null_incomplete = FALSE) {
  con <- src$con
  vars <- Filter(function(v) !is.null(v$sql), src$vars)  # not cbind(): its parts are variables
  sql <- c(vapply(vars, `[[`, "", "sql"), src$weights_sql, src$offset_sql)
  alias <- c(src$alias[names(vars)], if (!is.null(src$weights_sql)) db_ident(con, "mlm_w"),
             if (!is.null(src$offset_sql)) db_ident(con, "mlm_o"))
  if (null_incomplete) sql <- paste0("CASE WHEN ", src$complete_sql, " THEN ", sql, " END")
  select <- c(paste(sql, "AS", alias),
              if (flag) paste0("CASE WHEN ", src$complete_sql, " THEN 0 ELSE 1 END AS ", db_ident(con, "mlm_incomplete")))
  where <- c(src$subset_sql, if (!incomplete) src$complete_sql)
  paste0("SELECT ", paste(select, collapse = ",\n  "), "\nFROM (", src$source_sql, ") ", db_ident(con, "mlm_source"),
         if (length(where)) paste0("\nWHERE (", paste(where, collapse = ")\n  AND ("), ")"))
}

# The response minus the offset, over the frame.
db_response_sql <- function(src) {
  r <- src$alias[[src$response$name]]
  if (!is.null(src$offset_sql)) r <- paste0(r, " - ", db_ident(src$con, "mlm_o"))
  r
}

# What the sums are taken over: `vars`, the distinct columns of [X y] and Z
# (SQL over the frame; a column of ones is not a variable), and where each
# column of X (x), the response (y) and each column of Z of each block (z)
# is among them (0: the constant 1). `blocks`: per block, keys (frame
# variables of its grouping factor) and z_sql.
db_sum_plan <- function(x_sql, response_sql, blocks) {
  cols <- c(unname(x_sql), response_sql, unlist(lapply(blocks, `[[`, "z_sql")))
  vars <- unique(cols[cols != "1.0"])
  index <- function(sql) ifelse(sql == "1.0", 0L, match(sql, vars))
  list(vars = vars, x = index(unname(x_sql)), y = index(response_sql),
       z = lapply(blocks, function(b) index(b$z_sql)), keys = lapply(blocks, `[[`, "keys"))
}

# Names of the sums of products of variables i and j (i <= j; products
# with the constant 1 are the sums of the variables, always taken).
db_pair_names <- function(i, j) {
  grid <- expand.grid(i = i, j = j)
  grid <- grid[grid$i > 0 & grid$j > 0, , drop = FALSE]
  if (nrow(grid) == 0L) return(character())
  unique(paste0(pmin(grid$i, grid$j), "_", pmax(grid$i, grid$j)))
}

# The products a query needs: within each block (Z'Z, [X y]'Z and y'y),
# of [X y] with itself (when xx), and between the blocks f and g of each
# pair in `between` (a list of c(f, g)).
db_plan_pairs <- function(plan, blocks = seq_along(plan$z), xx = TRUE, between = list()) {
  b <- c(plan$x, plan$y)
  out <- character()
  # (y, y) in every query: the spread of the response within levels
  for (f in blocks) out <- c(out, db_pair_names(plan$z[[f]], plan$z[[f]]), db_pair_names(b, plan$z[[f]]),
                             db_pair_names(plan$y, plan$y))
  if (xx) out <- c(out, db_pair_names(b, b))
  for (fg in between) out <- c(out, db_pair_names(plan$z[[fg[1L]]], plan$z[[fg[2L]]]))
  unique(out)
}

# The design over the frame: variable i (shifted by shift[i]) as mlm_v<i>,
# each grouping key as mlm_k<i> (keys: frame variable names), the weights
# (mlm_w, from the frame's column `weight`) and the frame's columns
# `carry` as they are.
db_design_sql <- function(src, plan, shift, keys, frame_sql = db_frame_sql(src), weight = "mlm_w",
                          carry = character()) {
  con <- src$con
  v <- ifelse(shift == 0, plan$vars, paste0(plan$vars, " - ", db_number(shift)))
  select <- c(paste(v, "AS", db_ident(con, paste0("mlm_v", seq_along(v)))),
              if (length(keys)) paste(src$alias[keys], "AS", db_ident(con, paste0("mlm_k", seq_along(keys)))),
              if (!is.null(src$weights_sql)) paste(db_ident(con, weight), "AS", db_ident(con, "mlm_w")),
              if (length(carry)) db_ident(con, carry))
  paste0("SELECT ", paste(select, collapse = ",\n  "), "\nFROM (", frame_sql, ") ", db_ident(con, "mlm_frame"))
}

# The aggregates of a query: the count of rows (n), the sum of the weights
# (w, weighted fits), of each variable in `vars` (l<i>, times the weights)
# and of each product in `pairs` (p<i>_<j>).
db_sum_aggregates <- function(con, vars, pairs, weighted) {
  v <- function(i) db_ident(con, paste0("mlm_v", i))
  w <- if (weighted) db_ident(con, "mlm_w")
  sum_of <- function(...) paste0("SUM(", paste(c(w, ...), collapse = " * "), ")")
  ij <- strsplit(pairs, "_", fixed = TRUE)
  c(n = db_cast_double(con, "COUNT(*)"), if (weighted) c(w = paste0("SUM(", w, ")")),
    if (length(vars)) stats::setNames(vapply(vars, function(i) sum_of(v(i)), ""), paste0("l", vars)),
    if (length(pairs)) stats::setNames(vapply(ij, function(x) sum_of(v(x[1L]), v(x[2L])), ""), paste0("p", pairs)))
}

# SUM of a product of columns (quoted names or SQL), times the weights; a
# column "1.0" is left out of the product, and the sum of no factor is the
# (weighted) count, cast to double.
db_sum_product <- function(con, factors, weighted) {
  factors <- factors[factors != "1.0"]
  if (weighted) factors <- c(db_ident(con, "mlm_w"), factors)
  if (length(factors) == 0L) return(db_cast_double(con, "COUNT(*)"))
  paste0("SUM(", paste(factors, collapse = " * "), ")")
}

# Variables computed from columns (not a column itself, nor a factor of one).
db_computed_variables <- function(src) {
  which(vapply(src$vars, function(v) v$kind == "numeric" && is.call(v$inner), logical(1)))
}

# The first rows of a query (dbplyr writes the clause each database
# understands: LIMIT, TOP, FETCH FIRST).
db_first_rows_sql <- function(con, sql, n) {
  as.character(dbplyr::sql_query_select(con, dbplyr::sql("*"),
                                        dbplyr::sql(paste0("(", sql, ") ", db_ident(con, "mlm_sample"))),
                                        limit = n))
}
