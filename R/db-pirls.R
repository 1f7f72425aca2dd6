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

db_glmm_pirls <- function(spec, mc, formula, parsed, fam, control, log) {
  canonical <- (fam$dist == "binomial" && fam$link == "logit") || (fam$dist == "poisson" && fam$link == "log")
  if (!canonical) {
    mlm_abort(c("A database fit with one query per PIRLS iteration is available for the logit link (binomial) and the log link (Poisson).",
                i = "Use the canonical link, or a model whose variables take few distinct values (fitted exactly from a compressed table)."),
              "mlmfit_error_family")
  }
  constant <- db_glmm_constant(spec, fam, log)
  spec <- db_glmm_response_sql(spec, constant$levels)
  start <- db_glmm_start(spec, fam, log)
  ctx <- db_pirls_context(spec, fam, start, log, control)
  k <- length(start$theta)
  lower <- c(start$re$lower, rep(-Inf, length(start$beta)))
  deviance_at <- function(phi) {
    r <- db_pirls(ctx, phi[seq_len(k)], phi[-seq_len(k)])
    r$dev + r$ussq + r$ldL2
  }
  phi0 <- c(start$theta, start$beta)
  opt <- stats::nlminb(phi0, deviance_at, lower = lower,
                       control = list(rel.tol = 1e-12, x.tol = 1e-10, eval.max = 2000, iter.max = 500))
  polished <- db_glmm_polish(deviance_at, opt$par, opt$objective, lower, k, control)
  phi <- polished$phi
  final <- db_pirls(ctx, phi[seq_len(k)], phi[-seq_len(k)])
  db_new_glmm_pirls(final, phi, polished, opt, ctx, constant, spec, start, mc, formula, parsed, fam, control, log)
}

