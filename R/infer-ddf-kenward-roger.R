# The Kenward-Roger (1997) adjusted covariance of the fixed effects and
# denominator degrees of freedom, in the form of Halekoh and Hojsgaard
# (2014, pbkrtest). The marginal covariance is written as linear in the
# variance parameters gamma (each variance and covariance of each
# random-effect term, and the residual variance); the engine computes the
# matrices P_r, Q_rs and the traces K_rs group by group
# (src/engine/kenward_roger.cpp), never forming an n x n matrix.

# The parameters gamma as (block, column a, column b) of the engine's
# blocks, in the order of the terms.
kr_parameters <- function(x) {
  out <- list()
  for (tm in re_terms(x)) {
    q <- tm$q
    for (c in seq_len(q)) for (r in c:q) out[[length(out) + 1L]] <- c(tm$block, tm$block_cols[r], tm$block_cols[c])
  }
  m <- matrix(as.integer(unlist(out)), nrow = 3L)
  m
}

#' @noRd
#' @param max_component Largest number of linked random effects handled
#'   densely (crossed factors link all their levels into one group).
kenward_roger_basis <- function(fit, max_component = getOption("mlmfit.kr_max_component", 5000)) {
  if (!inherits(fit, "mlmfit_lmm")) {
    mlm_abort("Kenward-Roger's method is available for linear mixed models from {.fn lmm}.", "mlmfit_error_ddf")
  }
  if (inherits(fit, "mlmfit_lmm_structured")) {
    mlm_abort(c("Kenward-Roger's method is not available for fits with a residual {.arg correlation} or {.arg variance} structure.",
                i = "Use {.code ddf = \"Satterthwaite\"} (it accounts for the structure's parameters) or {.code ddf = \"none\"}."),
              "mlmfit_error_ddf")
  }
  if (!fit_reml(fit)) {
    mlm_abort(c("Kenward-Roger's method needs a REML fit.",
                i = "Refit with {.code REML = TRUE}, or use {.code ddf = \"Satterthwaite\"}."),
              "mlmfit_error_ddf")
  }
  terms <- engine_kenward_roger_terms(fit_spec(fit), fit_theta(fit), fit_sigma(fit)^2, kr_parameters(fit),
                                     max_component)
  if (!is.null(terms$error)) {
    mlm_abort(c("Kenward-Roger's method is too large for this model: {terms$error}.",
                i = "Use {.code ddf = \"Satterthwaite\"}, or raise {.code options(mlmfit.kr_max_component = )}."),
              "mlmfit_error_ddf")
  }
  Phi <- unname(vcov(fit))
  P <- terms$P
  ng <- length(P)
  Q <- function(i, j) terms$Q[[i + (j - 1L) * ng]]
  # Expected information of gamma (times two), REML version.
  IE2 <- matrix(0, ng, ng)
  for (i in seq_len(ng)) {
    PhiP <- Phi %*% P[[i]]
    for (j in i:ng) {
      IE2[i, j] <- IE2[j, i] <- terms$K[i, j] - 2 * sum(Phi * Q(i, j)) + sum(PhiP * t(Phi %*% P[[j]]))
    }
  }
  ev <- eigen(IE2, symmetric = TRUE, only.values = TRUE)$values
  W <- if (min(abs(ev)) > 1e-10) 2 * solve(IE2) else 2 * pseudo_inverse(IE2)
  W <- (W + t(W)) / 2
  U <- matrix(0, nrow(Phi), ncol(Phi))
  for (i in seq_len(ng)) for (j in seq_len(ng)) {
    U <- U + W[i, j] * (Q(i, j) - P[[i]] %*% Phi %*% P[[j]])
  }
  U <- (U + t(U)) / 2
  PhiA <- Phi + 2 * Phi %*% U %*% Phi
  dimnames(PhiA) <- dimnames(vcov(fit))
  list(vcov = vcov(fit), vcov_adjusted = PhiA, P = P, W = W)
}

pseudo_inverse <- function(A, tol = sqrt(.Machine$double.eps)) {
  s <- svd(A)
  pos <- s$d > max(tol * s$d[1L], 0)
  s$v[, pos, drop = FALSE] %*% (t(s$u[, pos, drop = FALSE]) / s$d[pos])
}

# Kenward-Roger's scaling and denominator df for the hypothesis L beta = 0
# (L with q rows of full rank).
kenward_roger_adjust <- function(basis, L) {
  L <- matrix(L, ncol = ncol(basis$vcov))
  V0 <- unname(basis$vcov)
  Theta <- t(L) %*% solve(L %*% V0 %*% t(L), L)
  TV <- Theta %*% V0
  ng <- length(basis$P)
  u <- lapply(basis$P, function(P) TV %*% P %*% V0)
  A1 <- 0
  A2 <- 0
  for (i in seq_len(ng)) for (j in seq_len(ng)) {
    A1 <- A1 + basis$W[i, j] * sum(diag(u[[i]])) * sum(diag(u[[j]]))
    A2 <- A2 + basis$W[i, j] * sum(u[[i]] * t(u[[j]]))
  }
  q <- qr(L)$rank
  B <- (A1 + 6 * A2) / (2 * q)
  g <- ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
  den <- 3 * q + 2 * (1 - g)
  c1 <- g / den
  c2 <- (q - g) / den
  c3 <- (q + 2 - g) / den
  V0s <- 1 + c1 * B
  if (abs(V0s) < 1e-10) V0s <- 0
  V1 <- 1 - c2 * B
  V2 <- 1 - c3 * B
  rho <- (if (V1 == 0) 0 else ((1 - A2 / q) / V1)^2) * V0s / (V2 * q)
  df <- 4 + (q + 2) / (q * rho - 1)
  scaling <- if (abs(df - 4) < 1e-2) 1 else df * (1 - A2 / q) / (df - 2)
  list(df = df, scaling = scaling, q = q)
}

# t test of one linear combination with the adjusted covariance.
kenward_roger_1d <- function(basis, L) {
  L <- as.vector(L)
  list(var = sum(L * (basis$vcov_adjusted %*% L)), df = kenward_roger_adjust(basis, L)$df)
}

# F test of the rows of L (the unscaled Wald F times Kenward-Roger's scaling).
kenward_roger_md <- function(basis, L, beta) {
  adj <- kenward_roger_adjust(basis, L)
  Lb <- drop(L %*% beta)
  wald <- sum(Lb * solve(L %*% basis$vcov_adjusted %*% t(L), Lb))
  list(F_unscaled = wald / adj$q, F = wald / adj$q * adj$scaling, ndf = adj$q, ddf = adj$df)
}
