# The parametric bootstrap, for every kind of fit: responses simulated from
# the fitted model (as simulate(), so a seed gives lme4's bootMer() draws),
# each refitted, in chunks with a progress bar between them and optionally
# on several cores. A linear mixed model without a residual structure is
# refitted from its stored cross-products (only the response parts
# recomputed, the optimiser started at the estimates, many refits in one
# call of the engine); with a structure, each refit is a full fit started
# at the estimates; a GLMM is refitted exactly as glmm() fits it.

#' Parametric bootstrap of a mixed model
#'
#' Simulates `nsim` responses from the fitted model (new random effects and
#' residuals, as [simulate()] with `re.form = NA`) and refits the model to
#' each. With the same `seed`, the simulated responses of an [lmm()] fit are
#' those of `lme4::bootMer()`. A refit recomputes only the parts of the
#' stored cross-products that involve the response (one pass over it) and
#' starts the optimiser at the estimates, so a thousand refits of a model
#' for a few thousand observations take seconds. [confint()] with
#' `method = "boot"` uses these estimates.
#'
#' For a [glmm()] fit, each simulated response (from [simulate()]) is
#' refitted exactly as [glmm()] fits the data, from the same starting
#' values; the estimates are the standard deviations and correlations of
#' the random effects (and the scale of a Gamma model), then the fixed
#' effects. The size of a negative binomial model is held at its estimate.
#'
#' For a fit with a residual `correlation` or `variance` structure, the
#' responses are simulated with the fitted residual covariance (see
#' [simulate.mlmfit()]) and each refit is a full fit by the structured
#' engine started at the estimates, so the structure's parameters are
#' re-estimated too; such refits cost a fit each.
#'
#' A refit that fails (an error, or estimates that are not finite) gives a
#' row of `NA` and a warning of class `mlmfit_warning_bootstrap` with the
#' number of failures, as lme4's `bootMer()` does.
#'
#' The result is a `"boot"` object as `lme4::bootMer()` returns, so the
#' boot package's functions work on it, e.g.
#' `boot::boot.ci(b, type = "perc", index = 1)`; its `confint()` method
#' gives percentile (or basic or normal) intervals of every parameter.
#'
#' @param fit A fit from [lmm()] or [glmm()].
#' @param nsim Number of simulations.
#' @param seed Seed for [set.seed()], or `NULL` to continue the current
#'   random number stream.
#' @param cores Number of processes: refits are split into chunks that run
#'   in forked processes (the parallel package; socket workers on Windows).
#' @param progress Show a progress bar (cli).
#' @return An object of class `c("mlmfit_bootstrap", "boot")`, a list with
#'   `t0` (the estimates of the fit), `t` (a matrix with one row per
#'   simulation and one column per parameter), `R` (`nsim`), `data` (the
#'   model frame), `seed` (the random number state before the
#'   simulations), `statistic`, `sim` (`"parametric"`), `call`, `ran.gen`
#'   and `mle`, as `lme4::bootMer()` returns. The parameters are the
#'   standard deviations and correlations of the random effects and the
#'   residual standard deviation (named as lme4's `.sig01`, ..., `.sigma`),
#'   the free parameters of a residual structure on their natural scale
#'   (named as [residual_parameters()] names them, e.g. `Phi`), then the
#'   fixed effects. Attribute `"n_warnings"` counts refits with convergence
#'   warnings and `"n_failed"` failed refits (rows of `NA`).
#' @examples
#' fit <- lmm(math ~ homework + (1 | schid), nels88)
#' b <- parametric_bootstrap(fit, nsim = 100, seed = 1)
#' b
#' apply(b$t, 2, sd)            # bootstrap standard errors
#' sqrt(diag(vcov(fit)))        # compare: the fixed effects' Wald SEs
#' confint(b)
#' @export
parametric_bootstrap <- function(fit, nsim = 500, seed = NULL, cores = 1L, progress = TRUE) {
  out <- run_parametric_bootstrap(fit, nsim, seed, cores, progress)
  out$call <- match.call()
  out
}

