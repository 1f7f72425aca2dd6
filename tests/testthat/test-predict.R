# predict() against lme4's predict() within 1e-6, at lme4's estimates (see
# at_lme4_estimates()), so that optimiser differences do not enter.

test_that("sleepstudy: conditional, population-level, subsets of terms, new levels", {
  ref <- test_fit("sleepstudy")$lme4
  fit <- at_lme4_estimates(test_fit("sleepstudy")$mlm, ref)
  expect_close(predict(fit), predict(ref), rel = 0, abs = 1e-6)
  expect_identical(names(predict(fit)), names(predict(ref)))
  expect_close(predict(fit, re.form = NA), predict(ref, re.form = NA), rel = 0, abs = 1e-6)
  expect_close(predict(fit, re.form = ~0), predict(ref, re.form = ~0), rel = 0, abs = 1e-6)
  nd <- data.frame(Days = c(0, 4.5, 9, 2), Subject = c("308", "309", "new", NA))
  expect_close(predict(fit, nd, allow.new.levels = TRUE), predict(ref, nd, allow.new.levels = TRUE),
               rel = 0, abs = 1e-6)
  expect_error(predict(fit, nd[1:3, ]), class = "mlmfit_error_new_levels")
  expect_error(predict(fit, nd[1:2, "Days", drop = FALSE]), class = "mlmfit_error_newdata")
  expect_close(predict(fit, nd[1:2, "Days", drop = FALSE], re.form = NA),
               predict(ref, nd[1:2, "Days", drop = FALSE], re.form = NA), rel = 0, abs = 1e-6)
  expect_equal(predict(fit, type = "response"), predict(fit, type = "link"))
})

test_that("two terms on one factor and nested factors: re.form naming some terms", {
  sleepstudy <- lme4_data("sleepstudy")
  fm <- Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)
  ref <- lme4::lmer(fm, sleepstudy)
  fit <- at_lme4_estimates(lmm(fm, sleepstudy), ref)
  # (Days | Subject) names the columns of both terms, as lme4 reads it
  for (rf in list(~ (1 | Subject), ~ (0 + Days | Subject), ~ (Days | Subject), NULL)) {
    expect_close(predict(fit, re.form = rf), predict(ref, re.form = rf), rel = 0, abs = 1e-6)
  }
  expect_error(predict(fit, re.form = ~ (0 + I(Days^2) | Subject)), class = "mlmfit_error_argument")

  Pastes <- lme4_data("Pastes")
  ref <- lme4::lmer(strength ~ 1 + (1 | batch / cask), Pastes)
  fit <- at_lme4_estimates(lmm(strength ~ 1 + (1 | batch / cask), Pastes), ref)
  nd <- Pastes[c(1, 5, 17, 33), ]
  for (rf in list(NULL, ~ (1 | batch), ~ (1 | cask:batch))) {
    expect_close(predict(fit, nd, re.form = rf), predict(ref, nd, re.form = rf), rel = 0, abs = 1e-6)
  }
})

test_that("factors, interactions and safe prediction of poly() in new data", {
  Orthodont <- as.data.frame(nlme::Orthodont)
  fm <- distance ~ poly(age, 2) * Sex + (1 | Subject)
  ref <- lme4::lmer(fm, Orthodont)
  fit <- at_lme4_estimates(lmm(fm, Orthodont), ref)
  nd <- data.frame(age = c(8, 11, 13.5), Sex = factor(c("Female", "Male", "Female"), levels = c("Male", "Female")),
                   Subject = c("F01", "M05", "F03"))
  expect_close(predict(fit, nd), predict(ref, nd), rel = 0, abs = 1e-6)
  expect_close(predict(fit, nd, re.form = NA), predict(ref, nd, re.form = NA), rel = 0, abs = 1e-6)
})

test_that("standard errors of population-level predictions are sqrt(diag(X V X'))", {
  nels88 <- nels88_data()
  ref <- lme4::lmer(math ~ homework + ses + (homework | schid), nels88)
  fit <- at_lme4_estimates(lmm(math ~ homework + ses + (homework | schid), nels88), ref)
  nd <- data.frame(homework = c(0, 2, 7), ses = c(-1, 0, 1.5))
  p <- predict(fit, nd, re.form = NA, se.fit = TRUE)
  X <- cbind(1, nd$homework, nd$ses)
  V <- as.matrix(stats::vcov(ref))
  expect_close(p$fit, predict(ref, nd, re.form = NA), rel = 0, abs = 1e-6)
  expect_close(p$se.fit, sqrt(diag(X %*% V %*% t(X))), rel = 1e-6)
})

