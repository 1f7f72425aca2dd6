# Edge cases that fit, with a message where the user should know, each
# compared with lme4 or with a value derived by hand.
skip_if_not_installed("lme4")
nels <- nels88_data()

test_that("character, integer, double and factor grouping variables give the same fit as lme4", {
  d <- nels
  d$sch_chr <- paste0("school-", d$schid)
  d$sch_dbl <- d$schid + 0.25
  d$sch_fac <- factor(d$schid)
  ref <- lme4::lmer(math ~ homework + (homework | sch_fac), d)
  base <- lmm(math ~ homework + (homework | sch_fac), d)
  expect_lme4_agreement(base, ref)
  for (g in c("schid", "sch_chr", "sch_dbl")) {
    f <- lmm(stats::as.formula(paste("math ~ homework + (homework | ", g, ")")), d)
    expect_equal(deviance(f), deviance(base), tolerance = 1e-10)
    expect_equal(fixef(f), fixef(base), tolerance = 1e-10)
    re <- as.matrix(ranef(f)[[g]])
    ids <- as.numeric(sub("school-", "", rownames(re))) - if (g == "sch_dbl") 0.25 else 0
    expect_equal(re[order(ids), ], as.matrix(ranef(base)$sch_fac), tolerance = 1e-8, ignore_attr = TRUE)
    expect_equal(ngrps(f)[[g]], 23)
  }
})

test_that("unused factor levels are dropped: ngrps counts the levels used, as lme4 does", {
  d <- nels
  d$school <- factor(d$schid, levels = c(sort(unique(d$schid)), 1:5))  # 5 levels no pupil has
  d$race_f <- factor(d$race, levels = c(sort(unique(d$race)), 99))      # an unused predictor level
  f <- lmm(math ~ homework + race_f + (1 | school), d)
  g <- lme4::lmer(math ~ homework + race_f + (1 | school), d)
  expect_equal(ngrps(f), lme4::ngrps(g))
  expect_equal(unname(ngrps(f)), 23)
  expect_lme4_agreement(f, g)
  expect_false(any(is.na(fixef(f))))
})

test_that("collinear predictors are dropped with a message, as lme4 drops them", {
  d <- nels
  d$hw_minutes <- 60 * d$homework
  d$total <- d$homework + d$ses
  expect_message(f <- lmm(math ~ homework + ses + hw_minutes + total + (1 | schid), d),
                 class = "mlmfit_message_rank")
  g <- suppressMessages(lme4::lmer(math ~ homework + ses + hw_minutes + total + (1 | schid), d))
  expect_equal(names(fixef(f)), c("(Intercept)", "homework", "ses"))
  expect_lme4_agreement(f, g)
})

test_that("rows with missing values are dropped by na.action; nobs says how many remain", {
  d <- nels
  d$homework[c(1, 50, 51)] <- NA
  d$math[c(50, 300)] <- NA
  d$schid[400] <- NA
  f <- lmm(math ~ homework + (1 | schid), d)
  expect_equal(nobs(f), 519L - 5L)  # rows 1, 50, 51, 300 and 400
  g <- lme4::lmer(math ~ homework + (1 | schid), d)
  expect_equal(nobs(f), nobs(g))
  expect_lme4_agreement(f, g)
})

test_that("a singular fit is reported, not an error, and agrees with lme4", {
  set.seed(11)
  d <- data.frame(g = rep(1:30, each = 6), x = rnorm(180))
  d$y <- 2 + 0.5 * d$x + rnorm(180)  # no group effect at all
  expect_message(f <- lmm(y ~ x + (1 | g), d, REML = FALSE), class = "mlmfit_message_singular")
  g <- suppressMessages(lme4::lmer(y ~ x + (1 | g), d, REML = FALSE))
  expect_true(is_singular(f))
  expect_equal(is_singular(f), lme4::isSingular(g))
  expect_equal(unname(fit_theta(f)), 0)
  expect_lme4_agreement(f, g)
  expect_output(print(f), "singular")
  # With no random effect, beta is the least-squares fit and sigma the ML residual SD.
  l <- stats::lm(y ~ x, d)
  expect_equal(unname(fixef(f)), unname(coef(l)), tolerance = 1e-8)
  expect_equal(sigma(f), sqrt(mean(residuals(l)^2)), tolerance = 1e-8)
})

test_that("random-effects-only models agree with lme4", {
  f <- lmm(math ~ 0 + (1 | schid), nels, REML = FALSE)
  g <- lme4::lmer(math ~ 0 + (1 | schid), nels, REML = FALSE)
  expect_length(fixef(f), 0L)
  expect_lme4_agreement(f, g)
  # REML without fixed effects is ML (no fixed effects to integrate out).
  h <- lmm(math ~ 0 + (1 | schid), nels)
  expect_equal(deviance(h), deviance(f), tolerance = 1e-8)
  d <- nels
  d$c_math <- d$math - mean(d$math)
  f <- lmm(c_math ~ -1 + (homework | schid), d, REML = FALSE)
  g <- lme4::lmer(c_math ~ -1 + (homework | schid), d, REML = FALSE)
  expect_lme4_agreement(f, g)
})