# The bootstrap with a seam for tests: refit_one(fit, ysim, control) refits
# one simulated response (models refitted one by one) and returns the
# engine's answer, NULL when the refit failed.
run_parametric_bootstrap <- function(fit, nsim, seed, cores, progress, refit_one = bootstrap_refit_one) {
  if (!inherits(fit, "mlmfit")) {
    mlm_abort("The parametric bootstrap is available for fits from {.fn lmm} and {.fn glmm}.",
              "mlmfit_error_argument")
  }
  nsim <- positive_count(nsim, "nsim")
  cores <- positive_count(cores, "cores")
  glmm <- inherits(fit, "mlmfit_glmm")
  if (glmm && spec_family(fit)$dist == "binomial" && any(abs((w <- spec_weights(fit) %||% 1) - round(w)) > 1e-8)) {
    mlm_abort("A binomial model can only be bootstrapped when its numbers of trials (the prior weights) are whole numbers.",
              "mlmfit_error_argument")
  }
  if (!is.null(seed)) set.seed(seed)
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  rng_state <- get(".Random.seed", envir = .GlobalEnv)
  sims <- simulate_responses(fit, nsim)
  control <- utils::modifyList(fit_control(fit), list(cond_var = FALSE))
  # Refits from the cross-products start at the estimates, where the Newton
  # polish after the optimiser costs more evaluations than the optimisation.
  if (!glmm && !is_structured(fit)) control$polish <- FALSE
  # serial: chunks of a few refits between progress updates; parallel:
  # about ten rounds of one chunk per process (each round forks them)
  chunk_size <- if (cores > 1L) max(1L, as.integer(ceiling(nsim / (10L * cores)))) else if (glmm) 10L else 25L
  refit_chunk <- function(cols) bootstrap_refits(fit, sims, cols, control, refit_one)
  results <- run_in_chunks(nsim, chunk_size, refit_chunk, cores, progress, "Bootstrap refits")
  pieces <- function(name) do.call(cbind, lapply(results, `[[`, name))
  theta <- pieces("theta")
  beta <- pieces("beta")
  psi <- pieces("psi")
  sigma <- unlist(lapply(results, `[[`, "sigma"))
  n_warnings <- unlist(lapply(results, `[[`, "warnings"))
  t0 <- parameter_values(fit)
  t <- t(vapply(seq_len(nsim), function(s) {
    if (!is.finite(sigma[s]) || !(sigma[s] > 0)) return(rep(NA_real_, length(t0)))
    est <- c(variance_parameter_values(fit, theta[, s], sigma[s], psi[, s]), beta[, s])
    if (all(is.finite(est))) est else rep(NA_real_, length(t0))
  }, numeric(length(t0))))
  t <- matrix(t, nrow = nsim, dimnames = list(NULL, parameter_names(fit)))
  n_failed <- sum(!stats::complete.cases(t))
  # as lme4's bootMer(): failed refits are kept as NA, and said so
  if (n_failed > 0L) {
    mlm_warn(c("{n_failed} of {nsim} bootstrap refit{?s} failed: {?its/their} row{?s} {?is/are} {.val NA}.",
               i = "Their share is {format(100 * n_failed / nsim, digits = 2)}%; summaries of the other refits may be biased when it is not small."),
             "mlmfit_warning_bootstrap")
  }
  structure(list(t0 = t0, t = t, R = nsim, data = spec_frame(fit), seed = rng_state, statistic = parameter_values,
                 sim = "parametric", call = NULL, ran.gen = "simulate(<mlmfit>, 1, *)", mle = NULL),
            class = c("mlmfit_bootstrap", "boot"), n_warnings = sum(n_warnings > 0L), n_failed = n_failed)
}

