# simulate(): responses drawn from the fitted model, for every kind of fit.
# The random effects of the terms not held at their conditional modes are
# drawn anew (in lme4's order, so that a seed gives lme4's draws), then the
# response: normal residuals (with the fitted covariance sigma^2 R of a
# residual structure), or the family's draws for a GLMM, given back in the
# form of the fitted response.

#' Simulate responses from a mixed model
#'
#' Draws new responses from the fitted model, as lme4's `simulate()`: with
#' `re.form = NA` (default) new random effects are drawn for every term
#' (unconditional simulation); with `re.form = NULL` (or `use.u = TRUE`) the
#' random effects are held at their conditional modes and only the
#' residuals (or the family's draws) are new; with a formula the named terms
#' are held at their modes and the others are drawn.
#'
#' For a fit from [lmm()] without prior weights and with the same seed, the
#' draws are those of `lme4::simulate()` for the same model. With prior
#' weights the residual variance of observation `i` is `sigma^2 / w_i`
#' (lme4 ignores the weights here). For a fit with a residual `correlation`
#' or `variance` structure the residuals are drawn with the fitted
#' covariance `sigma^2 R` (as [residual_covariance()] gives it): within each
#' group of the correlation structure, standard normal draws in time order
#' are multiplied by the lower Cholesky factor of the group's correlation
#' matrix (for AR(1) and CAR(1) the recursion `e_k = rho e_(k-1) + sqrt(1 -
#' rho^2) z_k`, `rho = Phi^gap`) and then by each observation's
#' standard-deviation multiplier from the variance function and prior
#' weights. The random effects are drawn (or held) as for fits without a
#' structure, and the random stream is used in the same order, so a seed
#' gives the same random effects.
#'
#' For a fit from [glmm()], each simulation draws the random effects and
#' then the response from the family, in the form of the fitted response
#' (0/1, logical, factor, proportions, or a matrix of successes and
#' failures); binomial responses need whole numbers of trials.
#'
#' As in lme4, a `seed` is set with [set.seed()] and the random number
#' stream continues from there.
#'
#' @param object A fit from [lmm()] or [glmm()].
#' @param nsim Number of simulated responses.
#' @param seed An integer for [set.seed()], or `NULL` to continue the
#'   current random number stream.
#' @param re.form Random effects to condition on: `NA` or `~0` (none,
#'   default), `NULL` (all) or a formula of some of the model's terms (held
#'   at their conditional modes while the others are drawn). A formula that
#'   names only some columns of a term (the intercept of `(x | g)`) is
#'   refused: the term's random effects are drawn together.
#' @param use.u `TRUE`: keep all random effects at their conditional modes
#'   (`re.form = NULL`); `FALSE`: draw them all (`re.form = NA`). Give
#'   `use.u` or `re.form`, not both (lme4's rule).
#' @param newdata Optional data frame to simulate for: one simulated
#'   response per row (`NA` where a variable the model uses is missing).
#'   Random effects of levels the fit has seen are held or drawn as for the
#'   data of the fit; levels it has not seen need `allow.new.levels = TRUE`
#'   and get new draws (or zero when held at the modes). For a fit with a
#'   residual structure the residuals of new rows are drawn with the
#'   structure read from `newdata` (as [residual_covariance()] with
#'   `newdata`).
#' @param allow.new.levels Allow levels of grouping factors not in the fit.
#' @param weights Prior weights for `newdata` (the residual variance of
#'   row `i` of a linear mixed model is `sigma^2 / weights[i]`; the numbers
#'   of trials of a binomial model). By default 1, except for a binomial
#'   response `cbind(successes, failures)` whose columns `newdata` has:
#'   their sums.
#' @param na.action With `newdata`: what to do with its rows with missing
#'   values ([stats::na.pass], the default: `NA` draws; [stats::na.omit];
#'   [stats::na.exclude]: `NA` rows kept). Without `newdata`, a function
#'   given here says how to show the rows the fit dropped, as lme4:
#'   `na.exclude` pads them with `NA`, `na.omit` leaves them out.
#' @param ... Not used: other arguments are reported in a warning of class
#'   `mlmfit_warning_unused_argument`.
#' @return A data frame with one column per simulation (`sim_1`, `sim_2`,
#'   ...) and one row per observation (per row of `newdata`), with the
#'   random number state as attribute `"seed"`. For a response given as
#'   `cbind(successes, failures)` each column is a two-column matrix. With
#'   `na.action = na.exclude` in the fit, the rows it dropped are `NA`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' sims <- simulate(fit, nsim = 3, seed = 1)
#' head(sims)
#' # refit the model to a simulated response
#' fixef(refit(fit, sims$sim_1))
#' # new pupils of a known school, with that school's random effects
#' simulate(fit, nsim = 2, seed = 1, use.u = TRUE,
#'          newdata = data.frame(homework = 0:3, schid = "7472"))
#'
#' nels88$pass <- nels88$math >= 50
#' gfit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' colMeans(simulate(gfit, nsim = 2, seed = 1))
#' @export
simulate.mlmfit <- function(object, nsim = 1, seed = NULL, re.form = NA, use.u = FALSE, newdata = NULL,
                            allow.new.levels = FALSE, weights = NULL, na.action = stats::na.pass, ...) {
  warn_unused_dots(..., method = "simulate")
  nsim <- positive_count(nsim, "nsim")
  if (!missing(use.u)) {
    if (!missing(re.form)) {
      mlm_abort("Give {.arg use.u} or {.arg re.form}, not both.", "mlmfit_error_argument")
    }
    if (!is.logical(use.u) || length(use.u) != 1L || is.na(use.u)) {
      mlm_abort("{.arg use.u} must be {.code TRUE} or {.code FALSE}.", "mlmfit_error_argument")
    }
    re.form <- if (use.u) NULL else NA
  }
  if (!is.null(seed)) set.seed(seed)
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  rng_state <- get(".Random.seed", envir = .GlobalEnv)
  sims <- simulate_responses(object, nsim, re.form, newdata, allow.new.levels, weights, na.action)
  rows <- attr(sims, "rownames")
  # with na.exclude, NA in the rows the fit dropped (or newdata's rows with
  # missing values); na.action given here says how to show the rows the
  # fit dropped, as lme4 (bootMer() asks for na.exclude)
  omit <- if (is.null(newdata)) attr(spec_frame(object), "na.action") else attr(sims, "omitted")
  if (is.null(newdata) && !is.null(omit) && !missing(na.action)) {
    class(omit) <- class(attr(na.action(NA), "na.action"))
  }
  if (inherits(omit, "exclude")) rows <- names(stats::napredict(omit, stats::setNames(seq_along(rows), rows)))
  pad <- function(v) if (inherits(omit, "exclude")) stats::napredict(omit, v) else v
  val <- if (is.matrix(sims)) lapply(seq_len(nsim), function(s) pad(sims[, s])) else lapply(sims, pad)
  names(val) <- paste0("sim_", seq_len(nsim))
  structure(val, row.names = rows, class = "data.frame", seed = rng_state)
}

