# glmm() on a database table whose model variables take too many distinct
# values to compress: the Laplace approximation with PIRLS run in the
# database. Each PIRLS iteration is one aggregate pass over the table: the
# linear predictor of every row (fixed part in SQL, random effects from a
# temporary table joined in), its working weights and response, summed
# per level of each grouping factor (and per pair of levels of crossed
# factors) into the cross-products of a weighted linear mixed model whose
# solution by the engine is the PIRLS step. The variance parameters and
# fixed effects are optimised over these Laplace deviances, as the
# in-memory engine's second stage does (nlminb, then one Newton step with
# a finite-difference Hessian, which also gives the covariance of the
# fixed effects). Binomial (logit) and Poisson (log) families.

db_glmm_pirls <- function(src, mc, formula, parsed, fam, control, log) {
  canonical <- (fam$dist == "binomial" && fam$link == "logit") || (fam$dist == "poisson" && fam$link == "log")
  if (!canonical) {
    mlm_abort(c("A database fit with one query per PIRLS iteration is available for the logit link (binomial) and the log link (Poisson).",
                i = "Use the canonical link, or a model whose variables take few distinct values (fitted exactly from a compressed table)."),
              "mlmfit_error_family")
  }
  constant <- db_glmm_constant(src, fam, log)
  src <- db_glmm_response_sql(src, constant$levels)
  cp <- db_glmm_start_cross_products(src, fam, log)
  spec <- db_model_spec(src, cp, formula, parsed, db_glmm_family(fam, src, constant))
  spec$db$method <- "pirls"
  pql <- engine_refit_xp(spec, cp$xp, NULL, FALSE, lmm_control())
  start <- list(theta = pmax(pql$theta * pql$sigma, theta_lower(spec)), beta = as.vector(pql$beta), b = pql$b)
  sizes <- db_glmm_parameter_sizes(spec, start, pql)
  ctx <- db_pirls_context(spec, src, fam, start, cp$xp$n, log, control)
  k <- length(start$theta)
  lower <- c(theta_lower(spec), rep(-Inf, length(start$beta)))
  deviance_at <- function(phi) db_pirls(ctx, phi[seq_len(k)], phi[-seq_len(k)])$objective
  phi0 <- c(start$theta, start$beta)
  # Each evaluation costs a few passes over the table: the optimiser stops
  # at a relative change of 1e-8 in the deviance, and the Newton step of
  # db_glmm_polish() takes the estimates the rest of the way (tighter
  # tolerances cost a third more passes for changes below 1e-7 relative).
  # It works in units of the parameters' standard errors (`scale`), where
  # the deviance is nearly round: half the passes or fewer.
  opt <- stats::nlminb(phi0, deviance_at, lower = lower, scale = 1 / sizes,
                       control = list(rel.tol = 1e-8, x.tol = 1e-10, eval.max = 2000, iter.max = 500))
  polished <- db_glmm_polish(deviance_at, opt$par, opt$objective, lower, k, control)
  phi <- polished$phi
  final <- db_pirls(ctx, phi[seq_len(k)], phi[-seq_len(k)])
  engine <- db_glmm_answer(final, phi, polished, opt, ctx, constant, control)
  new_glmm_fit(db_with_queries(spec, log), engine, mc, 1L, control)
}

# Approximate standard errors of (theta, beta) at the start, the units in
# which the optimiser measures its steps: for beta, those of the working
# linear mixed model of penalized quasi-likelihood at unit dispersion; for
# an entry of theta, that of a standard deviation estimated from as many
# values as its grouping factor has levels, max(|theta|, 0.1) / sqrt(2 J).
# (As the in-memory engine's second stage works in standard errors of
# beta, glmm_fit.cpp.) 1 where a size is not a positive number.
db_glmm_parameter_sizes <- function(spec, start, pql) {
  theta_size <- rep(1, length(start$theta))
  for (blk in re_blocks(spec)) {
    idx <- unique(blk$theta_index[blk$theta_index >= 0L]) + 1L
    theta_size[idx] <- pmax(abs(start$theta[idx]), 0.1) / sqrt(2 * blk$n_levels)
  }
  beta_size <- sqrt(diag(as.matrix(pql$vcov))) / pql$sigma
  sizes <- c(theta_size, beta_size)
  if (length(sizes) != length(start$theta) + length(start$beta)) return(rep(1, length(start$theta) + length(start$beta)))
  ifelse(is.finite(sizes) & sizes > 0, sizes, 1)
}