test_that("missing values in new data: NA by default, dropped with na.omit", {
  sleepstudy <- lme4_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  nd <- data.frame(Days = c(1, NA, 3), Subject = "308")
  p <- predict(fit, nd)
  expect_true(is.na(p[2]))
  expect_length(predict(fit, nd, na.action = na.omit), 2L)
  expect_equal(unname(predict(fit, nd, na.action = na.omit)), unname(p[-2]))
})

test_that("names of the formula found where it was written (pi, constants, functions) need not be in newdata", {
  skip_if_not_installed("lme4")
  ov <- as.data.frame(nlme::Ovary)
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), ov)
  ref <- lme4::lmer(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), ov)
  nd <- ov[c(1, 40, 200), ]
  expect_equal(predict(fit, nd), predict(ref, nd), tolerance = 1e-5)
  expect_equal(predict(fit, nd, re.form = NA), predict(ref, nd, re.form = NA), tolerance = 1e-5)
  # a constant and a function of the user, in the environment of the formula
  period <- 1.5
  wave <- function(t) sin(2 * pi * t / period)
  fit2 <- lmm(follicles ~ wave(Time) + I(Time * period) + (1 | Mare), ov)
  ref2 <- lme4::lmer(follicles ~ wave(Time) + I(Time * period) + (1 | Mare), ov)
  expect_equal(predict(fit2, nd[, c("Time", "Mare")]), predict(ref2, nd[, c("Time", "Mare")]), tolerance = 1e-5)
  # a variable found nowhere is reported
  expect_error(predict(fit2, nd[, "Mare", drop = FALSE]), "Time", class = "mlmfit_error_newdata")
  # a population-level prediction needs no grouping variable
  expect_equal(predict(fit, data.frame(Time = c(0.1, 0.5)), re.form = NA),
               predict(ref, data.frame(Time = c(0.1, 0.5)), re.form = NA), tolerance = 1e-5)
})

test_that("predictions of fits with a residual structure are nlme's predict.lme at levels 0 and 1", {
  ov <- nlme::Ovary
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), ov,
             correlation = nlme::corAR1(form = ~ 1 | Mare))
  ref <- nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), ov, random = ~ 1 | Mare,
                   correlation = nlme::corAR1(form = ~ 1 | Mare))
  nd <- ov[c(1:3, 100, 250), ]
  p <- predict(ref, nd, level = 0:1)
  expect_equal(unname(predict(fit, nd)), p$predict.Mare, tolerance = 1e-6)
  expect_equal(unname(predict(fit, nd, re.form = NA)), p$predict.fixed, tolerance = 1e-6)
  # and with a variance function and a random slope
  fit <- lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight, variance = nlme::varPower(form = ~ Time),
             correlation = nlme::corCAR1(form = ~ Time | Rat))
  ref <- nlme::lme(weight ~ Time * Diet, nlme::BodyWeight, random = ~ Time | Rat,
                   weights = nlme::varPower(form = ~ Time), correlation = nlme::corCAR1(form = ~ Time | Rat))
  nd <- as.data.frame(nlme::BodyWeight)[c(1, 50, 150), ]
  nd$Time <- c(3, 30, 70)
  p <- predict(ref, nd, level = 0:1)
  expect_equal(unname(predict(fit, nd)), p$predict.Rat, tolerance = 1e-4)
  expect_equal(unname(predict(fit, nd, re.form = NA)), p$predict.fixed, tolerance = 1e-4)
})