test_that("predictors on scales from 1e-8 to 1e8 give the rescaled fit", {
  base <- lmm(math ~ homework + ses + (homework | schid), nels)
  expect_lme4_agreement(base, lme4::lmer(math ~ homework + ses + (homework | schid), nels))
  vc_base <- as.data.frame(VarCorr(base))
  for (s in c(1e-8, 1e-4, 1e4, 1e8)) {
    d <- nels
    d$homework <- d$homework * s
    f <- lmm(math ~ homework + ses + (homework | schid), d)
    # beta and the slope's SD scale by 1/s; REML's log|R_X|^2 gains 2 log(s).
    expect_equal(fixef(f) * c(1, s, 1), fixef(base), tolerance = 1e-6)
    expect_equal(sqrt(diag(vcov(f))) * c(1, s, 1), sqrt(diag(vcov(base))), tolerance = 1e-6)
    vc <- as.data.frame(VarCorr(f))
    expect_equal(vc$sdcor * c(1, s, 1, 1), vc_base$sdcor, tolerance = 1e-6)
    expect_equal(deviance(f), deviance(base) + 2 * log(s), tolerance = 1e-8)
    expect_equal(fitted(f), fitted(base), tolerance = 1e-8)
  }
  # the response: sigma and beta scale by s, the deviance gains 2 (n - p) log(s)
  for (s in c(1e-8, 1e8)) {
    d <- nels
    d$math <- d$math * s
    f <- lmm(math ~ homework + ses + (homework | schid), d)
    expect_equal(fixef(f) / s, fixef(base), tolerance = 1e-6)
    expect_equal(sigma(f) / s, sigma(base), tolerance = 1e-6)
    expect_equal(deviance(f), deviance(base) + 2 * (519 - 3) * log(s), tolerance = 1e-8)
  }
})

test_that("many groups with one or two observations each agree with lme4", {
  set.seed(5)
  k <- 400
  sizes <- sample(1:2, k, replace = TRUE)
  d <- data.frame(g = rep(seq_len(k), sizes))
  d$x <- rnorm(nrow(d))
  d$y <- 1 + 0.5 * d$x + rnorm(k, sd = 1.2)[d$g] + rnorm(nrow(d))
  for (reml in c(TRUE, FALSE)) {
    f <- lmm(y ~ x + (1 | g), d, REML = reml)
    g <- lme4::lmer(y ~ x + (1 | g), d, REML = reml)
    expect_lme4_agreement(f, g)
    expect_equal(unname(ngrps(f)), k)
  }
})

test_that("a response constant within every group is refused: lme4 gives no proper optimum either", {
  set.seed(8)
  d <- data.frame(g = rep(1:25, each = 4), x = rnorm(100))
  d$school_mean <- rnorm(25)[d$g]
  err <- expect_error(lmm(school_mean ~ x + (1 | g), d), class = "mlmfit_error_response")
  expect_equal(err$group, "g")
  expect_match(conditionMessage(err), "constant within every level of `g`", fixed = TRUE)
  # The residual variance tends to zero: lme4 stops with a convergence
  # warning, at a residual SD that is zero for every practical purpose.
  lme4_warnings <- character()
  g <- withCallingHandlers(lme4::lmer(school_mean ~ x + (1 | g), d), warning = function(w) {
    lme4_warnings <<- c(lme4_warnings, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  expect_gt(length(lme4_warnings), 0)
  expect_lt(sigma(g), 1e-3 * sd(d$school_mean))
  # A random slope alone cannot reproduce it: that model fits, as in lme4.
  f <- suppressMessages(lmm(school_mean ~ x + (0 + x | g), d, REML = FALSE))
  h <- suppressMessages(lme4::lmer(school_mean ~ x + (0 + x | g), d, REML = FALSE))
  expect_lt(deviance(f) - deviance(h), 1e-4)
})

test_that("the likelihood flat in theta (fixed effects that separate every group) is refused", {
  # Two groups and a group-level predictor: the intercept and z take up all
  # between-group variation, so no value of the group variance is better
  # than another (lme4's deviance function is constant in theta).
  d <- data.frame(g = c(1, 1, 2, 2), x = c(4.6, 4.3, 7.0, 5.8), z = c(-1.3, -1.3, -1.9, -1.9),
                  y = c(3.3, 3.5, 3.4, 5.2))
  expect_error(lmm(y ~ x + z + (1 | g), d), class = "mlmfit_error_identifiability")
  devfun <- lme4::lmer(y ~ x + z + (1 | g), d, devFunOnly = TRUE)
  expect_equal(devfun(0.1), devfun(10), tolerance = 1e-8)
})

test_that("a zero diagonal of T is not taken for a minimum: the fit moves inside as lme4 does", {
  # A scalar random slope on data where theta = 0 is a stationary point but
  # a local maximum of the deviance.
  set.seed(1)
  k <- 30
  d <- data.frame(g = rep(1:k, each = 5))
  d$z <- rnorm(k)[d$g]
  d$y <- rnorm(k)[d$g]
  d$x <- rnorm(k * 5)
  f <- lmm(y ~ x + (0 + x | g), d)
  g <- lme4::lmer(y ~ x + (0 + x | g), d)
  expect_gt(unname(fit_theta(f)), 0.01)
  expect_lme4_agreement(f, g)
})