# The family part of the spec (spec-family.R) of a GLMM fitted in the
# database, its constants from the counts of the distinct responses.
db_glmm_family <- function(fam, src, constant) {
  fam$response_kind <- src$response$kind
  fam$response_levels <- constant$levels
  eta_mean <- suppressWarnings(fam$family$linkfun(constant$sum_wy / constant$sum_weights))
  fam$constants <- list(aic_const = constant$value, sum_weights = constant$sum_weights, sum_wt_log_y = 0,
                        eta_mean = if (is.finite(eta_mean)) eta_mean else 0)
  fam
}

# The binomial coefficients and factorials of the log-likelihood do not
# depend on the parameters: -2 log-likelihood minus the sum of deviance
# residuals, from one GROUP BY over the response and prior weights (and
# the response's two values, for a factor or logical response).
db_glmm_constant <- function(src, fam, log) {
  con <- src$con
  v <- src$response
  y_key <- if (v$kind == "matrix") c(v$parts[[1L]]$sql, v$parts[[2L]]$sql) else v$key_sql
  keys <- stats::setNames(c(y_key, src$weights_sql), paste0("key", seq_along(c(y_key, src$weights_sql))))
  from <- paste0("SELECT * FROM (", src$source_sql, ") ", db_ident(con, "mlm_source"), " WHERE (",
                 paste(c(src$subset_sql, src$complete_sql), collapse = ") AND ("), ")")
  res <- db_grouped_sums(log, from, keys, c(count = db_cast_double(con, "COUNT(*)")),
                         "counting the distinct responses and weights",
                         max_rows = getOption("mlmfit.db_compress_max_rows", 1e6))
  if (is.null(res)) {
    refuse_without_rows(NULL, "The log-likelihood's constant of responses and weights with this many distinct values")
  }
  count <- res$count
  levels <- NULL
  if (v$kind == "matrix") {
    s <- as.double(res$key1)
    trials <- s + as.double(res$key2)
    y <- ifelse(trials > 0, s / trials, 0)
    w <- trials * if (!is.null(src$weights_sql)) as.double(res$key3) else 1
    n_trials <- trials
  } else {
    raw <- res$key1
    if (v$kind %in% c("factor", "logical")) {
      levels <- if (v$kind == "logical") c("FALSE", "TRUE") else levels(factor(raw))
      y <- as.double(as.character(raw) == levels[length(levels)])
    } else {
      y <- as.double(raw)
    }
    w <- if (!is.null(src$weights_sql)) as.double(res[[paste0("key", length(y_key) + 1L)]]) else rep(1, length(y))
    n_trials <- NULL
  }
  mu0 <- rep(if (fam$dist == "binomial") 0.5 else 1, length(y))
  wt <- count * w
  dev <- sum(fam$family$dev.resids(y, mu0, wt))
  aic <- suppressWarnings(fam$family$aic(y, if (is.null(n_trials)) rep(1, length(y)) else n_trials, mu0, wt, dev))
  if (!is.null(n_trials)) {
    # family$aic() takes the trials per row from `n`, weights as multiples
    aic <- -2 * sum(count * (w / n_trials) * stats::dbinom(round(n_trials * y), n_trials, mu0, log = TRUE))
  }
  list(value = aic - dev, levels = levels, n = sum(count), sum_weights = sum(wt), sum_wy = sum(wt * y))
}

