# The model spec: one checked description of a model and its data, made
# once from the formula, the data, the family and the residual structure,
# and stored in the fit. The engine (engine.R), the fit object and every
# method read the model from it and from nowhere else.
#
# Whatever the source of the data, the spec is the one contract: its
# metadata describe the model without any row of data (so that a spec can
# also be made from a database table, where the cross-products are formed by
# the database), and the rows, when they are in memory, sit apart in `rows`.
#
# Fields of a spec (class "mlmfit_spec"):
#
# Metadata (no rows of data):
# * formula        the model formula as the user wrote it (with its environment)
# * fixed_formula  the formula without its random-effect terms
# * response_name  the response as written (text), for messages
# * n              number of observations
# * fixed          the fixed part:
#     names          names of the columns of X (aliased columns dropped)
#     terms          terms of the fixed part (stats::terms(fixed_formula, data = frame))
#     frame_terms    terms of the model frame (its "predvars" keep the constants of
#                    poly(), scale(), ... for predictions)
#     xlevels        levels of the factor predictors (stats::.getXlevels())
#     contrasts      contrasts of the factor predictors (attr(X, "contrasts"))
#     assign         the term of each column of X (attr(X, "assign"))
#     dropped        names of columns dropped as aliased
#     intercept_col  position of the column "(Intercept)" in X, 0 when there is none
# * re             the random effects:
#     terms          one entry per random-effect term, ordered by number of levels
#                    (most first, ties in lme4's order): label (grouping factor as
#                    written), lhs and group_expr (expressions), n_levels, colnames,
#                    q (columns), block (its block), block_cols (its columns within
#                    the block), theta (its positions in theta), theta_names, display
#                    (lme4's name: "g", "g.1" for a second term on g)
#     blocks         one entry per grouping factor, named by its label: label,
#                    levels, n_levels, q, colnames, terms (indices into terms) and
#                    theta_index (q x q: position in theta, 0-based, of each entry of
#                    the lower-triangular relative covariance factor T; -1 fixed at 0)
# * theta          the template's parameters: start (named, 1 on the diagonal of T and 0
#                  below it) and lower (0 for diagonal entries, -Inf below)
# * family         NULL for lmm(); for glmm(): family (the family object; for a
#                  negative binomial whose size was estimated, the family at the
#                  estimate), dist ("binomial", "poisson", "Gamma",
#                  "negative_binomial"), link, nb_size (NA: to be estimated),
#                  response_kind ("binary", "proportion", "cbind", "factor", "logical",
#                  "numeric"), response_levels (factor responses) and constants (what the
#                  engine needs to turn deviance residuals into -2 log-likelihood:
#                  aic_const, sum_weights, sum_wt_log_y, eta_mean; see spec-family.R)
# * residual       NULL, or the residual correlation and variance structure
#                  (spec-residual.R): correlation and variance (their parts, with the
#                  residual groups, times, strata and covariates of the rows), free
#                  (which of its parameters are estimated), and engine (what the
#                  engine reads: kinds, order of the rows within groups, starts of
#                  groups, times, strata, covariate, psi0, psi_free, method). A
#                  residual structure needs the rows.
# * db             NULL for data in memory; for a database table (db-spec.R), how to
#                  read the rows in SQL: con and backend (the DBI connection and the
#                  database's name), source_sql (the table's query), columns (the
#                  table's columns: names, sql, key_sql), vars (each variable of the
#                  model frame: name, expr, kind, sql, key_sql, levels), alias (their
#                  names in the generated SQL), weights_sql, offset_sql, subset_sql,
#                  complete_sql (no missing value), na_action, x_sql (each column of
#                  X), blocks (per block of re$blocks: keys (frame variables), z_sql
#                  (its columns of Z) and key_values (the key values of each level)),
#                  glmm_y_sql and glmm_pw_sql (a GLMM's response and prior weights
#                  as numbers), n_subset (rows that pass subset), method
#                  ("aggregates", "compressed" or "pirls"), cells (the distinct rows
#                  of a compressed table), and queries (what, sql, seconds and rows
#                  of every query sent to make the spec and fit the model)
#
# Rows (`rows`; NULL when the data are not in memory):
# * frame          the model frame (rows dropped for missing values recorded in its
#                  "na.action" attribute)
# * X              the fixed-effect model matrix
# * y              the response as the engine reads it (double; proportions for
#                  binomial responses)
# * response       the response column of the frame as it was (a factor, a logical,
#                  a two-column matrix of successes and failures, ...)
# * weights        prior weights (for binomial counts, times the numbers of trials),
#                  NULL when there are none
# * trials         numbers of trials of a cbind() binomial response, else NULL
# * offset         the offset, NULL when there is none
# * groups         one factor per block: the level of each observation
# * z              one list per block with a reference to each column of Z: NULL for
#                  a column of ones, an integer for a column of X, or a double vector

