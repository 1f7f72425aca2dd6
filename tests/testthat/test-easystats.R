# insight, performance, parameters and ggeffects on mlmfit fits: the same
# numbers as on the lme4 fits; icc() and r2() of glmm fits on the latent
# scale.

test_that("insight reads the parts of a fit as it reads the lme4 fit", {
  skip_if_not_installed("insight")
  for (name in c("sleepstudy", "penicillin", "cbpp", "poisson")) {
    fits <- test_fit(name)
    f <- fits$mlm
    m <- fits$lme4
    ff <- insight::find_formula(f)
    fm <- insight::find_formula(m)
    expect_equal(deparse1(ff$conditional), deparse1(fm$conditional))
    expect_equal(lapply(c(ff$random), deparse1), lapply(c(fm$random), deparse1))
    expect_identical(insight::find_random(f), insight::find_random(m))
    expect_identical(insight::find_predictors(f, effects = "all"), insight::find_predictors(m, effects = "all"))
    expect_identical(insight::find_parameters(f), insight::find_parameters(m))
    expect_true(insight::is_mixed_model(f))
    info_f <- insight::model_info(f)
    info_m <- insight::model_info(m)
    for (k in c("is_binomial", "is_count", "is_poisson", "is_linear", "is_logit", "is_mixed", "link_function", "family")) {
      expect_identical(info_f[[k]], info_m[[k]], info = k)
    }
    expect_equal(insight::get_parameters(f)$Estimate, insight::get_parameters(m)$Estimate, tolerance = 1e-3)
    expect_equal(insight::get_df(f), insight::get_df(m))
    expect_equal(insight::get_df(f, type = "wald"), insight::get_df(m, type = "wald"))
    expect_equal(as.numeric(insight::get_loglikelihood(f)), as.numeric(insight::get_loglikelihood(m)), tolerance = 1e-5)
    expect_equal(insight::get_deviance(f), insight::get_deviance(m), tolerance = 1e-5)
    expect_equal(insight::get_intercept(f), insight::get_intercept(m), tolerance = 1e-3)
    expect_equal(insight::link_inverse(f)(0.3), insight::link_inverse(m)(0.3))
    expect_equal(nrow(insight::get_data(f)), nrow(insight::get_data(m)))
    expect_equal(insight::find_algorithm(f)$algorithm, insight::find_algorithm(m)$algorithm)
    vf <- insight::get_variance(f, verbose = FALSE)
    vm <- insight::get_variance(m, verbose = FALSE)
    expect_identical(names(vf), names(vm))
    expect_equal(vf, vm, tolerance = 2e-3)
  }
  ss <- test_fit("sleepstudy")
  expect_equal(insight::get_df(ss$mlm, type = "satterthwaite"), insight::get_df(ss$lme4, type = "satterthwaite"),
               tolerance = 1e-3, ignore_attr = TRUE)
  expect_equal(insight::get_statistic(ss$mlm)$Statistic, insight::get_statistic(ss$lme4)$Statistic, tolerance = 1e-3)
})

test_that("performance's icc(), r2(), check_singularity() and model_performance() give lme4's numbers", {
  skip_if_not_installed("performance")
  for (name in c("sleepstudy", "hsb", "penicillin", "cbpp", "poisson")) {
    fits <- test_fit(name)
    # (performance warns that the Poisson mean is small: the approximation's caveat)
    expect_equal(unclass(performance::icc(fits$mlm)), unclass(suppressWarnings(performance::icc(fits$lme4))),
                 tolerance = 2e-3, ignore_attr = TRUE, info = name)
    expect_equal(unlist(performance::r2(fits$mlm)), unlist(suppressWarnings(performance::r2(fits$lme4))),
                 tolerance = 2e-3, info = name)
    expect_identical(performance::check_singularity(fits$mlm), performance::check_singularity(fits$lme4))
    a <- suppressWarnings(performance::model_performance(fits$mlm))
    b <- suppressWarnings(performance::model_performance(fits$lme4))
    expect_identical(names(a), names(b))
    expect_equal(unlist(a), unlist(b), tolerance = 2e-3, info = name)
  }
})

