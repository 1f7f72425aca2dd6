# The model src of a fit to a database table: what lmm_model_frame() and
# build_re_terms() find in a data frame, found here from the table's
# columns and a few small queries, with every variable of the model written
# as SQL. No row of the table comes to R: the src holds names, types,
# levels, contrasts, the SQL of each column of X and Z, and the layout of
# the random-effect terms (theta template and bounds). The cross-products
# are then aggregate queries over the model frame (db-crossprod.R).

# Columns of the table as R sees them (from its first rows): the R class of
# each, and the SQL by which expressions read it (integer columns as
# doubles, so that arithmetic on them is R's).
db_table_columns <- function(tbl, con, sample = NULL) {
  if (is.null(sample)) {
    sample <- tryCatch(dplyr::collect(utils::head(tbl, 1000L)), error = function(e) db_error(e, "reading the table's columns"))
  }
  sample <- as.data.frame(sample, stringsAsFactors = FALSE)
  names <- names(sample)
  sql <- vapply(names, function(nm) {
    v <- sample[[nm]]
    id <- db_ident(con, nm)
    if (is.integer(v) || inherits(v, "integer64")) db_cast_double(con, id) else id
  }, character(1))
  list(names = names, sql = sql, key_sql = vapply(names, function(nm) db_ident(con, nm), character(1)),
       sample = sample)
}

# One variable of the model frame: its SQL (numeric variables as doubles),
# the SQL of its values as keys (factors: the raw values), and its kind.
db_variable <- function(expr, columns, env, con, role) {
  name <- frame_name(expr)
  if (role == "response" && is.call(expr) && identical(expr[[1L]], as.name("cbind"))) {
    # a binomial response cbind(successes, failures): two numeric columns
    parts <- lapply(as.list(expr)[-1L], db_variable, columns = columns, env = env, con = con, role = "predictor")
    if (length(parts) != 2L || any(vapply(parts, `[[`, "", "kind") != "numeric")) {
      mlm_abort("A binomial response given as {.code cbind()} needs two numeric columns: {.code cbind(successes, failures)}.",
                "mlmfit_error_response", variable = name)
    }
    return(list(name = name, expr = expr, inner = expr, kind = "matrix", parts = parts, sql = NULL, key_sql = NULL,
                role = role, ordered = FALSE,
                not_null = paste(vapply(parts, `[[`, "", "not_null"), collapse = " AND ")))
  }
  inner <- expr
  if (is.call(expr) && (identical(expr[[1L]], as.name("factor")) || identical(expr[[1L]], as.name("as.factor"))) &&
      length(expr) == 2L) {
    inner <- expr[[2L]]
  }
  if (is.call(expr) && identical(expr[[1L]], as.name("offset"))) inner <- expr[[2L]]
  check_db_names(inner, columns, env, name)
  key <- db_translate(con, inner, columns$key_sql, env, expr)
  numeric_sql <- db_translate(con, inner, columns$sql, env, expr)
  # evaluated on the table's first rows: the class of the variable, and an
  # early look for undefined values (NaN, refused as in memory)
  value <- tryCatch(suppressWarnings(eval(expr, columns$sample, env)), error = function(e) {
    mlm_abort(c("{.code {name}} could not be evaluated on the table's columns.", x = conditionMessage(e)),
              "mlmfit_error_variable", variable = name)
  })
  if (is.double(value) && any(is.nan(value))) {
    mlm_abort(c("{.var {name}} is undefined (not a number) in some rows of the table.",
                i = "An undefined computation such as {.code log(-1)} gives it: correct those values, or filter the rows out with {.arg subset}."),
              "mlmfit_error_nonfinite", variable = name)
  }
  if (!is.null(dim(value)) && !is.data.frame(value) && ncol(as.matrix(value)) > 1L) {
    mlm_abort(c("{.code {name}} makes several columns, which a database fit cannot compute.",
                i = "Functions such as {.fn poly}, {.fn ns} or {.fn scale} need the whole column in memory: compute the columns in the table, or fit in memory after {.fn dplyr::collect}."),
              "mlmfit_error_database_translation", variable = name)
  }
  kind <- if (is.factor(value) || is.character(value)) "factor" else if (is.logical(value)) "logical" else
    if (is.numeric(value)) "numeric" else "other"
  if (kind == "other") {
    mlm_abort(c("{.code {name}} is of class {.cls {class(value)[1]}}, which a mixed model cannot use.",
                i = "Use numeric, character, factor or logical columns."),
              "mlmfit_error_variable", variable = name)
  }
  # numeric columns are read as doubles already; a computed integer (e.g.
  # as.integer(x)) is cast so that sums of it are sums of doubles
  sql <- if (kind == "numeric") numeric_sql else key
  if (kind == "numeric" && is.integer(value) && !is.name(inner)) sql <- db_cast_double(con, sql)
  list(name = name, expr = expr, inner = inner, kind = kind, sql = sql, key_sql = key, role = role,
       ordered = is.ordered(value), integer = is.integer(value), not_null = paste(sql, "IS NOT NULL"))
}

