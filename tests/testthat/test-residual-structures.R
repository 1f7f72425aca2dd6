# Residual correlation and variance structures against nlme::lme, on the
# data sets of the issue: Ovary (AR(1)), BodyWeight (CAR(1), varPower,
# varExp), Orthodont (varIdent by Sex), Oats (compound symmetry) and the JSP
# growth data (AR(1) over school years, with missing years).

library(nlme)

ovary_formula <- follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time)

test_that("AR(1) on Ovary agrees with nlme by REML and ML", {
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary, REML = reml,
               correlation = corAR1(form = ~ 1 | Mare))
    ref <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, correlation = corAR1(form = ~ 1 | Mare),
               method = if (reml) "REML" else "ML")
    expect_nlme_agreement(fit, ref)
    expect_named(residual_parameters(fit), "Phi")
    # AR(1) with equal spacing: no pass over the data per evaluation
    expect_true(fit_whitening(fit)$classes)
  }
})

test_that("CAR(1) on BodyWeight (random intercept and slope) agrees with nlme", {
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight, REML = reml,
               correlation = corCAR1(form = ~ Time | Rat))
    ref <- lme(weight ~ Time * Diet, BodyWeight, random = ~ Time | Rat,
               correlation = corCAR1(form = ~ Time | Rat), method = if (reml) "REML" else "ML")
    expect_nlme_agreement(fit, ref)
    # three distinct gaps (7, 1 and 6 days): seven pattern classes
    expect_equal(fit_whitening(fit)$n_classes, 7L)
  }
})

test_that("varIdent by Sex on Orthodont agrees with nlme", {
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(distance ~ age * Sex + (1 | Subject), Orthodont, REML = reml,
               variance = varIdent(form = ~ 1 | Sex))
    ref <- lme(distance ~ age * Sex, Orthodont, random = ~ 1 | Subject,
               weights = varIdent(form = ~ 1 | Sex), method = if (reml) "REML" else "ML")
    expect_nlme_agreement(fit, ref)
    expect_named(residual_parameters(fit), "Female")
  }
})

test_that("AR(1) growth model on the JSP data (nested school/pupil, missing years) agrees with nlme", {
  jsp <- jsp_longitudinal()
  # pupils with one, two or three years, some missing the middle year
  expect_setequal(unique(table(jsp$id)), 1:3)
  expect_true(any(tapply(jsp$year, jsp$id, function(y) any(diff(sort(y)) > 1))))
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(math ~ year + gender + (year | school) + (1 | id), jsp, REML = reml,
               correlation = corAR1(form = ~ year | school/id))
    ref <- lme(math ~ year + gender, jsp, random = list(school = ~ year, id = ~ 1),
               correlation = corAR1(form = ~ year | school/id), method = if (reml) "REML" else "ML")
    expect_nlme_agreement(fit, ref)
  }
  fit <- lmm(english ~ year + gender + (1 | school) + (1 | id), jsp, REML = FALSE,
             correlation = corAR1(form = ~ year | school/id))
  ref <- lme(english ~ year + gender, jsp, random = ~ 1 | school/id,
             correlation = corAR1(form = ~ year | school/id), method = "ML")
  expect_nlme_agreement(fit, ref)
})

test_that("compound symmetry, varPower and varExp agree with nlme", {
  for (reml in c(TRUE, FALSE)) {
    method <- if (reml) "REML" else "ML"
    fit <- lmm(yield ~ nitro + (1 | Block), Oats, REML = reml,
               correlation = corCompSymm(form = ~ 1 | Block/Variety))
    ref <- lme(yield ~ nitro, Oats, random = ~ 1 | Block,
               correlation = corCompSymm(form = ~ 1 | Block/Variety), method = method)
    expect_nlme_agreement(fit, ref)
    expect_named(residual_parameters(fit), "Rho")

    fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight, REML = reml,
               variance = varPower(form = ~ Time))
    ref <- lme(weight ~ Time * Diet, BodyWeight, random = ~ Time | Rat,
               weights = varPower(form = ~ Time), method = method)
    expect_nlme_agreement(fit, ref, par_tol = 1e-3)
    expect_named(residual_parameters(fit), "power")

    fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight, REML = reml,
               variance = varExp(form = ~ Time))
    ref <- lme(weight ~ Time * Diet, BodyWeight, random = ~ Time | Rat,
               weights = varExp(form = ~ Time), method = method)
    expect_nlme_agreement(fit, ref, par_tol = 1e-4)
    expect_named(residual_parameters(fit), "expon")
  }
})