# The spec of a model from the call of lmm() or glmm() (`mc`, evaluated in
# `caller_env`: data, subset, weights, offset). `family` is the checked
# family of glmm() (spec-family.R) or NULL; `correlation` and `variance` the
# residual structures of lmm(). `data`: the data when the caller has
# evaluated them already (NULL: evaluated here).
model_spec <- function(formula, mc, caller_env, na.action, family = NULL, correlation = NULL, variance = NULL,
                       residual_method = "auto", data = NULL) {
  parsed <- parse_mixed_formula(formula)
  data <- model_data(mc, caller_env, formula, data)
  expanded <- expand_formula_dot(formula, data)
  if (!identical(expanded, formula)) {
    formula <- expanded
    parsed <- parse_mixed_formula(formula)
  }
  structured <- !is.null(correlation) || !is.null(variance)
  if (structured) {
    check_residual_arguments(correlation, variance)
    parsed$frame <- add_structure_variables(parsed$frame, correlation, variance)
  }
  model <- lmm_model_frame(mc, parsed, data, caller_env, na.action, response = if (is.null(family)) "numeric" else "any")
  response_name <- expr_label(parsed$response)
  y <- model$y
  weights <- model$weights
  trials <- NULL
  if (!is.null(family)) {
    resp <- glmm_response(model$y, model$weights, family, response_name)
    family$response_kind <- resp$kind
    family$response_levels <- resp$levels
    y <- resp$y
    weights <- resp$weights
    trials <- resp$trials
  }
  re <- build_re_terms(parsed$random, model$frame, model$X, environment(formula), allow_n = !is.null(family))
  X <- model$X
  spec <- list(
    formula = formula, fixed_formula = parsed$fixed, response_name = response_name, n = nrow(X),
    fixed = list(names = colnames(X), terms = model$terms, frame_terms = attr(model$frame, "terms"),
                 xlevels = model$xlevels, contrasts = attr(X, "contrasts"), assign = attr(X, "assign"),
                 dropped = model$dropped, intercept_col = model$intercept_col),
    re = list(terms = re$terms, blocks = re$blocks),
    theta = re$theta,
    family = family,
    residual = NULL,
    rows = list(frame = model$frame, X = X, y = y, response = model$y, weights = weights, trials = trials,
                offset = model$offset, groups = re$groups, z = re$z)
  )
  class(spec) <- "mlmfit_spec"
  if (structured) {
    spec$residual <- build_residual_structure(correlation, variance, model$frame, re$groups,
                                              environment(formula), residual_method)
  }
  if (!is.null(family)) spec$family$constants <- family_constants(spec)
  validate_model_spec(spec)
}

# Internal consistency of a spec: every index the engine will follow agrees
# with the sizes it indexes (the glue checks them again, once, in C++).
validate_model_spec <- function(spec) {
  stopifnot(inherits(spec, "mlmfit_spec"))
  k <- length(spec$theta$start)
  p <- length(spec$fixed$names)
  ok <- length(spec$theta$lower) == k && spec$fixed$intercept_col <= p &&
    all(vapply(spec$re$blocks, function(b) {
      identical(dim(b$theta_index), c(b$q, b$q)) && all(b$theta_index < k) && b$n_levels == length(b$levels)
    }, logical(1)))
  rows <- spec$rows
  if (ok && !is.null(rows)) {
    ok <- identical(dim(rows$X), c(spec$n, p)) && length(rows$y) == spec$n &&
      length(rows$groups) == length(spec$re$blocks) && length(rows$z) == length(spec$re$blocks) &&
      all(lengths(rows$z) == vapply(spec$re$blocks, `[[`, integer(1), "q"))
  }
  if (!ok) mlm_abort("Internal error: the model spec is inconsistent.", "mlmfit_error_internal")
  spec
}

# The spec of a fit, or the spec itself.
as_spec <- function(x) if (inherits(x, "mlmfit_spec")) x else fit_spec(x)

# The rows of the data; an error for a spec without them.
spec_rows <- function(x) {
  rows <- as_spec(x)$rows
  if (is.null(rows)) refuse_without_rows(x)
  rows
}

# The one refusal of what needs the rows of the data in memory when the
# model keeps none (a fit to a database table): an error of class
# mlmfit_error_no_rows (mlmfit_error_database_rows too for a database fit)
# saying how to get them, or what the database computes instead. `x`: a
# spec or a fit (NULL: a database table before there is a spec); `what`:
# plain text, e.g. "simulate()".
refuse_without_rows <- function(x, what = "This") {
  if (is.null(x) || !is.null(as_spec(x)$db)) {
    mlm_abort(c("{what} needs every row of the data in memory, and this model was fitted in a database.",
                i = "Collect the columns the model uses with {.fn dplyr::collect} and fit again with a data frame.",
                i = "Fitted values, residuals and predictions are computed in the database as lazy tables: {.fn fitted}, {.fn residuals}, {.fn predict}."),
              c("mlmfit_error_database_rows", "mlmfit_error_no_rows"))
  }
  mlm_abort(c("{what} needs the rows of the data, and the model keeps none in memory.",
              i = "Fit the model to a data frame for methods that work on individual observations."),
            "mlmfit_error_no_rows")
}