# Names in an expression that are neither columns nor constants of the
# formula's environment: the error lookup the in-memory path makes.
check_db_names <- function(expr, columns, env, shown) {
  vars <- expression_vars(expr)
  missing <- vars[!vars %in% columns$names & !vapply(vars, function(v) {
    exists(v, envir = env) && is.atomic(val <- get(v, envir = env)) && length(val) == 1L
  }, logical(1))]
  if (length(missing) == 0L) return(invisible())
  near <- unique(unlist(lapply(missing, close_names, available = columns$names)))
  mlm_abort(c("{cli::qty(length(missing))}Variable{?s} {.var {missing}} {?is/are} not {?a column/columns} of the table.",
              i = if (length(near)) "Did you mean {.var {near}}?" else "The table's columns: {.var {columns$names}}."),
            "mlmfit_error_variable", variables = missing)
}

# The database part of the spec as it is made (`src`): the table, its
# variables, subset, missing-value rule, and the SQL of the model frame.
# Levels and design columns are added by db_discover_levels() and
# db_design().
db_source <- function(mc, parsed, tbl, caller_env, na.action, response = c("numeric", "any"), sample = NULL) {
  response <- match.arg(response)
  db_require()
  con <- dbplyr::remote_con(tbl)
  if (is.null(con)) {
    mlm_abort("{.arg data} is a lazy table without a database connection.", "mlmfit_error_data")
  }
  env <- environment(parsed$frame)
  source_sql <- as.character(dbplyr::sql_render(tbl))
  columns <- db_table_columns(tbl, con, sample)

  frame_vars <- as.list(attr(stats::terms(parsed$frame), "variables"))[-1L]
  vars <- lapply(frame_vars, function(e) {
    db_variable(e, columns, env, con, if (identical(e, parsed$response)) "response" else "predictor")
  })
  names(vars) <- vapply(vars, `[[`, "", "name")
  extra <- list()
  for (arg in c("weights", "offset")) {
    if (is.null(mc[[arg]])) next
    v <- db_variable(mc[[arg]], columns, env, con, arg)
    if (v$kind != "numeric") {
      mlm_abort("{.arg {arg}} must be numeric; {.code {v$name}} is not.", paste0("mlmfit_error_", arg))
    }
    extra[[arg]] <- v
  }
  subset_sql <- NULL
  if (!is.null(mc$subset)) {
    check_db_names(mc$subset, columns, env, frame_name(mc$subset))
    subset_sql <- db_translate(con, mc$subset, columns$sql, env, mc$subset)
  }
  y <- vars[[frame_name(parsed$response)]]
  if (response == "numeric" && y$kind != "numeric") {
    mlm_abort(c("The response {.var {y$name}} is not numeric: {.fn lmm} models a numeric response.",
                i = "For a binary or count outcome use {.fn glmm}."),
              "mlmfit_error_response", variable = y$name)
  }

  offsets <- Filter(function(v) is.call(v$expr) && identical(v$expr[[1L]], as.name("offset")), vars)
  offset_sql <- c(vapply(offsets, `[[`, "", "sql"), if (!is.null(extra$offset)) extra$offset$sql)
  src <- list(
    con = con, backend = db_backend_name(con), source_sql = source_sql, tbl = tbl,
    formula_env = env, parsed = parsed, columns = columns[c("names", "sql", "key_sql")],
    vars = vars, response = y, weights_sql = if (!is.null(extra$weights)) extra$weights$sql,
    offset_sql = if (length(offset_sql)) paste0("(", paste(offset_sql, collapse = " + "), ")"),
    subset_sql = subset_sql, na_action = db_na_action(na.action)
  )
  src$extra_exprs <- lapply(extra, `[[`, "inner")
  src$complete_sql <- paste(c(vapply(vars, `[[`, "", "not_null"),
                               if (!is.null(extra$weights)) paste(extra$weights$sql, "IS NOT NULL"),
                               if (!is.null(extra$offset)) paste(extra$offset$sql, "IS NOT NULL")),
                             collapse = " AND ")
  src
}