# Refits of the simulations `cols`: theta, beta, sigma and psi (one column
# per simulation, NA where a refit failed) and the number of convergence
# warnings of each.
bootstrap_refits <- function(fit, sims, cols, control, refit_one) {
  spec <- fit_spec(fit)
  if (!inherits(fit, "mlmfit_glmm") && !is_structured(fit)) {
    r <- engine_refit_responses(spec, fit_xp(fit), sims[, cols, drop = FALSE], fit_theta(fit), fit_reml(fit), control)
    r$psi <- matrix(numeric(), 0L, length(cols))
    return(r)
  }
  m <- length(cols)
  out <- list(theta = matrix(NA_real_, length(fit_theta(fit)), m), beta = matrix(NA_real_, length(fixef(fit)), m),
              sigma = rep(NA_real_, m), psi = matrix(NA_real_, length(fit_psi(fit)), m), warnings = integer(m))
  for (k in seq_len(m)) {
    ysim <- if (is.matrix(sims)) sims[, cols[k]] else sims[[cols[k]]]
    r <- tryCatch(refit_one(fit, ysim, control), error = function(e) NULL)
    if (is.null(r)) next
    out$theta[, k] <- r$theta
    out$beta[, k] <- r$beta
    out$sigma[k] <- r$sigma
    if (length(r$psi)) out$psi[, k] <- r$psi
    out$warnings[k] <- length(r$optinfo$warnings)
  }
  out
}

# One simulated response refitted: a structured model from the estimates,
# a GLMM as glmm() fits it (refit()'s refit, the response in its own form).
# NULL when the refit failed.
bootstrap_refit_one <- function(fit, ysim, control) {
  if (!inherits(fit, "mlmfit_glmm")) {
    r <- lmm_refit_engine(fit, spec_with_response(fit_spec(fit), ysim), control = control)
    return(if (is.finite(r$deviance)) r)
  }
  r <- glmm_refit_response(fit, ysim, control)
  if (is.null(r$error)) r
}

# One parallel runner: fun(indices) for chunks of 1..n of chunk_size, in
# rounds of one chunk per process (forked processes; socket workers on
# Windows), with a progress bar between rounds. A list of the results.
run_in_chunks <- function(n, chunk_size, fun, cores, progress, label) {
  chunks <- split(seq_len(n), ceiling(seq_len(n) / chunk_size))
  results <- vector("list", length(chunks))
  bar <- NULL
  if (progress) bar <- cli::cli_progress_bar(label, total = n, .envir = environment())
  cl <- NULL
  if (cores > 1L && .Platform$OS.type == "windows") {
    cl <- parallel::makePSOCKcluster(cores)
    on.exit(parallel::stopCluster(cl), add = TRUE)
  }
  rounds <- split(seq_along(chunks), ceiling(seq_along(chunks) / cores))
  for (g in rounds) {
    part <- if (cores == 1L) {
      lapply(chunks[g], fun)
    } else if (!is.null(cl)) {
      parallel::parLapply(cl, chunks[g], fun)
    } else {
      parallel::mclapply(chunks[g], fun, mc.cores = cores, mc.preschedule = FALSE)
    }
    failed <- vapply(part, inherits, logical(1), "try-error")
    if (any(failed)) mlm_abort(c("A chunk of the work failed.", x = as.character(part[[which(failed)[1L]]])), "mlmfit_error_bootstrap")
    results[g] <- part
    if (!is.null(bar)) cli::cli_progress_update(id = bar, inc = sum(lengths(chunks[g])))
  }
  if (!is.null(bar)) cli::cli_progress_done(id = bar)
  results
}

#' @export
print.mlmfit_bootstrap <- function(x, digits = max(3, getOption("digits") - 3), ...) {
  warn_unused_dots(..., method = "print")
  cat("Parametric bootstrap of a mixed model: ", x$R, " simulations", sep = "")
  n_failed <- attr(x, "n_failed") %||% 0L
  if (n_failed > 0L) cat(" (", n_failed, " failed refits)", sep = "")
  cat("\n\n")
  ok <- stats::complete.cases(x$t)
  tab <- cbind(original = x$t0, bias = colMeans(x$t[ok, , drop = FALSE]) - x$t0,
               `std. error` = apply(x$t[ok, , drop = FALSE], 2L, stats::sd))
  print(tab, digits = digits)
  invisible(x)
}

