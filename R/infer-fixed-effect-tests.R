# t and F tests of the fixed effects with a choice of denominator degrees
# of freedom: Satterthwaite's (default, as lmerTest), Kenward-Roger's (as
# pbkrtest) or none (Wald z and chi-square tests, as for large samples).

match_ddf <- function(ddf) {
  if (is.null(ddf)) return("Satterthwaite")
  if (!is.character(ddf) || length(ddf) < 1L) {
    mlm_abort("{.arg ddf} must be one of {.val Satterthwaite}, {.val Kenward-Roger} or {.val none}.",
              "mlmfit_error_argument")
  }
  key <- tolower(gsub("[^A-Za-z]", "", ddf[[1L]]))
  switch(key,
         satterthwaite = , satt = , s = "Satterthwaite",
         kenwardroger = , kr = , kenward = "Kenward-Roger",
         none = , wald = , asymptotic = , lmefour = , z = "none",
         mlm_abort(c("Unknown {.arg ddf}: {.val {ddf[[1L]]}}.",
                     i = "Use {.val Satterthwaite}, {.val Kenward-Roger} or {.val none}."),
                   "mlmfit_error_argument"))
}

ddf_label <- function(ddf) {
  switch(ddf, Satterthwaite = "Satterthwaite's method", `Kenward-Roger` = "Kenward-Roger's method",
         none = "Wald tests with normal reference")
}

# The basis of the chosen method, computed once per request.
ddf_basis <- function(fit, ddf) {
  switch(ddf, Satterthwaite = satterthwaite_basis(fit), `Kenward-Roger` = kenward_roger_basis(fit),
         none = list(vcov = vcov(fit)))
}

# Estimate, standard error and df of each row of L (df Inf for "none").
linear_combination_tests <- function(fit, L, ddf, basis = ddf_basis(fit, ddf)) {
  beta <- fixef(fit)
  L <- matrix(L, ncol = length(beta))
  est <- drop(L %*% beta)
  res <- lapply(seq_len(nrow(L)), function(i) {
    switch(ddf, Satterthwaite = satterthwaite_1d(basis, L[i, ]), `Kenward-Roger` = kenward_roger_1d(basis, L[i, ]),
           none = list(var = sum(L[i, ] * (basis$vcov %*% L[i, ])), df = Inf))
  })
  data.frame(estimate = est, std.error = sqrt(vapply(res, `[[`, numeric(1), "var")),
             df = vapply(res, `[[`, numeric(1), "df"))
}

# The fixed-effects table of summary(): lmerTest's columns.
fixed_effects_table <- function(fit, ddf) {
  beta <- fixef(fit)
  p <- length(beta)
  if (ddf == "none") {
    se <- sqrt(diag(vcov(fit)))
    z <- beta / se
    return(cbind(Estimate = beta, `Std. Error` = se, `z value` = z, `Pr(>|z|)` = 2 * stats::pnorm(-abs(z))))
  }
  tab <- linear_combination_tests(fit, diag(p), ddf)
  tval <- beta / tab$std.error
  out <- cbind(Estimate = beta, `Std. Error` = tab$std.error, df = tab$df, `t value` = tval,
               `Pr(>|t|)` = 2 * stats::pt(abs(tval), tab$df, lower.tail = FALSE))
  rownames(out) <- names(beta)
  out
}

# F test of the hypothesis L beta = 0 (L of full row rank after removing
# redundant rows): lmerTest's columns.
f_test <- function(fit, L, ddf, basis) {
  sigma <- fit_sigma(fit)
  beta <- fixef(fit)
  V <- vcov(fit)
  if (ddf == "Kenward-Roger") {
    # an orthonormal basis of the hypotheses (the test does not depend on it)
    VL <- L %*% V %*% t(L)
    eig <- eigen(VL, symmetric = TRUE)
    pos <- eig$values > max(sqrt(.Machine$double.eps) * eig$values[1L], 0)
    L <- crossprod(eig$vectors[, pos, drop = FALSE], L)
    r <- kenward_roger_md(basis, L, beta)
    ms <- r$F_unscaled * sigma^2
    return(c(`Sum Sq` = ms * r$ndf, `Mean Sq` = ms, NumDF = r$ndf, DenDF = r$ddf, `F value` = r$F,
             `Pr(>F)` = stats::pf(r$F, r$ndf, r$ddf, lower.tail = FALSE)))
  }
  if (ddf == "Satterthwaite") {
    r <- satterthwaite_md(basis, L, beta)
  } else {
    VL <- L %*% V %*% t(L)
    eig <- eigen(VL, symmetric = TRUE)
    pos <- eig$values > max(sqrt(.Machine$double.eps) * eig$values[1L], 0)
    PL <- crossprod(eig$vectors[, pos, drop = FALSE], L)
    r <- list(F = sum(drop(PL %*% beta)^2 / eig$values[pos]) / sum(pos), ndf = sum(pos), ddf = Inf)
  }
  ms <- r$F * sigma^2
  c(`Sum Sq` = ms * r$ndf, `Mean Sq` = ms, NumDF = r$ndf, DenDF = r$ddf, `F value` = r$F,
    `Pr(>F)` = stats::pf(r$F, r$ndf, r$ddf, lower.tail = FALSE))
}