# Accessors of the spec (of a spec or of a fit): the only readers of its fields.
spec_formula <- function(x) as_spec(x)$formula
spec_fixed_formula <- function(x) as_spec(x)$fixed_formula
spec_response_name <- function(x) as_spec(x)$response_name
spec_nobs <- function(x) as_spec(x)$n
spec_x_names <- function(x) as_spec(x)$fixed$names
spec_fixed_terms <- function(x) as_spec(x)$fixed$terms
spec_frame_terms <- function(x) as_spec(x)$fixed$frame_terms
spec_xlevels <- function(x) as_spec(x)$fixed$xlevels
spec_contrasts <- function(x) as_spec(x)$fixed$contrasts
spec_assign <- function(x) as_spec(x)$fixed$assign
spec_dropped <- function(x) as_spec(x)$fixed$dropped
spec_intercept_col <- function(x) as_spec(x)$fixed$intercept_col
re_terms <- function(x) as_spec(x)$re$terms
re_blocks <- function(x) as_spec(x)$re$blocks
theta_start <- function(x) as_spec(x)$theta$start
theta_lower <- function(x) as_spec(x)$theta$lower
spec_family <- function(x) as_spec(x)$family
spec_residual <- function(x) as_spec(x)$residual
spec_db <- function(x) as_spec(x)$db
spec_frame <- function(x) spec_rows(x)$frame
spec_X <- function(x) spec_rows(x)$X
spec_y <- function(x) spec_rows(x)$y
spec_response <- function(x) spec_rows(x)$response
spec_weights <- function(x) spec_rows(x)$weights
spec_trials <- function(x) spec_rows(x)$trials
spec_offset <- function(x) spec_rows(x)$offset
# The levels of a factor variable of the model frame (NULL for others):
# from the frame, or for a database table from the spec.
variable_levels <- function(x, v) {
  db <- spec_db(x)
  if (!is.null(db)) {
    var <- db$vars[[v]]
    return(if (!is.null(var) && var$kind == "factor") var$levels)
  }
  f <- spec_frame(x)[[v]]
  if (is.factor(f)) levels(f)
}

# The names of the columns that the left-hand side `lhs` of a random-effect
# term makes (env: where its expressions are evaluated): from the frame, or
# for a database table from the SQL of the spec.
spec_term_colnames <- function(x, lhs, env) {
  db <- spec_db(x)
  if (!is.null(db)) return(db_term_colnames(db, lhs))
  re_columns(lhs, spec_frame(x), spec_X(x), env)$names
}

# The fixed-effect designs that hypotheses about the terms are built from:
# X, X with treatment contrasts (when the fit's coding differs:
# treatment = FALSE), the columns of each term with every level of its
# factors (rd = FALSE: none), and the column of ones. The hypotheses depend
# on these only through their cross-products: for a database table, rows
# with the same cross-products (db_fixed_designs()).
spec_fixed_designs <- function(x, treatment, rd = TRUE) {
  if (!is.null(spec_db(x))) return(db_fixed_designs(x, treatment, rd))
  mf <- spec_frame(x)
  labels <- if (rd) attr(spec_fixed_terms(x), "term.labels") else character()
  list(X = spec_X(x), X_treatment = if (!treatment) remake_fixed_design(x, treatment = TRUE),
       rd = lapply(labels, function(t) stats::model.matrix(stats::as.formula(paste("~ 0 +", t)), data = mf)),
       ones = 1)
}

# A model matrix of the fixed part from the fit's frame with the given
# contrasts (NULL: treatment contrasts for every factor).
remake_fixed_design <- function(fit, treatment = TRUE) {
  tt <- spec_fixed_terms(fit)
  mf <- spec_frame(fit)
  ctr <- NULL
  if (treatment) {
    vars <- all.vars(stats::delete.response(tt))
    facs <- vars[vapply(vars, function(v) v %in% names(mf) && (is.factor(mf[[v]]) || is.character(mf[[v]])), logical(1))]
    ctr <- stats::setNames(rep(list("contr.treatment"), length(facs)), facs)
    if (length(ctr) == 0L) ctr <- NULL
  }
  stats::model.matrix(tt, mf, contrasts.arg = ctr)
}

# The grouping factor of block b (a name or a number).
block_factor <- function(x, b) spec_rows(x)$groups[[b]]

