# The tools of the "Works with" table on the other kinds of fit: fits whose
# data had rows left out by na.exclude (against lme4's na.exclude fits),
# and fits with a residual variance structure (against nlme::lme where the
# tool reads nlme's fits, a clear refusal where the tool needs lme4's
# objects or leverages).

test_that("insight and performance give the lme4 numbers on na.exclude fits", {
  skip_if_not_installed("performance")
  for (name in c("sleepstudy_na", "cbpp_na")) {
    fits <- test_fit(name)
    f <- fits$mlm
    m <- fits$lme4
    expect_equal(insight::n_obs(f), insight::n_obs(m))
    expect_equal(nrow(insight::get_data(f)), nrow(insight::get_data(m)))
    expect_equal(insight::get_df(f), insight::get_df(m))
    expect_equal(as.numeric(insight::get_loglikelihood(f)), as.numeric(insight::get_loglikelihood(m)), tolerance = 1e-5)
    expect_equal(insight::get_variance(f, verbose = FALSE), insight::get_variance(m, verbose = FALSE), tolerance = 2e-3)
    expect_equal(as.vector(insight::get_predicted(f, ci = NULL)), as.vector(insight::get_predicted(m, ci = NULL)),
                 tolerance = 1e-3)
    expect_equal(unlist(performance::icc(f)), unlist(performance::icc(m)), tolerance = 2e-3, info = name)
    expect_equal(unlist(performance::r2(f)), unlist(performance::r2(m)), tolerance = 2e-3, info = name)
    a <- suppressWarnings(performance::model_performance(f))
    b <- suppressWarnings(performance::model_performance(m))
    expect_identical(names(a), names(b))
    expect_equal(unlist(a), unlist(b), tolerance = 2e-3, info = name)
  }
})

test_that("parameters, car, emmeans, ggeffects and effects give the lme4 numbers on na.exclude fits", {
  skip_if_not_installed("parameters")
  skip_if_not_installed("car")
  skip_if_not_installed("emmeans")
  skip_if_not_installed("ggeffects")
  skip_if_not_installed("effects")
  for (name in c("sleepstudy_na", "cbpp_na")) {
    fits <- test_fit(name)
    f <- fits$mlm
    m <- fits$lme4
    glmm_fit <- inherits(f, "mlmfit_glmm")
    # glmer's SEs come from a finite-difference Hessian: within 2% of mlmfit's
    se_tol <- if (glmm_fit) 0.025 else 2e-3
    a <- as.data.frame(suppressMessages(parameters::model_parameters(f, effects = "fixed")))
    b <- as.data.frame(suppressMessages(parameters::model_parameters(m, effects = "fixed")))
    expect_equal(a$Coefficient, b$Coefficient, tolerance = 1e-3)
    expect_equal(a$SE, b$SE, tolerance = se_tol)
    expect_equal(car::Anova(f)$Chisq, car::Anova(m)$Chisq, tolerance = if (glmm_fit) 0.05 else 2e-3)
    focal <- if (glmm_fit) "period" else "Days"
    a <- as.data.frame(emmeans::emmeans(f, focal))
    b <- as.data.frame(emmeans::emmeans(m, focal))
    expect_equal(a$emmean, b$emmean, tolerance = 1e-3)
    expect_equal(a$SE, b$SE, tolerance = se_tol)
    a <- as.data.frame(ggeffects::ggpredict(f, focal))
    b <- as.data.frame(ggeffects::ggpredict(m, focal))
    expect_equal(a$predicted, b$predicted, tolerance = 1e-3)
    expect_equal(a$conf.low, b$conf.low, tolerance = se_tol)
  }
  # effects evaluates the data of the fit's call again, in its own
  # namespace (for lme4's fits too): an expression that stands alone
  f <- lmm(Reaction ~ Days + (Days | Subject),
           transform(lme4::sleepstudy, Reaction = replace(Reaction, c(3, 50, 101), NA)), na.action = stats::na.exclude)
  m <- lme4::lmer(Reaction ~ Days + (Days | Subject),
                  transform(lme4::sleepstudy, Reaction = replace(Reaction, c(3, 50, 101), NA)),
                  na.action = stats::na.exclude)
  a <- as.data.frame(effects::Effect("Days", f))
  b <- as.data.frame(effects::Effect("Days", m))
  expect_equal(a$fit, b$fit, tolerance = 1e-4)
  expect_equal(a$lower, b$lower, tolerance = 1e-3)
})

