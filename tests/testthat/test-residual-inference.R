# Inference on fits with a residual correlation or variance structure:
# profile-likelihood intervals (checked as likelihood-ratio tests with
# nlme), Satterthwaite's degrees of freedom (against lmerTest on a model
# that compound symmetry reproduces), ranova() (against nlme's gls/lme
# comparison), Wald intervals, and the refusal of Kenward-Roger.

library(nlme)

ovary_formula <- follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time)

# The ML log-likelihood of the Ovary model (random intercept of SD tau for
# each mare, AR(1) residuals in the order of the rows) at the GLS estimate
# of the fixed effects, from the marginal covariance of each mare.
ovary_ml_loglik <- function(tau, sigma, phi) {
  X <- model.matrix(ovary_formula, Ovary)
  y <- Ovary$follicles
  groups <- split(seq_len(nrow(Ovary)), Ovary$Mare)
  V <- lapply(groups, function(i) {
    m <- length(i)
    tau^2 + sigma^2 * phi^abs(outer(seq_len(m), seq_len(m), "-"))
  })
  xvx <- 0
  xvy <- 0
  for (g in seq_along(groups)) {
    i <- groups[[g]]
    xvx <- xvx + crossprod(X[i, ], solve(V[[g]], X[i, ]))
    xvy <- xvy + crossprod(X[i, ], solve(V[[g]], y[i]))
  }
  beta <- solve(xvx, xvy)
  total <- 0
  for (g in seq_along(groups)) {
    i <- groups[[g]]
    r <- y[i] - X[i, ] %*% beta
    total <- total + as.numeric(determinant(V[[g]])$modulus) + sum(r * solve(V[[g]], r))
  }
  -0.5 * (total + nrow(X) * log(2 * pi))
}

test_that("profile limits of a structured fit are where the likelihood-ratio statistic is 3.84 (nlme)", {
  fit <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary, correlation = corAR1(form = ~ 1 | Mare))
  ci <- confint(fit)
  expect_equal(rownames(ci), c(".sig01", ".sigma", "Phi", "(Intercept)", "sin(2 * pi * Time)", "cos(2 * pi * Time)"))
  full <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, correlation = corAR1(form = ~ 1 | Mare), method = "ML")
  q <- qchisq(0.95, 1)
  lr <- function(ref) 2 * (as.numeric(logLik(full)) - as.numeric(logLik(ref)))
  # Phi held at each limit, everything else re-estimated
  for (phi in ci["Phi", ]) {
    ref <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, method = "ML",
               correlation = corAR1(phi, form = ~ 1 | Mare, fixed = TRUE))
    expect_equal(lr(ref), q, tolerance = 1e-4)
  }
  # sigma or the random intercept's SD held at each limit: the
  # log-likelihood written out by hand, maximised over the other two
  ll_max <- as.numeric(logLik(full))
  expect_equal(ovary_ml_loglik(sqrt(getVarCov(full)[1]), full$sigma,
                               coef(full$modelStruct$corStruct, unconstrained = FALSE)), ll_max, tolerance = 1e-8)
  start <- c(log(2.8), atanh(0.6))
  for (s in ci[".sigma", ]) {
    opt <- optim(start, function(x) -ovary_ml_loglik(exp(x[1]), s, tanh(x[2])), control = list(reltol = 1e-12))
    expect_equal(2 * (ll_max + opt$value), q, tolerance = 1e-4)
  }
  for (tau in ci[".sig01", ]) {
    opt <- optim(c(log(3.6), atanh(0.6)), function(x) -ovary_ml_loglik(tau, exp(x[1]), tanh(x[2])),
                 control = list(reltol = 1e-12))
    expect_equal(2 * (ll_max + opt$value), q, tolerance = 1e-4)
  }
  # a fixed effect held at each limit (moved into the response)
  for (b in ci["sin(2 * pi * Time)", ]) {
    d <- Ovary
    d$y0 <- d$follicles - b * sin(2 * pi * d$Time)
    ref <- lme(y0 ~ cos(2 * pi * Time), d, random = ~ 1 | Mare, method = "ML",
               correlation = corAR1(form = ~ 1 | Mare))
    expect_equal(lr(ref), q, tolerance = 1e-4)
  }
  # the structure widens the intervals of the fixed effects: the profile
  # that held Phi at its estimate would be narrower than this one
  expect_lt(ci[".sig01", 1], sqrt(VarCorr(fit)$Mare[1]))
  expect_gt(ci[".sig01", 2], sqrt(VarCorr(fit)$Mare[1]))
})

test_that("profiles over varIdent ratios and with a random slope reach the likelihood-ratio limit", {
  fit <- lmm(distance ~ age + Sex + (1 | Subject), Orthodont, REML = FALSE, variance = varIdent(form = ~ 1 | Sex))
  ci <- confint(fit, parm = c("Female", "age"))
  full <- lme(distance ~ age + Sex, Orthodont, random = ~ 1 | Subject, method = "ML",
              weights = varIdent(form = ~ 1 | Sex))
  for (r in ci["Female", ]) {
    ref <- lme(distance ~ age + Sex, Orthodont, random = ~ 1 | Subject, method = "ML",
               weights = varIdent(form = ~ 1 | Sex, fixed = c(Female = r)))
    expect_equal(2 * (as.numeric(logLik(full)) - as.numeric(logLik(ref))), qchisq(0.95, 1), tolerance = 1e-4)
  }
  expect_lt(ci["Female", 1], residual_parameters(fit)[["Female"]])
  expect_gt(ci["Female", 2], residual_parameters(fit)[["Female"]])
})

