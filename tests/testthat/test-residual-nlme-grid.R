# Agreement with nlme::lme on every combination of {random intercept, random
# slope} x {corAR1, corCAR1, corCompSymm, varIdent, varPower, varExp, and
# varPower() on the fitted values} x {REML, ML} on nlme's data sets. The
# contract: log-likelihood within 1e-3 of nlme's, or higher, with the same
# number of parameters. nlme's reference values are computed live (each fit
# takes milliseconds); the default tier runs two data sets, the full tier all.
#
# Measured (nlme 3.1-162): 168 combinations, 166 compared; mlmfit's
# log-likelihood is at most 4.9e-5 below nlme's (varPower() on the fitted
# values, where both stop a fixed-point iteration at a relative tolerance
# of 1e-6), and higher by more than 1e-3 in three (nlme stops early):
#   Oats, random slope, corCompSymm, ML: 3.8e-3 higher;
#   Orange, random intercept, varPower() on the fitted values, ML: 0.084
#     higher (nlme's fixed-point iteration stops at another point);
#   Orange, random slope, corCAR1, ML: 0.055 higher.
# nlme fails (an error, with returnObject = TRUE too) on Orange, random
# slope, corCompSymm, REML and ML ("NA/NaN/Inf in foreign function call"):
# mlmfit fits them. nlme warns that it did not converge on 25 more, where
# mlmfit is equal or higher: nlme_not_converged below.
# corCompSymm with a random intercept on the same groups is not identified
# (only the sum of the intercept variance and rho sigma^2 is): both packages
# reach the same maximum of the likelihood along that ridge.
nlme_not_converged <- c(
  "BodyWeight intercept corAR1 REML", "Ovary slope corCAR1 ML",
  "Dialyzer slope corAR1 REML", "Dialyzer slope corAR1 ML", "Dialyzer slope corCAR1 REML", "Dialyzer slope corCAR1 ML",
  paste("Oats slope", rep(c("corAR1", "corCAR1", "corCompSymm", "varIdent", "varExp"), each = 2), c("REML", "ML")),
  "Orange intercept varExp REML", "Orange slope corCAR1 REML",
  paste("Orange slope", rep(c("corAR1", "corCompSymm", "varIdent", "varExp"), each = 2), c("REML", "ML")))
mlmfit_higher <- c("Oats slope corCompSymm ML", "Orange intercept varPower_fitted ML", "Orange slope corCAR1 ML")

nlme_grid_data <- function() {
  d <- list(
    Orthodont = list(data = nlme::Orthodont, fixed = distance ~ age * Sex, group = "Subject", slope = "age",
                     time = "age", strata = "Sex", covariate = "age"),
    BodyWeight = list(data = nlme::BodyWeight, fixed = weight ~ Time * Diet, group = "Rat", slope = "Time",
                      time = "Time", strata = "Diet", covariate = "Time"),
    Ovary = list(data = nlme::Ovary, fixed = follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), group = "Mare",
                 slope = "sin(2 * pi * Time)", time = "Time", strata = "half", covariate = "time1"),
    Dialyzer = list(data = nlme::Dialyzer, fixed = rate ~ (pressure + I(pressure^2)) * QB, group = "Subject",
                    slope = "pressure", time = "pressure", strata = "QB", covariate = "pressure"),
    Oats = list(data = nlme::Oats, fixed = yield ~ nitro + Variety, group = "Block", slope = "nitro",
                time = "nitro", time_group = "Block/Variety", strata = "Variety", covariate = "nitro1"),
    Orange = list(data = datasets::Orange, fixed = circumference ~ age, group = "Tree", slope = "age",
                  time = "age", strata = "late", covariate = "age")
  )
  # strata and positive covariates where the data set has none
  d$Ovary$data$half <- factor(d$Ovary$data$Time > 0.5)
  d$Ovary$data$time1 <- d$Ovary$data$Time + 0.5
  d$Oats$data$nitro1 <- d$Oats$data$nitro + 0.1
  d$Orange$data$late <- factor(d$Orange$data$age > 1000)
  d
}

