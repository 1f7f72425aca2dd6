# A standing guard (issue 12): every method on a grid of fits (lmm, glmm,
# with a residual structure; nested and crossed; weights, offsets, missing
# values with na.omit and na.exclude), each result checked against its
# definition or against another method: lengths and names follow the data,
# fitted + residuals = response, X beta + Z b + offset = the linear
# predictor, predict(newdata = the model's data) = fitted, simulate(newdata)
# has a row per row of newdata, AIC/BIC/df.residual follow from logLik, and
# so on. The fits themselves are compared with lme4 and nlme elsewhere; here
# one comparison per fit keeps the grid honest. expect_consistent() is in
# helper-consistency.R (the second fuzz generator uses it too).

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
