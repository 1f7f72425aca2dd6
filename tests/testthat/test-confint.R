# confint() against lme4: Wald exactly, profile limits within 1% of the
# interval width (lme4's profiles stored in fixtures/lme4-profiles.csv by
# data-raw/lme4-profiles.R), the parametric bootstrap draw by draw (same
# seed).

expect_limits_close <- function(ours, theirs, frac = 0.01, rows = rownames(theirs)) {
  width <- theirs[rows, 2L] - theirs[rows, 1L]
  err <- abs(ours[rows, , drop = FALSE] - theirs[rows, , drop = FALSE])
  expect_true(all(err <= frac * width), info = paste(rows[apply(err > frac * width, 1L, any)], collapse = ", "))
}

test_that("Wald intervals are lme4's", {
  fit <- test_fit("sleepstudy")$mlm
  ref <- test_fit("sleepstudy")$lme4
  a <- confint(fit, method = "Wald")
  b <- confint(ref, method = "Wald")
  expect_identical(dimnames(a), dimnames(b))
  expect_true(all(is.na(a[1:4, ])))
  expect_limits_close(a, b, frac = 1e-4, rows = c("(Intercept)", "Days"))
  expect_identical(rownames(confint(fit, method = "Wald", oldNames = FALSE)),
                   rownames(confint(ref, method = "Wald", oldNames = FALSE)))
})

test_that("profile intervals agree with lme4's: fixed effects and variance components", {
  fit <- test_fit("sleepstudy")$mlm
  a <- confint(fit)
  b <- lme4_profile_limits("sleepstudy")
  expect_identical(dimnames(a), dimnames(b))
  expect_limits_close(a, b, frac = 0.01)

  nels88 <- nels88_data()
  fit <- lmm(math ~ homework + ses + (1 | schid), nels88)
  expect_limits_close(confint(fit), lme4_profile_limits("nels88_ses"), frac = 0.01)

  # a single parameter, by name and by the lme4 shorthand
  expect_identical(rownames(confint(fit, parm = "ses")), "ses")
  expect_identical(rownames(confint(fit, parm = "theta_")), c(".sig01", ".sigma"))
  expect_error(confint(fit, parm = "nope"), class = "mlmfit_error_argument")
})

test_that("profile of a singular fit starts at zero; an ML fit is profiled as it is", {
  Dyestuff2 <- lme4_data("Dyestuff2")
  fit <- lmm(Yield ~ 1 + (1 | Batch), Dyestuff2)
  a <- confint(fit)
  expect_equal(a[".sig01", 1L], 0)
  expect_limits_close(a, lme4_profile_limits("dyestuff2"), frac = 0.01)
  Dyestuff <- lme4_data("Dyestuff")
  fit <- lmm(Yield ~ 1 + (1 | Batch), Dyestuff, REML = FALSE)
  expect_limits_close(confint(fit), lme4_profile_limits("dyestuff_ml"), frac = 0.01)
})

test_that("the parametric bootstrap draws lme4's responses and refits them", {
  skip_if_not_installed("boot")
  sleepstudy <- lme4_data("sleepstudy")
  ref <- test_fit("sleepstudy")$lme4
  fit <- at_lme4_estimates(test_fit("sleepstudy")$mlm, ref)
  nsim <- 40
  boot <- parametric_bootstrap(fit, nsim = nsim, seed = 101, progress = FALSE)
  expect_s3_class(boot, "boot")
  ours <- boot$t
  # the boot package reads it as bootMer()'s result: its percentile
  # intervals are those of confint() on the bootstrap
  for (j in c(".sigma", "Days")) {
    k <- match(j, colnames(ours))
    expect_equal(unname(boot::boot.ci(boot, type = "perc", index = k)$percent[4:5]),
                 unname(confint(boot, parm = j)[1L, ]), tolerance = 1e-12)
  }
  expect_equal(boot$t0, c(theta_to_sdcor(fit, fit_theta(fit), sigma(fit)), fixef(fit)), ignore_attr = TRUE)
  expect_output(print(boot), "std. error")
  fun <- function(m) c(lme4::fixef(m), sigma = stats::sigma(m), reml = lme4::REMLcrit(m))
  theirs <- suppressMessages(suppressWarnings(lme4::bootMer(ref, fun, nsim = nsim, seed = 101)))$t
  # fixed effects and sigma of each refit agree draw by draw, except where
  # lme4's refit() stops at a worse optimum: there our REML criterion is
  # lower (mlmfit is right) and equals that of a fresh lmer() fit.
  ours3 <- ours[, c("(Intercept)", "Days", ".sigma")]
  agree <- apply(abs(ours3 - theirs[, 1:3]) <= 1e-3 * abs(theirs[, 1:3]), 1L, all)
  expect_gte(mean(agree), 0.9)
  sims <- simulate(ref, nsim = nsim, seed = 101)
  for (i in which(!agree)) {
    ours_i <- refit(fit, sims[[i]])
    expect_lt(deviance(ours_i), theirs[i, "reml"] - 1e-4)
    d2 <- sleepstudy
    d2$Reaction <- sims[[i]]
    fresh <- lme4::lmer(Reaction ~ Days + (Days | Subject), d2)
    expect_lt(deviance(ours_i) - lme4::REMLcrit(fresh), 1e-4)
  }
  theirs <- theirs[, 1:3]
  # percentile intervals of the fixed effects: boot's interpolation rule
  ci <- confint(fit, method = "boot", nsim = nsim, seed = 101, progress = FALSE)
  for (j in 1:2) {
    ref_ci <- boot::boot.ci(list(t0 = fun(ref)[1:3], t = theirs, R = nsim, sim = "parametric", stype = "i",
                                 call = quote(boot()), strata = rep(1, nrow(sleepstudy)),
                                 weights = rep(1 / nrow(sleepstudy), nrow(sleepstudy)), statistic = fun,
                                 data = sleepstudy, seed = 1) |> structure(class = "boot"),
                            type = "perc", index = j)$percent[4:5]
    expect_close(ci[4L + j, ], ref_ci, rel = 1e-3)
  }
  expect_identical(rownames(ci), rownames(confint(fit, method = "Wald")))
  # reproducible with a seed; several cores give the same numbers
  again <- parametric_bootstrap(fit, nsim = nsim, seed = 101, progress = FALSE, cores = 2L)
  expect_equal(again$t, ours)
})
