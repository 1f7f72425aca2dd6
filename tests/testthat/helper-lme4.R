# The accuracy contract with lme4 (DESIGN.md), as one expectation.
#
# deviance: within 1e-4 or lower; fixed effects: relative 1e-4 (absolute
# 1e-6 near zero); their standard errors: relative 1e-3; SDs relative 1e-3
# (absolute 1e-3 near zero), correlations absolute 1e-3; conditional modes
# relative 1e-3 (of the largest mode of their factor).
expect_lme4_agreement <- function(fit, ref, se_tol = 1e-3, vc_tol = 1e-3, re_tol = 1e-3) {
  reml <- fit$REML
  dev_ref <- if (reml) lme4::REMLcrit(ref) else stats::deviance(ref)
  # Without fixed effects the REML and ML criteria coincide, and lme4 (1.1-31)
  # adds an uninitialised log-determinant to its REML criterion: use its ML one.
  if (reml && length(lme4::fixef(ref)) == 0L) dev_ref <- lme4::getME(ref, "devcomp")$cmp[["dev"]]
  testthat::expect_lt(deviance(fit) - dev_ref, 1e-4)

  fe <- fixef(fit)
  fr <- lme4::fixef(ref)
  testthat::expect_identical(names(fe), names(fr))
  testthat::expect_true(all(abs(fe - fr) <= pmax(1e-4 * abs(fr), 1e-6)),
                        info = paste("fixed effects differ:", paste(signif(fe - fr, 3), collapse = " ")))

  se <- sqrt(diag(vcov(fit)))
  sr <- sqrt(diag(as.matrix(stats::vcov(ref))))
  testthat::expect_true(all(abs(se / sr - 1) <= se_tol),
                        info = paste("standard errors differ:", paste(signif(se / sr - 1, 3), collapse = " ")))

  expect_components_agree(fit, ref, vc_tol, re_tol)
  invisible(TRUE)
}

# Fit the same model with both packages.
fit_both <- function(formula, data, REML = TRUE, ...) {
  list(mlm = lmm(formula, data, REML = REML, ...),
       lme4 = lme4::lmer(formula, data, REML = REML, ...))
}

# Variance components (SDs relative vc_tol, absolute 1e-3 near zero;
# correlations absolute 1e-3) and conditional modes (re_tol of the largest
# mode of their factor) of a fit against an lme4 fit: the part of the
# accuracy contracts shared by lmm() and glmm().
expect_components_agree <- function(fit, ref, vc_tol, re_tol) {
  v1 <- as.data.frame(VarCorr(fit))
  v2 <- as.data.frame(lme4::VarCorr(ref))
  testthat::expect_identical(v1$grp, v2$grp)
  testthat::expect_identical(v1$var1, v2$var1)
  testthat::expect_identical(v1$var2, v2$var2)
  is_sd <- is.na(v2$var2)
  ok_sd <- abs(v1$sdcor - v2$sdcor)[is_sd] <= pmax(vc_tol * abs(v2$sdcor[is_sd]), 1e-3)
  ok_cor <- abs(v1$sdcor - v2$sdcor)[!is_sd] <= 1e-3 | (is.nan(v2$sdcor[!is_sd]))
  testthat::expect_true(all(ok_sd) && all(ok_cor),
                        info = paste("variance components differ:", paste(signif(v1$sdcor - v2$sdcor, 3), collapse = " ")))

  r1 <- ranef(fit, condVar = FALSE)
  r2 <- lme4::ranef(ref, condVar = FALSE)
  testthat::expect_setequal(names(r1), names(r2))
  for (nm in names(r2)) {
    a <- as.matrix(r1[[nm]])
    b <- as.matrix(r2[[nm]])
    testthat::expect_identical(dimnames(a), dimnames(b))
    scale <- max(abs(b), 1e-8)
    testthat::expect_true(max(abs(a - b)) <= re_tol * scale, info = paste("conditional modes differ for", nm))
  }
  invisible(TRUE)
}
