# A standing guard (issue 12): every method on a grid of fits (lmm, glmm,
# with a residual structure; nested and crossed; weights, offsets, missing
# values with na.omit and na.exclude), each result checked against its
# definition or against another method: lengths and names follow the data,
# fitted + residuals = response, X beta + Z b + offset = the linear
# predictor, predict(newdata = the model's data) = fitted, simulate(newdata)
# has a row per row of newdata, AIC/BIC/df.residual follow from logLik, and
# so on. The fits themselves are compared with lme4 and nlme elsewhere; here
# one comparison per fit keeps the grid honest.

grid_cache <- new.env()
consistency_grid <- function() {
  if (is.null(grid_cache$grid)) grid_cache$grid <- make_consistency_grid()
  grid_cache$grid
}

make_consistency_grid <- function() {
  sleep <- lme4_data("sleepstudy")
  sleep_na <- sleep
  sleep_na$Reaction[seq(3, 180, by = 11)] <- NA
  sleep_na$Days[c(7, 100)] <- NA
  sleep_na$w <- rep(c(1, 2, 0.5), 60)
  rownames(sleep_na) <- paste0("r", seq_len(nrow(sleep_na)))
  cbpp_na <- lme4::cbpp
  cbpp_na$incidence[c(3, 20, 41)] <- NA
  ortho <- as.data.frame(nlme::Orthodont)
  ortho_na <- ortho
  ortho_na$distance[c(2, 50, 51)] <- NA
  pois <- poisson_offset_data()
  ar1 <- nlme::corAR1(form = ~ 1 | Subject)
  list(
    nested_slopes = list(
      fit = lmm(Reaction ~ Days + (Days | Subject), sleep), data = sleep,
      ref = function() lme4::lmer(Reaction ~ Days + (Days | Subject), sleep)),
    weights_na_exclude_ml = list(
      fit = lmm(Reaction ~ Days + (Days | Subject), sleep_na, REML = FALSE, weights = w, na.action = na.exclude),
      data = sleep_na,
      ref = function() lme4::lmer(Reaction ~ Days + (Days | Subject), sleep_na, REML = FALSE, weights = w,
                                  na.action = na.exclude)),
    na_omit_offset = list(
      fit = lmm(Reaction ~ Days + offset(2 * Days) + (1 | Subject), sleep_na), data = sleep_na,
      ref = function() lme4::lmer(Reaction ~ Days + offset(2 * Days) + (1 | Subject), sleep_na)),
    crossed = list(
      fit = lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4_data("Penicillin")), data = lme4_data("Penicillin"),
      ref = function() lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), lme4_data("Penicillin"))),
    nested_factors = list(
      fit = lmm(strength ~ 1 + (1 | batch / cask), lme4_data("Pastes")), data = lme4_data("Pastes"),
      ref = function() lme4::lmer(strength ~ 1 + (1 | batch / cask), lme4_data("Pastes"))),
    binomial = list(
      fit = test_fit("cbpp")$mlm, data = lme4::cbpp, ref = function() test_fit("cbpp")$lme4),
    binomial_na_exclude = list(
      fit = glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp_na, binomial, na.action = na.exclude),
      data = cbpp_na,
      ref = function() lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp_na, binomial,
                                   na.action = na.exclude)),
    poisson_offset = list(
      fit = test_fit("poisson")$mlm, data = pois, ref = function() test_fit("poisson")$lme4),
    structured = list(
      fit = lmm(distance ~ age + (1 | Subject), ortho, correlation = ar1), data = ortho,
      ref = function() nlme::lme(distance ~ age, ortho, random = ~ 1 | Subject, correlation = ar1)),
    structured_na_exclude = list(
      fit = lmm(distance ~ age + (1 | Subject), ortho_na, correlation = ar1, variance = nlme::varIdent(form = ~ 1 | Sex),
                na.action = na.exclude),
      data = ortho_na,
      ref = function() nlme::lme(distance ~ age, ortho_na, random = ~ 1 | Subject, correlation = ar1,
                                 weights = nlme::varIdent(form = ~ 1 | Sex), na.action = na.exclude))
  )
}

# The response as fitted() is on: a proportion for a binomial matrix.
response_of <- function(frame) {
  y <- stats::model.response(frame)
  if (is.matrix(y)) y[, 1] / rowSums(y) else as.vector(y)
}

# The conditional modes in the order of the columns of Z (lme4's b).
modes_in_z_order <- function(fit) {
  if (!inherits(fit, "mlmfit_lmm_structured")) return(as.vector(lme4::getME(fit, "b")))
  re <- ranef(fit, condVar = FALSE)
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
  pad <- function(v) {
    out <- stats::setNames(rep(NA_real_, length(rows)), rows)
    out[used] <- v
    out
  }

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
  expect_identical(dim(Z), c(n, length(modes_in_z_order(fit))), info = info("Z"))
  off <- stats::model.offset(frame)
  if (is.null(off)) off <- 0
  eta_fixed <- drop(X %*% fixef(fit)) + off
  eta <- eta_fixed + drop(as.matrix(Z %*% modes_in_z_order(fit)))
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

test_that("every method agrees with the others and with its definition, on a grid of fits", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("broom.mixed")
  grid <- consistency_grid()
  for (nm in names(grid)) {
    cs <- grid[[nm]]
    expect_consistent(cs$fit, cs$data, nm)
  }
})

test_that("each fit of the grid is lme4's or nlme's fit", {
  skip_if_not_installed("lme4")
  grid <- consistency_grid()
  for (nm in names(grid)) {
    cs <- grid[[nm]]
    # lme4 may warn about its own convergence (max|grad| just over its tolerance);
    # the contract allows mlmfit a lower deviance
    ref <- suppressWarnings(cs$ref())
    if (inherits(ref, "lme")) {
      expect_gt(as.numeric(logLik(cs$fit)) - as.numeric(logLik(ref)), -1e-3, label = nm)
      expect_close(fitted(cs$fit), fitted(ref), rel = 1e-3, info = nm)
    } else if (inherits(ref, "glmerMod")) {
      expect_glmer_agreement(cs$fit, ref)
      fit <- glmm_at_lme4_estimates(cs$fit, ref)
      expect_close(residuals(fit, type = "pearson"), residuals(ref, type = "pearson"), rel = 1e-6, info = nm)
    } else {
      expect_lme4_agreement(cs$fit, ref)
      fit <- at_lme4_estimates(cs$fit, ref)
      expect_close(residuals(fit, type = "pearson"), residuals(ref, type = "pearson"), rel = 1e-6, info = nm)
      expect_close(hatvalues(fit), hatvalues(ref), rel = 1e-5, info = nm)
    }
  }
})
