# Simulated responses from a glmm() fit: new random effects (or the
# conditional modes), then the response drawn from the family, given back
# in the form of the fitted response (0/1, logical, factor, proportions,
# or a matrix of successes and failures).

#' Simulate responses from a generalized linear mixed model
#'
#' @param object A fit from [glmm()].
#' @param nsim Number of simulated responses.
#' @param seed Optional seed for the random number generator (as for
#'   [stats::simulate()]).
#' @param use.u Keep the random effects at their conditional modes
#'   (`TRUE`) instead of drawing new ones (the default); the same as
#'   `re.form = NULL`.
#' @param re.form Which random effects to keep at their conditional modes:
#'   `NA` (default) none, all are drawn anew; `NULL` all; or a formula naming
#'   some terms.
#' @param newdata Optional data frame to simulate for (one trial per row for
#'   binomial models).
#' @param allow.new.levels Allow levels of grouping factors not in the fit
#'   (their random effects are drawn, or zero when kept at the modes).
#' @param ... Unused.
#' @return A data frame with columns `sim_1`, ..., `sim_<nsim>` and the
#'   random-number state in attribute `"seed"`. For a response given as
#'   `cbind(successes, failures)` each column is a two-column matrix.
#' @examples
#' nels88$pass <- nels88$math >= 50
#' fit <- glmm(pass ~ homework + (1 | schid), nels88, family = binomial)
#' sims <- simulate(fit, nsim = 2, seed = 1)
#' colMeans(sims)
#' @export
simulate.mlmfit_glmm <- function(object, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA, newdata = NULL,
                          allow.new.levels = FALSE, ...) {
  nsim <- positive_count(nsim, "nsim")
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  if (is.null(seed)) {
    rng_state <- get(".Random.seed", envir = .GlobalEnv)
  } else {
    old <- get(".Random.seed", envir = .GlobalEnv)
    on.exit(assign(".Random.seed", old, envir = .GlobalEnv))
    set.seed(seed)
    rng_state <- structure(seed, kind = as.list(RNGkind()))
  }
  if (isTRUE(use.u)) re.form <- NULL
  kept <- selected_re_terms(object, re.form)
  drawn <- setdiff(seq_along(object$re$terms), kept)
  eta0 <- predict(object, newdata = newdata, re.form = re.form, allow.new.levels = allow.new.levels)
  n <- length(eta0)
  designs <- lapply(drawn, function(t) {
    tm <- object$re$terms[[t]]
    if (is.null(newdata)) {
      blk <- object$re$blocks[[tm$block]]
      Z <- vapply(tm$block_cols, function(col) {
        ref <- blk$refs[[col]]
        if (is.null(ref)) rep(1, n) else if (is.integer(ref) && length(ref) == 1L) object$X[, ref] else ref
      }, numeric(n))
      list(codes = as.integer(blk$factor), n_levels = blk$n_levels, Z = matrix(Z, n))
    } else {
      des <- new_term_design(object, t, as_model_data(newdata)[names(eta0), , drop = FALSE])
      g <- factor(des$group)
      list(codes = as.integer(g), n_levels = nlevels(g), Z = des$Z)
    }
  })
  Tb <- relative_factors(object$re, object$theta)
  fam <- object$family
  dist <- object$family_info$dist
  w <- if (is.null(newdata)) weights(object) else rep(1, n)
  if (dist == "binomial" && any(abs(w - round(w)) > 1e-8)) {
    mlm_abort("Binomial responses can only be simulated for whole numbers of trials (the prior weights).",
              "mlmfit_error_argument")
  }
  sims <- vector("list", nsim)
  for (s in seq_len(nsim)) {
    eta <- eta0
    for (k in seq_along(drawn)) {
      tm <- object$re$terms[[drawn[k]]]
      Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
      des <- designs[[k]]
      bsim <- Tt %*% matrix(stats::rnorm(tm$q * des$n_levels), tm$q, des$n_levels)
      ok <- !is.na(des$codes)
      eta[ok] <- eta[ok] + rowSums(des$Z[ok, , drop = FALSE] * t(bsim[, des$codes[ok], drop = FALSE]))
    }
    mu <- fam$linkinv(eta)
    sims[[s]] <- switch(dist,
      binomial = {
        yy <- stats::rbinom(n, size = round(w), prob = mu)
        switch(object$response_kind,
          cbind = {
            m <- cbind(yy, round(w) - yy)
            colnames(m) <- colnames(object$response)
            m
          },
          factor = factor(object$response_levels[yy + 1L], levels = object$response_levels),
          logical = yy > 0,
          binary = as.numeric(yy),
          yy / w)
      },
      poisson = as.numeric(stats::rpois(n, mu)),
      negative_binomial = as.numeric(stats::rnbinom(n, size = object$family_info$nb_size, mu = mu)),
      Gamma = {
        shape <- w / object$sigma^2
        stats::rgamma(n, shape = shape, rate = shape / mu)
      })
  }
  names(sims) <- paste0("sim_", seq_len(nsim))
  structure(sims, row.names = names(eta0), class = "data.frame", seed = rng_state)
}
