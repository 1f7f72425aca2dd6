# The arguments lme4's methods take, honoured as lme4 honours them; any
# other argument is reported (a warning of class
# mlmfit_warning_unused_argument), never swallowed.

test_that("model.matrix(type = ) gives lme4's X, Z (sparse) and the raw term matrices", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("Matrix")
  sleepstudy <- lme4_data("sleepstudy")
  Pastes <- lme4_data("Pastes")
  Penicillin <- lme4_data("Penicillin")
  cases <- list(
    list(f = Reaction ~ Days + (Days | Subject), d = sleepstudy[-(1:3), ]),
    list(f = Reaction ~ Days + (Days || Subject), d = sleepstudy),
    list(f = strength ~ 1 + (1 | batch / cask), d = Pastes),
    list(f = diameter ~ 1 + (1 | plate) + (1 | sample), d = Penicillin))
  for (cs in cases) {
    fit <- lmm(cs$f, cs$d)
    # lme4's convergence check is beside the point: the matrices are compared
    ref <- suppressWarnings(lme4::lmer(cs$f, cs$d))
    Z <- model.matrix(fit, type = "random")
    expect_s4_class(Z, "dgCMatrix")
    Zr <- lme4::getME(ref, "Z")
    expect_identical(dimnames(Z), dimnames(Zr))
    expect_equal(as.matrix(Z), as.matrix(Zr))
    expect_equal(model.matrix(fit, type = "fixed"), model.matrix(ref, type = "fixed"), ignore_attr = "msgScaleX")
    expect_identical(model.matrix(fit), model.matrix(fit, type = "fixed"))
    raw <- model.matrix(fit, type = "randomListRaw")
    raw_ref <- model.matrix(ref, type = "randomListRaw")
    expect_identical(names(raw), names(raw_ref))
    for (k in seq_along(raw)) expect_equal(raw[[k]], raw_ref[[k]])
  }
  # a GLMM and a fit with a residual structure have Z too
  cb <- test_fit("cbpp")
  expect_equal(as.matrix(model.matrix(cb$mlm, type = "random")), as.matrix(lme4::getME(cb$lme4, "Z")))
  sfit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont, correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_identical(dim(model.matrix(sfit, type = "random")), c(108L, 27L))
})

test_that("df.residual(), family(), summary()$sigma, $AICtab and $logLik are lme4's", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4_data("sleepstudy")
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    expect_identical(df.residual(fit), df.residual(ref))
    s <- summary(fit)
    sr <- summary(ref)
    expect_equal(s$sigma, sr$sigma, tolerance = 1e-5)
    expect_identical(names(s$AICtab), names(sr$AICtab))
    expect_equal(s$AICtab, sr$AICtab, tolerance = 1e-6)
    expect_equal(s$logLik, sr$logLik, tolerance = 1e-7, ignore_attr = TRUE)
    expect_equal(family(fit), family(ref), ignore_function_env = TRUE)
  }
  cb <- test_fit("cbpp")
  expect_identical(df.residual(cb$mlm), df.residual(cb$lme4))
  expect_identical(summary(cb$mlm)$sigma, summary(cb$lme4)$sigma)
  expect_equal(summary(cb$mlm)$AICtab, summary(cb$lme4)$AICtab, tolerance = 1e-5)
  # a structure's parameters count as lme()'s do
  ortho <- as.data.frame(nlme::Orthodont)
  sfit <- lmm(distance ~ age + (1 | Subject), ortho, correlation = nlme::corAR1(form = ~ 1 | Subject))
  sref <- nlme::lme(distance ~ age, ortho, random = ~ 1 | Subject, correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_identical(df.residual(sfit), nobs(sfit) - as.integer(attr(logLik(sref), "df")))
})

