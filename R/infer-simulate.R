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
#' @param re.form Random effects to condition on: `NA` (none, default),
#'   `NULL` (all) or a formula of some of the model's terms.
#' @param use.u Keep all random effects at their conditional modes (`TRUE`):
#'   the same as `re.form = NULL`.
#' @param newdata Optional data frame to simulate for (one trial per row
#'   for binomial models, unit weights); not available for fits with a
#'   residual structure.
#' @param allow.new.levels Allow levels of grouping factors not in the fit
#'   (their random effects are drawn, or zero when held at the modes).
#' @param ... Unused.
#' @return A data frame with one column per simulation (`sim_1`, `sim_2`,
#'   ...) and one row per observation, with the random number state as
#'   attribute `"seed"`. For a response given as `cbind(successes,
#'   failures)` each column is a two-column matrix.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' sims <- simulate(fit, nsim = 3, seed = 1)
#' head(sims)
#' # refit the model to a simulated response
#' fixef(refit(fit, sims$sim_1))
#'
#' nels88$pass <- nels88$math >= 50
#' gfit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' colMeans(simulate(gfit, nsim = 2, seed = 1))
#' @export
simulate.mlmfit <- function(object, nsim = 1, seed = NULL, re.form = NA, use.u = FALSE, newdata = NULL,
                            allow.new.levels = FALSE, ...) {
  nsim <- positive_count(nsim, "nsim")
  if (!is.null(seed)) set.seed(seed)
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  rng_state <- get(".Random.seed", envir = .GlobalEnv)
  if (isTRUE(use.u)) re.form <- NULL
  sims <- simulate_responses(object, nsim, re.form, newdata, allow.new.levels)
  rows <- attr(sims, "rownames")
  if (is.matrix(sims)) {
    val <- as.data.frame(sims)
    names(val) <- paste0("sim_", seq_len(nsim))
    rownames(val) <- rows
    omit <- if (is.null(newdata)) attr(spec_frame(object), "na.action")
    if (!is.null(omit)) val <- as.data.frame(lapply(val, function(v) stats::napredict(omit, v)))
    return(structure(val, seed = rng_state))
  }
  names(sims) <- paste0("sim_", seq_len(nsim))
  structure(sims, row.names = rows, class = "data.frame", seed = rng_state)
}

# nsim simulated responses: an n x nsim matrix for linear mixed models, a
# list of responses in their own form for GLMMs (attribute "rownames": the
# rows simulated for). The random stream is used as lme4 uses it for linear
# mixed models (all random effects, then all residuals) and simulation by
# simulation for GLMMs (random effects, then the family's draws).
simulate_responses <- function(fit, nsim, re.form = NA, newdata = NULL, allow.new.levels = FALSE) {
  if (!is.null(newdata) && is_structured(fit)) {
    mlm_abort(c("{.fn simulate} with {.arg newdata} is not available for fits with a residual structure.",
                i = "Simulate for the data of the fit, or use {.fn residual_covariance} with {.arg newdata}."),
              "mlmfit_error_argument")
  }
  held <- select_re_terms(fit, re.form)
  drawn <- setdiff(lme4_term_order(fit), held)
  d <- new_design(fit, newdata, if (length(held)) re.form else NA, allow.new.levels)
  eta <- drop(d$X %*% fixef(fit)) + d$offset + d$re
  designs <- simulation_designs(fit, drawn, newdata, d$rownames)
  n <- length(eta)
  if (is.null(spec_family(fit))) {
    sim_re <- draw_random_effects(designs, n, nsim)
    e <- matrix(stats::rnorm(n * nsim), ncol = nsim)
    if (is_structured(fit)) {
      e <- correlate_residual_draws(fit, e)
    } else if (is.null(newdata) && !is.null(w <- spec_weights(fit))) {
      e <- e / sqrt(w)
    }
    return(structure(eta + fit_sigma(fit) * (sim_re + e), rownames = d$rownames))
  }
  w <- if (is.null(newdata)) unname(weights(fit)) else rep(1, n)
  if (spec_family(fit)$dist == "binomial" && any(abs(w - round(w)) > 1e-8)) {
    mlm_abort("Binomial responses can only be simulated for whole numbers of trials (the prior weights).",
              "mlmfit_error_argument")
  }
  sims <- lapply(seq_len(nsim), function(s) draw_family_response(fit, eta + draw_random_effects(designs, n, 1L), w))
  structure(sims, rownames = d$rownames)
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

# Position in the formula of each term of re_terms() (which are sorted by
# number of levels).
formula_positions <- function(fit) {
  parsed <- parse_mixed_formula(spec_formula(fit))$random
  keys <- vapply(parsed, function(r) paste(r$label, deparse1(r$lhs)), "")
  used <- logical(length(keys))
  vapply(re_terms(fit), function(tm) {
    k <- which(keys == paste(tm$label, deparse1(tm$lhs)) & !used)[1L]
    used[k] <<- TRUE
    k
  }, integer(1))
}

# What drawing the random effects of the terms `which` needs, term by term:
# the level of each row (NA: no random effect), the number of levels, the
# columns of Z and the term's relative covariance factor.
simulation_designs <- function(fit, which, newdata, rows) {
  terms <- re_terms(fit)
  Tb <- relative_factors(fit, fit_theta(fit))
  env <- environment(spec_formula(fit))
  if (!is.null(newdata)) newdata <- as_model_data(newdata)[rows, , drop = FALSE]
  lapply(which, function(t) {
    tm <- terms[[t]]
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    if (is.null(newdata)) {
      g <- block_factor(fit, tm$block)
      Z <- term_z(fit, tm)
    } else {
      g <- factor(grouping_values(tm, newdata, env))
      Z <- term_columns(fit, tm, newdata, env)
    }
    list(codes = as.integer(g), n_levels = nlevels(g), q = tm$q, Z = Z, T = Tt)
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

# One response drawn from a GLMM's family at linear predictor eta, in the
# form of the fitted response; w: prior weights (numbers of trials).
draw_family_response <- function(fit, eta, w) {
  fam <- spec_family(fit)
  mu <- fam$family$linkinv(as.vector(eta))
  n <- length(mu)
  switch(fam$dist,
    binomial = {
      yy <- stats::rbinom(n, size = round(w), prob = mu)
      switch(fam$response_kind,
        cbind = {
          m <- cbind(yy, round(w) - yy)
          colnames(m) <- colnames(spec_response(fit))
          m
        },
        factor = factor(fam$response_levels[yy + 1L], levels = fam$response_levels),
        logical = yy > 0,
        binary = as.numeric(yy),
        yy / w)
    },
    poisson = as.numeric(stats::rpois(n, mu)),
    negative_binomial = as.numeric(stats::rnbinom(n, size = fam$nb_size, mu = mu)),
    Gamma = {
      shape <- w / fit_sigma(fit)^2
      stats::rgamma(n, shape = shape, rate = shape / mu)
    })
}