test_that("broom.mixed, leverages, lattice and model selection agree with lme4 on na.exclude fits", {
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("lattice")
  ss <- test_fit("sleepstudy_na")
  # leverages and Cook's distances padded with NA where na.exclude left rows out, as lme4's
  expect_equal(hatvalues(ss$mlm), stats::hatvalues(ss$lme4), tolerance = 1e-5)
  expect_equal(cooks.distance(ss$mlm), stats::cooks.distance(ss$lme4), tolerance = 1e-4)
  expect_true(all(is.na(hatvalues(ss$mlm)[c(3, 50, 101)])))
  # augment(): one row per observation of the fit, as broom.mixed's (which
  # warns that the rows left out are dropped)
  for (name in c("sleepstudy_na", "cbpp_na")) {
    fits <- test_fit(name)
    a <- broom.mixed::augment(fits$mlm)
    b <- suppressWarnings(broom.mixed::augment(fits$lme4))
    expect_equal(nrow(a), nrow(b))
    # (leverages only for lmm fits: see augment())
    cols <- intersect(c(".fitted", ".resid", ".hat", ".cooksd", ".mu", ".wtres"), intersect(names(a), names(b)))
    for (nm in cols) expect_equal(a[[nm]], unname(b[[nm]]), tolerance = 1e-3, info = paste(name, nm))
    expect_equal(broom.mixed::glance(fits$mlm)$logLik, broom.mixed::glance(fits$lme4)$logLik, tolerance = 1e-5)
  }
  p1 <- plot(ss$mlm, resid(.) ~ fitted(.) | Subject)
  p2 <- plot(ss$lme4, resid(.) ~ fitted(.) | Subject)
  expect_equal(p1$panel.args, p2$panel.args, tolerance = 1e-4)
  d1 <- lattice::dotplot(ranef(ss$mlm, condVar = TRUE))$Subject
  d2 <- lattice::dotplot(lme4::ranef(ss$lme4, condVar = TRUE))$Subject
  expect_equal(d1$panel.args, d2$panel.args, tolerance = 1e-3)
  # drop1() and anova(): lme4's likelihood-ratio test and lmerTest's F tests
  a <- drop1(ss$mlm, test = "Chisq")
  b <- stats::drop1(ss$lme4, test = "Chisq")
  expect_equal(a$LRT, b$LRT, tolerance = 1e-4)
  skip_if_not_installed("lmerTest")
  ref <- lmerTest::as_lmerModLmerTest(ss$lme4)
  expect_equal(anova(ss$mlm, type = 2)$`F value`, stats::anova(ref, type = 2)$`F value`, tolerance = 1e-3)
  expect_equal(anova(ss$mlm, type = 2)$DenDF, stats::anova(ref, type = 2)$DenDF, tolerance = 2e-3)
})

test_that("check_model() works on lmm and glmm fits; leverages of a glmm fit are lme4's", {
  skip_if_not_installed("performance")
  cb <- test_fit("cbpp")
  # lme4's definition, with its warning that they may not make sense for GLMMs
  expect_warning(h <- hatvalues(cb$mlm), "may not make sense")
  expect_equal(h, suppressWarnings(stats::hatvalues(cb$lme4)), tolerance = 5e-3)
  expect_equal(suppressWarnings(cooks.distance(cb$mlm)), suppressWarnings(stats::cooks.distance(cb$lme4)),
               tolerance = 0.02)
  for (fit in list(test_fit("sleepstudy_na")$mlm, cb$mlm)) {
    cm <- suppressWarnings(suppressMessages(performance::check_model(fit)))
    expect_s3_class(cm, "check_model")
    expect_true(all(c("QQ", "REQQ", "OUTLIERS") %in% names(cm)))
  }
})