test_that("a correlation and a variance structure together agree with nlme", {
  fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight,
             correlation = corCAR1(form = ~ Time | Rat), variance = varPower(form = ~ Time))
  ref <- lme(weight ~ Time * Diet, BodyWeight, random = ~ Time | Rat,
             correlation = corCAR1(form = ~ Time | Rat), weights = varPower(form = ~ Time))
  expect_nlme_agreement(fit, ref)
  expect_named(residual_parameters(fit), c("Phi", "power"))

  fit <- lmm(distance ~ age * Sex + (1 | Subject), Orthodont, REML = FALSE,
             correlation = corAR1(form = ~ 1 | Subject), variance = varIdent(form = ~ 1 | Sex))
  ref <- lme(distance ~ age * Sex, Orthodont, random = ~ 1 | Subject, method = "ML",
             correlation = corAR1(form = ~ 1 | Subject), weights = varIdent(form = ~ 1 | Sex))
  expect_nlme_agreement(fit, ref)
})

test_that("AR(1) on times two units apart: lmm leaves the saddle point at phi = 0 where nlme stops", {
  # With ages 8, 10, 12, 14 the correlations are phi^2, phi^4, phi^6: the
  # likelihood is even in phi, and phi = 0, nlme's start, is a stationary
  # point. Here it is a saddle point; lmm finds the higher maximum.
  fit <- lmm(distance ~ age * Sex + (1 | Subject), Orthodont, REML = FALSE,
             correlation = corAR1(form = ~ age | Subject), variance = varIdent(form = ~ 1 | Sex))
  ref <- lme(distance ~ age * Sex, Orthodont, random = ~ 1 | Subject, method = "ML",
             correlation = corAR1(form = ~ age | Subject), weights = varIdent(form = ~ 1 | Sex))
  expect_equal(unname(stats::coef(ref$modelStruct$corStruct, unconstrained = FALSE)), 0)
  expect_gt(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), 0.01)
  phi <- residual_parameters(fit)[["Phi"]]
  expect_gt(abs(phi), 0.05)
  # nlme with phi held at lmm's estimate reaches lmm's log-likelihood
  ref_at <- lme(distance ~ age * Sex, Orthodont, random = ~ 1 | Subject, method = "ML",
                correlation = corAR1(phi, form = ~ age | Subject, fixed = TRUE),
                weights = varIdent(form = ~ 1 | Sex))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref_at)), tolerance = 1e-6)
})

test_that("missing occasions and unequal numbers of occasions: gaps enter the correlation", {
  # drop a different set of occasions from each rat, so that gaps vary
  set.seed(8)
  bw <- as.data.frame(BodyWeight)
  bw <- bw[-sample(nrow(bw), 40), ]
  for (cor in list(corCAR1(form = ~ Time | Rat), corAR1(form = ~ Time | Rat))) {
    fit <- lmm(weight ~ Time * Diet + (Time | Rat), bw, REML = FALSE, correlation = cor)
    ref <- lme(weight ~ Time * Diet, bw, random = ~ Time | Rat, correlation = cor, method = "ML")
    expect_nlme_agreement(fit, ref)
  }
  # the order of the rows does not matter when times are given
  shuffled <- bw[sample(nrow(bw)), ]
  fit2 <- lmm(weight ~ Time * Diet + (Time | Rat), shuffled, REML = FALSE, correlation = corAR1(form = ~ Time | Rat))
  expect_equal(as.numeric(logLik(fit2)), as.numeric(logLik(fit)), tolerance = 1e-8)
})

