# na.action = na.exclude: every per-observation method gives one value per
# row of the data, NA in the rows dropped for missing values (as lme4's and
# lm's methods); augment() gives the rows of the fit. One mechanism:
# observation_vector().

drop_na <- function(x) unname(x[!is.na(x)])

sleep_with_missing <- function() {
  d <- lme4_data("sleepstudy")
  d$Reaction[seq(1, 180, by = 7)] <- NA
  d$Days[c(5, 90)] <- NA
  d
}

test_that("lmm(): fitted, residuals, predict, hatvalues, cooks.distance and simulate are padded as lme4's, weights are not", {
  skip_if_not_installed("lme4")
  d <- sleep_with_missing()
  d$w <- rep(c(1, 2, 0.5), 60)
  fit <- lmm(Reaction ~ Days + (Days | Subject), d, weights = w, na.action = na.exclude)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, weights = w, na.action = na.exclude)
  fit <- at_lme4_estimates(fit, ref)
  missing_rows <- which(is.na(d$Reaction) | is.na(d$Days))
  each <- list(
    fitted = function(f) fitted(f),
    response = function(f) residuals(f),
    pearson = function(f) residuals(f, type = "pearson"),
    scaled = function(f) residuals(f, scaled = TRUE),
    predict = function(f) predict(f),
    population = function(f) predict(f, re.form = NA),
    hat = function(f) hatvalues(f),
    cooks = function(f) cooks.distance(f))
  for (nm in names(each)) {
    a <- each[[nm]](fit)
    b <- each[[nm]](ref)
    expect_identical(length(a), nrow(d), info = nm)
    expect_identical(names(a), names(b), info = nm)
    expect_identical(unname(which(is.na(a))), missing_rows, info = nm)
    expect_close(a, b, rel = 1e-5, abs = 1e-8, info = nm)
  }
  s <- simulate(fit, nsim = 2, seed = 3)
  expect_identical(dim(s), c(nrow(d), 2L))
  expect_identical(rownames(s), rownames(simulate(ref, nsim = 2, seed = 3)))
  expect_identical(unname(which(is.na(s$sim_1))), missing_rows)
  # weights as lme4 gives them: the rows of the fit, not padded (tools
  # such as ggeffects rely on it)
  expect_equal(weights(fit), weights(ref))
  # fitted + residuals = response in every row
  expect_equal(unname(fitted(fit) + residuals(fit)), d$Reaction + 0 * d$Days)
  # augment: the rows of the fit, leverages and distances without gaps
  a <- augment(fit)
  expect_identical(nrow(a), nobs(fit))
  expect_equal(a$.hat, drop_na(hatvalues(fit)))
  expect_equal(a$.cooksd, drop_na(cooks.distance(fit)))
  expect_equal(a$.fixed, drop_na(predict(fit, re.form = NA)))
  # a fit with na.omit pads on request, as lme4's predict(na.action = na.exclude)
  fit_omit <- lmm(Reaction ~ Days + (Days | Subject), d, weights = w)
  ref_omit <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, weights = w)
  expect_identical(length(predict(fit_omit)), nobs(fit_omit))
  expect_identical(names(predict(fit_omit, na.action = na.exclude)), names(predict(ref_omit, na.action = na.exclude)))
  # simulate() the same (lme4's bootMer() asks for na.exclude)
  s_omit <- simulate(fit_omit, nsim = 2, seed = 1, na.action = na.exclude)
  expect_identical(rownames(s_omit), rownames(simulate(ref_omit, nsim = 2, seed = 1, na.action = na.exclude)))
  expect_identical(unname(which(is.na(s_omit$sim_1))), missing_rows)
  expect_identical(nrow(simulate(fit, nsim = 1, seed = 1, na.action = na.omit)), nobs(fit))
  # rows of newdata with a missing predictor (row 5; row 1 lacks only the
  # response, which a simulation does not need): NA draws, dropped or padded
  nd <- d[c(1, 2, 5, 7), ]
  expect_identical(unname(is.na(simulate(fit, seed = 1, newdata = nd)$sim_1)), c(FALSE, FALSE, TRUE, FALSE))
  expect_identical(rownames(simulate(fit, seed = 1, newdata = nd, na.action = na.omit)), c("1", "2", "7"))
  s_nd <- simulate(fit, seed = 1, newdata = nd, na.action = na.exclude)
  expect_identical(rownames(s_nd), rownames(nd))
  expect_identical(is.na(s_nd$sim_1), c(FALSE, FALSE, TRUE, FALSE))
})