# nsim simulated responses: an n x nsim matrix for linear mixed models, a
# list of responses in their own form for GLMMs (attributes "rownames": the
# rows simulated for, and "omitted": rows of newdata dropped by na.action).
# The random stream is used as lme4 uses it: the random effects of all
# simulations, then all residuals (or the family's draws).
simulate_responses <- function(fit, nsim, re.form = NA, newdata = NULL, allow.new.levels = FALSE,
                               weights = NULL, na.action = stats::na.pass) {
  held <- held_terms(fit, re.form)
  drawn <- setdiff(lme4_term_order(fit), held)
  d <- new_design(fit, newdata, if (length(held)) re.form else NA, allow.new.levels, na.action)
  eta <- drop(d$X %*% fit_beta(fit)) + d$offset + d$re
  n <- length(eta)
  w <- simulation_weights(fit, d$newdata, weights, n)
  sim_re <- draw_random_effects(simulation_designs(fit, drawn, d$newdata, allow.new.levels), n, nsim)
  if (is.null(spec_family(fit))) {
    e <- matrix(stats::rnorm(n * nsim), ncol = nsim)
    if (is_structured(fit)) {
      # the structure's multipliers include the fit's prior weights
      e <- correlate_residual_draws(fit, e, if (is.null(newdata)) NULL else residual_structure_newdata(fit, d$newdata))
      if (is.null(newdata)) w <- NULL
    }
    if (!is.null(w)) e <- e / sqrt(w)
    return(structure(eta + fit_sigma(fit) * (sim_re + e), rownames = d$rownames, omitted = d$na.action))
  }
  w <- w %||% rep(1, n)
  if (spec_family(fit)$dist == "binomial" && any(abs(w - round(w)) > 1e-8)) {
    mlm_abort("Binomial responses can only be simulated for whole numbers of trials (the prior weights).",
              "mlmfit_error_argument")
  }
  draws <- draw_family_response(fit, as.vector(eta + sim_re), rep(w, nsim))
  sims <- lapply(seq_len(nsim), function(s) {
    rows <- (s - 1L) * n + seq_len(n)
    if (is.matrix(draws)) draws[rows, , drop = FALSE] else draws[rows]
  })
  structure(sims, rownames = d$rownames, omitted = d$na.action)
}