nlme_grid_structures <- function(s) {
  f <- function(...) stats::as.formula(paste(...), env = globalenv())
  time_group <- if (is.null(s$time_group)) s$group else s$time_group
  list(corAR1 = list(correlation = nlme::corAR1(form = f("~ 1 |", s$group))),
       corCAR1 = list(correlation = nlme::corCAR1(form = f("~", s$time, "|", time_group))),
       corCompSymm = list(correlation = nlme::corCompSymm(form = f("~ 1 |", s$group))),
       varIdent = list(variance = nlme::varIdent(form = f("~ 1 |", s$strata))),
       varPower = list(variance = nlme::varPower(form = f("~", s$covariate))),
       varExp = list(variance = nlme::varExp(form = f("~", s$covariate))),
       varPower_fitted = list(variance = nlme::varPower()))
}

# One line per combination: both log-likelihoods, the df, warnings.
nlme_grid <- function(sets) {
  rows <- list()
  for (name in sets) {
    s <- nlme_grid_data()[[name]]
    data <- as.data.frame(s$data)
    for (re in c("intercept", "slope")) {
      term <- if (re == "intercept") "1" else s$slope
      formula <- stats::update(s$fixed, stats::as.formula(paste(". ~ . + (", term, "|", s$group, ")")))
      random <- stats::as.formula(paste("~", term, "|", s$group))
      structures <- nlme_grid_structures(s)
      for (st in names(structures)) for (reml in c(TRUE, FALSE)) {
        a <- structures[[st]]
        warnings <- character()
        fit <- withCallingHandlers(
          suppressMessages(lmm(formula, data, REML = reml, correlation = a$correlation, variance = a$variance)),
          warning = function(w) {
            warnings <<- c(warnings, conditionMessage(w))
            invokeRestart("muffleWarning")
          })
        nlme_warned <- FALSE
        ref <- tryCatch(withCallingHandlers(
          nlme::lme(s$fixed, s$data, random = random, correlation = a$correlation, weights = a$variance,
                    method = if (reml) "REML" else "ML", control = nlme::lmeControl(returnObject = TRUE)),
          warning = function(w) {
            nlme_warned <<- TRUE
            invokeRestart("muffleWarning")
          }), error = function(e) NULL)
        rows[[length(rows) + 1L]] <- data.frame(
          data = name, re = re, structure = st, REML = reml, mlmfit = as.numeric(logLik(fit)),
          nlme = if (is.null(ref)) NA_real_ else as.numeric(logLik(ref)),
          df = attr(logLik(fit), "df"), df_nlme = if (is.null(ref)) NA_integer_ else attr(logLik(ref), "df"),
          warnings = paste(warnings, collapse = "; "), nlme_converged = !is.null(ref) && !nlme_warned)
      }
    }
  }
  out <- do.call(rbind, rows)
  out$difference <- out$mlmfit - out$nlme
  out
}

expect_grid_agreement <- function(grid) {
  label <- paste(grid$data, grid$re, grid$structure, ifelse(grid$REML, "REML", "ML"))
  for (k in seq_len(nrow(grid))) {
    expect_identical(grid$warnings[k], "", info = label[k])
    if (is.na(grid$nlme[k])) next  # nlme failed (see the list above)
    expect_gt(grid$difference[k], -1e-3, label = label[k])
    expect_equal(grid$df[k], grid$df_nlme[k], info = label[k])
  }
  expect_true(all(is.finite(grid$mlmfit)))
  # nlme failed or did not converge, and mlmfit is higher by more than
  # 1e-3, only where the list above says so
  expect_true(all(label[!grid$nlme_converged] %in% nlme_not_converged),
              info = paste(setdiff(label[!grid$nlme_converged], nlme_not_converged), collapse = ", "))
  higher <- label[!is.na(grid$difference) & grid$difference > 1e-3]
  expect_true(all(higher %in% mlmfit_higher), info = paste(setdiff(higher, mlmfit_higher), collapse = ", "))
}

test_that("structured fits agree with nlme on Orthodont and BodyWeight (every combination)", {
  skip_if_not_installed("nlme")
  grid <- nlme_grid(c("Orthodont", "BodyWeight"))
  expect_equal(nrow(grid), 2 * 2 * 7 * 2)
  expect_grid_agreement(grid)
})

test_that("structured fits agree with nlme on Ovary, Dialyzer, Oats and Orange (every combination)", {
  skip_if_not_installed("nlme")
  skip_unless_full_tests()
  grid <- nlme_grid(c("Ovary", "Dialyzer", "Oats", "Orange"))
  expect_equal(nrow(grid), 4 * 2 * 7 * 2)
  expect_grid_agreement(grid)
})