# The cross-products of the first step of penalized quasi-likelihood: the
# linear mixed model of the working response at glm()'s starting means
# (the pass also finds the levels of the grouping factors, counts the rows
# and runs the checks).
db_glmm_start_cross_products <- function(src, fam, log) {
  y <- src$glmm_y_sql
  pw <- src$glmm_pw_sql %||% "1.0"
  ln <- db_log_sql(src$con)
  if (fam$dist == "binomial") {
    mu <- paste0("((", pw, " * ", y, " + 0.5) / (", pw, " + 1.0))")
    eta <- ln(paste0(mu, " / (1.0 - ", mu, ")"))
    var <- paste0(mu, " * (1.0 - ", mu, ")")
  } else {
    mu <- paste0("(", y, " + 0.1)")
    eta <- ln(mu)
    var <- mu
  }
  working <- src
  working$vars[[src$response$name]]$sql <- paste0("(", eta, " + (", y, " - ", mu, ") / (", var, "))")
  working$weights_sql <- paste0(pw, " * ", var)
  db_cross_products(working, log, glmm = TRUE)
}

# The natural logarithm in the database's SQL (dbplyr's translation of
# log(), found once per connection).
db_log_sql <- function(con) {
  marker <- "mlm_argument"
  template <- db_translate(con, quote(log(.x)), c(.x = marker), emptyenv(), quote(log(x)))
  function(x) sub(marker, x, template, fixed = TRUE)
}

# What every PIRLS pass needs: the spec, the spec of the working model (no
# fixed effects: beta is held), the sums' plan over the rows of a pass,
# the SQL of the working quantities, and the state (db_pirls(): the
# anchor, the last evaluation, the modes' derivatives; the passes so far).
db_pirls_context <- function(spec, src, fam, start, n, log, control) {
  db <- spec_db(spec)
  con <- db$con
  working <- spec
  working$fixed$names <- character()
  working$fixed$intercept_col <- 0L
  state <- new.env(parent = emptyenv())
  state$anchor <- list(objective = Inf, b = start$b)
  state$passes <- 0L
  ctx <- list(spec = spec, working = working, fam = fam, log = log, state = state, control = control, n = n,
              beta_names = spec_x_names(spec))
  ctx$sql <- db_working_sql(fam, con)
  blocks <- stats::setNames(lapply(db$blocks, function(b) b[c("keys", "z_sql")]), names(re_blocks(spec)))
  ctx$blocks <- blocks
  ctx$plan <- db_sum_plan(character(), db_ident(con, "mlm_wr"), blocks)
  ctx$pass_src <- list(con = con, alias = db$alias, weights_sql = "working")
  ctx$source <- list(db = db, where = c(db$subset_sql, db$complete_sql))
  ctx
}

# Per row of a pass (over the rows with their linear predictor): the
# working weight, the working response of the random effects (Z b + (y -
# mu) / mu'(eta)) and the deviance residual, in SQL. The inverse link (and
# for the binomial log(1 + exp(-|eta|))) is computed once per row in a
# layer of its own (`per_row`), which the working quantities read, in a
# layer of their own too (db_pass_rows()).
db_working_sql <- function(fam, con) {
  eta <- db_ident(con, ".eta")
  y <- db_ident(con, "mlm_y")
  pw <- db_ident(con, "mlm_pw")
  mu <- db_ident(con, "mlm_mu")
  ln <- db_log_sql(con)
  zb <- paste0("(", eta, " - ", db_ident(con, ".fixed"), ")")
  if (fam$dist == "binomial") {
    softplus_tail <- db_ident(con, "mlm_l")  # log(1 + exp(-|eta|))
    per_row <- c(mlm_mu = paste0("1.0 / (1.0 + EXP(-", eta, "))"),
                 mlm_l = ln(paste0("1.0 + EXP(-ABS(", eta, "))")))
    var <- paste0("(", mu, " * (1.0 - ", mu, "))")
    saturated <- paste0("(CASE WHEN ", y, " > 0 AND ", y, " < 1 THEN ", y, " * ", ln(y), " + (1.0 - ", y, ") * ",
                        ln(paste0("1.0 - ", y)), " ELSE 0.0 END)")
    # y softplus(-eta) + (1 - y) softplus(eta), softplus(t) = max(t, 0) + log(1 + exp(-|t|))
    dev <- paste0("2.0 * ", pw, " * (", saturated, " + ", softplus_tail, " + (CASE WHEN ", eta, " > 0 THEN (1.0 - ", y,
                  ") * ", eta, " ELSE -", y, " * ", eta, " END))")
  } else {
    per_row <- c(mlm_mu = paste0("EXP(", eta, ")"))
    var <- mu
    dev <- paste0("2.0 * ", pw, " * ((CASE WHEN ", y, " > 0 THEN ", y, " * ", ln(y), " ELSE 0.0 END) - ", y, " * ",
                  eta, " - ", y, " + ", mu, ")")
  }
  list(per_row = per_row, weight = paste0(pw, " * ", var), response = paste0(zb, " + (", y, " - ", mu, ") / ", var),
       dev = dev)
}

