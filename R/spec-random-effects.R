# Random-effect terms: grouping factors, the columns of Z for each term, and
# the covariance parametrisation theta (the random-effect part of the model
# spec, spec.R). Terms are ordered by number of
# levels, most first (as lme4 orders them); terms on the same grouping
# factor are merged into one engine block whose relative covariance factor
# is block diagonal over the terms.

# The values of the grouping variable of a term in `data` (the model frame,
# or new data for predictions): a variable, an interaction `a:b` of
# variables (a factor of the combinations that occur), or an expression
# evaluated with the variables it reads as factors.
grouping_variable <- function(expr, label, data, env) {
  if (label %in% names(data)) return(.subset2(data, label))
  if (is_interaction_of_names(expr, names(data))) {
    return(interaction_factor(lapply(interaction_names(expr), function(v) data[[v]])))
  }
  vars <- intersect(all.vars(expr), names(data))
  local <- lapply(data[vars], function(v) if (is.factor(v)) v else factor(v))
  tryCatch(eval(expr, local, env), error = function(e) {
    mlm_abort(c("The grouping factor {.code {label}} could not be formed.", x = conditionMessage(e)),
              "mlmfit_error_formula")
  })
}

# The grouping factor of a term, evaluated in the model frame, with unused
# levels dropped. Character and numeric variables become factors.
grouping_factor <- function(expr, label, mf, env) {
  g <- grouping_variable(expr, label, mf, env)
  if (length(g) != nrow(mf)) {
    mlm_abort("The grouping factor {.code {label}} must have one value per observation.", "mlmfit_error_formula")
  }
  if (!is.atomic(g) || !is.null(dim(g))) {
    mlm_abort(c("The grouping factor {.code {label}} must be a factor, character or numeric variable.",
                x = "It is of class {.cls {class(g)[1]}}."),
              "mlmfit_error_grouping", variable = label)
  }
  if (anyNA(g)) {
    rows <- frame_rows(mf, which(is.na(g)))
    mlm_abort(c("The grouping factor {.code {label}} is missing in {cli::qty(length(rows))}row{?s} {rows_text(rows)} of {.arg data}.",
                i = "Drop those rows with {.arg subset}, or give them a level."),
              "mlmfit_error_missing", variable = label, rows = rows)
  }
  as_grouping_factor(g)
}

# A factor with only the levels that occur, with factor()'s semantics (as
# lme4): the levels are the values as text, `as.character()`, in the order of
# the values; values that print alike (0.1 + 0.2 and 0.3) are one level.
# group_labels() gives the same text for the values of new data, so that
# predictions and simulations find the levels of the fit. Integer-valued
# codes (the usual school or subject identifiers) are tabulated rather than
# hashed or turned into strings, which keeps memory low for millions of rows.
as_grouping_factor <- function(g) {
  if (is.factor(g)) {
    if (any(tabulate(g, nlevels(g)) == 0L)) g <- droplevels(g)
    return(g)
  }
  if (is.numeric(g) && length(g) > 0L) {
    lo <- min(g)
    hi <- max(g)
    if (lo >= 1 && hi <= max(1e6, 4 * length(g)) && (is.integer(g) || all(g == trunc(g)))) {
      counts <- tabulate(g, hi)
      used <- which(counts > 0L)
      map <- integer(hi)
      map[used] <- seq_along(used)
      # distinct whole numbers below 2^53 have distinct texts
      labels <- as.character(if (is.integer(g)) used else as.double(used))
      return(structure(map[g], levels = labels, class = "factor"))
    }
    u <- sort(unique(g))
    labels <- as.character(u)
    levels <- unique(labels)
    return(structure(match(labels, levels)[match(g, u)], levels = levels, class = "factor"))
  }
  factor(g)
}

# The level (as text) of each value of a grouping variable in new data, as
# as_grouping_factor() names the levels of the fit.
group_labels <- function(x) as.character(x)

is_interaction_of_names <- function(expr, available) {
  if (is.name(expr)) return(as.character(expr) %in% available)
  is.call(expr) && identical(expr[[1L]], as.name(":")) && length(expr) == 3L &&
    is_interaction_of_names(expr[[2L]], available) && is_interaction_of_names(expr[[3L]], available)
}

interaction_names <- function(expr) {
  if (is.name(expr)) return(as.character(expr))
  c(interaction_names(expr[[2L]]), interaction_names(expr[[3L]]))
}