#' Confidence intervals from a parametric bootstrap
#'
#' Percentile (default), basic or normal intervals of each parameter from
#' the refits of [parametric_bootstrap()], with boot's interpolation of
#' order statistics; failed refits are left out. This is what
#' `confint(fit, method = "boot")` reports.
#'
#' @param object The result of [parametric_bootstrap()].
#' @param parm Parameters: names or indices; all by default.
#' @param level Confidence level.
#' @param type `"perc"`, `"basic"` or `"norm"`.
#' @param ... Unused.
#' @return A matrix with one row per parameter and columns for the lower
#'   and upper limits.
#' @examples
#' fit <- lmm(math ~ homework + (1 | schid), nels88)
#' b <- parametric_bootstrap(fit, nsim = 100, seed = 1, progress = FALSE)
#' confint(b, type = "basic")
#' @export
confint.mlmfit_bootstrap <- function(object, parm, level = 0.95, type = c("perc", "basic", "norm"), ...) {
  warn_unused_dots(..., method = "confint")
  type <- match.arg(type)
  check_level(level)
  all_names <- colnames(object$t)
  which <- confint_which(parm, all_names, 0L, length(all_names))
  a <- (1 + c(-level, level)) / 2
  matrix(bootstrap_limits(object, which, level, type), ncol = 2L,
         dimnames = list(all_names[which], paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")))
}

# Bootstrap limits of the parameters `which` from the refits that
# succeeded; refused when more than a tenth failed.
bootstrap_limits <- function(boot, which, level, type) {
  check_bootstrap_failures(boot)
  ok <- stats::complete.cases(boot$t)
  t(vapply(which, function(w) bootstrap_interval(boot$t[ok, w], boot$t0[[w]], level, type), numeric(2)))
}

# Intervals from the refits that succeeded are biased when many failed
# (failures are not random): refuse beyond a tenth; parametric_bootstrap()
# has warned of any failure.
check_bootstrap_failures <- function(boot, max_share = 0.1) {
  n_failed <- sum(!stats::complete.cases(boot$t))
  if (n_failed > max_share * boot$R) {
    mlm_abort(c("{n_failed} of {boot$R} bootstrap refits failed: too many for trustworthy intervals.",
                i = "Inspect the refits with {.fn parametric_bootstrap} (failed ones are rows of {.val NA}), or use {.code method = \"profile\"}."),
              "mlmfit_error_bootstrap")
  }
  invisible(n_failed)
}

# Interpolated order statistics on the normal scale (Davison and Hinkley
# 1997, eq. 5.8), as boot's percentile intervals use them.
bootstrap_quantile <- function(t, alpha) {
  t <- sort(t[is.finite(t)])
  R <- length(t)
  vapply(alpha, function(a) {
    rk <- (R + 1) * a
    k <- floor(rk)
    if (k == rk && k >= 1 && k <= R) return(t[k])
    if (k <= 0) return(t[1L])
    if (k >= R) return(t[R])
    z <- stats::qnorm(c(a, k / (R + 1), (k + 1) / (R + 1)))
    t[k] + (z[1L] - z[2L]) / (z[3L] - z[2L]) * (t[k + 1L] - t[k])
  }, numeric(1))
}

# Bootstrap intervals of one parameter: percentile, basic or normal.
bootstrap_interval <- function(t, t0, level, type) {
  a <- (1 + c(-level, level)) / 2
  switch(type,
         perc = bootstrap_quantile(t, a),
         basic = 2 * t0 - rev(bootstrap_quantile(t, a)),
         norm = {
           t <- t[is.finite(t)]
           bias <- mean(t) - t0
           half <- stats::sd(t) * stats::qnorm((1 + level) / 2)
           c(t0 - bias - half, t0 - bias + half)
         })
}
