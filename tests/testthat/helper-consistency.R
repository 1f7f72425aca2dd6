# expect_consistent(fit, data, label): every method of a fit checked against
# its definition and against the other methods (test-consistency.R runs it
# on a grid of fits, test-fuzz-designs.R on random designs). `data` is the
# data the fit was given.

# The response as fitted() is on: a proportion for a binomial matrix.
response_of <- function(frame) {
  y <- stats::model.response(frame)
  if (is.matrix(y)) y[, 1] / rowSums(y) else as.vector(y)
}

# The conditional modes in the order of the columns of Z (lme4's b). A fit
# with a residual structure has no getME(): its modes are put in that order
# from ranef(), which is possible when each grouping factor has one term
# (NULL otherwise).
modes_in_z_order <- function(fit) {
  if (!inherits(fit, "mlmfit_lmm_structured")) return(as.vector(lme4::getME(fit, "b")))
  re <- ranef(fit, condVar = FALSE)
  if (length(model.matrix(fit, type = "randomListRaw")) != length(re)) return(NULL)
  unlist(lapply(re, function(r) as.vector(t(as.matrix(r)))), use.names = FALSE)
}

expect_consistent <- function(fit, data, label) {
  info <- function(what) paste(label, what)
  frame <- model.frame(fit)
  used <- rownames(frame)
  exclude <- inherits(attr(frame, "na.action"), "exclude")
  rows <- if (exclude) rownames(data) else used
  structured <- inherits(fit, "mlmfit_lmm_structured")
  glmm_fit <- inherits(fit, "mlmfit_glmm")
  n <- nobs(fit)
  expect_identical(n, length(used), info = info("nobs"))

  # per-observation methods: one value per row, named as the rows, NA where dropped
  per_obs <- list(fitted = fitted(fit), response = residuals(fit, type = "response"),
                  pearson = residuals(fit, type = "pearson"), predict = predict(fit),
                  population = predict(fit, re.form = NA), simulate = simulate(fit, nsim = 1, seed = 1)[[1]])
  if (!structured && !glmm_fit) per_obs <- c(per_obs, list(hat = hatvalues(fit), cooks = cooks.distance(fit)))
  for (nm in names(per_obs)) {
    v <- per_obs[[nm]]
    # a binomial response given as cbind(successes, failures) is simulated as such (as lme4)
    if (is.matrix(v)) {
      expect_identical(ncol(v), 2L, info = info(nm))
      v <- v[, 1]
    }
    expect_identical(length(v), length(rows), info = info(nm))
    if (nm != "simulate") expect_identical(names(v), rows, info = info(nm))
    expect_identical(!is.na(unname(v)), rows %in% used, info = info(paste(nm, "missing rows")))
  }
  expect_identical(rownames(simulate(fit, nsim = 2, seed = 1)), rows, info = info("simulate rownames"))

  # fitted + residuals = response
  y <- response_of(frame)
  expect_equal(unname(fitted(fit)[used] + residuals(fit, type = "response")[used]), unname(y),
               tolerance = 1e-10, info = info("fitted + residuals"))

  # the linear predictor: X beta + Z b + offset; without the modes for re.form = NA
  X <- model.matrix(fit, type = "fixed")
  Z <- model.matrix(fit, type = "random")
  expect_identical(nrow(X), n, info = info("X rows"))
  expect_identical(nrow(Z), n, info = info("Z rows"))
  expect_identical(ncol(Z), sum(vapply(ranef(fit, condVar = FALSE), function(r) nrow(r) * ncol(r), 1L)), info = info("Z columns"))
  off <- stats::model.offset(frame)
  if (is.null(off)) off <- 0
  eta_fixed <- drop(X %*% fixef(fit)) + off
  modes <- modes_in_z_order(fit)
  eta <- if (is.null(modes)) predict(fit)[used] else eta_fixed + drop(as.matrix(Z %*% modes))
  expect_equal(unname(predict(fit)[used]), unname(eta), tolerance = 1e-8, info = info("X beta + Z b"))
  expect_equal(unname(predict(fit, re.form = NA)[used]), unname(eta_fixed), tolerance = 1e-8,
               info = info("X beta"))
  mu <- if (glmm_fit) family(fit)$linkinv(eta) else eta
  expect_equal(unname(fitted(fit)[used]), unname(mu), tolerance = 1e-8, info = info("fitted = inverse link"))
  expect_equal(predict(fit, type = "response"), fitted(fit), tolerance = 1e-10, info = info("predict response"))

  # the model's own rows as new data give the fitted values, in their order
  nd <- data[used, , drop = FALSE]
  expect_equal(unname(predict(fit, nd, type = "response")), unname(fitted(fit)[used]), tolerance = 1e-8,
               info = info("predict(newdata)"))
  pick <- nd[c(5, 1, 2), , drop = FALSE]
  expect_equal(unname(predict(fit, pick, re.form = NA)), unname(eta_fixed[c(5, 1, 2)]), tolerance = 1e-8,
               info = info("predict(newdata, re.form = NA)"))
  s <- simulate(fit, nsim = 3, seed = 2, newdata = pick)
  expect_identical(dim(s), c(3L, 3L), info = info("simulate(newdata)"))
  expect_identical(simulate(fit, nsim = 3, seed = 2, newdata = pick), s, info = info("simulate seed"))

  # estimates and their summaries
  b <- fixef(fit)
  V <- as.matrix(vcov(fit))
  expect_identical(dimnames(V), list(names(b), names(b)), info = info("vcov names"))
  expect_equal(V, t(V), info = info("vcov symmetric"))
  ct <- stats::coef(summary(fit))
  expect_equal(unname(ct[, 1]), unname(b), info = info("summary estimates"))
  expect_equal(unname(ct[, 2]), sqrt(unname(diag(V))), info = info("summary SEs"))
  ci <- confint(fit, parm = "beta_", method = "Wald")
  expect_equal(unname(ci[, 2]), unname(b + stats::qnorm(0.975) * sqrt(diag(V))), info = info("Wald"))
  tb <- tidy(fit, effects = "fixed")
  expect_equal(tb$estimate, unname(b), info = info("tidy"))
  expect_equal(tb$std.error, sqrt(unname(diag(V))), info = info("tidy SEs"))

  ll <- logLik(fit)
  k <- attr(ll, "df")
  expect_equal(AIC(fit), -2 * as.numeric(ll) + 2 * k, info = info("AIC"))
  expect_equal(BIC(fit), -2 * as.numeric(ll) + log(n) * k, info = info("BIC"))
  expect_identical(as.numeric(df.residual(fit)), as.numeric(n - k), info = info("df.residual"))
  expect_identical(attr(ll, "nobs"), n, info = info("logLik nobs"))
  if (!glmm_fit && !fit$REML) expect_equal(deviance(fit), -2 * as.numeric(ll), info = info("ML deviance"))
  gl <- glance(fit)
  expect_identical(gl$nobs, n, info = info("glance nobs"))
  expect_equal(gl$logLik, as.numeric(ll), info = info("glance logLik"))

  # random effects: a row per level; coef = fixef + ranef in shared columns
  re <- ranef(fit, condVar = FALSE)
  expect_equal(vapply(re, nrow, 1L), ngrps(fit)[names(re)], info = info("ngrps"))
  cf <- coef(fit)
  for (g in names(re)) {
    shared <- intersect(colnames(re[[g]]), names(b))
    for (col in shared) {
      expect_equal(cf[[g]][[col]], unname(b[[col]]) + re[[g]][[col]], info = info(paste("coef", g, col)))
    }
  }

  # augment: the rows of the fit, without gaps
  a <- augment(fit)
  expect_identical(nrow(a), n, info = info("augment rows"))
  expect_equal(unname(a$.fitted), unname(predict(fit)[used]), tolerance = 1e-10, info = info("augment .fitted"))
  expect_equal(unname(a$.resid), unname(residuals(fit)[used]), tolerance = 1e-10, info = info("augment .resid"))
}