# The rows of a pass at (beta, b): the frame with the linear predictor and
# its fixed part, the working weight (mlm_ww), the working response
# (mlm_wr) and the deviance residual (mlm_dev). full: the working response
# with the fixed part too (X beta + Z b + (y - mu) / mu'(eta)).
db_pass_rows <- function(ctx, beta, b, full = FALSE) {
  con <- ctx$spec$db$con
  rows <- db_eta_query(ctx$spec, stats::setNames(beta, ctx$beta_names), b, ctx$source,
                       re_selection(ctx$spec, NULL), extra = c("frame", "response", "weights"), log = ctx$log,
                       cache = NULL)
  pw <- NULL
  if (is.null(ctx$spec$db$glmm_pw_sql) && is.null(ctx$spec$db$weights_sql)) {
    pw <- paste0(db_cast_double(con, "1.0"), " AS ", db_ident(con, "mlm_pw"))
  }
  per_row <- paste0(ctx$sql$per_row, " AS ", vapply(names(ctx$sql$per_row), db_ident, "", con = con))
  rows <- paste0("SELECT ", db_ident(con, "mlm_p"), ".*, ", paste(c(pw, per_row), collapse = ", "), " FROM (", rows,
                 ") ", db_ident(con, "mlm_p"), db_row_fence(con))
  wr <- ctx$sql$response
  if (full) wr <- paste0(wr, " + ", db_ident(con, ".fixed"))
  paste0("SELECT ", db_ident(con, "mlm_r"), ".*, ", ctx$sql$weight, " AS ", db_ident(con, "mlm_ww"), ", ", wr, " AS ",
         db_ident(con, "mlm_wr"), ", ", ctx$sql$dev, " AS ", db_ident(con, "mlm_dev"), " FROM (", rows, ") ",
         db_ident(con, "mlm_r"), db_row_fence(con, aggregate_input = TRUE))
}

# A clause that keeps a layer of per-row columns from being merged into
# the query above it, so that each is computed once per row rather than
# again at each use (each use of the inverse link costs an exponential;
# the working weight enters three sums). SQLite: LIMIT -1 (as db_fence(),
# which also fences the aggregate's input: the working quantities' layer
# needs no fence of its own there, and one more costs 5% of a pass);
# PostgreSQL: OFFSET 0, which, unlike a MATERIALIZED common table
# expression, streams the rows (bench/db-results.md: a PIRLS pass on 1e5
# rows in ~45 ms fenced, ~90 ms with a materialized CTE, ~225 ms merged).
# Other engines (DuckDB, Spark) share common subexpressions themselves.
# aggregate_input: the layer the aggregate reads (the working quantities).
db_row_fence <- function(con, aggregate_input = FALSE) {
  switch(db_backend_name(con),
         SQLite = if (aggregate_input) "" else "\nLIMIT -1",
         PostgreSQL = "\nOFFSET 0",
         "")
}