test_that("fits with a residual structure: the tools that read nlme's fits give nlme::lme's numbers", {
  skip_if_not_installed("performance")
  skip_if_not_installed("nlme")
  fits <- test_fit("orthodont_varident")
  f <- fits$mlm
  m <- fits$nlme
  expect_equal(as.numeric(insight::get_loglikelihood(f)), as.numeric(stats::logLik(m)), tolerance = 1e-5)
  # insight's variance decomposition of an lme fit (the residual variance of
  # the reference stratum); lme's is computed without its random part, which
  # insight wrongly finds singular
  vf <- insight::get_variance(f)
  vm <- suppressWarnings(insight::get_variance(m))
  for (k in c("var.fixed", "var.residual", "var.intercept")) expect_equal(vf[[k]], vm[[k]], tolerance = 1e-3, info = k)
  expect_equal(performance::icc(f)$ICC_adjusted, vf$var.intercept[[1L]] / (vf$var.intercept[[1L]] + vf$var.residual),
               tolerance = 1e-10)
  a <- performance::model_performance(f)
  b <- suppressWarnings(performance::model_performance(m))
  for (k in c("AIC", "BIC", "RMSE", "Sigma")) expect_equal(a[[k]], b[[k]], tolerance = 1e-4, info = k)
  a <- as.data.frame(ggeffects::ggpredict(f, "age"))
  b <- as.data.frame(ggeffects::ggpredict(m, "age"))
  expect_equal(a$predicted, b$predicted, tolerance = 1e-5)
  a <- as.data.frame(emmeans::emmeans(f, "Sex"))
  b <- as.data.frame(emmeans::emmeans(m, "Sex"))
  expect_equal(a$emmean, b$emmean, tolerance = 1e-5)
  expect_equal(a$SE, b$SE, tolerance = 1e-3)
  expect_equal(broom.mixed::tidy(f, effects = "fixed")$std.error, unname(sqrt(diag(stats::vcov(m)))), tolerance = 1e-3)
  re <- lattice::dotplot(ranef(f, condVar = TRUE))$Subject
  expect_equal(sort(re$panel.args[[1L]]$x), sort(nlme::ranef(m)[[1L]]), tolerance = 1e-3)
  expect_s3_class(plot(f, resid(.) ~ fitted(.) | Sex), "trellis")
  # drop1(): the likelihood-ratio test of the ML fits, as anova() of nlme's
  ml <- function(fixed) {
    nlme::lme(fixed, random = ~ 1 | Subject, data = nlme::Orthodont, weights = nlme::varIdent(form = ~ 1 | Sex),
              method = "ML")
  }
  lrt <- 2 * (as.numeric(stats::logLik(ml(distance ~ age + Sex))) - as.numeric(stats::logLik(ml(distance ~ age))))
  expect_equal(drop1(f, test = "Chisq")["Sex", "LRT"], lrt, tolerance = 1e-4)
  small <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont, variance = nlme::varIdent(form = ~ 1 | Sex))
  expect_equal(add1(small, ~ . + Sex, test = "Chisq")["Sex", "LRT"], lrt, tolerance = 1e-4)
  expect_equal(extractAIC(f)[2L], stats::AIC(ml(distance ~ age + Sex)), tolerance = 1e-6)
  r <- performance::r2(f)
  v <- c(vf$var.fixed, vf$var.intercept[[1L]], vf$var.residual)
  expect_equal(unname(r$R2_marginal), v[1L] / sum(v), tolerance = 1e-10)
  expect_equal(unname(r$R2_conditional), sum(v[1:2]) / sum(v), tolerance = 1e-10)
  expect_identical(lme4::isSingular(f), FALSE)
})

test_that("car's linearHypothesis() and vif(), lattice's dotplot() and sjPlot's table on glmm fits are lme4's", {
  skip_if_not_installed("car")
  skip_if_not_installed("lattice")
  po <- test_fit("poisson")
  expect_equal(car::linearHypothesis(po$mlm, "x = 0.3")$Chisq, car::linearHypothesis(po$lme4, "x = 0.3")$Chisq,
               tolerance = 0.02)
  set.seed(14)
  cbpp <- transform(lme4::cbpp, z = as.numeric(period) + stats::rnorm(56, sd = 0.5))
  two <- glmm(cbind(incidence, size - incidence) ~ period + z + (1 | herd), cbpp, binomial)
  two_lme4 <- lme4::glmer(cbind(incidence, size - incidence) ~ period + z + (1 | herd), cbpp, binomial)
  expect_equal(car::vif(two), car::vif(two_lme4), tolerance = 0.02)
  cb <- test_fit("cbpp")
  d1 <- lattice::dotplot(ranef(cb$mlm, condVar = TRUE))$herd
  d2 <- lattice::dotplot(lme4::ranef(cb$lme4, condVar = TRUE))$herd
  expect_equal(d1$panel.args, d2$panel.args, tolerance = 2e-3)
  expect_identical(d1$y.limits, d2$y.limits)
  skip_unless_full_tests()
  skip_if_not_installed("sjPlot")
  tab <- sjPlot::tab_model(cb$mlm)
  ref <- sjPlot::tab_model(as_glmerMod(cb$mlm))
  expect_identical(gsub("\\s", "", tab$page.content), gsub("\\s", "", ref$page.content))
})

test_that("fits with a residual structure: tools that need lme4's objects or leverages refuse them clearly", {
  for (pkg in c("performance", "parameters", "car", "effects", "sjPlot")) skip_if_not_installed(pkg)
  f <- test_fit("orthodont_varident")$mlm
  ss <- test_fit("sleepstudy")$mlm
  refused <- list(
    function() parameters::model_parameters(f),
    function() car::Anova(f),
    function() car::linearHypothesis(f, "age = 0"),
    function() car::vif(f),
    function() sjPlot::plot_model(f),
    function() effects::allEffects(f),
    function() performance::compare_performance(f, ss),
    function() performance::check_model(f),
    function() influence(f),
    function() hatvalues(f))
  for (call in refused) expect_error(call(), class = "mlmfit_error_residual_structure")
  # sjPlot wraps the refusal in an error of its own
  expect_error(sjPlot::tab_model(f), "residual `correlation` or `variance` structure")
})