# The binomial coefficients and factorials of the log-likelihood do not
# depend on the parameters: -2 log-likelihood minus the sum of deviance
# residuals, from one GROUP BY over the response and prior weights (and
# the response's two values, for a factor or logical response).
db_glmm_constant <- function(spec, fam, log) {
  con <- spec$con
  v <- spec$response
  y_key <- if (v$kind == "matrix") c(v$parts[[1L]]$sql, v$parts[[2L]]$sql) else v$key_sql
  keys <- stats::setNames(c(y_key, spec$weights_sql), paste0("key", seq_along(c(y_key, spec$weights_sql))))
  from <- paste0("SELECT * FROM (", spec$source_sql, ") ", db_ident(con, "mlm_source"), " WHERE (",
                 paste(c(spec$subset_sql, spec$complete_sql), collapse = ") AND ("), ")")
  res <- db_grouped_sums(log, from, keys, c(count = db_cast_double(con, "COUNT(*)")),
                         "counting the distinct responses and weights",
                         max_rows = getOption("mlmfit.db_compress_max_rows", 1e6))
  if (is.null(res)) {
    mlm_abort(c("The response and weights take too many distinct values for the log-likelihood's constant.",
                i = "Round the weights, or fit in memory."),
              "mlmfit_error_database_rows")
  }
  count <- res$count
  levels <- NULL
  if (v$kind == "matrix") {
    s <- as.double(res$key1)
    trials <- s + as.double(res$key2)
    y <- ifelse(trials > 0, s / trials, 0)
    w <- trials * if (!is.null(spec$weights_sql)) as.double(res$key3) else 1
    n_trials <- trials
  } else {
    raw <- res$key1
    if (v$kind %in% c("factor", "logical")) {
      levels <- if (v$kind == "logical") c("FALSE", "TRUE") else levels(factor(raw))
      y <- as.double(as.character(raw) == levels[length(levels)])
    } else {
      y <- as.double(raw)
    }
    w <- if (!is.null(spec$weights_sql)) as.double(res[[paste0("key", length(y_key) + 1L)]]) else rep(1, length(y))
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
  list(value = aic - dev, levels = levels, n = sum(count))
}

# Starting values from one pass of penalized quasi-likelihood: the linear
# mixed model of the working response at glm()'s starting means, fitted by
# the engine from its cross-products (the pass also finds the levels of
# the grouping factors, counts the rows and runs the checks).
db_glmm_start <- function(spec, fam, log) {
  con <- spec$con
  y <- spec$glmm_y_sql
  pw <- spec$glmm_pw_sql %||% "1.0"
  if (fam$dist == "binomial") {
    mu <- paste0("((", pw, " * ", y, " + 0.5) / (", pw, " + 1.0))")
    ln <- db_log_sql(con)
    eta <- ln(paste0(mu, " / (1.0 - ", mu, ")"))
    var <- paste0(mu, " * (1.0 - ", mu, ")")
  } else {
    mu <- paste0("(", y, " + 0.1)")
    eta <- db_log_sql(con)(mu)
    var <- mu
  }
  working <- spec
  working$vars[[spec$response$name]]$sql <- paste0("(", eta, " + (", y, " - ", mu, ") / (", var, "))")
  working$weights_sql <- paste0(pw, " * ", var)
  cp <- db_cross_products(working, log, glmm = TRUE)
  cp <- db_drop_aliased(cp, spec)
  engine <- engine_call(lmm_refit_xp_cpp(cp$xp, engine_templates(cp$re), cp$re$theta0, cp$re$lower, FALSE,
                                         lmm_control(), moment_start = TRUE))
  list(theta = pmax(engine$theta * engine$sigma, cp$re$lower), beta = as.vector(engine$beta), b = engine$b,
       re = cp$re, keys = cp$keys, xp = cp$xp, raw_blocks = cp$raw_blocks, moments = cp$moments,
       dropped = cp$dropped, keep = cp$keep %||% seq_along(spec$X$names))
}

# The natural logarithm in the database's SQL (dbplyr's translation of
# log(), found once per connection).
db_log_sql <- function(con) {
  marker <- "mlm_argument"
  template <- db_translate(con, quote(log(.x)), c(.x = marker), emptyenv(), quote(log(x)))
  function(x) sub(marker, x, template, fixed = TRUE)
}

# What every PIRLS pass needs: a fit-like list for the SQL of the linear
# predictor, the design of the working model, and the state (the last
# random effects, the passes so far).
db_pirls_context <- function(spec, fam, start, log, control) {
  keep <- start$keep
  spec$X$sql <- spec$X$sql[keep]
  spec$X$names <- spec$X$names[keep]
  re <- start$re
  pseudo <- list(re = re, beta = stats::setNames(start$beta, spec$X$names),
                 db = list(con = spec$con, spec = spec, keys = start$keys, re_tables = new.env(parent = emptyenv())))
  state <- new.env(parent = emptyenv())
  state$b <- start$b
  state$passes <- 0L
  ctx <- list(spec = spec, fam = fam, pseudo = pseudo, log = log, state = state, control = control,
              templates = engine_templates(re), re = re, n = start$moments$n, raw_blocks = start$raw_blocks)
  ctx$working <- db_working_sql(ctx, spec$con)
  ctx
}

# One pass at (beta, b): the working model's cross-products (no fixed
# effects: beta is held) and the sum of the deviance residuals.
db_pirls_pass <- function(ctx, beta, b) {
  con <- ctx$spec$con
  pseudo <- ctx$pseudo
  pseudo$beta <- stats::setNames(beta, names(pseudo$beta))
  pseudo$b <- b
  for (lab in ls(pseudo$db$re_tables)) {
    db_drop_temp_table(ctx$log, pseudo$db$re_tables[[lab]])
    rm(list = lab, envir = pseudo$db$re_tables)
  }
  source <- list(spec = ctx$spec, where = c(ctx$spec$subset_sql, ctx$spec$complete_sql))
  rows <- db_eta_query(pseudo, source, seq_along(pseudo$re$terms), extra = c("frame", "response", "weights"),
                       log = ctx$log)
  design <- db_pass_design_sql(ctx, rows, ctx$working)
  pass_spec <- list(con = con, X = list(sql = character(0)), weights_sql = "working")
  ctx$state$passes <- ctx$state$passes + 1L
  what <- paste0("(PIRLS pass ", ctx$state$passes, ")")
  sums <- db_level_sums(pass_spec, ctx$log, 0L, design, ctx$raw_blocks,
                        extra = c(dev = paste0("SUM(", db_ident(con, "mlm_dev"), ")")), what = what)
  level_info <- lapply(sums$levels, function(res) db_level_labels(res[grepl("^key", names(res))]))
  xp <- db_assemble_xp(pass_spec, ctx$log, ctx$re, sums, level_info, design, ctx$raw_blocks, ctx$n, 0L, 0,
                       numeric(0), 0L)
  list(xp = xp, dev = sums$xx[["dev"]])
}

# Per row: the working weight, the working response of the random effects
# (Z b + (y - mu) / mu'(eta)) and the deviance residual, in SQL.
db_working_sql <- function(ctx, con) {
  eta <- db_ident(con, ".eta")
  y <- db_ident(con, "mlm_y")
  pw <- if (!is.null(ctx$spec$glmm_pw_sql)) db_ident(con, "mlm_pw") else "1.0"
  ln <- db_log_sql(con)
  zb <- paste0("(", eta, " - ", db_ident(con, ".fixed"), ")")
  if (ctx$fam$dist == "binomial") {
    mu <- paste0("(1.0 / (1.0 + EXP(-", eta, ")))")
    softplus <- function(x) paste0("(CASE WHEN ", x, " > 0 THEN ", x, " + ", ln(paste0("1.0 + EXP(-", x, ")")),
                                   " ELSE ", ln(paste0("1.0 + EXP(", x, ")")), " END)")
    var <- paste0("(", mu, " * (1.0 - ", mu, "))")
    saturated <- paste0("(CASE WHEN ", y, " > 0 AND ", y, " < 1 THEN ", y, " * ", ln(y), " + (1.0 - ", y, ") * ",
                        ln(paste0("1.0 - ", y)), " ELSE 0.0 END)")
    dev <- paste0("2.0 * ", pw, " * (", saturated, " + ", y, " * ", softplus(paste0("(-", eta, ")")), " + (1.0 - ", y,
                  ") * ", softplus(eta), ")")
  } else {
    mu <- paste0("EXP(", eta, ")")
    var <- mu
    dev <- paste0("2.0 * ", pw, " * ((CASE WHEN ", y, " > 0 THEN ", y, " * ", ln(y), " ELSE 0.0 END) - ", y, " * ",
                  eta, " - ", y, " + ", mu, ")")
  }
  list(weight = paste0(pw, " * ", var), response = paste0(zb, " + (", y, " - ", mu, ") / ", var), dev = dev)
}

# The design of one pass over the rows with their linear predictor: the
# working response as the model's response (b1), the columns of Z and the
# keys of each block, the working weights and the deviance residuals.
db_pass_design_sql <- function(ctx, rows, w) {
  con <- ctx$spec$con
  select <- c(paste(w$response, "AS", db_ident(con, db_b_name(1L))))
  for (f in seq_along(ctx$raw_blocks)) {
    blk <- ctx$raw_blocks[[f]]
    select <- c(select, paste(blk$z_sql, "AS", db_ident(con, db_z_name(f, seq_along(blk$z_sql)))),
                paste(ctx$spec$alias[blk$keys], "AS", db_ident(con, db_k_name(f, seq_along(blk$keys)))))
  }
  select <- c(select, paste(w$weight, "AS", db_ident(con, "mlm_w")), paste(w$dev, "AS", db_ident(con, "mlm_dev")))
  paste0("SELECT ", paste(select, collapse = ",\n  "), "\nFROM (", rows, ") ", db_ident(con, "mlm_rows"))
}

# The random effects' spherical coordinates u (b = T u per level; the
# least-squares solution where T is singular).
db_u_from_b <- function(re, theta, b) {
  Tb <- relative_factors(re, theta)
  lapply(seq_along(b), function(f) db_pseudo_inverse(Tb[[f]]) %*% b[[f]])
}

db_project_b <- function(re, theta, b) {
  Tb <- relative_factors(re, theta)
  lapply(seq_along(b), function(f) Tb[[f]] %*% (db_pseudo_inverse(Tb[[f]]) %*% b[[f]]))
}

db_pseudo_inverse <- function(A) {
  s <- svd(A)
  d <- ifelse(s$d > 1e-12 * max(s$d, 1e-300), 1 / s$d, 0)
  s$v %*% (d * t(s$u))
}

# PIRLS for the random effects at (theta, beta): one pass per iteration,
# halving steps that raise the penalized deviance, from the last modes.
db_pirls <- function(ctx, theta, beta) {
  # the last modes, projected on what this theta allows (b = T u: none
  # along a zero column of T)
  b <- db_project_b(ctx$re, theta, ctx$state$b)
  tol <- ctx$control$pirls_tol
  prev <- NULL
  for (iter in seq_len(ctx$control$pirls_max_iter)) {
    pass <- db_pirls_pass(ctx, beta, b)
    u <- db_u_from_b(ctx$re, theta, b)
    ussq <- sum(vapply(u, function(x) sum(x^2), 0))
    obj <- pass$dev + ussq
    if (!is.null(prev) && obj > prev$obj * (1 + 1e-12) + 1e-12 && prev$halvings < 10L) {
      b <- Map(function(a, c) (a + c) / 2, prev$b, b)
      prev$halvings <- prev$halvings + 1L
      next
    }
    ev <- lmm_evaluate_cpp(pass$xp, ctx$templates, theta, FALSE, FALSE)
    step <- max(vapply(seq_along(b), function(f) max(abs(ev$b[[f]] - b[[f]])), 0))
    if (step < tol || iter == ctx$control$pirls_max_iter) {
      ctx$state$b <- b
      return(list(dev = pass$dev, ussq = ussq, ldL2 = ev$ld_L2, b = b, u = u, xp = pass$xp, iterations = iter))
    }
    prev <- list(obj = obj, b = b, halvings = 0L)
    b <- ev$b
  }
}

# One Newton step from the optimum with a central-difference Hessian (kept
# if it lowers the deviance), as the in-memory engine polishes; the
# Hessian gives the covariance of the fixed effects.
db_glmm_polish <- function(f, phi, fmin, lower, k, control) {
  m <- length(phi)
  free <- which(phi > lower + 1e-6 | !is.finite(lower))
  h <- 1e-4 * pmax(abs(phi), 0.1)
  H <- matrix(NA_real_, m, m)
  g <- rep(NA_real_, m)
  if (control$hessian && length(free)) {
    at <- function(d) f(phi + d)
    for (i in free) {
      e <- numeric(m)
      e[i] <- h[i]
      fp <- at(e)
      fm <- at(-e)
      g[i] <- (fp - fm) / (2 * h[i])
      H[i, i] <- (fp - 2 * fmin + fm) / h[i]^2
    }
    for (a in free) for (c in free) if (c < a) {
      ea <- numeric(m); ea[a] <- h[a]
      ec <- numeric(m); ec[c] <- h[c]
      v <- (at(ea + ec) - at(ea - ec) - at(-ea + ec) + at(-ea - ec)) / (4 * h[a] * h[c])
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

# The fit object of a PIRLS fit in the database: the fields of an
# in-memory glmm() fit that do not hold rows.
db_new_glmm_pirls <- function(final, phi, polished, opt, ctx, constant, spec, start, mc, formula, parsed, fam,
                              control, log) {
  re <- ctx$re
  k <- length(start$theta)
  X <- db_model_matrix_stub(spec, start)
  p <- ncol(X)
  theta <- stats::setNames(phi[seq_len(k)], names(re$theta0))
  beta <- stats::setNames(phi[-seq_len(k)], colnames(X))
  ev <- lmm_evaluate_cpp(final$xp, ctx$templates, theta, FALSE, TRUE)
  name_levels <- function(m, blk) {
    dimnames(m) <- list(blk$colnames, blk$levels)
    m
  }
  b <- stats::setNames(Map(name_levels, final$b, re$blocks), names(re$blocks))
  u <- stats::setNames(Map(name_levels, final$u, re$blocks), names(re$blocks))
  cond_var <- stats::setNames(lapply(ev$cond_var, function(a) a / ev$sigma^2), names(re$blocks))
  # the covariance of beta given theta: the working model with X at the optimum
  joint <- db_glmm_joint_vcov(ctx, beta, final$b, theta, start)
  dimnames(joint) <- list(colnames(X), colnames(X))
  vc <- joint
  vcov_method <- "conditional"
  H <- polished$hessian
  warnings <- character()
  free <- polished$free
  if (control$hessian && length(free)) {
    Hf <- H[free, free, drop = FALSE]
    eig <- eigen(Hf, symmetric = TRUE, only.values = TRUE)$values
    if (!(min(eig) > 1e-8 * max(abs(eig), 1))) {
      warnings <- c(warnings, "the Hessian of the deviance is not positive definite at the optimum: some parameters are not identified by the data (for example a random-effect variance, or a fixed effect with perfect prediction)")
    } else if (all(k + seq_len(p) %in% free)) {
      V <- 2 * solve(Hf)
      idx <- match(k + seq_len(p), free)
      vc <- V[idx, idx, drop = FALSE]
      dimnames(vc) <- list(colnames(X), colnames(X))
      vcov_method <- "hessian"
    }
  }
  aic <- final$dev + constant$value
  criterion <- final$ldL2 + final$ussq + aic
  model <- list(terms = spec$X$terms, xlevels = spec$X$xlevels)
  fit <- list(
    call = mc, formula = formula, fixed_formula = parsed$fixed, REML = FALSE,
    frame = NULL, X = X, y = NULL, response = NULL, response_kind = spec$response$kind,
    response_levels = constant$levels, trials = NULL, prior_weights = NULL, offset = NULL,
    terms = model$terms, xlevels = model$xlevels, contrasts = attr(X, "contrasts"), dropped = start$dropped,
    re = re, theta = theta, lower = re$lower,
    beta = beta, vcov = vc, vcov_unscaled = joint, vcov_method = vcov_method,
    sigma = 1, use_sc = FALSE, b = b, u = u, cond_var = cond_var,
    devcomp = list(criterion = criterion, ldL2 = final$ldL2, ldRX2 = NA_real_, drsum = final$dev,
                   ussq = final$ussq, wrss = NA_real_, pwrss = NA_real_, aic = aic, n = ctx$n, p = p),
    fitted = NULL, eta = NULL, working_weights = NULL,
    family = fam$family, family_info = fam, nAGQ = 1L,
    optinfo = list(evals = opt$evaluations[["function"]], iterations = opt$iterations,
                   converged = opt$convergence == 0L, message = opt$message, warnings = warnings,
                   passes = ctx$state$passes, hessian = H, gradient = polished$gradient),
    control = control
  )
  cp <- list(keys = start$keys, keep = start$keep, moments = start$moments)
  fit$db <- db_fit_info(spec, cp, log)
  fit$db$method <- "pirls"
  fit$db$passes <- ctx$state$passes
  class(fit) <- c("mlmfit_db", "mlmfit_glmm", "mlmfit")
  fit
}

# The covariance of the fixed effects given theta (glmer's
# use.hessian = FALSE): the working linear mixed model with X at the
# optimum, one more pass.
db_glmm_joint_vcov <- function(ctx, beta, b, theta, start) {
  con <- ctx$spec$con
  pseudo <- ctx$pseudo
  pseudo$beta <- stats::setNames(beta, names(pseudo$beta))
  pseudo$b <- b
  for (lab in ls(pseudo$db$re_tables)) {
    db_drop_temp_table(ctx$log, pseudo$db$re_tables[[lab]])
    rm(list = lab, envir = pseudo$db$re_tables)
  }
  source <- list(spec = ctx$spec, where = c(ctx$spec$subset_sql, ctx$spec$complete_sql))
  rows <- db_eta_query(pseudo, source, seq_along(pseudo$re$terms), extra = c("frame", "response", "weights"),
                       log = ctx$log)
  w <- ctx$working
  # the full working response: X beta + Z b + (y - mu) / mu'(eta)
  x_sql <- ctx$spec$X$sql
  x_beta <- paste(ifelse(x_sql == "1.0", db_number(beta), paste0(db_number(beta), " * ", x_sql)), collapse = " + ")
  full <- paste0(w$response, " + (", x_beta, ")")
  spec <- ctx$spec
  working <- spec
  working$source_sql <- rows
  working$vars <- lapply(spec$vars, function(v) {
    if (!is.null(v$sql)) v$sql <- spec$alias[[v$name]]
    v
  })
  working$vars[[spec$response$name]]$sql <- full
  working$vars[[spec$response$name]]$kind <- "numeric"
  working$weights_sql <- w$weight
  working$offset_sql <- NULL
  working$subset_sql <- NULL
  working$complete_sql <- "1 = 1"
  design <- db_design_sql(working, ctx$raw_blocks, center = NULL)
  ctx$state$passes <- ctx$state$passes + 1L
  sums <- db_level_sums(working, ctx$log, 0L, design, ctx$raw_blocks, what = "(covariance pass)")
  level_info <- lapply(sums$levels, function(res) db_level_labels(res[grepl("^key", names(res))]))
  xp <- db_assemble_xp(working, ctx$log, ctx$re, sums, level_info, design, ctx$raw_blocks, ctx$n,
                       length(spec$X$sql), 0, numeric(0), 0L)
  ev <- lmm_evaluate_cpp(xp, ctx$templates, theta, FALSE, FALSE)
  ev$vcov / ev$sigma^2
}