# One pass at (beta, b): the working model's cross-products (no fixed
# effects: beta is held) and the sum of the deviance residuals. The
# temporary tables of b are dropped after the pass.
db_pirls_pass <- function(ctx, beta, b) {
  con <- ctx$spec$db$con
  before <- ctx$log$temp_tables
  rows <- db_pass_rows(ctx, beta, b)
  ctx$state$passes <- ctx$state$passes + 1L
  frame <- db_frame(ctx$pass_src, rows, weight = "mlm_ww", carry = "mlm_dev")
  sums <- db_sums(ctx$pass_src, ctx$plan, numeric(length(ctx$plan$vars)), ctx$log, ctx$n,
                  what = paste0("(PIRLS pass ", ctx$state$passes, ")"),
                  extra = c(dev = paste0("SUM(", db_ident(con, "mlm_dev"), ")")), frame = frame)
  for (name in setdiff(ctx$log$temp_tables, before)) db_drop_temp_table(ctx$log, name)
  xp <- db_assemble_xp(ctx$plan, sums, ctx$working$re, ctx$blocks, NULL, 0L, ctx$n)
  list(xp = xp, dev = sums$total$extra$dev)
}

# The random effects' spherical coordinates u (b = T u per level; the
# least-squares solution where T is singular), and b projected on what
# theta allows (none along a zero column of T).
db_u_from_b <- function(spec, theta, b) {
  Tb <- relative_factors(spec, theta)
  lapply(seq_along(b), function(f) db_pseudo_inverse(Tb[[f]]) %*% b[[f]])
}

db_project_b <- function(spec, theta, b) {
  Tb <- relative_factors(spec, theta)
  lapply(seq_along(b), function(f) Tb[[f]] %*% (db_pseudo_inverse(Tb[[f]]) %*% b[[f]]))
}

db_pseudo_inverse <- function(A) {
  s <- svd(A)
  d <- ifelse(s$d > 1e-12 * max(s$d, 1e-300), 1 / s$d, 0)
  s$v %*% (d * t(s$u))
}

# PIRLS for the random effects at (theta, beta): one pass per iteration,
# halving steps that raise the penalized deviance; `objective` is the
# Laplace deviance (up to its constant). As in the in-memory engine
# (glmm_fit.cpp), every evaluation starts from the modes of the lowest
# deviance so far (the anchor; most evaluations are near it, and a probe
# far away then changes none after it), and a pass at the anchor's beta
# and modes is not repeated: the pass does not depend on theta, so an
# evaluation that moves theta alone (a difference step, a Hessian entry)
# saves its first pass. When beta moves, the start is the anchor's modes
# moved along their derivatives in (theta, beta) as the evaluations so
# far have measured them (a Broyden secant, db_modes_slope()): an error
# of second order in the move rather than first, which PIRLS's quadratic
# convergence turns into one pass fewer. An evaluation at the point of the
# anchor or of the last evaluation is answered without a pass.
db_pirls <- function(ctx, theta, beta) {
  state <- ctx$state
  at <- unname(c(theta, beta))
  for (known in list(state$last, state$anchor)) if (identical(known$at, at)) return(known$result)
  anchor <- state$anchor
  move <- if (!is.null(anchor$at)) at - anchor$at
  b <- anchor$b
  if (!is.null(state$slope) && any(move[-seq_along(theta)] != 0)) {
    b <- db_modes_relist(db_modes_vector(b) + as.vector(state$slope %*% move), b)
  }
  b <- db_project_b(ctx$spec, theta, b)
  if (db_same_modes(b, anchor$b)) b <- anchor$b
  reuse <- if (identical(unname(beta), anchor$beta) && identical(b, anchor$b)) anchor$pass
  tol <- ctx$control$pirls_tol
  prev <- NULL
  for (iter in seq_len(ctx$control$pirls_max_iter)) {
    pass <- reuse %||% db_pirls_pass(ctx, beta, b)
    reuse <- NULL
    u <- db_u_from_b(ctx$spec, theta, b)
    ussq <- sum(vapply(u, function(x) sum(x^2), 0))
    obj <- pass$dev + ussq
    if (!is.null(prev) && obj > prev$obj * (1 + 1e-12) + 1e-12 && prev$halvings < 10L) {
      b <- Map(function(a, c) (a + c) / 2, prev$b, b)
      prev$halvings <- prev$halvings + 1L
      next
    }
    ev <- engine_evaluate_lmm(ctx$working, pass$xp, theta, FALSE)
    step <- max(vapply(seq_along(b), function(f) max(abs(ev$b[[f]] - b[[f]])), 0))
    if (step < tol || iter == ctx$control$pirls_max_iter) {
      result <- list(dev = pass$dev, ussq = ussq, ldL2 = ev$ld_L2, objective = pass$dev + ussq + ev$ld_L2, b = b,
                     u = u, xp = pass$xp, iterations = iter)
      state$last <- list(at = at, result = result)
      if (!is.null(move)) state$slope <- db_modes_slope(state$slope, db_modes_vector(b) - db_modes_vector(anchor$b), move)
      if (is.finite(result$objective) && result$objective < anchor$objective) {
        state$anchor <- list(objective = result$objective, at = at, result = result, beta = unname(beta), b = b, pass = pass)
      }
      return(result)
    }
    prev <- list(obj = obj, b = b, halvings = 0L)
    b <- ev$b
  }
}

