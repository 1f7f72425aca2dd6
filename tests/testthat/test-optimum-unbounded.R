# Likelihoods without a maximum that lme4 and nlme report as fits (found by
# the design fuzz test, test-fuzz-designs.R): mlmfit refuses them, and the
# tests show with lme4's and nlme's own likelihoods that their optimum is
# not a maximum.

test_that("a crossed design with more random effects than rows is refused: lme4's optimum is not a maximum", {
  skip_if_not_installed("lme4")
  # design fuzz seed 20261283: 14 rows, 28 random effects, prior weights
  d <- data.frame(
    g1 = c("a1", "a1", "a2", "a3", "a3", "a3", "a3", "a3", "a4", "a4", "a4", "a4", "a5", "a5"),
    g2 = c(3L, 2L, 3L, 2L, 3L, 3L, 2L, 3L, 3L, 2L, 1L, 3L, 1L, 2L),
    g3 = c("c5", "c11", "c2", "c11", "c11", "c6", "c1", "c11", "c11", "c4", "c6", "c12", "c10", "c12"),
    x = c(3.626, 3.184, 3.509, 3.448, 3.82, 3.861, 2.19, 3.158, 4.383, 2.19, 2.475, 3.232, 3.722, 2.656),
    y = c(-0.594170894582786, 1.84921525066778, 1.1632461474733, 1.24289688843578, 2.23608577554906,
          1.93039391397348, 3.21043493861436, 0.992494941204326, 5.06084404017132, 3.2767946685969,
          3.34311005901225, 3.9643055413838, 1.77126344322216, 2.34806810404476),
    w = c(2.9, 2.19, 0.33, 2.92, 0.46, 1.52, 1.69, 1.21, 1.86, 2.18, 1.53, 1.99, 1.68, 2.52))
  f <- y ~ x + (x || g1) + (1 | g1:g2) + (1 | g3)
  err <- expect_error(lmm(f, data = d, REML = FALSE, weights = w), class = "mlmfit_error_fit")
  expect_match(conditionMessage(err), "reproduces the response exactly")

  # lme4 stops at a local optimum (deviance 43.749; mlmfit used to stop at
  # another, 43.872); its own deviance function is lower along the
  # direction where mlmfit found the residual variance vanishing, and
  # falls on by about 2 log(10) per tenfold step: no maximum.
  ref <- suppressMessages(suppressWarnings(lme4::lmer(f, data = d, REML = FALSE, weights = w)))
  devfun <- lme4::lmer(f, data = d, REML = FALSE, weights = w, devFunOnly = TRUE)
  theta_lme4 <- lme4::getME(ref, "theta")
  expect_setequal(names(err$theta), names(theta_lme4))
  direction <- err$theta[names(theta_lme4)]
  far <- vapply(10^(-3:-1), function(s) devfun(s * direction), numeric(1))
  expect_true(all(far < deviance(ref) - 1))
  expect_true(all(diff(far) < -4))
})

test_that("compound symmetry at its singular limit is refused: nlme's likelihood rises towards it without a maximum", {
  skip_if_not_installed("nlme")
  # design fuzz seed 20261363: 17 rows in 5 groups, the largest of 6 rows,
  # so rho > -1/5; the likelihood rises as rho -> -1/5
  d <- data.frame(
    g1 = rep(c("a1", "a2", "a3", "a4", "a5"), c(3, 1, 6, 2, 5)),
    x = c(2.433, 3.846, 3.384, 2.238, 2.275, 1.599, 2.947, 6.22, 3.044, 3.41, 1.433, 4.497, 2.458, 2.958,
          1.616, 2.337, 1.523),
    y = c(2.00148939814424, 0.89040871476333, 2.23570740653628, 1.86763618800127, 2.15290808393546,
          -1.34773795386075, 2.39031070754522, 3.67496892768183, 2.33223705258289, 1.31077527021049,
          1.2431237903588, 1.03380930844069, 1.35750453034696, 1.17351381380749, -0.830081000249408,
          1.28020727967915, 1.98284510988869))
  err <- expect_error(lmm(y ~ x + (x | g1), data = d, REML = FALSE, correlation = nlme::corCompSymm(form = ~ 1 | g1)),
                      class = "mlmfit_error_fit")
  expect_match(conditionMessage(err), "rises towards it without a maximum")

  # nlme's log-likelihood with rho held ever closer to -1/5 grows by about
  # log(10) / 2 per tenfold step towards it
  loglik_at <- function(gap) {
    fit <- nlme::lme(y ~ x, random = ~ 1 | g1, data = d, method = "ML",
                     correlation = nlme::corCompSymm(-0.2 + gap, form = ~ 1 | g1, fixed = TRUE))
    as.numeric(logLik(fit))
  }
  ll <- vapply(10^-(4:7), loglik_at, numeric(1))
  expect_true(all(diff(ll) > 1))
})