test_that("cross-products by pattern classes equal those of a pass over the data", {
  jsp <- jsp_longitudinal()
  models <- list(list(math ~ year + gender + (1 | school) + (1 | id), corAR1(form = ~ year | school/id)),
                 list(math ~ year + gender + (1 | school), corCompSymm(form = ~ 1 | school/id)))
  for (m in models) {
    f <- m[[1L]]
    cor <- m[[2L]]
    a <- lmm(f, jsp, correlation = cor, control = lmm_control(residual_method = "classes"))
    b <- lmm(f, jsp, correlation = cor, control = lmm_control(residual_method = "pass"))
    expect_true(fit_whitening(a)$classes)
    expect_false(fit_whitening(b)$classes)
    expect_equal(deviance(a), deviance(b), tolerance = 1e-10)
    expect_equal(fixef(a), fixef(b), tolerance = 1e-6)
    expect_equal(residual_parameters(a), residual_parameters(b), tolerance = 1e-5)
  }
  for (cor in list(NULL, corAR1(form = ~ 1 | Subject), corCAR1(form = ~ age | Subject))) {
    a <- lmm(distance ~ age * Sex + (1 | Subject), Orthodont, variance = varIdent(form = ~ 1 | Sex),
             correlation = cor, control = lmm_control(residual_method = "classes"))
    b <- update(a, control = lmm_control(residual_method = "pass"))
    expect_true(fit_whitening(a)$classes)
    expect_equal(deviance(a), deviance(b), tolerance = 1e-10)
  }
  # at other parameter values too, with strata that change within groups
  # (compound symmetry over a school, varIdent by sex)
  jsp <- droplevels(jsp[as.integer(jsp$school) <= 8L, ])
  jsp$boy <- factor(jsp$gender)
  fit <- lmm(math ~ year + (0 + year | school), jsp, correlation = corCompSymm(form = ~ 1 | school),
             variance = varIdent(form = ~ 1 | boy))
  params <- rbind(c(0.3, 0.5, 1), c(0.1, -1, 2), c(-0.2, 0.4, 0))
  whitened_by <- function(method) {
    spec <- fit_spec(fit)
    spec$residual$engine$method <- method
    spec
  }
  d_classes <- engine_deviance(whitened_by("classes"), params, fit_reml(fit))$deviance
  d_pass <- engine_deviance(whitened_by("pass"), params, fit_reml(fit))$deviance
  expect_equal(d_classes, d_pass, tolerance = 1e-10)
  # and against the deviance from first principles
  ev <- engine_evaluate_structured(fit_spec(fit), theta = 0.3, psi = c(0.1, -0.2), REML = FALSE)
  expect_equal(engine_deviance(fit_spec(fit), c(0.3, 0.1, -0.2), REML = FALSE)$deviance, ev$deviance)
  rho <- local({ inf <- -1 / (max(table(jsp$school)) - 1); e <- exp(0.1); (e + inf) / (e + 1) })
  s <- ifelse(jsp$boy == "1", exp(-0.2), 1)
  same <- outer(jsp$school, jsp$school, "==")
  R <- (same * rho + diag(1 - rho, nrow(jsp))) * tcrossprod(s)
  V <- R + 0.3^2 * same * tcrossprod(jsp$year)
  X <- spec_X(fit)
  Vi_X <- solve(V, X)
  beta <- solve(crossprod(X, Vi_X), crossprod(Vi_X, jsp$math))
  r <- jsp$math - drop(X %*% beta)
  n <- nrow(jsp)
  s2 <- sum(r * solve(V, r)) / n
  dev <- as.numeric(determinant(V * s2)$modulus) + n + n * log(2 * pi)
  expect_equal(ev$deviance, dev, tolerance = 1e-8)
  expect_equal(drop(ev$beta), drop(beta), tolerance = 1e-8, ignore_attr = TRUE)
  expect_equal(ev$sigma, sqrt(s2), tolerance = 1e-8)
})

test_that("a structure held at independence reproduces the fit without one", {
  # the whitened cross-products are laid out as the engine's own, for
  # nested and crossed factors and random slopes alike
  jsp <- jsp_longitudinal()
  jsp$sex_school <- interaction(jsp$gender, jsp$school)
  for (f in list(math ~ year + (year | school) + (1 | id),
                 math ~ year + gender + (1 | id) + (1 | school) + (1 | sex_school),
                 math ~ year + (1 | id) + (0 + year | school) + (1 | sex_school))) {
    skip_if_not_installed("lme4")
    ref <- lme4::lmer(f, jsp, REML = FALSE)
    for (method in c("classes", "pass")) {
      held <- lmm(f, jsp, REML = FALSE, correlation = corAR1(0, form = ~ year | id, fixed = TRUE),
                  control = lmm_control(residual_method = method))
      expect_equal(attr(logLik(held), "df"), attr(logLik(ref), "df"))
      # the second model has a saddle point at sd(sex_school) = 0, which
      # the fit must leave
      expect_lme4_agreement(held, ref)
    }
  }
})