# The missing-value rules a database fit can honour: na.omit and
# na.exclude drop incomplete rows (na.exclude keeps them, with NA, in the
# lazy tables of fitted values and residuals); na.fail refuses them.
db_na_action <- function(na.action) {
  if (is.character(na.action) && length(na.action) == 1L) {
    na.action <- tryCatch(get(na.action, mode = "function"), error = function(e) NULL)
  }
  for (nm in c("na.omit", "na.exclude", "na.fail")) {
    if (identical(na.action, get(nm, envir = asNamespace("stats")))) return(nm)
  }
  mlm_abort(c("A database fit handles missing values with {.fn na.omit}, {.fn na.exclude} or {.fn na.fail} only.",
              i = "Filter the table before fitting for any other rule."),
            "mlmfit_error_argument")
}

# Levels of the factors of the fixed part and of the random-effect columns,
# as the in-memory path finds them: a character column becomes a factor in
# model.matrix(), after the removal of rows with missing values; factor(x)
# in the formula is made by model.frame() from the rows that pass `subset`
# (a level seen only in incomplete rows stays, and its column is dropped as
# aliased). Logical variables have the levels FALSE and TRUE.
db_discover_levels <- function(src, log) {
  used <- db_design_variables(src)
  for (nm in used) {
    v <- src$vars[[nm]]
    if (v$kind == "numeric") next
    if (v$kind == "logical") {
      src$vars[[nm]]$levels <- c("FALSE", "TRUE")
      src$vars[[nm]]$level_values <- c(FALSE, TRUE)
      next
    }
    made_by_factor <- !identical(v$inner, v$expr)
    where <- paste(c(src$subset_sql, if (made_by_factor) paste(v$key_sql, "IS NOT NULL") else src$complete_sql),
                   collapse = ") AND (")
    sql <- paste0("SELECT ", v$key_sql, " AS ", db_ident(src$con, "level"), " FROM (", src$source_sql, ") ",
                  db_ident(src$con, "mlm_source"), " WHERE (", where, ") GROUP BY ", v$key_sql)
    res <- db_query(log, sql, paste("levels of", nm))
    values <- res[[1L]]
    if (inherits(values, "integer64")) values <- as.double(values)
    f <- if (v$ordered) factor(values, levels = sort(unique(values))) else factor(values)
    src$vars[[nm]]$levels <- levels(f)
    src$vars[[nm]]$level_values <- values[match(levels(f), as.character(values))]
  }
  src
}

# Variables that enter the columns of X or Z (the ones whose levels are needed).
db_design_variables <- function(src) {
  fixed <- rownames(attr(stats::terms(src$parsed$fixed), "factors"))
  random <- unlist(lapply(src$parsed$random, function(r) {
    rownames(attr(stats::terms(stats::as.formula(call("~", r$lhs))), "factors"))
  }))
  setdiff(unique(c(fixed, random)), src$response$name)
}