# The random-effect terms (indices into re_terms()) that re.form holds at
# their conditional modes: whole terms only.
held_terms <- function(fit, re.form) {
  selection <- re_selection(fit, re.form)
  terms <- re_terms(fit)
  held <- integer()
  for (t in seq_along(terms)) {
    tm <- terms[[t]]
    cols <- selection[[tm$label]]
    k <- sum(tm$block_cols %in% cols)
    if (k == tm$q) held <- c(held, t)
    if (k > 0L && k < tm$q) {
      mlm_abort(c("{.arg re.form} names only some columns of the term {.code {term_label(tm)}}.",
                  i = "{.fn simulate} draws the random effects of a term together: name the whole term, or none of it."),
                "mlmfit_error_argument")
    }
  }
  held
}

# Prior weights of the rows simulated for: the fit's; for newdata the
# weights given, else the numbers of trials of a cbind() binomial response
# found in newdata, else none (1).
simulation_weights <- function(fit, newdata, weights, n) {
  if (is.null(newdata)) {
    if (!is.null(weights)) {
      mlm_abort("{.arg weights} are for {.arg newdata}; the data of the fit keep their own.", "mlmfit_error_argument")
    }
    return(spec_weights(fit))
  }
  if (!is.null(weights)) {
    if (!is.numeric(weights) || !(length(weights) %in% c(1L, n)) || anyNA(weights) || any(weights <= 0)) {
      mlm_abort("{.arg weights} must be positive numbers, one per row of {.arg newdata} ({n}).", "mlmfit_error_argument")
    }
    return(rep_len(as.double(weights), n))
  }
  fam <- spec_family(fit)
  if (identical(fam$response_kind, "cbind")) {
    response <- spec_formula(fit)[[2L]]
    if (all(all.vars(response) %in% names(newdata))) {
      return(rowSums(eval(response, newdata, environment(spec_formula(fit)))))
    }
  }
  NULL
}

# The random-effect terms (indices into re_terms()) in lme4's internal
# order: lme4 sorts the terms of the formula by number of levels only when
# some term has more levels than the one before it, and then reverses ties.
lme4_term_order <- function(fit) {
  terms <- re_terms(fit)
  pos <- formula_positions(fit)
  nl <- numeric(length(pos))
  nl[pos] <- vapply(terms, function(tm) tm$n_levels, numeric(1))
  lme4_seq <- if (any(diff(nl) > 0)) rev(order(nl)) else seq_along(nl)
  match(lme4_seq, pos)
}

# Position of each term of re_terms() (which are sorted by number of
# levels) among the terms of the formula as lme4 lists them (nested
# factors innermost first, `||` expanded).
formula_positions <- function(fit) {
  parsed <- parse_mixed_formula(spec_formula(fit))$random
  keys <- vapply(parsed, function(r) paste(r$label, deparse1(r$lhs)), "")
  lme4_pos <- vapply(seq_along(parsed), function(k) as.integer(parsed[[k]]$lme4_order %||% k), integer(1))
  used <- logical(length(keys))
  vapply(re_terms(fit), function(tm) {
    k <- which(keys == paste(tm$label, deparse1(tm$lhs)) & !used)[1L]
    used[k] <<- TRUE
    lme4_pos[k]
  }, integer(1))
}