test_that("fixef(add.dropped), VarCorr(sigma), ranef(drop, whichel), formula/terms/model.frame parts as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4_data("sleepstudy")
  sleepstudy$Days2 <- 2 * sleepstudy$Days
  f <- Reaction ~ Days + Days2 + (Days | Subject)
  fit <- suppressMessages(lmm(f, sleepstudy))
  ref <- suppressMessages(lme4::lmer(f, sleepstudy))
  expect_equal(fixef(fit, add.dropped = TRUE), lme4::fixef(ref, add.dropped = TRUE), tolerance = 1e-5)
  expect_named(fixef(fit), c("(Intercept)", "Days"))
  expect_equal(as.data.frame(VarCorr(fit, sigma = 1))$vcov, as.data.frame(lme4::VarCorr(ref, sigma = 1))$vcov,
               tolerance = 2e-3)
  f2 <- Reaction ~ Days + (1 | Subject)
  fit2 <- lmm(f2, sleepstudy)
  ref2 <- lme4::lmer(f2, sleepstudy)
  r <- ranef(fit2, drop = TRUE)
  r_ref <- lme4::ranef(ref2, drop = TRUE)
  expect_equal(r$Subject, r_ref$Subject, tolerance = 1e-4, ignore_attr = TRUE)
  expect_identical(names(r$Subject), names(r_ref$Subject))
  expect_equal(attr(r$Subject, "postVar"), attr(r_ref$Subject, "postVar"), tolerance = 1e-3)
  expect_error(ranef(fit2, whichel = "Days"), class = "mlmfit_error_argument")
  expect_named(ranef(test_fit("penicillin")$mlm, whichel = "sample"), "sample")
  for (args in list(list(), list(fixed.only = TRUE), list(random.only = TRUE))) {
    expect_equal(do.call(formula, c(list(fit), args)), do.call(formula, c(list(ref), args)),
                 ignore_attr = TRUE)
  }
  expect_equal(attr(terms(fit), "term.labels"), attr(terms(ref), "term.labels"))
  expect_equal(attr(terms(fit, random.only = TRUE), "term.labels"), attr(terms(ref, random.only = TRUE), "term.labels"))
  expect_identical(names(model.frame(fit, fixed.only = TRUE)), names(model.frame(ref, fixed.only = TRUE)))
  expect_error(formula(fit, fixed.only = TRUE, random.only = TRUE), class = "mlmfit_error_argument")
})

test_that("`.` in a formula stands for every other column but the response and grouping variables", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4_data("sleepstudy")
  fit <- lmm(Reaction ~ . + (1 | Subject), sleepstudy[, 1:3])
  # lme4 1.1-31 also puts the grouping factor among the fixed effects
  # (aliased with the random intercept); the model meant is this one:
  expect_lme4_agreement(fit, lme4::lmer(Reaction ~ Days + (1 | Subject), sleepstudy))
  expect_equal(formula(fit), Reaction ~ Days + (1 | Subject), ignore_attr = TRUE)
  d <- sleepstudy
  d$x <- stats::rnorm(180)
  expect_named(fixef(lmm(Reaction ~ .^2 + (Days | Subject), d)), c("(Intercept)", "Days", "x", "Days:x"))
  expect_named(fixef(lmm(Reaction ~ . - x + (1 | Subject), d)), c("(Intercept)", "Days"))
  cb <- lme4::cbpp
  g <- glmm(cbind(incidence, size - incidence) ~ . - size + (1 | herd), cb, binomial)
  expect_equal(deviance(g), deviance(test_fit("cbpp")$mlm), tolerance = 1e-8)
  expect_error(lmm(Reaction ~ . + (1 | Subject)), class = "mlmfit_error_formula")
})

test_that("boundary messages name the term as written", {
  set.seed(1)
  d <- data.frame(g = rep(1:12, each = 6), x = rep(1:6, 12))
  d$y <- d$x + stats::rnorm(12)[d$g] + stats::rnorm(72)
  expect_message(fit <- lmm(y ~ x + (1 | g) + (0 + x | g), d), "\\(0 \\+ x \\| g\\)",
                 class = "mlmfit_message_singular")
  skip_if_not_installed("lme4")
  expect_true(lme4::isSingular(lme4::lmer(y ~ x + (1 | g) + (0 + x | g), d)))
})