# A small data frame with the model's variables, their classes and levels,
# on which model.matrix() gives the column names, assign and contrasts that
# the SQL columns must reproduce.
db_prototype_frame <- function(src, names) {
  n <- max(2L, unlist(lapply(src$vars[names], function(v) length(v$levels))))
  cols <- lapply(src$vars[names], function(v) {
    if (v$kind == "numeric") return(seq_len(n) / n)
    if (v$kind == "logical") return(rep_len(c(FALSE, TRUE), n))
    if (length(v$levels) == 0L) return(factor(rep(NA_character_, n)))
    factor(rep_len(v$levels, n), levels = v$levels, ordered = v$ordered)
  })
  names(cols) <- names
  structure(cols, class = "data.frame", row.names = seq_len(n))
}

# The columns of model.matrix(tt, frame) written as SQL over the model
# frame's columns (`alias[name]`): each term is a product of one coding
# column per variable, the first variable varying fastest; factors coded by
# their contrasts, or by indicators of every level where the term has no
# margin for them (attr(tt, "factors") == 2), as model.matrix() codes them.
db_design_columns <- function(src, tt, alias, what, treatment = FALSE) {
  fac <- attr(tt, "factors")
  labels <- attr(tt, "term.labels")
  names_out <- character()
  sql_out <- character()
  assign <- integer()
  if (attr(tt, "intercept") == 1L) {
    names_out <- "(Intercept)"
    sql_out <- "1.0"
    assign <- 0L
  }
  vars_used <- if (length(labels)) rownames(fac)[rowSums(fac[, labels, drop = FALSE]) > 0] else character()
  # without an intercept, the first factor of the first term that has one is
  # coded by indicators of all its levels (model.matrix()'s rule)
  if (attr(tt, "intercept") == 0L && length(labels)) {
    is_factor <- vapply(rownames(fac), function(v) !is.null(src$vars[[v]]) && src$vars[[v]]$kind != "numeric", NA)
    for (lab in labels) {
      hit <- which(is_factor & fac[, lab] > 0)
      if (length(hit)) {
        fac[hit[1L], lab] <- 2L
        break
      }
    }
  }
  one_level <- vars_used[vapply(src$vars[vars_used], function(v) v$kind == "factor" && length(v$levels) < 2L, NA)]
  if (length(one_level) > 0L) {
    mlm_abort(c("The factor {.var {one_level}} has a single level in the rows used: it cannot be a predictor.",
                i = "Remove it from the formula, or check {.arg subset} and the rows dropped for missing values."),
              "mlmfit_error_variable", variables = one_level)
  }
  # a model frame for model.matrix(): every variable of the terms, in their order
  tt <- stats::delete.response(tt)
  proto <- db_prototype_frame(src, vapply(as.list(attr(tt, "variables"))[-1L], frame_name, ""))
  attr(proto, "terms") <- tt
  for (k in seq_along(labels)) {
    in_term <- rownames(fac)[fac[, labels[k]] > 0]
    codings <- lapply(in_term, function(v) db_coding(src, v, full = fac[v, labels[k]] == 2L, alias[[v]], proto, treatment))
    nm <- ""
    sq <- ""
    first <- TRUE
    for (cd in codings) {
      nm <- as.vector(outer(cd$names, nm, function(a, b) if (first) a else paste(b, a, sep = ":")))
      sq <- as.vector(outer(cd$sql, sq, function(a, b) if (first) a else paste0(b, " * ", a)))
      first <- FALSE
    }
    names_out <- c(names_out, nm)
    sql_out <- c(sql_out, sq)
    assign <- c(assign, rep(k, length(nm)))
  }
  factors <- names(proto)[vapply(proto, function(v) is.factor(v) || is.logical(v), NA)]
  contrasts_arg <- if (treatment && length(factors)) stats::setNames(rep(list("contr.treatment"), length(factors)), factors)
  reference <- tryCatch(stats::model.matrix(tt, proto, contrasts.arg = contrasts_arg), error = function(e) {
    mlm_abort(c("The {what} model matrix could not be built.", x = conditionMessage(e)), "mlmfit_error_frame")
  })
  if (!identical(colnames(reference), names_out)) {
    stop("internal: the SQL columns of the ", what, " part do not match model.matrix(): ",
         paste(colnames(reference), collapse = ", "), " vs ", paste(names_out, collapse = ", "))
  }
  list(names = names_out, sql = stats::setNames(sql_out, names_out), assign = assign,
       contrasts = attr(reference, "contrasts"), proto = proto)
}