# What drawing the random effects of the terms `which` needs, term by term:
# the level of each row (NA: no random effect), the number of levels, the
# columns of Z and the term's relative covariance factor. For new data the
# levels are drawn in lme4's order: numbers in numeric order, other levels
# in the fit's order followed by new ones in order of appearance.
simulation_designs <- function(fit, which, newdata, allow.new.levels) {
  terms <- re_terms(fit)
  Tb <- relative_factors(fit, fit_theta(fit))
  env <- environment(spec_formula(fit))
  lapply(which, function(t) {
    tm <- terms[[t]]
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    if (is.null(newdata)) {
      g <- block_factor(fit, tm$block)
      return(list(codes = as.integer(g), n_levels = nlevels(g), q = tm$q, Z = term_z(fit, tm), T = Tt))
    }
    idx <- block_codes(fit, tm$block, newdata, env, allow.new.levels)
    labels <- attr(idx, "labels")
    values <- grouping_variable(tm$group_expr, tm$label, newdata, env)
    if (is.numeric(values)) {
      # numbers: the levels present, in numeric order
      present <- sort(unique(values[!is.na(values)]))
      codes <- match(values, present)
      n_levels <- length(present)
    } else {
      # the levels of the fit present, in its order, then new ones as they appear
      known <- sort(unique(idx[!is.na(idx)]))
      new_levels <- unique(labels[is.na(idx) & !is.na(labels)])
      codes <- match(idx, known)
      codes[is.na(idx)] <- length(known) + match(labels[is.na(idx)], new_levels)
      n_levels <- length(known) + length(new_levels)
    }
    list(codes = codes, n_levels = n_levels, q = tm$q, Z = term_columns(fit, tm, newdata, env), T = Tt)
  })
}

# nsim draws of Z b (n x nsim) with b = T u, u standard normal, drawn term
# by term, each term's draws level by level (as lme4 orders them).
draw_random_effects <- function(designs, n, nsim) {
  out <- matrix(0, n, nsim)
  if (length(designs) == 0L) return(out)
  sizes <- vapply(designs, function(d) d$q * d$n_levels, numeric(1))
  u <- matrix(stats::rnorm(sum(sizes) * nsim), ncol = nsim)
  start <- 0
  for (d in designs) {
    k <- d$n_levels
    # q x (k nsim): the draws of each level are consecutive
    bs <- d$T %*% matrix(u[start + seq_len(d$q * k), , drop = FALSE], nrow = d$q)
    ok <- !is.na(d$codes)
    for (a in seq_len(d$q)) {
      out[ok, ] <- out[ok, ] + d$Z[ok, a] * matrix(bs[a, ], k, nsim)[d$codes[ok], , drop = FALSE]
    }
    start <- start + d$q * k
  }
  out
}

# Responses drawn from a GLMM's family at linear predictor eta (all
# simulations in one vector, as lme4 draws them), in the form of the fitted
# response; w: prior weights (numbers of trials). Rows whose linear
# predictor is missing are NA.
draw_family_response <- function(fit, eta, w) {
  fam <- spec_family(fit)
  mu <- fam$family$linkinv(eta)
  ok <- !is.na(mu)
  draw <- function(f) {
    out <- rep(NA_real_, length(mu))
    out[ok] <- f(sum(ok), mu[ok], w[ok])
    out
  }
  switch(fam$dist,
    binomial = {
      yy <- draw(function(k, m, size) stats::rbinom(k, size = round(size), prob = m))
      switch(fam$response_kind,
        cbind = {
          m <- cbind(yy, round(w) - yy)
          colnames(m) <- colnames(spec_response(fit))
          m
        },
        factor = factor(fam$response_levels[yy + 1L], levels = fam$response_levels),
        logical = yy > 0,
        binary = yy,
        yy / w)
    },
    poisson = draw(function(k, m, size) stats::rpois(k, m)),
    negative_binomial = draw(function(k, m, size) stats::rnbinom(k, size = fam$nb_size, mu = m)),
    Gamma = draw(function(k, m, size) {
      shape <- size / fit_sigma(fit)^2
      stats::rgamma(k, shape = shape, rate = shape / m)
    }))
}