test_that("re.form may name part of a term, as lme4: the intercept of (Days | Subject), for any data", {
  skip_if_not_installed("lme4")
  fits <- test_fit("sleepstudy")
  fit <- at_lme4_estimates(fits$mlm, fits$lme4)
  ref <- fits$lme4
  nd <- lme4::sleepstudy[c(7, 150, 33), ]
  for (rf in list(~ (1 | Subject), ~ (0 + Days | Subject), ~ (Days | Subject), ~ (1 | Subject) + (0 + Days | Subject))) {
    expect_close(predict(fit, re.form = rf), predict(ref, re.form = rf), rel = 0, abs = 1e-6)
    expect_close(predict(fit, nd, re.form = rf), predict(ref, nd, re.form = rf), rel = 0, abs = 1e-6)
  }
  # the intercept alone, by hand
  b <- ranef(fit)$Subject
  expect_close(predict(fit, nd, re.form = ~ (1 | Subject)),
               predict(fit, nd, re.form = NA) + b[as.character(nd$Subject), "(Intercept)"], rel = 0, abs = 1e-9)
  expect_error(predict(fit, re.form = ~ (1 | Days)), class = "mlmfit_error_argument")
  # a GLMM and a fit with a residual structure take the same selections
  g <- test_fit("poisson")
  gfit <- glmm_at_lme4_estimates(g$mlm, g$lme4)
  expect_close(predict(gfit, g$data[1:5, ], re.form = ~ (1 | g), type = "response"),
               predict(g$lme4, g$data[1:5, ], re.form = ~ (1 | g), type = "response"), rel = 1e-7)
  ortho <- as.data.frame(nlme::Orthodont)
  sfit <- lmm(distance ~ age + (age | Subject), ortho, correlation = nlme::corCompSymm(form = ~ 1 | Subject))
  bs <- ranef(sfit)$Subject
  expect_close(predict(sfit, ortho[1:4, ], re.form = ~ (1 | Subject)),
               predict(sfit, ortho[1:4, ], re.form = NA) + bs[as.character(ortho$Subject[1:4]), "(Intercept)"],
               rel = 0, abs = 1e-9)
})

test_that("predict(glmm, type = 'response', se.fit = TRUE): delta-method standard errors, as emmeans gives", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("emmeans")
  cb <- test_fit("cbpp")
  fit <- glmm_at_lme4_estimates(cb$mlm, cb$lme4)
  nd <- data.frame(period = factor(1:4))
  p <- predict(fit, nd, re.form = NA, type = "response", se.fit = TRUE)
  link <- predict(fit, nd, re.form = NA, se.fit = TRUE)
  expect_equal(unname(p$fit), plogis(unname(link$fit)))
  expect_equal(unname(p$se.fit), unname(link$se.fit * dlogis(link$fit)))
  # emmeans' delta method on glmer's fit with mlmfit's vcov (the fixed-effect
  # covariances of the two packages differ by 1% on cbpp: issue 12, engine)
  em <- as.data.frame(emmeans::emmeans(cb$lme4, ~ period, type = "response", vcov. = as.matrix(vcov(fit))))
  expect_close(p$fit, em$prob, rel = 1e-8)
  expect_close(p$se.fit, em$SE, rel = 1e-8)
  # with the random effects in the predictions, a message says what the standard errors cover
  expect_message(predict(fit, lme4::cbpp[1:3, ], se.fit = TRUE), class = "mlmfit_message_se_fixed_part")
  expect_message(predict(fit, re.form = ~ (1 | herd), se.fit = TRUE), class = "mlmfit_message_se_fixed_part")
  expect_error(predict(fit, random.only = TRUE, se.fit = TRUE), class = "mlmfit_error_argument")
  # link-scale standard errors are sqrt(diag(X V X'))
  X <- stats::model.matrix(~ period, nd)
  expect_close(link$se.fit, sqrt(diag(X %*% vcov(fit) %*% t(X))), rel = 1e-10)
})

test_that("predict() warns about arguments it does not use, as lme4 does", {
  skip_if_not_installed("lme4")
  fit <- test_fit("sleepstudy")$mlm
  expect_warning(p <- predict(fit, interval = "confidence"), class = "mlmfit_warning_unused_argument")
  expect_equal(p, predict(fit))
  expect_warning(predict(test_fit("cbpp")$mlm, level = 0.9), "level")
  expect_warning(predict(fit, lme4::sleepstudy, NULL, FALSE, "link", FALSE, FALSE, stats::na.pass, 3),
                 class = "mlmfit_warning_unused_argument")
})
