# Parametric bootstrap of a glmm() fit: responses simulated by simulate()
# (new random effects, then the family's draws), each refitted in the
# engine exactly as glmm() fits it (same starting values, same settings),
# in chunks with a progress bar between them and optionally on several
# cores. parametric_bootstrap() sends glmm() fits here.

# `refit` turns a simulated response into estimates (a seam for tests).
glmm_parametric_bootstrap <- function(fit, nsim, seed, cores, progress, refit = glmm_refit_simulated) {
  nsim <- positive_count(nsim, "nsim")
  cores <- positive_count(cores, "cores")
  if (fit$family_info$dist == "binomial") {
    w <- weights(fit)
    if (any(abs(w - round(w)) > 1e-8)) {
      mlm_abort("A binomial model can only be bootstrapped when its numbers of trials (the prior weights) are whole numbers.",
                "mlmfit_error_argument")
    }
  }
  if (!is.null(seed)) set.seed(seed)
  sims <- simulate(fit, nsim = nsim)
  setup <- glmm_bootstrap_setup(fit)
  chunk_size <- if (cores > 1L) max(1L, as.integer(ceiling(nsim / (10L * cores)))) else 10L
  chunks <- split(seq_len(nsim), ceiling(seq_len(nsim) / chunk_size))
  run_chunk <- function(cols) lapply(cols, function(s) refit(setup, sims[[s]]))
  results <- vector("list", length(chunks))
  bar <- NULL
  if (progress) bar <- cli::cli_progress_bar("Bootstrap refits", total = nsim, .envir = environment())
  if (cores > 1L && .Platform$OS.type == "windows") {
    cl <- parallel::makePSOCKcluster(cores)
    on.exit(parallel::stopCluster(cl), add = TRUE)
    parallel::clusterExport(cl, c("setup", "sims", "refit"), envir = environment())
  }
  groups <- split(seq_along(chunks), ceiling(seq_along(chunks) / cores))
  for (g in groups) {
    part <- if (cores == 1L) {
      lapply(chunks[g], run_chunk)
    } else if (.Platform$OS.type == "windows") {
      parallel::parLapply(cl, chunks[g], function(cols) lapply(cols, function(s) refit(setup, sims[[s]])))
    } else {
      parallel::mclapply(chunks[g], run_chunk, mc.cores = cores, mc.preschedule = FALSE)
    }
    failed <- vapply(part, inherits, logical(1), "try-error")
    if (any(failed)) {
      mlm_abort(c("A bootstrap chunk failed.", x = as.character(part[[which(failed)[1L]]])), "mlmfit_error_bootstrap")
    }
    results[g] <- part
    if (!is.null(bar)) cli::cli_progress_update(id = bar, inc = sum(lengths(chunks[g])))
  }
  if (!is.null(bar)) cli::cli_progress_done(id = bar)
  results <- unlist(results, recursive = FALSE)
  est <- do.call(rbind, lapply(results, `[[`, "estimates"))
  colnames(est) <- c(glmm_sdcor_names(fit), names(fit$beta))
  attr(est, "n_warnings") <- sum(vapply(results, `[[`, integer(1), "warnings") > 0L)
  est
}

# What a refit needs, without the fit object itself (it goes to workers).
glmm_bootstrap_setup <- function(fit) {
  fam <- fit$family_info
  list(X = fit$X, prior_weights = fit$prior_weights, trials = fit$trials, offset = fit$offset,
       intercept_col = match("(Intercept)", colnames(fit$X), nomatch = 0L), blocks = engine_blocks(fit$re),
       re = fit$re, fam = fam, nAGQ = fit$nAGQ, control = utils::modifyList(unclass(fit$control), list(cond_var = FALSE)),
       use_sc = isTRUE(fit$use_sc), p = length(fit$beta))
}

# One simulated response (in the form simulate() gives it) refitted as
# glmm() fits the model: the response on the engine's scale (proportions
# for binomial counts; the numbers of trials are those of the data), the
# same starting values and settings. Returns the variance parameters and
# fixed effects, NA where the fit failed, and the number of warnings.
glmm_refit_simulated <- function(setup, ysim) {
  fam <- setup$fam
  w <- setup$prior_weights
  y <- if (is.matrix(ysim)) {
    trials <- ysim[, 1L] + ysim[, 2L]
    ifelse(trials == 0, 0, ysim[, 1L] / pmax(trials, 1e-300))
  } else if (is.factor(ysim)) {
    as.numeric(as.integer(ysim) == 2L)
  } else {
    as.numeric(ysim)
  }
  mustart <- glmm_mustart(y, w, fam$dist)
  na_row <- rep(NA_real_, length(setup$re$theta0) + as.integer(setup$use_sc) + setup$p)
  r <- tryCatch(
    glmm_fit_cpp(setup$X, y, w, setup$offset, as.double(fam$family$linkfun(mustart)), setup$intercept_col - 1L,
                 setup$blocks, setup$re$theta0, setup$re$lower,
                 glmm_engine_family(fam, y, w, mustart, setup$trials), setup$nAGQ, setup$control),
    error = function(e) list(error = conditionMessage(e)))
  if (!is.null(r$error)) return(list(estimates = na_row, warnings = 0L))
  sigma <- 1
  if (setup$use_sc) {
    eta <- as.vector(r$eta)
    mu <- fam$family$linkinv(eta)
    ww <- if (is.null(w)) rep(1, length(y)) else w
    sigma <- sqrt((sum(ww * (y - mu)^2 / fam$family$variance(mu)) + r$ussq) / length(y))
  }
  s <- theta_to_sdcor(setup$re, as.vector(r$theta), sigma)
  if (!setup$use_sc) s <- s[-length(s)]
  est <- c(s, as.vector(r$beta))
  if (!all(is.finite(est))) return(list(estimates = na_row, warnings = 0L))
  list(estimates = est, warnings = length(r$optinfo$warnings))
}