# The derivatives of the modes in (theta, beta), updated from a move and
# the change of the modes it caused (Broyden's rank-one secant update: a
# move along one parameter sets that parameter's column).
db_modes_slope <- function(slope, change, move) {
  if (!all(is.finite(change)) || !any(move != 0)) return(slope)
  if (is.null(slope)) slope <- matrix(0, length(change), length(move))
  slope + outer(change - as.vector(slope %*% move), move) / sum(move^2)
}

# The modes (a list of q x levels matrices, one per grouping factor) as
# one vector, and back.
db_modes_vector <- function(b) unlist(lapply(b, as.vector), use.names = FALSE)

db_modes_relist <- function(v, like) {
  end <- cumsum(lengths(like))
  lapply(seq_along(like), function(f) {
    out <- like[[f]]
    out[] <- v[(end[f] - length(out) + 1L):end[f]]
    out
  })
}

# Modes equal up to the rounding of a projection (db_project_b()).
db_same_modes <- function(b, b0) {
  all(vapply(seq_along(b), function(f) max(abs(b[[f]] - b0[[f]])) <= 1e-14 * max(1, abs(b0[[f]])), NA))
}

# One Newton step from the optimum with a central-difference Hessian (kept
# if it lowers the deviance), as the in-memory engine polishes; the
# Hessian gives the covariance of the fixed effects. A mixed second
# difference reuses the steps along each axis: two more evaluations per
# pair, not four (error of order h^2 all the same).
db_glmm_polish <- function(f, phi, fmin, lower, k, control) {
  m <- length(phi)
  free <- which(phi > lower + 1e-6 | !is.finite(lower))
  h <- 1e-4 * pmax(abs(phi), 0.1)
  H <- matrix(NA_real_, m, m)
  g <- rep(NA_real_, m)
  if (control$hessian && length(free)) {
    at <- function(d) f(phi + d)
    axis <- function(i) replace(numeric(m), i, h[i])
    fp <- fm <- rep(NA_real_, m)
    for (i in free) {
      fp[i] <- at(axis(i))
      fm[i] <- at(-axis(i))
      g[i] <- (fp[i] - fm[i]) / (2 * h[i])
      H[i, i] <- (fp[i] - 2 * fmin + fm[i]) / h[i]^2
    }
    for (a in free) for (c in free) if (c < a) {
      d <- axis(a) + axis(c)
      v <- (at(d) + at(-d) - fp[a] - fm[a] - fp[c] - fm[c] + 2 * fmin) / (2 * h[a] * h[c])
      H[a, c] <- H[c, a] <- v
    }
    Hf <- H[free, free, drop = FALSE]
    ok <- tryCatch(chol(Hf), error = function(e) NULL)
    if (!is.null(ok)) {
      step <- -backsolve(ok, forwardsolve(t(ok), g[free]))
      trial <- phi
      trial[free] <- pmax(phi[free] + step, lower[free])
      ft <- f(trial)
      if (ft < fmin) {
        g[free] <- g[free] + Hf %*% (trial[free] - phi[free])
        phi <- trial
        fmin <- ft
      }
    }
  }
  list(phi = phi, fmin = fmin, hessian = H, gradient = g, free = free)
}