# The coding columns of one variable: itself if numeric; for a factor,
# CASE expressions giving each level's row of the contrast matrix (or
# indicators of every level).
db_coding <- function(src, name, full, alias, proto, treatment = FALSE) {
  v <- src$vars[[name]]
  if (v$kind == "numeric") return(list(names = name, sql = alias))
  f <- proto[[name]]
  if (v$kind == "logical") f <- factor(f, levels = c(FALSE, TRUE))
  cm <- if (full) {
    matrix(diag(nlevels(f)), nlevels(f), dimnames = list(levels(f), levels(f)))
  } else if (treatment) {
    stats::contr.treatment(levels(f))
  } else {
    stats::contrasts(f)
  }
  cn <- colnames(cm) %||% as.character(seq_len(ncol(cm)))
  literal <- db_value(src$con, v$level_values)
  sql <- vapply(seq_len(ncol(cm)), function(j) {
    nz <- which(cm[, j] != 0)
    if (length(nz) == 0L) return("0.0")
    if (all(cm[nz, j] == 1)) {
      cond <- if (length(nz) == 1L) paste0(alias, " = ", literal[nz]) else paste0(alias, " IN (", paste(literal[nz], collapse = ", "), ")")
      return(paste0("(CASE WHEN ", cond, " THEN 1.0 ELSE 0.0 END)"))
    }
    paste0("(CASE ", paste0("WHEN ", alias, " = ", literal[nz], " THEN ", db_number(cm[nz, j]), collapse = " "),
           " ELSE 0.0 END)")
  }, character(1))
  list(names = paste0(name, cn), sql = sql)
}

# Aliases of the model frame's columns in the generated SQL (internal
# names, so that user names never need more than quoting once).
db_aliases <- function(src) {
  nm <- names(src$vars)
  stats::setNames(vapply(seq_along(nm), function(i) db_ident(src$con, paste0("mlm_v", i)), ""), nm)
}

# The columns of X and of each random-effect term as SQL over the model
# frame, and the keys of each grouping factor.
db_design <- function(src) {
  src$alias <- db_aliases(src)
  fixed_terms <- stats::terms(src$parsed$fixed)
  X <- db_design_columns(src, fixed_terms, src$alias, "fixed-effect")
  X$terms <- fixed_terms
  X$xlevels <- stats::.getXlevels(fixed_terms, X$proto)
  X$proto <- NULL
  src$X <- X
  src$random <- lapply(src$parsed$random, function(r) db_random_term(src, r))
  db_group_by_integers(src)
}

# An integer column that only groups (no column of X, Z or y is made from
# it) enters the frame as it is stored, not cast to double: PostgreSQL
# groups 1e8 rows by an integer 7-8% faster (bench/db-results.md). Its key
# values come back as integers, as the cast ones are made again.
db_group_by_integers <- function(src) {
  keys <- unique(unlist(lapply(src$random, `[[`, "keys")))
  numeric_uses <- c(db_design_variables(src), src$response$name)
  for (k in setdiff(keys, numeric_uses)) {
    v <- src$vars[[k]]
    if (v$kind == "numeric" && isTRUE(v$integer) && is.name(v$expr)) src$vars[[k]]$sql <- v$key_sql
  }
  src
}