# The factor `a:b:...` with only the combinations that occur, levels ordered
# with the first factor varying slowest (as base R's `:` orders them). Base
# `:` builds every combination of levels first, which is prohibitive for
# nested factors with many levels.
interaction_factor <- function(vars) {
  facs <- lapply(vars, function(v) if (is.factor(v)) v else factor(v))
  code <- as.integer(facs[[1L]]) - 1
  for (f in facs[-1L]) code <- code * nlevels(f) + (as.integer(f) - 1)
  used <- sort(unique(code))
  idx <- match(code, used)
  rest <- used
  parts <- vector("list", length(facs))
  for (k in rev(seq_along(facs))) {
    nl <- nlevels(facs[[k]])
    parts[[k]] <- levels(facs[[k]])[rest %% nl + 1]
    rest <- rest %/% nl
  }
  labels <- do.call(paste, c(parts, sep = ":"))
  structure(idx, levels = labels, class = "factor")
}

# The columns of Z for one term, as references the engine reads without
# copies: NULL for a column of ones, an integer for a column of X, or a
# numeric vector.
re_columns <- function(lhs, mf, X, env) {
  tt <- stats::terms(formula_in(call("~", lhs), env))
  labels <- attr(tt, "term.labels")
  intercept <- attr(tt, "intercept") == 1L
  simple <- all(labels %in% names(mf)) &&
    all(vapply(labels, function(l) is.numeric(.subset2(mf, l)) && is.null(dim(.subset2(mf, l))), logical(1)))
  if (simple) {
    names <- c(if (intercept) "(Intercept)", labels)
    refs <- lapply(labels, function(l) {
      j <- match(l, colnames(X))
      if (!is.na(j)) j else as.double(.subset2(mf, l))
    })
    if (intercept) refs <- c(list(NULL), refs)
  } else {
    Z <- stats::model.matrix(tt, mf)
    names <- colnames(Z)
    refs <- lapply(seq_len(ncol(Z)), function(k) if (names[k] == "(Intercept)") NULL else unname(Z[, k]))
  }
  if (length(names) == 0L) {
    mlm_abort("The random-effect term {.code ({deparse1(lhs)} | ...)} has no columns.", "mlmfit_error_formula")
  }
  list(names = names, refs = refs)
}

# A random-effect term as the user writes it, `(lhs | group)` (for
# messages; `||` terms appear as lme4 expands them).
term_label <- function(tm) paste0("(", deparse1(tm$lhs), " | ", tm$label, ")")

# lme4's names for theta: group.column for diagonal entries and
# group.row.column below the diagonal.
theta_names <- function(group, cols) {
  q <- length(cols)
  out <- character()
  for (c in seq_len(q)) for (r in c:q) {
    out <- c(out, if (r == c) paste(group, cols[r], sep = ".") else paste(group, cols[r], cols[c], sep = "."))
  }
  out
}

# The random-effect part of the model spec (see spec.R): the terms and the
# blocks (metadata), the grouping factor and the columns of Z of each block
# (rows), and the template of theta with its start and bounds.
build_re_terms <- function(random, mf, X, env, allow_n = FALSE) {
  found <- lapply(random, function(r) {
    g <- grouping_factor(r$group, r$label, mf, env)
    cols <- re_columns(r$lhs, mf, X, env)
    list(term = list(label = r$label, lhs = r$lhs, group_expr = r$group, lme4_order = r$lme4_order,
                     levels = levels(g), colnames = cols$names),
         factor = g, refs = cols$refs)
  })
  layout <- re_layout(lapply(found, `[[`, "term"), nrow(mf), allow_n)
  found <- found[layout$order]
  groups <- lapply(layout$blocks, function(b) found[[b$terms[1L]]]$factor)
  z <- lapply(layout$blocks, function(b) unlist(lapply(found[b$terms], `[[`, "refs"), recursive = FALSE))
  check_re_columns(layout$blocks, z, X)
  list(terms = layout$terms, blocks = layout$blocks, groups = groups, z = z, theta = layout$theta)
}