# The answer of a PIRLS fit in the database in the form of the engine's
# answer for a GLMM (what new_glmm_fit() reads): the estimates, the
# conditional modes and variances, the covariance of the fixed effects
# (from the Hessian, or given theta), the pieces of the criterion and the
# optimiser's report. No per-row values: the rows stay in the database.
db_glmm_answer <- function(final, phi, polished, opt, ctx, constant, control) {
  spec <- ctx$spec
  k <- length(theta_start(spec))
  p <- length(ctx$beta_names)
  theta <- phi[seq_len(k)]
  beta <- phi[-seq_len(k)]
  ev <- engine_evaluate_lmm(ctx$working, final$xp, theta, FALSE, cond_var = TRUE)
  H <- polished$hessian
  free <- polished$free
  warnings <- character()
  vcov_hessian <- matrix(numeric(0), 0L, 0L)
  if (control$hessian && length(free)) {
    Hf <- H[free, free, drop = FALSE]
    eig <- eigen(Hf, symmetric = TRUE, only.values = TRUE)$values
    if (!(min(eig) > 1e-8 * max(abs(eig), 1))) {
      warnings <- "the Hessian of the deviance is not positive definite at the optimum: some parameters are not identified by the data (for example a random-effect variance, or a fixed effect with perfect prediction)"
    } else if (all(k + seq_len(p) %in% free)) {
      idx <- match(k + seq_len(p), free)
      vcov_hessian <- (2 * solve(Hf))[idx, idx, drop = FALSE]
    }
  }
  aic <- final$dev + constant$value
  list(theta = theta, beta = beta, sigma = 1, b = final$b, u = final$u,
       cond_var = lapply(ev$cond_var, function(a) a / ev$sigma^2),
       vcov_unscaled = db_glmm_joint_vcov(ctx, beta, final$b, theta), vcov_hessian = vcov_hessian,
       hessian = H, gradient = polished$gradient, mu = NULL, eta = NULL, working_weights = NULL,
       devcomp = list(criterion = final$ldL2 + final$ussq + aic, ld_L2 = final$ldL2, ld_RX2 = NA_real_,
                      pwrss = NA_real_, n = ctx$n, p = p, sum_dev_resid = final$dev, ussq = final$ussq,
                      wrss = NA_real_, aic = aic),
       optinfo = list(evals = opt$evaluations[["function"]], iterations = opt$iterations,
                      converged = opt$convergence == 0L, message = opt$message, warnings = warnings,
                      pirls_passes = ctx$state$passes))
}

# The covariance of the fixed effects given theta (glmer's
# use.hessian = FALSE): the working linear mixed model with X at the
# optimum, one more pass.
db_glmm_joint_vcov <- function(ctx, beta, b, theta) {
  spec <- ctx$spec
  db <- spec_db(spec)
  con <- db$con
  before <- ctx$log$temp_tables
  rows <- db_pass_rows(ctx, beta, b, full = TRUE)
  ctx$state$passes <- ctx$state$passes + 1L
  plan <- db_sum_plan(db$x_sql, db_ident(con, "mlm_wr"), ctx$blocks)
  sums <- db_sums(ctx$pass_src, plan, numeric(length(plan$vars)), ctx$log, ctx$n, what = "(covariance pass)",
                  frame = db_frame(ctx$pass_src, rows, weight = "mlm_ww"))
  for (name in setdiff(ctx$log$temp_tables, before)) db_drop_temp_table(ctx$log, name)
  xp <- db_assemble_xp(plan, sums, spec$re, ctx$blocks, NULL, spec_intercept_col(spec), ctx$n)
  ev <- engine_evaluate_lmm(spec, xp, theta, FALSE)
  ev$vcov / ev$sigma^2
}
