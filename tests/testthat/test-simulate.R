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

test_that("simulate() for newdata: lme4's draws with re.form, use.u and new levels, in any row order", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4_data("sleepstudy")
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
  fit <- at_lme4_estimates(lmm(Reaction ~ Days + (Days | Subject), sleepstudy), ref)
  nd <- sleepstudy[c(100, 3, 57, 180, 20, 101), ]
  same <- function(...) {
    a <- simulate(fit, nsim = 3, seed = 21, newdata = nd, ...)
    b <- simulate(ref, nsim = 3, seed = 21, newdata = nd, ...)
    expect_identical(dim(a), c(nrow(nd), 3L))
    expect_identical(rownames(a), rownames(nd))
    expect_close(as.matrix(a), as.matrix(b), rel = 0, abs = 1e-6)
  }
  same()
  same(re.form = NULL)
  same(re.form = NA)
  same(use.u = TRUE)
  same(use.u = FALSE)
  # the conditional modes held: the draws are the predictions plus residuals
  sims <- simulate(fit, seed = 21, newdata = nd, use.u = TRUE)$sim_1
  set.seed(21)
  expect_close(sims, predict(ref, nd) + sigma(ref) * rnorm(nrow(nd)), rel = 0, abs = 1e-6)
  # new subjects (one sorting before the known ones): drawn, as lme4 draws them
  nd_new <- data.frame(Days = c(1, 2, 3, 4), Subject = c("308", "new", "300", "new"))
  expect_error(simulate(fit, newdata = nd_new), class = "mlmfit_error_new_levels")
  expect_close(as.matrix(simulate(fit, nsim = 2, seed = 3, newdata = nd_new, allow.new.levels = TRUE)),
               as.matrix(simulate(ref, nsim = 2, seed = 3, newdata = nd_new, allow.new.levels = TRUE)),
               rel = 0, abs = 1e-6)
  # use.u and re.form together are refused, as by lme4
  expect_error(simulate(fit, use.u = TRUE, re.form = NA), class = "mlmfit_error_argument")
  expect_error(simulate(ref, use.u = TRUE, re.form = NA))
})

test_that("simulate() for newdata with numeric group codes draws lme4's levels in numeric order", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4_data("sleepstudy")
  sleepstudy$id <- as.numeric(as.character(sleepstudy$Subject)) * 1000
  ref <- lme4::lmer(Reaction ~ Days + (Days | id), sleepstudy)
  fit <- at_lme4_estimates(lmm(Reaction ~ Days + (Days | id), sleepstudy), ref)
  nd <- sleepstudy[c(150, 3, 57, 20), ]
  nd$id[4] <- 1000   # a new code, below the others
  for (u in c(TRUE, FALSE)) {
    expect_close(as.matrix(simulate(fit, nsim = 2, seed = 8, newdata = nd, use.u = u, allow.new.levels = TRUE)),
                 as.matrix(simulate(ref, nsim = 2, seed = 8, newdata = nd, use.u = u, allow.new.levels = TRUE)),
                 rel = 0, abs = 1e-6)
  }
})

test_that("GLMM simulations are glmer's draws for a seed: binary, Poisson, cbind, newdata", {
  skip_if_not_installed("lme4")
  cb <- test_fit("cbpp")
  fit <- glmm_at_lme4_estimates(cb$mlm, cb$lme4)
  for (u in c(TRUE, FALSE)) {
    a <- simulate(fit, seed = 5, use.u = u)
    b <- simulate(cb$lme4, seed = 5, use.u = u)
    expect_equal(unname(a$sim_1), unname(b$sim_1))
  }
  # cbind: newdata gives its numbers of trials (lme4 1.1-31 uses the data's)
  nd <- lme4::cbpp[c(40, 2, 17), ]
  s <- simulate(fit, nsim = 2, seed = 5, newdata = nd)
  expect_identical(dim(s$sim_2), c(3L, 2L))
  expect_equal(unname(rowSums(s$sim_2)), nd$size)

  gt <- lme4_data("grouseticks")
  ref <- lme4::glmer(TICKS ~ YEAR + (1 | BROOD), gt, poisson)
  pfit <- glmm_at_lme4_estimates(glmm(TICKS ~ YEAR + (1 | BROOD), gt, poisson), ref)
  nd <- gt[c(50, 3, 200, 17, 100), ]
  for (args in list(list(), list(use.u = TRUE), list(newdata = nd), list(newdata = nd, use.u = TRUE))) {
    a <- do.call(simulate, c(list(pfit, nsim = 3, seed = 4), args))
    b <- do.call(simulate, c(list(ref, nsim = 3, seed = 4), args))
    expect_equal(unname(as.matrix(a)), unname(as.matrix(b)))
    expect_identical(rownames(a), rownames(b))
  }

  cc <- test_fit("contraception")
  cfit <- glmm_at_lme4_estimates(cc$mlm, cc$lme4)
  a <- simulate(cfit, nsim = 3, seed = 9)
  b <- simulate(cc$lme4, nsim = 3, seed = 9)
  expect_equal(lapply(a, as.character), lapply(b, as.character), ignore_attr = TRUE)
})

test_that("simulate() of a fit with a residual structure for newdata draws the structure of its rows", {
  ovary <- as.data.frame(nlme::Ovary)
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), ovary,
             correlation = nlme::corAR1(form = ~ 1 | Mare))
  # newdata = the data of the fit, in the same order: the same draws
  for (rf in list(NA, NULL)) {
    expect_equal(unname(as.matrix(simulate(fit, nsim = 2, seed = 4, newdata = ovary, re.form = rf))),
                 unname(as.matrix(simulate(fit, nsim = 2, seed = 4, re.form = rf))))
  }
  # new days of one mare: covariance sigma^2 R of residual_covariance(newdata)
  nd <- data.frame(Mare = 1, Time = seq(0, 1, length.out = 4))
  sims <- as.matrix(simulate(fit, nsim = 4000, seed = 2, newdata = nd, use.u = TRUE))
  expect_identical(dim(sims), c(4L, 4000L))
  V <- residual_covariance(fit, newdata = nd)
  expect_equal(unname(stats::cov(t(sims))), unname(V), tolerance = 0.08)
  expect_equal(unname(rowMeans(sims)), unname(predict(fit, nd)), tolerance = 0.02)
})

test_that("simulate() refuses a re.form that names only part of a term, and reports unused arguments", {
  skip_if_not_installed("lme4")
  fit <- test_fit("sleepstudy")$mlm
  expect_error(simulate(fit, re.form = ~ (1 | Subject)), class = "mlmfit_error_argument")
  expect_warning(simulate(fit, seed = 1, cond.sim = FALSE), class = "mlmfit_warning_unused_argument")
  expect_error(simulate(fit, weights = rep(2, nobs(fit))), class = "mlmfit_error_argument")
  # weights for new rows: residual variance sigma^2 / w
  nd <- lme4::sleepstudy[1:3, ]
  a <- simulate(fit, seed = 2, newdata = nd, use.u = TRUE, weights = 4)$sim_1 - predict(fit, nd)
  b <- simulate(fit, seed = 2, newdata = nd, use.u = TRUE)$sim_1 - predict(fit, nd)
  expect_equal(unname(a), unname(b / 2))
})