test_that("every method reports the arguments it does not use", {
  skip_if_not_installed("lme4")
  lfit <- test_fit("sleepstudy")$mlm
  gfit <- test_fit("cbpp")$mlm
  sfit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont, correlation = nlme::corAR1(form = ~ 1 | Subject))
  calls <- list(
    fixef = function(f) fixef(f, bogus = 1), vcov = function(f) vcov(f, bogus = 1),
    sigma = function(f) sigma(f, bogus = 1), logLik = function(f) logLik(f, bogus = 1),
    deviance = function(f) deviance(f, bogus = 1), nobs = function(f) nobs(f, bogus = 1),
    ngrps = function(f) ngrps(f, bogus = 1), fitted = function(f) fitted(f, bogus = 1),
    residuals = function(f) residuals(f, bogus = 1), formula = function(f) formula(f, bogus = 1),
    model.frame = function(f) model.frame(f, bogus = 1), model.matrix = function(f) model.matrix(f, bogus = 1),
    terms = function(f) terms(f, bogus = 1), weights = function(f) weights(f, bogus = 1),
    df.residual = function(f) df.residual(f, bogus = 1), family = function(f) family(f, bogus = 1),
    ranef = function(f) ranef(f, bogus = 1), coef = function(f) coef(f, bogus = 1),
    VarCorr = function(f) VarCorr(f, bogus = 1), predict = function(f) predict(f, bogus = 1),
    simulate = function(f) simulate(f, bogus = 1), summary = function(f) summary(f, bogus = 1),
    confint = function(f) confint(f, method = "Wald", bogus = 1), getCall = function(f) stats::getCall(f, bogus = 1),
    tidy = function(f) tidy(f, bogus = 1), glance = function(f) glance(f, bogus = 1),
    augment = function(f) augment(f, bogus = 1), print = function(f) print(f, bogus = 1),
    as.data.frame.VarCorr = function(f) as.data.frame(VarCorr(f), bogus = 1),
    as.data.frame.ranef = function(f) as.data.frame(ranef(f), bogus = 1),
    residual_parameters = function(f) residual_parameters(f, bogus = 1),
    isREML = function(f) lme4::isREML(f, bogus = 1), isLMM = function(f) lme4::isLMM(f, bogus = 1))
  for (f in list(lfit, gfit, sfit)) {
    for (nm in names(calls)) {
      expect_warning(utils::capture.output(calls[[nm]](f)), "bogus", class = "mlmfit_warning_unused_argument",
                     info = paste(nm, class(f)[1]))
    }
  }
  expect_warning(hatvalues(lfit, bogus = 1), class = "mlmfit_warning_unused_argument")
  expect_warning(cooks.distance(lfit, bogus = 1), class = "mlmfit_warning_unused_argument")
  expect_warning(refit(lfit, bogus = 1), class = "mlmfit_warning_unused_argument")
  expect_warning(ranova(lfit, bogus = 1), class = "mlmfit_warning_unused_argument")
  expect_warning(nlme::getVarCov(sfit, bogus = 1), class = "mlmfit_warning_unused_argument")
  expect_warning(drop1(lfit, bogus = 1), class = "mlmfit_warning_unused_argument")
  # anova() takes fits in its dots; anything else there is reported, with one fit or several
  expect_warning(anova(lfit, bogus = 1), "bogus", class = "mlmfit_warning_unused_argument")
  lfit0 <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  expect_warning(tab <- anova(lfit0, lfit, bogus = 1), "bogus", class = "mlmfit_warning_unused_argument")
  expect_identical(nrow(tab), 2L)
  # the bootstrap's arguments with another method
  expect_warning(ci <- confint(lfit, method = "Wald", nsim = 10), "nsim", class = "mlmfit_warning_unused_argument")
  expect_identical(ci, confint(lfit, method = "Wald"))
  # an unnamed extra argument is reported too
  expect_warning(vcov(lfit, 2), "unnamed", class = "mlmfit_warning_unused_argument")
  # arguments of the generics are not extra: step() passes use.fallback to nobs()
  expect_no_warning(nobs(lfit, use.fallback = TRUE))
})