test_that("the likelihood-ratio test of AR(1) against independence matches nlme's anova", {
  f0 <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary)
  f1 <- update(f0, correlation = corAR1(form = ~ 1 | Mare))
  r0 <- lme(ovary_formula, Ovary, random = ~ 1 | Mare)
  r1 <- update(r0, correlation = corAR1(form = ~ 1 | Mare))
  lr <- 2 * (as.numeric(logLik(f1)) - as.numeric(logLik(f0)))
  ddf <- attr(logLik(f1), "df") - attr(logLik(f0), "df")
  ref <- anova(r0, r1)
  expect_equal(ddf, 1)
  expect_equal(lr, ref$L.Ratio[2], tolerance = 1e-5)
  expect_equal(stats::pchisq(lr, ddf, lower.tail = FALSE), ref$`p-value`[2], tolerance = 1e-4)
  expect_equal(c(AIC(f0), AIC(f1)), ref$AIC, tolerance = 1e-7)
  # the same test between ML fits; BIC as nlme's (which counts n - p
  # observations for REML fits, where lme4 and lmm count n)
  m0 <- update(f0, REML = FALSE)
  m1 <- update(f1, REML = FALSE)
  ref_ml <- anova(update(r0, method = "ML"), update(r1, method = "ML"))
  expect_equal(2 * (as.numeric(logLik(m1)) - as.numeric(logLik(m0))), ref_ml$L.Ratio[2], tolerance = 1e-5)
  expect_equal(c(BIC(m0), BIC(m1)), ref_ml$BIC, tolerance = 1e-7)
})

test_that("random effects, residuals and covariance matrices match nlme's", {
  fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight,
             correlation = corCAR1(form = ~ Time | Rat), variance = varPower(form = ~ Time))
  ref <- lme(weight ~ Time * Diet, BodyWeight, random = ~ Time | Rat,
             correlation = corCAR1(form = ~ Time | Rat), weights = varPower(form = ~ Time))
  re <- as.matrix(ranef(fit)$Rat)
  rr <- as.matrix(nlme::ranef(ref))[rownames(re), ]
  expect_lt(max(abs(re - rr)) / max(abs(rr)), 1e-3)
  expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-5, ignore_attr = TRUE)
  expect_equal(unname(residuals(fit, type = "pearson", scaled = TRUE)),
               unname(residuals(ref, type = "pearson")), tolerance = 1e-3, ignore_attr = TRUE)
  expect_equal(unname(residuals(fit, type = "normalized")),
               unname(residuals(ref, type = "normalized")), tolerance = 1e-3, ignore_attr = TRUE)
  for (type in c("conditional", "marginal")) {
    a <- getVarCov(fit, individuals = "3", type = type)[["3"]]
    b <- getVarCov(ref, individuals = "3", type = type)[["3"]]
    expect_equal(unname(a), unname(unclass(b)), tolerance = 2e-3)
  }
  expect_equal(unname(unclass(getVarCov(fit))), unname(unclass(getVarCov(ref))), tolerance = 2e-3,
               ignore_attr = TRUE)
})

test_that("residual covariances for new data use the structure's variables", {
  fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight,
             correlation = corCAR1(form = ~ Time | Rat), variance = varPower(form = ~ Time))
  rows <- which(BodyWeight$Rat %in% c("1", "5"))
  nd <- as.data.frame(BodyWeight)[rows, ]
  expect_equal(residual_covariance(fit, newdata = nd), residual_covariance(fit, rows), ignore_attr = TRUE)
  # by hand: sigma^2 |t_i|^power |t_j|^power phi^|t_i - t_j| within a rat
  par <- residual_parameters(fit)
  tt <- c(1, 8, 9)
  V <- residual_covariance(fit, newdata = data.frame(Rat = "2", Time = tt))
  expect_equal(unname(V), sigma(fit)^2 * outer(tt^par[["power"]], tt^par[["power"]]) * par[["Phi"]]^abs(outer(tt, tt, "-")))
  fit2 <- lmm(distance ~ age + (1 | Subject), Orthodont, correlation = corAR1(form = ~ 1 | Subject),
              variance = varIdent(form = ~ 1 | Sex))
  nd <- as.data.frame(Orthodont)[Orthodont$Subject %in% c("M01", "F02"), ]
  expect_equal(residual_covariance(fit2, newdata = nd),
               residual_covariance(fit2, which(Orthodont$Subject %in% c("M01", "F02"))), ignore_attr = TRUE)
  expect_error(residual_covariance(fit2, newdata = data.frame(Subject = "M01", Sex = "Other")),
               class = "mlmfit_error_newdata")
})