test_that("glmm(): the same padding as glmer's", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  cbpp$incidence[c(3, 20)] <- NA
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  ref <- lme4::glmer(f, cbpp, binomial, na.action = na.exclude)
  fit <- glmm_at_lme4_estimates(glmm(f, cbpp, binomial, na.action = na.exclude), ref)
  for (type in c("deviance", "pearson", "response")) {
    expect_close(residuals(fit, type = type), residuals(ref, type = type), rel = 1e-6, abs = 1e-9, info = type)
  }
  expect_close(fitted(fit), fitted(ref), rel = 1e-6)
  expect_close(predict(fit, type = "response"), predict(ref, type = "response"), rel = 1e-6)
  expect_close(predict(fit, re.form = NA), predict(ref, re.form = NA), rel = 1e-6)
  expect_identical(names(predict(fit)), names(predict(ref)))
  s <- simulate(fit, nsim = 2, seed = 1)
  expect_identical(nrow(s), nrow(cbpp))
  expect_true(all(is.na(s$sim_1[c(3, 20), ])))
  expect_equal(weights(fit), weights(ref))
  # (glmer keeps the working weights of its last PIRLS step, a step behind its modes)
  expect_equal(weights(fit, type = "working"), weights(ref, type = "working"), tolerance = 1e-3)
  a <- augment(fit)
  expect_identical(nrow(a), nobs(fit))
  expect_equal(a$.resid, drop_na(residuals(fit)))
})

test_that("a fit with a residual structure pads as nlme's lme()", {
  ortho <- as.data.frame(nlme::Orthodont)
  ortho$distance[c(2, 50)] <- NA
  fit <- lmm(distance ~ age + (1 | Subject), ortho, correlation = nlme::corAR1(form = ~ 1 | Subject),
             na.action = na.exclude)
  ref <- nlme::lme(distance ~ age, ortho, random = ~ 1 | Subject, correlation = nlme::corAR1(form = ~ 1 | Subject),
                   na.action = na.exclude)
  expect_identical(length(residuals(fit)), nrow(ortho))
  expect_close(fitted(fit), fitted(ref), rel = 1e-4)
  # normalized residuals by hand from nlme's Pearson residuals and Phi:
  # within each subject, the inverse Cholesky factor of the AR(1)
  # correlation. (nlme 3.1-160's own normalized residuals are out of line
  # after a subject with fewer rows: it decorrelates the first residual of
  # the next subject too.)
  phi <- coef(ref$modelStruct$corStruct, unconstrained = FALSE)
  rp <- residuals(ref, type = "pearson")
  by_hand <- rp
  for (s in unique(ortho$Subject)) {
    k <- which(ortho$Subject == s & !is.na(rp))
    C <- phi^abs(outer(seq_along(k), seq_along(k), "-"))
    by_hand[k] <- forwardsolve(t(chol(C)), rp[k])
  }
  r <- residuals(fit, type = "normalized")
  expect_identical(unname(which(is.na(r))), c(2L, 50L))
  expect_close(r, by_hand, rel = 1e-3, abs = 1e-4)
  expect_identical(unname(which(is.na(simulate(fit, seed = 1)$sim_1))), c(2L, 50L))
  expect_error(hatvalues(fit), class = "mlmfit_error_residual_structure")
  expect_error(cooks.distance(fit), class = "mlmfit_error_residual_structure")
  expect_identical(nrow(augment(fit)), nobs(fit))
})
