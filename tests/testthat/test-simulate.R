# simulate() gives lme4's draws for the same seed (at lme4's estimates);
# refit() gives the fit to the new response.

test_that("simulate() reproduces lme4's simulate() for a seed", {
  sleepstudy <- lme4_data("sleepstudy")
  for (fm in list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (1 | Subject) + (0 + Days | Subject))) {
    ref <- lme4::lmer(fm, sleepstudy)
    fit <- at_lme4_estimates(lmm(fm, sleepstudy), ref)
    a <- simulate(fit, nsim = 3, seed = 17)
    b <- simulate(ref, nsim = 3, seed = 17)
    expect_identical(names(a), names(b))
    expect_identical(rownames(a), rownames(b))
    expect_close(as.matrix(a), as.matrix(b), rel = 0, abs = 1e-6)
    expect_close(as.matrix(simulate(fit, nsim = 2, seed = 3, re.form = NULL)),
                 as.matrix(simulate(ref, nsim = 2, seed = 3, re.form = NULL)), rel = 0, abs = 1e-6)
    expect_identical(attr(a, "seed"), attr(b, "seed"))
  }
  Pastes <- lme4_data("Pastes")
  ref <- lme4::lmer(strength ~ 1 + (1 | batch / cask), Pastes)
  fit <- at_lme4_estimates(lmm(strength ~ 1 + (1 | batch / cask), Pastes), ref)
  expect_close(as.matrix(simulate(fit, nsim = 2, seed = 5)), as.matrix(simulate(ref, nsim = 2, seed = 5)),
               rel = 0, abs = 1e-6)
  expect_close(as.matrix(simulate(fit, nsim = 2, seed = 5, re.form = ~ (1 | batch))),
               as.matrix(simulate(ref, nsim = 2, seed = 5, re.form = ~ (1 | batch))), rel = 0, abs = 1e-6)
})

test_that("refit() equals a fresh fit to the new response, from lme4's generic too", {
  nels88 <- nels88_data()
  fit <- lmm(math ~ homework + (homework | schid), nels88)
  y <- simulate(fit, seed = 9)$sim_1
  d2 <- nels88
  d2$math <- y
  fresh <- lmm(math ~ homework + (homework | schid), d2)
  ref <- lme4::lmer(math ~ homework + (homework | schid), d2)
  new <- refit(fit, y)
  expect_equal(deviance(new), deviance(fresh), tolerance = 1e-8)
  expect_equal(fixef(new), fixef(fresh), tolerance = 1e-6)
  expect_lme4_agreement(new, ref)
  expect_equal(unname(fitted(new)), unname(fitted(fresh)), tolerance = 1e-6)
  expect_equal(lme4::refit(fit, y)$theta, new$theta)
  expect_equal(refit(fit, data.frame(y = y))$theta, new$theta)
  ml <- lmm(math ~ homework + (homework | schid), nels88, REML = FALSE)
  expect_false(refit(ml, y)$REML)
  expect_error(refit(fit, y[-1]), class = "mlmfit_error_argument")
  expect_error(refit(fit, c(NA, y[-1])), class = "mlmfit_error_argument")
})