test_that("log |R| of the engine equals that of the residual covariance matrices", {
  fit <- lmm(weight ~ Time * Diet + (Time | Rat), BodyWeight,
             correlation = corCAR1(form = ~ Time | Rat), variance = varPower(form = ~ Time))
  n <- nobs(fit)
  V <- residual_covariance(fit, seq_len(n))
  ld <- as.numeric(determinant(V / sigma(fit)^2)$modulus)
  expect_equal(fit_log_det_R(fit), ld, tolerance = 1e-8)
  expect_equal(-fit_devcomp(fit)$sum_log_weights, ld, tolerance = 1e-8)
  # and the ML deviance from first principles: y ~ N(X beta, Z G Z' + sigma^2 R)
  ml <- update(fit, REML = FALSE)
  Vm <- random_cov_all <- residual_covariance(ml, seq_len(n))
  for (r in split(seq_len(n), BodyWeight$Rat)) Vm[r, r] <- Vm[r, r] + mlmfit:::random_effect_covariance(ml, r)
  res <- spec_y(ml) - drop(spec_X(ml) %*% fixef(ml))
  dev <- as.numeric(determinant(Vm)$modulus) + sum(res * solve(Vm, res)) + n * log(2 * pi)
  expect_equal(deviance(ml), dev, tolerance = 1e-8)
})

test_that("prior weights combine with the structure as a fixed variance function", {
  w <- ifelse(Orthodont$Sex == "Female", 4, 1)
  a <- lmm(distance ~ age + (1 | Subject), Orthodont, weights = w, correlation = corAR1(form = ~ 1 | Subject))
  b <- lmm(distance ~ age + (1 | Subject), Orthodont, correlation = corAR1(form = ~ 1 | Subject),
           variance = varIdent(form = ~ 1 | Sex, fixed = c(Female = 0.5)))
  ref <- lme(distance ~ age, Orthodont, random = ~ 1 | Subject, correlation = corAR1(form = ~ 1 | Subject),
             weights = varIdent(form = ~ 1 | Sex, fixed = c(Female = 0.5)))
  expect_equal(as.numeric(logLik(a)), as.numeric(logLik(b)), tolerance = 1e-8)
  expect_nlme_agreement(b, ref)
  expect_equal(residual_parameters(b, fixed = TRUE), c(Phi = unname(residual_parameters(b)), Female = 0.5),
               tolerance = 1e-12)
  expect_equal(attr(logLik(b), "df"), 5)
})

test_that("a fixed correlation parameter is held and not counted", {
  fit <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary, correlation = corAR1(0.5, form = ~ 1 | Mare, fixed = TRUE))
  ref <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, correlation = corAR1(0.5, form = ~ 1 | Mare, fixed = TRUE))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_equal(attr(logLik(fit), "df"), attr(logLik(ref), "df"))
  expect_length(residual_parameters(fit), 0L)
  expect_equal(residual_parameters(fit, fixed = TRUE), c(Phi = 0.5))
})

