# Conditional variances of the random effects of lmm() fits: computed when
# a method first asks for them (a fit does not need them), from the fit's
# cross-products, and kept with the fit.

penicillin_fit <- function(REML = TRUE, control = lmm_control()) {
  data("Penicillin", package = "lme4", envir = environment())
  lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, REML = REML, control = control)
}

test_that("a crossed fit's conditional variances are sigma^2 Lambda (Lambda'Z'Z Lambda + I)^-1 Lambda', computed on demand", {
  skip_if_not_installed("lme4")
  fit <- penicillin_fit()
  expect_null(fit$cache$cond_var)
  data("Penicillin", package = "lme4", envir = environment())
  Z <- cbind(stats::model.matrix(~ 0 + plate, Penicillin), stats::model.matrix(~ 0 + sample, Penicillin))
  th <- unname(fit_theta(fit))
  Lambda <- diag(rep(th, c(nlevels(Penicillin$plate), nlevels(Penicillin$sample))))
  V <- fit_sigma(fit)^2 * Lambda %*% solve(Lambda %*% crossprod(Z) %*% Lambda + diag(ncol(Z))) %*% Lambda
  re <- ranef(fit)
  expect_equal(as.vector(attr(re$plate, "postVar")), diag(V)[seq_len(24)], tolerance = 1e-10)
  expect_equal(as.vector(attr(re$sample, "postVar")), diag(V)[24 + seq_len(6)], tolerance = 1e-10)
  # kept: every copy of the fit reads the same arrays
  copy <- fit
  expect_identical(fit_cond_var(copy), fit$cache$cond_var)
  expect_identical(attr(ranef(copy)$sample, "postVar"), attr(re$sample, "postVar"))
})

test_that("a structured fit's conditional variances are those of the structure at its estimates", {
  fit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  ev <- engine_evaluate_structured(fit_spec(fit), fit_theta(fit), fit_psi(fit), fit_reml(fit), cond_var = TRUE)
  expect_equal(unname(fit_cond_var(fit)), ev$cond_var, tolerance = 1e-10)
  expect_equal(as.vector(attr(ranef(fit)$Subject, "postVar")), as.vector(ev$cond_var[[1]]), tolerance = 1e-10)
})

test_that("lmm_control(cond_var = FALSE) gives ranef() without conditional variances", {
  fit <- penicillin_fit(control = lmm_control(cond_var = FALSE))
  re <- ranef(fit)
  expect_null(attr(re$plate, "postVar"))
  expect_true(all(is.na(as.data.frame(re)$condsd)))
  expect_false(is.null(attr(ranef(penicillin_fit())$plate, "postVar")))
})

test_that("a crossed fit's estimates are those of a new evaluation at its theta", {
  # The descent ends where it took a gradient; the fit keeps the estimates
  # of that point instead of factoring again: they must be the same.
  # (InstEval: evaluations too costly for the polish, so the fit ends at
  # the descent's last gradient.)
  skip_if_not_installed("lme4")
  fits <- list(penicillin_fit(TRUE), penicillin_fit(FALSE),
               lmm(y ~ service + (1 | s) + (1 | d) + (1 | dept:service), lme4::InstEval))
  for (fit in fits) {
    REML <- fit_reml(fit)
    ev <- engine_evaluate_lmm(fit_spec(fit), fit_xp(fit), fit_theta(fit), REML)
    expect_equal(deviance(fit), ev$deviance, tolerance = 1e-12)
    expect_equal(unname(fit_beta(fit)), as.vector(ev$beta), tolerance = 1e-12)
    expect_equal(fit_sigma(fit), ev$sigma, tolerance = 1e-12)
    expect_equal(unname(fit_vcov(fit)), ev$vcov, tolerance = 1e-12)
    expect_equal(lapply(fit_b(fit), unname), stats::setNames(ev$b, names(fit_b(fit))), tolerance = 1e-12)
    expect_equal(fit_fitted(fit), as.vector(ev$fitted), tolerance = 1e-12)
  }
})

test_that("a database fit computes its conditional variances from its cross-products, as the in-memory fit", {
  d <- db_pupils(seed = 5, n = 800)
  tb <- local_db_tbl(d, "pupils", "SQLite")
  fits <- fit_mem_db(lmm(y ~ x + (1 + z | school) + (1 | hood), data = DATA), d, tb)
  expect_null(fit_spec(fits$db)$rows)
  for (g in c("school", "hood")) {
    a <- attr(ranef(fits$mem)[[g]], "postVar")
    b <- attr(ranef(fits$db)[[g]], "postVar")
    expect_false(is.null(b))
    expect_equal(dim(b), dim(a))
    expect_equal(b, a, tolerance = 1e-6)
  }
})