test_that("Satterthwaite's df account for the structure: compound symmetry reproduces lmerTest's nested model", {
  skip_if_not_installed("lmerTest")
  # a random intercept for each occasion group nested in subjects is a
  # compound-symmetric residual correlation within the groups (Rho > 0)
  d <- as.data.frame(Orthodont)
  d$occ <- factor(paste(d$Subject, d$age >= 11))
  fit <- lmm(distance ~ age + Sex + (1 | Subject), d, correlation = corCompSymm(form = ~ 1 | occ))
  ref <- lmerTest::lmer(distance ~ age + Sex + (1 | Subject) + (1 | occ), d)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-6)
  ours <- coef(summary(fit))
  theirs <- coef(summary(ref))
  expect_equal(ours[, "df"], theirs[, "df"], tolerance = 1e-4)
  expect_equal(ours[, "Pr(>|t|)"], theirs[, "Pr(>|t|)"], tolerance = 1e-4)
  a <- anova(fit)
  b <- anova(ref)
  expect_equal(a$DenDF, b$DenDF, tolerance = 1e-4)
  expect_equal(a$`F value`, b$`F value`, tolerance = 1e-4)
  # holding Rho at its estimate would give age 80 df (the occasions'
  # within-group contrasts); estimated with the other variance parameters,
  # Rho brings them down to lmerTest's 46
  expect_lt(ours["age", "df"], 50)
  expect_equal(ours["SexFemale", "df"], 25, tolerance = 1e-3)
})

test_that("Kenward-Roger is refused for structured fits; Wald intervals cover the fixed effects only", {
  fit <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary, correlation = corAR1(form = ~ 1 | Mare))
  expect_error(anova(fit, ddf = "Kenward-Roger"), class = "mlmfit_error_ddf")
  expect_error(summary(fit, ddf = "Kenward-Roger"), class = "mlmfit_error_ddf")
  ci <- confint(fit, method = "Wald")
  expect_true(all(is.na(ci[c(".sig01", ".sigma", "Phi"), ])))
  se <- sqrt(diag(vcov(fit)))
  expect_equal(ci[names(fixef(fit)), 2], fixef(fit) + qnorm(0.975) * se)
  # vcov is nlme's (the fixed effects given the variance parameters)
  ref <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, correlation = corAR1(form = ~ 1 | Mare))
  expect_equal(unname(se), unname(sqrt(diag(vcov(ref)))), tolerance = 2e-3)
})

test_that("ranova() keeps the structure; without random effects the reduced model is nlme's gls", {
  fit <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary, correlation = corAR1(form = ~ 1 | Mare))
  tab <- ranova(fit)
  full <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, correlation = corAR1(form = ~ 1 | Mare))
  red <- gls(ovary_formula, Ovary, correlation = corAR1(form = ~ 1 | Mare))
  ref <- anova(red, full)
  expect_equal(tab$LRT[2], ref$L.Ratio[2], tolerance = 1e-4)
  expect_equal(tab$Df[2], 1)
  expect_equal(tab$npar, ref$df[2:1])
  expect_equal(tab$`Pr(>Chisq)`[2], ref$`p-value`[2], tolerance = 1e-3)

  # a reduced term keeps the structure too
  fit2 <- lmm(weight ~ Time + (Time | Rat), BodyWeight, REML = FALSE, variance = varPower(form = ~ Time))
  tab2 <- ranova(fit2)
  red2 <- lmm(weight ~ Time + (1 | Rat), BodyWeight, REML = FALSE, variance = varPower(form = ~ Time))
  expect_equal(tab2$logLik[2], as.numeric(logLik(red2)), tolerance = 1e-6)
  ref2 <- lme(weight ~ Time, BodyWeight, random = ~ 1 | Rat, method = "ML", weights = varPower(form = ~ Time))
  expect_equal(tab2$logLik[2], as.numeric(logLik(ref2)), tolerance = 1e-3)

  ov <- as.data.frame(Ovary)
  ov$w <- rep(1:2, length.out = nrow(ov))
  fitw <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), ov, weights = w, correlation = corAR1(form = ~ 1 | Mare))
  expect_error(ranova(fitw), class = "mlmfit_error_anova")
})

test_that("leverages are refused for structured fits; augment() leaves them out", {
  fit <- lmm(update(ovary_formula, . ~ . + (1 | Mare)), Ovary, correlation = corAR1(form = ~ 1 | Mare))
  expect_error(hatvalues(fit), class = "mlmfit_error_residual_structure")
  expect_error(cooks.distance(fit), class = "mlmfit_error_residual_structure")
  a <- generics::augment(fit)
  expect_false(any(c(".hat", ".cooksd") %in% names(a)))
  ref <- lme(ovary_formula, Ovary, random = ~ 1 | Mare, correlation = corAR1(form = ~ 1 | Mare))
  expect_equal(a$.fitted, as.vector(fitted(ref)), tolerance = 1e-5)
})