test_that("summary, print and VarCorr show the structure as nlme does", {
  fit <- lmm(distance ~ age * Sex + (1 | Subject), Orthodont, variance = varIdent(form = ~ 1 | Sex),
             correlation = corAR1(form = ~ 1 | Subject))
  out <- capture.output(summary(fit))
  expect_true(any(grepl("Correlation structure: AR(1)", out, fixed = TRUE)))
  expect_true(any(grepl("Structure: Different standard deviations per stratum", out, fixed = TRUE)))
  expect_true(any(grepl("Formula: ~1 | Sex", out, fixed = TRUE)))
  i <- grep("Parameter estimates", out)
  expect_match(out[i + 1L], "Male +Female")
  expect_equal(summary(fit)$residual_parameters, residual_parameters(fit))
  expect_true(any(grepl("Phi", capture.output(VarCorr(fit)))))
  expect_true(any(grepl("Phi", capture.output(print(fit)))))
  expect_equal(residual_parameters(fit, unconstrained = TRUE),
               c(Phi = log((1 + residual_parameters(fit)[["Phi"]]) / (1 - residual_parameters(fit)[["Phi"]])),
                 Female = log(residual_parameters(fit)[["Female"]])))
})

test_that("fits without a structure are unchanged", {
  fit <- lmm(distance ~ age + (1 | Subject), Orthodont)
  expect_null(spec_residual(fit))
  expect_s3_class(fit, "mlmfit_lmm", exact = FALSE)
  expect_false(inherits(fit, "mlmfit_lmm_structured"))
  expect_length(residual_parameters(fit), 0L)
  with_structure <- update(fit, correlation = corAR1(form = ~ 1 | Subject))
  expect_equal(class(with_structure), c("mlmfit_lmm_structured", class(fit)))
  expect_null(update(with_structure, correlation = NULL)$residual)
})

test_that("bad structures are refused with classed errors", {
  f <- distance ~ age + (1 | Subject)
  expect_error(lmm(f, Orthodont, correlation = corSymm(form = ~ 1 | Subject)), class = "mlmfit_error_residual_structure")
  expect_error(lmm(f, Orthodont, correlation = ~ age), class = "mlmfit_error_residual_structure")
  # the fitted values are supported as they are (varPower()'s default), not transformed
  expect_error(lmm(f, Orthodont, variance = varPower(form = ~ log(fitted(.)))),
               class = "mlmfit_error_residual_structure")
  expect_error(lmm(f, Orthodont, variance = varIdent()), class = "mlmfit_error_residual_structure")
  expect_error(lmm(f, Orthodont, variance = varIdent(c(Girl = 2), form = ~ 1 | Sex)),
               class = "mlmfit_error_residual_structure")
  expect_error(lmm(f, Orthodont, variance = varPower(form = ~ age | Sex)), class = "mlmfit_error_residual_structure")
  expect_error(lmm(f, Orthodont, correlation = corAR1(form = ~ I(age / 3) | Subject)),
               class = "mlmfit_error_residual_structure")
  expect_error(lmm(f, Orthodont, correlation = corCAR1(form = ~ Sex == "Male" | Subject)),
               class = "mlmfit_error_residual_structure")
  # correlation groups that span several subjects
  expect_error(lmm(f, Orthodont, correlation = corAR1(form = ~ 1 | Sex)), class = "mlmfit_error_residual_grouping")
  # crossed factors: the groups must be named
  jsp <- jsp_longitudinal()
  expect_error(lmm(math ~ year + (1 | id) + (1 | year), jsp, correlation = corAR1()),
               class = "mlmfit_error_residual_grouping")
  zero <- Orthodont
  zero$age[1] <- 0
  expect_error(lmm(f, zero, variance = varPower(form = ~ age)), class = "mlmfit_error_residual_structure")
})

test_that("anova() of REML fits with a residual structure refits both parts by ML, as nlme", {
  skip_if_not_installed("nlme")
  bw <- as.data.frame(nlme::BodyWeight)
  f0 <- lmm(weight ~ Time * Diet + (Time | Rat), bw)
  f1 <- lmm(weight ~ Time + (Time | Rat), bw, correlation = nlme::corCAR1(form = ~ Time | Rat))
  a <- suppressMessages(anova(f0, f1))
  m1 <- update(f1, REML = FALSE)
  expect_equal(a[["logLik"]][a$npar == attr(logLik(m1), "df")], as.numeric(logLik(m1)), tolerance = 1e-8)
  l1 <- nlme::lme(weight ~ Time, bw, random = ~ Time | Rat, correlation = nlme::corCAR1(form = ~ Time | Rat),
                  method = "ML")
  expect_gte(as.numeric(logLik(m1)), as.numeric(logLik(l1)) - 1e-3)
})