test_that("icc() and r2() of glmm fits are performance's latent-scale values", {
  skip_if_not_installed("performance")
  cb <- test_fit("cbpp")
  ref_icc <- performance::icc(cb$lme4)
  expect_equal(icc(cb$mlm)$icc, ref_icc$ICC_adjusted, tolerance = 2e-3)
  ref_r2 <- performance::r2_nakagawa(cb$lme4)
  r <- r2(cb$mlm)
  expect_equal(r[["marginal"]], unname(ref_r2$R2_marginal), tolerance = 2e-3)
  expect_equal(r[["conditional"]], unname(ref_r2$R2_conditional), tolerance = 2e-3)
  expect_true(is.na(r[["level1"]]))
  # logit: pi^2/3 by hand; probit: 1
  tau2 <- VarCorr(cb$mlm)$herd[1, 1]
  expect_equal(icc(cb$mlm)$icc, tau2 / (tau2 + pi^2 / 3), tolerance = 1e-12)
  probit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial(link = "probit"))
  tau2p <- VarCorr(probit)$herd[1, 1]
  expect_equal(icc(probit)$icc, tau2p / (tau2p + 1), tolerance = 1e-12)
  expect_equal(icc(probit)$icc,
               performance::icc(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                                            binomial(link = "probit")))$ICC_adjusted, tolerance = 3e-3)
  # Poisson with an offset: lognormal approximation as performance, and the
  # delta method by hand from the null model's intercept
  po <- test_fit("poisson")
  r_ln <- r2(po$mlm)
  ref <- suppressWarnings(performance::r2_nakagawa(po$lme4))
  expect_equal(r_ln[["marginal"]], unname(ref$R2_marginal), tolerance = 2e-3)
  expect_equal(r_ln[["conditional"]], unname(ref$R2_conditional), tolerance = 2e-3)
  d <- po$data
  null <- glmm(y ~ 1 + offset(log(exposure)) + (1 | g), d, poisson)
  lambda <- exp(fixef(null)[[1L]])
  vf <- stats::var(as.vector(model.matrix(po$mlm) %*% fixef(po$mlm)))
  vr <- VarCorr(po$mlm)$g[1, 1]
  r_delta <- r2(po$mlm, approximation = "delta")
  expect_equal(r_delta[["marginal"]], vf / (vf + vr + 1 / lambda), tolerance = 1e-6)
  expect_equal(icc(po$mlm, approximation = "delta")$icc, vr / (vr + 1 / lambda), tolerance = 1e-6)
  expect_equal(icc(po$mlm)$icc, vr / (vr + log1p(1 / lambda)), tolerance = 1e-6)
  # families without a latent-scale variance are refused
  cbpp <- lme4::cbpp
  cauchit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial(link = "cauchit"))
  expect_error(icc(cauchit), class = "mlmfit_error_family")
})

test_that("parameters::model_parameters() gives the table of the lme4 fit", {
  skip_if_not_installed("parameters")
  for (name in c("sleepstudy", "cbpp")) {
    fits <- test_fit(name)
    a <- as.data.frame(suppressMessages(parameters::model_parameters(fits$mlm, effects = "fixed")))
    b <- as.data.frame(suppressMessages(parameters::model_parameters(fits$lme4, effects = "fixed")))
    expect_identical(a$Parameter, b$Parameter)
    expect_equal(a$Coefficient, b$Coefficient, tolerance = 1e-3)
    # glmer's SEs come from a finite-difference Hessian: within 2% of mlmfit's
    tol <- if (name == "cbpp") 0.025 else 2e-3
    expect_equal(a$SE, b$SE, tolerance = tol)
    expect_equal(a$CI_low, b$CI_low, tolerance = tol)
    # and exactly the numbers of the lme4 method at mlmfit's estimates
    c <- as.data.frame(suppressMessages(parameters::model_parameters(as_merMod(fits$mlm), effects = "fixed")))
    expect_equal(a$SE, c$SE, tolerance = 1e-10)
    expect_equal(a$SE, unname(sqrt(diag(vcov(fits$mlm)))), tolerance = 1e-8)
  }
})