# The columns `cols` of Z of block b for the observations `rows` (all by
# default), as a matrix.
block_z <- function(x, b, cols = NULL, rows = NULL) {
  spec <- as_spec(x)
  refs <- spec_rows(spec)$z[[b]]
  if (!is.null(cols)) refs <- refs[cols]
  n <- if (is.null(rows)) spec$n else length(rows)
  X <- spec$rows$X
  Z <- vapply(refs, function(ref) {
    v <- if (is.null(ref)) rep(1, spec$n) else if (is.integer(ref) && length(ref) == 1L) X[, ref] else ref
    if (is.null(rows)) v else v[rows]
  }, numeric(n))
  matrix(Z, nrow = n)
}

# The Z columns of one random-effect term (an element of re_terms()), named.
term_z <- function(x, term, rows = NULL) {
  Z <- block_z(x, term$block, term$block_cols, rows)
  colnames(Z) <- term$colnames
  Z
}

# Specs derived from a spec, for refits and profiles.

# The same model for another response (refits, the parametric bootstrap):
# y as the engine reads it (for a binomial model, proportions of the same
# numbers of trials), and the response in its own form (a factor, a matrix
# of successes and failures, ...) for the model frame.
spec_with_response <- function(spec, y, response = y) {
  spec$rows$y <- as.double(y)
  spec$rows$response <- response
  spec$rows$frame[[1L]] <- response
  if (!is.null(spec$family)) spec$family$constants <- family_constants(spec)
  spec
}

# The model with fixed effect j held at `value`: its column leaves X and
# enters the offset (profiles). Random-effect columns that refer to columns
# of X follow them (a reference to column j becomes the column itself).
spec_fix_coefficient <- function(spec, j, value) {
  rows <- spec$rows
  xj <- rows$X[, j]
  rows$z <- lapply(rows$z, function(refs) {
    lapply(refs, function(ref) {
      if (is.integer(ref) && length(ref) == 1L) {
        if (ref == j) return(xj)
        if (ref > j) return(ref - 1L)
      }
      ref
    })
  })
  rows$X <- rows$X[, -j, drop = FALSE]
  rows$offset <- (rows$offset %||% 0) + value * xj
  spec$rows <- rows
  ic <- spec$fixed$intercept_col
  spec$fixed$intercept_col <- if (ic == j) 0L else if (ic > j) ic - 1L else ic
  spec$fixed$names <- spec$fixed$names[-j]
  spec
}

# The model fitted to the observations `keep` (positions) only (deletion
# diagnostics, influence()). The grouping factors keep their levels: a
# level left without observations has a random effect that no observation
# informs, which adds nothing to the deviance (its block of the factor is
# the identity) and is zero at the optimum, so the fit is that of the
# model without the level.
spec_keep_rows <- function(spec, keep) {
  if (!is.null(spec$residual)) {
    mlm_abort("Internal error: observations cannot be dropped from a model with a residual structure.",
              "mlmfit_error_internal")
  }
  rows <- spec_rows(spec)
  pick <- function(v) if (is.null(v)) NULL else if (is.matrix(v)) v[keep, , drop = FALSE] else v[keep]
  frame <- rows$frame
  rows$frame <- structure(frame[keep, , drop = FALSE], terms = attr(frame, "terms"))
  rows$X <- structure(rows$X[keep, , drop = FALSE], assign = attr(rows$X, "assign"),
                      contrasts = attr(rows$X, "contrasts"))
  for (field in c("y", "response", "weights", "trials", "offset")) rows[field] <- list(pick(rows[[field]]))
  rows$groups <- lapply(rows$groups, pick)
  rows$z <- lapply(rows$z, function(refs) lapply(refs, function(ref) if (is.double(ref)) ref[keep] else ref))
  spec$rows <- rows
  spec$n <- length(keep)
  if (!is.null(spec$family)) spec$family$constants <- family_constants(spec)
  validate_model_spec(spec)
}

# The model without its rows: what the engine needs to work on stored
# cross-products.
spec_without_rows <- function(spec) {
  spec["rows"] <- list(NULL)
  spec
}

# The model with residual parameter j (of psi) held at `value` (profiles).
spec_hold_residual_parameter <- function(spec, j, value) {
  spec$residual$engine$psi_free[j] <- FALSE
  spec$residual$engine$psi0[j] <- value
  spec_hold_covariate(spec)
}

# The model with the family's size held at its estimate (refits of a
# negative binomial model), or with another family object.
spec_with_family <- function(spec, family) {
  fam <- glmm_family(family)
  spec$family[c("family", "dist", "link", "nb_size")] <- fam[c("family", "dist", "link", "nb_size")]
  if (!is.null(spec$rows)) spec$family$constants <- family_constants(spec)
  spec
}