# The layout of the random-effect terms, from what each term is (label,
# lhs, group_expr, lme4_order, the levels of its grouping factor and the
# names of its columns of Z) without any row of data: wherever the levels
# were found (a data frame, a database table). Terms are ordered by number
# of levels, most first (ties in lme4's order; `order` gives the terms given
# in that order); terms on one grouping factor share a block whose
# relative covariance factor T is block diagonal over them; theta_index
# (0-based, -1 fixed zero, q x q per block) places each parameter of theta
# in T. Checks that n observations can identify the random effects.
re_layout <- function(terms_in, n, allow_n = FALSE) {
  ord <- 1L
  if (length(terms_in) > 1L) {
    n_levels <- vapply(terms_in, function(t) length(t$levels), numeric(1))
    lme4_order <- vapply(seq_along(terms_in), function(i) as.numeric(terms_in[[i]]$lme4_order %||% i), numeric(1))
    ord <- order(-n_levels, lme4_order)
  }
  terms <- lapply(terms_in[ord], function(t) {
    list(label = t$label, lhs = t$lhs, group_expr = t$group_expr, n_levels = length(t$levels),
         colnames = t$colnames, q = length(t$colnames))
  })
  labels <- vapply(terms, function(t) t$label, character(1))
  block_labels <- unique(labels)
  blocks <- lapply(block_labels, function(lab) {
    lev <- terms_in[ord][[match(lab, labels)]]$levels
    list(label = lab, levels = lev, n_levels = length(lev), q = 0L, colnames = character(), terms = integer())
  })
  names(blocks) <- block_labels

  theta_total <- 0L
  display <- make.unique(labels, sep = ".")
  for (t in seq_along(terms)) {
    tm <- terms[[t]]
    b <- match(tm$label, block_labels)
    q <- tm$q
    tm$block <- b
    tm$block_cols <- blocks[[b]]$q + seq_len(q)
    tm$theta <- theta_total + seq_len(q * (q + 1L) / 2L)
    tm$theta_names <- theta_names(tm$label, tm$colnames)
    tm$display <- display[t]
    theta_total <- theta_total + length(tm$theta)
    blocks[[b]]$q <- blocks[[b]]$q + q
    blocks[[b]]$colnames <- c(blocks[[b]]$colnames, tm$colnames)
    blocks[[b]]$terms <- c(blocks[[b]]$terms, t)
    terms[[t]] <- tm
  }

  theta0 <- numeric(theta_total)
  lower <- numeric(theta_total)
  theta_nm <- character(theta_total)
  for (b in seq_along(blocks)) {
    q <- blocks[[b]]$q
    idx <- matrix(-1L, q, q)
    for (t in blocks[[b]]$terms) {
      tm <- terms[[t]]
      k <- 0L
      qt <- tm$q
      for (c in seq_len(qt)) for (r in c:qt) {
        k <- k + 1L
        pos <- tm$theta[k]
        idx[tm$block_cols[r], tm$block_cols[c]] <- pos - 1L
        theta0[pos] <- if (r == c) 1 else 0
        lower[pos] <- if (r == c) 0 else -Inf
        theta_nm[pos] <- tm$theta_names[k]
      }
    }
    blocks[[b]]$theta_index <- idx
  }
  names(theta0) <- theta_nm
  check_re_identifiable(terms, blocks, n, allow_n)
  list(terms = terms, blocks = blocks, theta = list(start = theta0, lower = lower), order = ord)
}

# allow_n: a GLMM has no residual variance, so one random effect per
# observation (an observation-level term for overdispersion) is allowed.
check_re_identifiable <- function(terms, blocks, n, allow_n = FALSE) {
  limit <- if (allow_n) n + 1 else n
  for (b in blocks) {
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
  for (t in terms) {
    if (t$q * t$n_levels >= limit) {
      mlm_abort(c("The term {.code ({deparse1(t$lhs)} | {t$label})} has {t$q * t$n_levels} random effects for {n} observations.",
                  i = "The random effects and the residual variance cannot all be estimated: simplify the term, e.g. drop a random slope."),
                "mlmfit_error_identifiability", variable = t$label)
    }
  }
}

# A column of Z that is zero in every row leaves its variance without any
# information in the data: refuse it rather than report an arbitrary value.
check_re_columns <- function(blocks, z, X) {
  for (i in seq_along(blocks)) {
    b <- blocks[[i]]
    for (k in seq_along(z[[i]])) {
      ref <- z[[i]][[k]]
      if (!is.null(ref) && column_is_zero(X, ref)) refuse_zero_re_column(b, k)
    }
  }
}

refuse_zero_re_column <- function(block, k) {
  mlm_abort(c("The random-effect column {.var {block$colnames[k]}} for {.var {block$label}} is zero in every row used.",
              i = "Its variance cannot be estimated: drop it from the random-effect term."),
            "mlmfit_error_identifiability", variable = block$colnames[k])
}

# A random-effect column (a column of X, or a vector) that is zero in every
# row. The first rows usually settle it without copying the column.
column_is_zero <- function(X, ref) {
  of_X <- is.integer(ref) && length(ref) == 1L
  n <- if (of_X) nrow(X) else length(ref)
  head_rows <- seq_len(min(n, 2000L))
  if (any((if (of_X) X[head_rows, ref] else ref[head_rows]) != 0)) return(FALSE)
  all((if (of_X) X[, ref] else ref) == 0)
}
