# Parametric bootstrap: responses simulated from the fitted model (as
# simulate(), so a seed gives lme4's bootMer() draws), each refitted from
# the stored cross-products with only the response parts recomputed and the
# optimiser started at the estimates. Refits run in chunks inside the
# engine, with a progress bar between chunks and optionally on several
# cores (forked processes; socket clusters on Windows).

#' Parametric bootstrap of a linear mixed model
#'
#' Simulates `nsim` responses from the fitted model (new random effects
#' and residuals, as [simulate()] with `re.form = NA`) and refits the model
#' to each. With the same `seed`, the simulated responses are those of
#' `lme4::bootMer()`. A refit recomputes only the parts of the stored
#' cross-products that involve the response (one pass over it) and starts
#' the optimiser at the estimates, so a thousand refits of a model for a few
#' thousand observations take seconds. [confint()] with `method = "boot"`
#' uses these estimates.
#'
#' For a [glmm()] fit, each simulated response (from [simulate()]) is
#' refitted exactly as [glmm()] fits the data, from the same starting
#' values; the estimates are the standard deviations and correlations of
#' the random effects (and the scale of a Gamma model), then the fixed
#' effects. A refit that fails gives a row of `NA`. The size of a negative
#' binomial model is held at its estimate.
#'
#' For a fit with a residual `correlation` or `variance` structure, the
#' responses are simulated with the fitted residual covariance (see
#' [simulate.mlmfit_lmm()]) and each refit is a full fit by the structured engine
#' started at the estimates, so the structure's parameters are re-estimated
#' too; such refits cost a fit each.
#'
#' A refit that fails (an error, or a deviance that is not finite) gives a
#' row of `NA` and a warning of class `mlmfit_warning_bootstrap` with the
#' number of failures, as lme4's `bootMer()` does.
#'
#' @param fit A fit from [lmm()] or [glmm()].
#' @param nsim Number of simulations.
#' @param seed Seed for [set.seed()], or `NULL` to continue the current
#'   random number stream.
#' @param cores Number of processes: refits are split into chunks that run
#'   in forked processes (the parallel package; socket workers on Windows).
#' @param progress Show a progress bar (cli).
#' @return A matrix with one row per simulation and one column per
#'   parameter: the standard deviations and correlations of the random
#'   effects and the residual standard deviation (named as lme4's
#'   `.sig01`, ..., `.sigma`), the free parameters of a residual structure
#'   on their natural scale (named as [residual_parameters()] names them,
#'   e.g. `Phi`), then the fixed effects. Attribute `"n_warnings"` counts
#'   refits with convergence warnings and `"n_failed"` failed refits (rows
#'   of `NA`).
#' @examples
#' fit <- lmm(math ~ homework + (1 | schid), nels88)
#' est <- parametric_bootstrap(fit, nsim = 100, seed = 1)
#' apply(est, 2, sd)            # bootstrap standard errors
#' sqrt(diag(vcov(fit)))        # compare: the fixed effects' Wald SEs
#' @export
parametric_bootstrap <- function(fit, nsim = 500, seed = NULL, cores = 1L, progress = TRUE) {
  chunk_size <- 25L
  if (inherits(fit, "mlmfit_glmm")) return(glmm_parametric_bootstrap(fit, nsim, seed, cores, progress))
  if (!inherits(fit, "mlmfit_lmm")) {
    mlm_abort("The parametric bootstrap is available for fits from {.fn lmm} and {.fn glmm}.",
              "mlmfit_error_argument")
  }
  nsim <- positive_count(nsim, "nsim")
  cores <- positive_count(cores, "cores")
  if (!is.null(seed)) set.seed(seed)
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  Y <- simulate_responses(fit, nsim, NA)
  # serial: chunks of 25 refits between progress updates; parallel: about
  # ten rounds of one chunk per process (each round forks the processes)
  if (cores > 1L) chunk_size <- max(1L, as.integer(ceiling(nsim / (10L * cores))))
  chunks <- split(seq_len(nsim), ceiling(seq_len(nsim) / chunk_size))
  blocks <- engine_blocks(fit$re)
  control <- fit$control
  control$cond_var <- FALSE
  control$polish <- FALSE
  structured <- inherits(fit, "mlmfit_lmm_structured")
  run_chunk <- function(cols) {
    if (structured) return(structured_refit_responses(fit, Y[, cols, drop = FALSE], control))
    lmm_refit_responses_cpp(fit$X, Y[, cols, drop = FALSE], fit$prior_weights, fit$offset, fit$xp$intercept_col,
                            blocks, fit$xp, fit$theta, fit$lower, fit$REML, control)
  }
  results <- vector("list", length(chunks))
  bar <- NULL
  if (progress) {
    bar <- cli::cli_progress_bar("Bootstrap refits", total = nsim, .envir = environment())
  }
  if (cores > 1L && .Platform$OS.type == "windows") {
    cl <- parallel::makePSOCKcluster(cores)
    on.exit(parallel::stopCluster(cl), add = TRUE)
    parallel::clusterExport(cl, c("fit", "Y", "blocks", "control", "structured"), envir = environment())
  }
  groups <- split(seq_along(chunks), ceiling(seq_along(chunks) / cores))
  for (g in groups) {
    part <- if (cores == 1L) {
      lapply(chunks[g], run_chunk)
    } else if (.Platform$OS.type == "windows") {
      parallel::parLapply(cl, chunks[g], function(cols) {
        if (structured) {
          refit_structured <- utils::getFromNamespace("structured_refit_responses", "mlmfit")
          return(refit_structured(fit, Y[, cols, drop = FALSE], control))
        }
        mlmfit_refit_chunk <- utils::getFromNamespace("lmm_refit_responses_cpp", "mlmfit")
        mlmfit_refit_chunk(fit$X, Y[, cols, drop = FALSE], fit$prior_weights, fit$offset, fit$xp$intercept_col,
                           blocks, fit$xp, fit$theta, fit$lower, fit$REML, control)
      })
    } else {
      parallel::mclapply(chunks[g], run_chunk, mc.cores = cores, mc.preschedule = FALSE)
    }
    failed <- vapply(part, inherits, logical(1), "try-error")
    if (any(failed)) mlm_abort(c("A bootstrap chunk failed.", x = as.character(part[[which(failed)[1L]]])), "mlmfit_error_bootstrap")
    results[g] <- part
    if (!is.null(bar)) cli::cli_progress_update(id = bar, inc = sum(lengths(chunks[g])))
  }
  if (!is.null(bar)) cli::cli_progress_done(id = bar)
  theta <- do.call(cbind, lapply(results, `[[`, "theta"))
  beta <- do.call(cbind, lapply(results, `[[`, "beta"))
  sigma <- unlist(lapply(results, `[[`, "sigma"))
  n_warn <- unlist(lapply(results, `[[`, "warnings"))
  # the residual structure's free parameters, on their natural scale
  res_names <- names(residual_parameters(fit))
  res_par <- numeric()
  if (length(res_names)) {
    psi <- do.call(cbind, lapply(results, `[[`, "psi"))
    res_par <- apply(psi, 2L, function(x) {
      if (anyNA(x)) return(rep(NA_real_, length(res_names)))
      natural_residual_parameters(fit$residual, x)[fit$residual$free]
    })
  }
  res_par <- matrix(res_par, nrow = length(res_names), ncol = nsim)
  width <- nrow(theta) + 1L + length(res_names) + nrow(beta)
  est <- t(vapply(seq_len(nsim), function(s) {
    if (!is.finite(sigma[s])) return(rep(NA_real_, width))
    c(theta_to_sdcor(fit$re, theta[, s], sigma[s]), res_par[, s], beta[, s])
  }, numeric(width)))
  est <- matrix(est, nrow = nsim, ncol = width)
  colnames(est) <- c(sdcor_names(fit$re), res_names, names(fit$beta))
  n_failed <- sum(!stats::complete.cases(est))
  attr(est, "n_warnings") <- sum(n_warn > 0L)
  attr(est, "n_failed") <- n_failed
  # as lme4's bootMer(): failed refits are kept as NA, and said so
  if (n_failed > 0L) {
    mlm_warn(c("{n_failed} of {nsim} bootstrap refit{?s} failed: {?its/their} row{?s} {?is/are} {.val NA}.",
               i = "Their share is {format(100 * n_failed / nsim, digits = 2)}%; summaries of the other refits may be biased when it is not small."),
             "mlmfit_warning_bootstrap")
  }
  est
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