# One random-effect term: its grouping keys (columns of the model frame)
# and the SQL of its columns of Z.
db_random_term <- function(src, r) {
  label <- r$label
  frame_names <- names(src$vars)
  key_names <- if (label %in% frame_names) label else if (is_interaction_of_names(r$group, frame_names)) {
    interaction_names(r$group)
  } else {
    mlm_abort(c("The grouping factor {.code {label}} cannot be formed in the database.",
                i = "Use a column of the table, or an interaction of columns such as {.code a:b}."),
              "mlmfit_error_formula")
  }
  bad <- key_names[vapply(src$vars[key_names], function(v) v$kind == "numeric" && !is.name(v$expr), NA)]
  if (length(bad)) {
    mlm_abort(c("The grouping factor {.code {label}} is computed ({.code {bad}}): a database fit groups by columns.",
                i = "Compute the grouping column in the table first."),
              "mlmfit_error_formula")
  }
  tt <- stats::terms(stats::as.formula(call("~", r$lhs), env = src$formula_env))
  Z <- db_design_columns(src, tt, src$alias, "random-effect")
  if (length(Z$names) == 0L) {
    mlm_abort("The random-effect term {.code ({deparse1(r$lhs)} | ...)} has no columns.", "mlmfit_error_formula")
  }
  list(label = label, lhs = r$lhs, group_expr = r$group, lme4_order = r$lme4_order, keys = key_names,
       key_kinds = vapply(src$vars[key_names], `[[`, "", "kind"), colnames = Z$names, z_sql = unname(Z$sql),
       q = length(Z$names))
}

# The model spec (spec.R) of a fit to a database table, without rows:
# the same description of the model as an in-memory spec (names, levels,
# contrasts, the random-effect layout with its theta template, family), and
# in `db` how to read its rows in SQL. `cp`: the cross-products and what
# they found (db_cross_products()); `family`: glmm()'s checked family.
db_model_spec <- function(src, cp, formula, parsed, family = NULL) {
  X <- src$X
  keep <- cp$keep
  layout <- cp$layout
  frame_terms <- stats::terms(parsed$frame)
  classes <- vapply(src$vars, function(v) switch(v$kind, numeric = "numeric", logical = "logical",
                                                  matrix = "nmatrix.2", if (v$ordered) "ordered" else "factor"), "")
  attr(frame_terms, "dataClasses") <- classes
  attr(frame_terms, "predvars") <- attr(frame_terms, "variables")
  db <- src[intersect(c("con", "backend", "source_sql", "formula_env", "columns", "vars", "alias", "weights_sql",
                        "offset_sql", "subset_sql", "complete_sql", "na_action", "glmm_y_sql", "glmm_pw_sql"), names(src))]
  db$response <- src$response$name
  db$x_sql <- X$sql[keep]
  db$blocks <- lapply(layout$blocks, function(b) {
    tms <- cp$raw_terms[layout$order[b$terms]]
    list(keys = tms[[1L]]$keys, z_sql = unlist(lapply(tms, `[[`, "z_sql")), key_values = cp$key_values[[b$label]])
  })
  db$n_subset <- cp$n_subset
  db$method <- "aggregates"
  db$re_tables <- new.env(parent = emptyenv())  # temporary tables of random effects made for lazy tables
  db$queries <- NULL
  spec <- list(
    formula = formula, fixed_formula = parsed$fixed, response_name = deparse1(parsed$response), n = cp$xp$n,
    fixed = list(names = X$names[keep], terms = X$terms, frame_terms = frame_terms, xlevels = X$xlevels,
                 contrasts = X$contrasts, assign = X$assign[keep], dropped = cp$dropped,
                 intercept_col = match("(Intercept)", X$names[keep], nomatch = 0L)),
    re = list(terms = layout$terms, blocks = layout$blocks),
    theta = layout$theta,
    family = family,
    residual = NULL,
    db = db,
    rows = NULL
  )
  class(spec) <- "mlmfit_spec"
  validate_model_spec(spec)
}

# The queries a fit sent, recorded in its spec (show_query(), explain()).
db_with_queries <- function(spec, log) {
  spec$db$queries <- db_log_table(log)
  spec
}

# The names of the columns of Z of a random-effect term with left-hand side
# `lhs` (as in-memory re_columns() names them).
db_term_colnames <- function(db, lhs) {
  db_design_columns(db, stats::terms(stats::as.formula(call("~", lhs), env = db$formula_env)), db$alias,
                    "random-effect")$names
}
