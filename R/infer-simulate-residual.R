# Residual draws of fits with a residual correlation or variance structure,
# with covariance sigma^2 R (the structure at the estimates), for
# simulate() and the parametric bootstrap.

# Standard normal draws z (n x nsim, rows in the order of the fit's
# observations) turned into draws with correlation C and standard deviation
# multipliers S: e = S L z within each residual group, L the lower Cholesky
# factor of the group's correlation matrix in time order. In units of sigma.
# For new rows, `parts` holds their multipliers, groups and times
# (residual_structure_newdata()).
correlate_residual_draws <- function(object, z, parts = NULL) {
  cor <- spec_residual(object)$correlation
  if (is.null(parts)) {
    parts <- list(s = residual_sd_multipliers(object), group = if (!is.null(cor)) as.integer(cor$group),
                  time = if (!is.null(cor)) cor$position)
  }
  s <- parts$s
  if (is.null(cor)) return(s * z)
  par <- fit_residual_natural(object)[[1L]]
  g <- parts$group
  ord <- order(g, parts$time)
  gs <- g[ord]
  pos <- parts$time[ord]
  zs <- z[ord, , drop = FALSE]
  out <- zs
  # k: place of each (sorted) observation within its group
  k <- stats::ave(seq_along(gs), gs, FUN = seq_along)
  if (cor$kind %in% c("ar1", "car1")) {
    # AR(1) and CAR(1) are Markov in time: the Cholesky factor is the
    # recursion e_k = rho_k e_(k-1) + sqrt(1 - rho_k^2) z_k with
    # rho_k = Phi^(gap to the previous occasion).
    for (kk in seq_len(max(k))[-1L]) {
      rows <- which(k == kk)
      rho <- par^abs(pos[rows] - pos[rows - 1L])
      out[rows, ] <- rho * out[rows - 1L, , drop = FALSE] + sqrt(1 - rho^2) * zs[rows, , drop = FALSE]
    }
  } else {
    # compound symmetry: the correlation matrix depends on the group size
    # only, so one Cholesky factor per size serves all groups of that size
    size <- tabulate(gs, max(gs))[gs]
    for (m in setdiff(unique(size), 1L)) {
      rows <- which(size == m)
      L <- t(chol(group_correlation(cor, par, seq_len(m))))
      n_groups <- length(rows) / m
      blocks <- L %*% matrix(zs[rows, , drop = FALSE], nrow = m)
      out[rows, ] <- matrix(blocks, nrow = m * n_groups)
    }
  }
  e <- z
  e[ord, ] <- out
  s * e
}
