# lme4's bootMer() on mlmfit fits (it simulates with simulate() and refits
# with refit()), and refit() of glmm fits: the statistics of
# parametric_bootstrap() and, for linear mixed models, of bootMer() on the
# lme4 fit (the same draws for a seed); boot::boot.ci() on the result.

test_that("bootMer() on an lmm fit gives lme4's bootMer() statistics and boot.ci() intervals", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("boot")
  ss <- test_fit("sleepstudy")
  stat <- function(m) c(lme4::fixef(m), sigma = sigma(m))
  a <- lme4::bootMer(ss$mlm, stat, nsim = 40, seed = 11)
  b <- lme4::bootMer(ss$lme4, stat, nsim = 40, seed = 11)
  expect_s3_class(a, c("bootMer", "boot"))
  expect_equal(a$t0, b$t0, tolerance = 1e-5)
  expect_equal(a$t[, 1:2], b$t[, 1:2], tolerance = 1e-5)
  expect_equal(a$mle$theta, b$mle$theta, tolerance = 1e-4)
  # sigma: lme4's refit() of a REML fit reports a sigma about 7e-4 below
  # that of lmer() on the same response; mlmfit's refits give lmer()'s
  y <- simulate(ss$lme4, nsim = 40, seed = 11)
  for (s in 1:2) {
    d <- lme4::sleepstudy
    d$Reaction <- y[[s]]
    direct <- lme4::lmer(Reaction ~ Days + (Days | Subject), d)
    expect_equal(a$t[s, ], c(lme4::fixef(direct), sigma = sigma(direct)), tolerance = 1e-5)
  }
  # the refits of parametric_bootstrap() with the same seed
  pb <- parametric_bootstrap(ss$mlm, nsim = 40, seed = 11, progress = FALSE)
  expect_equal(unname(a$t), unname(pb$t[, c("(Intercept)", "Days", ".sigma")]), tolerance = 1e-6)
  for (type in c("perc", "basic", "norm")) {
    ci_a <- boot::boot.ci(a, type = type, index = 2)
    ci_b <- boot::boot.ci(b, type = type, index = 2)
    key <- c(perc = "percent", basic = "basic", norm = "normal")[[type]]
    expect_equal(ci_a[[key]], ci_b[[key]], tolerance = 1e-5)
  }
  expect_equal(unname(boot::boot.ci(a, type = "perc", index = 2)$percent[4:5]),
               unname(confint(pb, "Days")[1, ]), tolerance = 1e-6)
  # a fit whose data have rows left out by na.exclude
  d <- lme4::sleepstudy
  d$Reaction[c(3, 50)] <- NA
  fit <- lmm(Reaction ~ Days + (Days | Subject), d, na.action = na.exclude)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, na.action = na.exclude)
  expect_equal(lme4::bootMer(fit, stat, nsim = 5, seed = 3)$t[, 1:2],
               lme4::bootMer(ref, stat, nsim = 5, seed = 3)$t[, 1:2], tolerance = 1e-4)
})

test_that("bootMer() on a glmm fit gives parametric_bootstrap()'s refits", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("boot")
  cb <- test_fit("cbpp")$mlm
  stat <- function(m) c(lme4::fixef(m), sd = sqrt(unname(unlist(lme4::VarCorr(m)))))
  a <- lme4::bootMer(cb, stat, nsim = 20, seed = 4)
  pb <- parametric_bootstrap(cb, nsim = 20, seed = 4, progress = FALSE)
  expect_equal(unname(a$t), unname(pb$t[, c(names(fixef(cb)), ".sig01")]), tolerance = 1e-8)
  expect_equal(unname(boot::boot.ci(a, type = "norm", index = 2)$normal[2:3]),
               unname(confint(pb, "period2", type = "norm")[1, ]), tolerance = 1e-8)
  # Poisson with an offset
  po <- test_fit("poisson")$mlm
  a <- lme4::bootMer(po, function(m) lme4::fixef(m), nsim = 5, seed = 2)
  expect_equal(unname(a$t), unname(parametric_bootstrap(po, 5, seed = 2, progress = FALSE)$t[, 2:3]),
               tolerance = 1e-8)
})

test_that("refit() of a glmm fit is glmm() on the new response", {
  skip_if_not_installed("lme4")
  cb <- test_fit("cbpp")$mlm
  y <- simulate(cb, nsim = 2, seed = 8)$sim_2
  d <- lme4::cbpp
  d$incidence <- y[, 1L]
  direct <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), d, binomial)
  r <- refit(cb, y)
  expect_s3_class(r, "mlmfit_glmm")
  expect_equal(fixef(r), fixef(direct), tolerance = 1e-8)
  expect_equal(logLik(r), logLik(direct), tolerance = 1e-8)
  expect_equal(as.data.frame(VarCorr(r))$sdcor, as.data.frame(VarCorr(direct))$sdcor, tolerance = 1e-8)
  expect_equal(fixef(refit(cb)), fixef(cb), tolerance = 1e-6)
  # glmer's refit() of the same response
  g <- lme4::refit(test_fit("cbpp")$lme4, y)
  expect_equal(fixef(r), lme4::fixef(g), tolerance = 2e-3)
  # a 0/1 response, a factor and a logical give the same fit
  b <- lme4::cbpp[rep(seq_len(nrow(lme4::cbpp)), lme4::cbpp$size), ]
  b$sick <- unlist(lapply(seq_len(nrow(lme4::cbpp)), function(i) {
    rep(c(1, 0), c(lme4::cbpp$incidence[i], lme4::cbpp$size[i] - lme4::cbpp$incidence[i]))
  }))
  bin <- glmm(sick ~ period + (1 | herd), b, binomial)
  flipped <- 1 - b$sick
  expect_equal(fixef(refit(bin, factor(flipped, levels = 0:1))), fixef(refit(bin, flipped)), tolerance = 1e-10)
  expect_equal(fixef(refit(bin, flipped == 1)), fixef(refit(bin, flipped)), tolerance = 1e-10)
  expect_equal(fixef(refit(bin, flipped)), -fixef(bin), tolerance = 1e-5)
  # bad responses are refused
  expect_error(refit(cb, y[-1, ]), class = "mlmfit_error_argument")
  expect_error(refit(cb, y[, 1L]), class = "mlmfit_error_argument")
  expect_error(refit(cb, y + 1), class = "mlmfit_error_argument")
  expect_error(refit(bin, rep(0, nrow(b))), class = "mlmfit_error_response")
  expect_warning(refit(cb, y, control = list(maxit = 2)), class = "mlmfit_warning_argument")
})

test_that("bootMer() and isSingular() work on a fit with a residual structure; getME() refuses lme4's matrices", {
  skip_if_not_installed("lme4")
  fit <- lmm(follicles ~ sin(2 * pi * Time) + (1 | Mare), nlme::Ovary, correlation = corAR1(form = ~ 1 | Mare))
  a <- lme4::bootMer(fit, function(m) lme4::fixef(m), nsim = 3, seed = 5)
  expect_equal(unname(a$t), unname(parametric_bootstrap(fit, 3, seed = 5, progress = FALSE)$t[, 4:5]),
               tolerance = 1e-6)
  expect_false(lme4::isSingular(fit))
  expect_equal(lme4::getME(fit, "theta"), fit_theta(fit))
  expect_error(lme4::getME(fit, "devcomp"), class = "mlmfit_error_residual_structure")
  expect_error(lme4::getME(fit, "L"), class = "mlmfit_error_residual_structure")
})