test_that("ggeffects::ggpredict() gives the lme4 fit's population-level predictions and intervals", {
  skip_if_not_installed("ggeffects")
  ss <- test_fit("sleepstudy")
  a <- as.data.frame(ggeffects::ggpredict(ss$mlm, "Days"))
  b <- as.data.frame(ggeffects::ggpredict(ss$lme4, "Days"))
  expect_equal(a$x, b$x)
  expect_equal(a$predicted, b$predicted, tolerance = 1e-4)
  expect_equal(a$conf.low, b$conf.low, tolerance = 1e-4)
  expect_equal(a$conf.high, b$conf.high, tolerance = 1e-4)
  cb <- test_fit("cbpp")
  a <- as.data.frame(ggeffects::ggpredict(cb$mlm, "period"))
  b <- as.data.frame(ggeffects::ggpredict(cb$lme4, "period"))
  expect_equal(a$predicted, b$predicted, tolerance = 1e-3)
  expect_equal(a$conf.low, b$conf.low, tolerance = 0.02)
  # conditional predictions through insight when asked
  p <- insight::get_predicted(ss$mlm, include_random = TRUE, ci = NULL)
  expect_equal(as.vector(p), unname(fitted(ss$mlm)), tolerance = 1e-10)
})

test_that("sjPlot and check_model() work on fits (full tier: slow plots)", {
  skip_unless_full_tests()
  skip_if_not_installed("sjPlot")
  skip_if_not_installed("performance")
  ss <- test_fit("sleepstudy")
  tab <- sjPlot::tab_model(ss$mlm)
  expect_s3_class(tab, "sjTable")
  # the table of the lme4 method at mlmfit's estimates (the lme4 fit's own
  # table differs in the last digit of one variance: 612.10 against 612.09)
  ref <- sjPlot::tab_model(as_lmerMod(ss$mlm))
  expect_identical(gsub("\\s", "", tab$page.content), gsub("\\s", "", ref$page.content))
  expect_match(tab$page.content, "251.41", fixed = TRUE)
  expect_s3_class(sjPlot::plot_model(ss$mlm), "ggplot")
  expect_s3_class(sjPlot::plot_model(test_fit("cbpp")$mlm, type = "re"), "ggplot")
  cm <- performance::check_model(ss$mlm)
  expect_s3_class(cm, "check_model")
})

test_that("compare_performance() gives the table of the lme4 fits; find_statistic() refuses, get_statistic() names it", {
  skip_if_not_installed("performance")
  ss <- test_fit("sleepstudy")
  m1 <- ss$mlm
  m2 <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  l1 <- ss$lme4
  l2 <- lme4::lmer(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  a <- suppressWarnings(performance::compare_performance(m1, m2))
  b <- suppressWarnings(performance::compare_performance(l1, l2))
  expect_identical(a$Name, c("m1", "m2"))
  expect_identical(names(a), names(b))
  num <- vapply(b, is.numeric, TRUE)
  expect_equal(a[num], b[num], tolerance = 1e-4, ignore_attr = TRUE)
  # performance's test_*() functions gather the models the same way
  a <- suppressMessages(suppressWarnings(performance::test_likelihoodratio(m2, m1)))
  b <- suppressMessages(suppressWarnings(performance::test_likelihoodratio(l2, l1)))
  expect_equal(a$Chi2, b$Chi2, tolerance = 1e-4)
  expect_equal(a$p, b$p, tolerance = 1e-3)
  cb <- test_fit("cbpp")
  g1 <- cb$mlm
  g0 <- glmm(cbind(incidence, size - incidence) ~ 1 + (1 | herd), lme4::cbpp, binomial)
  r0 <- lme4::glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), lme4::cbpp, binomial)
  a <- suppressWarnings(performance::compare_performance(g1, g0))
  b <- suppressWarnings(performance::compare_performance(cb$lme4, r0))
  num <- vapply(b, is.numeric, TRUE)
  expect_equal(a[num], b[num], tolerance = 2e-3, ignore_attr = TRUE)
  # insight's find_statistic() is no generic: it knows only the classes it
  # lists, and says the fit is not a model object (rather than a wrong
  # statistic); get_statistic() names the statistic of lme4's fit
  expect_error(insight::find_statistic(m1), "not a model object")
  expect_identical(attr(insight::get_statistic(m1), "statistic"), insight::find_statistic(l1))
  expect_identical(attr(insight::get_statistic(g1), "statistic"), insight::find_statistic(cb$lme4))
})