test_that("varPower() and varExp() on the fitted values iterate with the fit as nlme does", {
  skip_if_not_installed("nlme")
  bw <- as.data.frame(nlme::BodyWeight)
  fit <- lmm(weight ~ Time * Diet + (Time | Rat), bw, variance = nlme::varPower())
  ref <- nlme::lme(weight ~ Time * Diet, nlme::BodyWeight, random = ~ Time | Rat, weights = nlme::varPower())
  expect_nlme_agreement(fit, ref)
  # the covariate is the fitted values of the fit, X beta + Z b
  expect_equal(mlmfit:::spec_residual(fit)$variance$covariate, unname(fitted(fit)), tolerance = 1e-5)
  expect_equal(unname(residuals(fit, type = "pearson")),
               unname(residuals(fit) / abs(fitted(fit))^residual_parameters(fit)[["power"]]), tolerance = 1e-5)
  O <- as.data.frame(nlme::Orthodont)
  fit <- lmm(distance ~ age * Sex + (1 | Subject), O, variance = nlme::varExp(), REML = FALSE)
  ref <- nlme::lme(distance ~ age * Sex, nlme::Orthodont, random = ~ 1 | Subject, weights = nlme::varExp(),
                   method = "ML")
  expect_nlme_agreement(fit, ref)
  # refits iterate the covariate again; profiles hold it
  expect_equal(deviance(refit(fit, mlmfit:::spec_y(fit))), deviance(fit), tolerance = 1e-6)
  ci <- confint(fit, parm = "expon", method = "profile")
  expect_true(all(is.finite(ci)))
})

test_that("varConstPower() agrees with nlme, and says so where the likelihood has no finite maximum", {
  skip_if_not_installed("nlme")
  # nlme reaches its iteration limit where the constant grows without bound
  # (a warning with returnObject = TRUE)
  lme_fit <- function(fixed, data, random, weights, reml) {
    suppressWarnings(nlme::lme(fixed, data, random = random, weights = weights, method = if (reml) "REML" else "ML",
                               control = nlme::lmeControl(returnObject = TRUE)))
  }
  dz <- as.data.frame(nlme::Dialyzer)
  for (reml in c(TRUE, FALSE)) {
    for (form in list(~ pressure, ~ fitted(.))) {
      vf <- nlme::varConstPower(form = form)
      # with the fitted values the constant goes to its bound (about 1e-7
      # or below, as rounding decides): the message that says so may come
      fit <- expect_silent(withCallingHandlers(
        lmm(rate ~ (pressure + I(pressure^2)) * QB + (1 | Subject), dz, variance = vf, REML = reml),
        mlmfit_message_singular = function(m) invokeRestart("muffleMessage")))
      ref <- lme_fit(rate ~ (pressure + I(pressure^2)) * QB, nlme::Dialyzer, ~ 1 | Subject, vf, reml)
      expect_gt(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-3)
      expect_equal(attr(logLik(fit), "df"), attr(logLik(ref), "df"))
      expect_named(residual_parameters(fit), c("const", "power"))
    }
  }
  # the multiplier is const + |v|^power
  fit <- lmm(rate ~ (pressure + I(pressure^2)) * QB + (1 | Subject), dz, variance = nlme::varConstPower(form = ~ pressure))
  par <- residual_parameters(fit)
  expect_equal(unname(residuals(fit, type = "pearson")),
               unname(residuals(fit) / (par[["const"]] + abs(dz$pressure)^par[["power"]])), tolerance = 1e-8)
  # with a random slope (Dialyzer, BodyWeight) the constant grows without
  # bound and sigma shrinks: a warning, not a silent answer, at a
  # likelihood as high as where nlme stops
  bw <- as.data.frame(nlme::BodyWeight)
  expect_warning(fit <- lmm(weight ~ Time * Diet + (Time | Rat), bw, variance = nlme::varConstPower(form = ~ Time)),
                 class = "mlmfit_warning_convergence")
  ref <- lme_fit(weight ~ Time * Diet, nlme::BodyWeight, ~ Time | Rat, nlme::varConstPower(form = ~ Time), TRUE)
  expect_gt(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-3)
  expect_warning(lmm(rate ~ (pressure + I(pressure^2)) * QB + (pressure | Subject), dz,
                     variance = nlme::varConstPower(form = ~ pressure)),
                 class = "mlmfit_warning_convergence")
})
