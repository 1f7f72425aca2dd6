# simulate(), refit() and the parametric bootstrap of fits with a residual
# correlation or variance structure: draws with the fitted covariance
# sigma^2 R, checked by hand and by their empirical moments; refits against
# nlme fits of the simulated responses.

library(nlme)

ovary_ar1 <- function(REML = TRUE) {
  lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), Ovary, REML = REML,
      correlation = corAR1(form = ~ 1 | Mare))
}

# lag-k correlation of the columns of r within groups g (rows in time order)
lag_correlation <- function(r, g, k = 1L) {
  n <- nrow(r)
  keep <- which(g[-seq_len(k)] == g[seq_len(n - k)])
  cor(as.vector(r[keep, ]), as.vector(r[keep + k, ]))
}

test_that("conditional draws of an AR(1) fit have the fitted lag correlations and variance", {
  fit <- ovary_ar1()
  phi <- residual_parameters(fit)[["Phi"]]
  expect_gt(phi, 0.5)
  sims <- simulate(fit, nsim = 200, seed = 11, re.form = NULL)
  r <- as.matrix(sims) - fitted(fit)
  g <- Ovary$Mare
  # Ovary is in time order within each mare
  expect_false(any(tapply(Ovary$Time, g, is.unsorted)))
  # about 59,000 pairs: the standard error of the correlation is 0.003, and
  # iid draws give 0
  expect_equal(lag_correlation(r, g, 1L), phi, tolerance = 0.015 / phi)
  expect_equal(lag_correlation(r, g, 2L), phi^2, tolerance = 0.02 / phi^2)
  expect_equal(var(as.vector(r)), sigma(fit)^2, tolerance = 0.04)
  # the random effects are held: the draws centre on the fitted values
  expect_lt(max(abs(rowMeans(r))), 4 * sigma(fit) / sqrt(200))
})

test_that("a draw equals the fitted values plus the Cholesky factor of sigma^2 R times normal deviates", {
  fit <- ovary_ar1()
  set.seed(5)
  z <- rnorm(nobs(fit))
  V <- residual_covariance(fit)
  # lower Cholesky factor of the block-diagonal covariance, rows in time
  # order within mares: block by block the factor of each mare's matrix
  hand <- fitted(fit) + drop(t(chol(V)) %*% z)
  sim <- simulate(fit, seed = 5, re.form = NULL)$sim_1
  expect_equal(sim, unname(hand), tolerance = 1e-10)

  # a tiny example by hand: two subjects, times 1, 2, 4 (a gap) and 1, 2,
  # rows shuffled; CAR(1) with Phi and a varIdent ratio
  d <- data.frame(y = c(1.2, 0.3, 2.5, 1.9, 0.7, 1.1, 2.2, 0.4, 1.5, 2.8),
                  t = c(1, 2, 4, 1, 2, 5, 1, 2, 3, 4),
                  s = factor(c(1, 1, 1, 2, 2, 2, 3, 3, 3, 3)),
                  k = factor(c("a", "b", "a", "b", "a", "b", "a", "b", "a", "b")))
  d <- d[c(3, 1, 5, 2, 4, 9, 6, 10, 7, 8), ]
  fit <- suppressMessages(lmm(y ~ 1 + (1 | s), d, correlation = corCAR1(form = ~ t | s),
                              variance = varIdent(form = ~ 1 | k)))
  par <- residual_parameters(fit)
  set.seed(9)
  z <- rnorm(nrow(d))
  e <- numeric(nrow(d))
  for (subj in levels(d$s)) {
    rows <- which(d$s == subj)
    rows <- rows[order(d$t[rows])]
    C <- par[["Phi"]]^abs(outer(d$t[rows], d$t[rows], "-"))
    e[rows] <- t(chol(C)) %*% z[rows]
  }
  mult <- ifelse(d$k == "a", 1, par[["b"]])
  expect_equal(simulate(fit, seed = 9, re.form = NULL)$sim_1,
               unname(fitted(fit) + sigma(fit) * mult * e), tolerance = 1e-10)
})

test_that("varIdent draws have the fitted ratio of standard deviations", {
  fit <- lmm(distance ~ age * Sex + (1 | Subject), Orthodont, variance = varIdent(form = ~ 1 | Sex))
  ratio <- residual_parameters(fit)[["Female"]]
  expect_lt(ratio, 0.5)
  r <- as.matrix(simulate(fit, nsim = 300, seed = 3, re.form = NULL)) - fitted(fit)
  female <- Orthodont$Sex == "Female"
  expect_equal(sd(r[female, ]) / sd(r[!female, ]), ratio, tolerance = 0.04)
  expect_equal(sd(r[!female, ]), sigma(fit), tolerance = 0.03)
})

test_that("compound-symmetry draws have the fitted within-group correlation", {
  fit <- lmm(yield ~ nitro + (1 | Block), Oats, correlation = corCompSymm(form = ~ 1 | Block/Variety))
  rho <- residual_parameters(fit)[["Rho"]]
  r <- as.matrix(simulate(fit, nsim = 400, seed = 4, re.form = NULL)) - fitted(fit)
  grp <- interaction(Oats$Block, Oats$Variety, drop = TRUE)
  pairs <- do.call(rbind, lapply(split(seq_len(nrow(Oats)), grp), function(i) t(utils::combn(i, 2))))
  expect_equal(cor(as.vector(r[pairs[, 1], ]), as.vector(r[pairs[, 2], ])), rho, tolerance = 0.03 / rho)
  other <- cbind(pairs[-1L, 1L], pairs[-nrow(pairs), 2L])
  other <- other[grp[other[, 1]] != grp[other[, 2]], ]
  expect_lt(abs(cor(as.vector(r[other[, 1], ]), as.vector(r[other[, 2], ]))), 0.03)
})

test_that("unconditional draws add random effects with the fitted variance", {
  fit <- ovary_ar1()
  r <- as.matrix(simulate(fit, nsim = 300, seed = 2)) - drop(model.matrix(fit) %*% fixef(fit))
  vc <- as.data.frame(VarCorr(fit))
  # marginal variance of an observation: the random intercept plus sigma^2
  expect_equal(var(as.vector(r)), sum(vc$vcov), tolerance = 0.08)
  # observations of one mare 10 occasions apart: tau^2 + sigma^2 Phi^10
  g <- Ovary$Mare
  phi <- residual_parameters(fit)[["Phi"]]
  cov10 <- vc$vcov[1] + vc$vcov[2] * phi^10
  n <- nrow(r)
  keep <- which(g[-(1:10)] == g[1:(n - 10)])
  expect_equal(mean(r[keep, ] * r[keep + 10, ]) - mean(r)^2, cov10, tolerance = 0.25)
})

test_that("fits without a structure draw as before (lme4's stream)", {
  skip_if_not_installed("lme4")
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), Ovary)
  ref <- lme4::lmer(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), Ovary)
  for (re in list(NA, NULL)) {
    a <- simulate(fit, nsim = 2, seed = 17, re.form = re)
    b <- simulate(ref, nsim = 2, seed = 17, re.form = re)
    expect_equal(unname(as.matrix(a)), unname(as.matrix(b)), tolerance = 1e-4)
  }
})

test_that("refit() of a structured fit re-estimates everything, as nlme on the new response", {
  fit <- ovary_ar1()
  y <- simulate(fit, seed = 21)$sim_1
  new <- refit(fit, y)
  expect_s3_class(new, "mlmfit_lmm_structured")
  d <- Ovary
  d$y <- y
  ref <- lme(y ~ sin(2 * pi * Time) + cos(2 * pi * Time), d, random = ~ 1 | Mare,
             correlation = corAR1(form = ~ 1 | Mare))
  expect_equal(as.numeric(logLik(new)), as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_equal(unname(fixef(new)), unname(fixef(ref)), tolerance = 1e-4)
  expect_equal(residual_parameters(new)[["Phi"]],
               unname(coef(ref$modelStruct$corStruct, unconstrained = FALSE)), tolerance = 1e-3)
  expect_false(isTRUE(all.equal(residual_parameters(new), residual_parameters(fit))))
  # refitting the original response reproduces the fit
  same <- refit(fit)
  expect_equal(deviance(same), deviance(fit), tolerance = 1e-8)
  expect_equal(residual_parameters(same), residual_parameters(fit), tolerance = 1e-5)
  # ML fits stay ML fits
  expect_false(refit(ovary_ar1(REML = FALSE), y)$REML)
})

test_that("the bootstrap of a structured fit refits every simulation and reports Phi", {
  fit <- ovary_ar1()
  boot <- parametric_bootstrap(fit, nsim = 40, seed = 8, progress = FALSE)
  est <- boot$t
  expect_equal(colnames(est), c(".sig01", ".sigma", "Phi", names(fixef(fit))))
  expect_equal(attr(boot, "n_failed"), 0L)
  expect_true(all(is.finite(est)))
  # the same simulations refitted one by one
  sims <- simulate(fit, nsim = 40, seed = 8)
  for (s in c(1, 17, 40)) {
    one <- refit(fit, sims[[s]])
    expect_equal(est[[s, "Phi"]], residual_parameters(one)[["Phi"]], tolerance = 1e-6)
    expect_equal(est[[s, ".sigma"]], sigma(one), tolerance = 1e-6)
    expect_equal(unname(est[s, names(fixef(fit))]), unname(fixef(one)), tolerance = 1e-6)
  }
  # the simulated Phi scatter around the estimate (REML; the bootstrap
  # estimates of a correlation are biased low, by little)
  expect_equal(median(est[, "Phi"]), residual_parameters(fit)[["Phi"]], tolerance = 0.15)
  ci <- confint(fit, method = "boot", nsim = 40, seed = 8, progress = FALSE)
  expect_equal(rownames(ci), colnames(est))
  expect_lt(ci["Phi", 1], residual_parameters(fit)[["Phi"]])
  expect_gt(ci["Phi", 2], residual_parameters(fit)[["Phi"]])
  expect_equal(unname(ci["Phi", ]), unname(mlmfit:::bootstrap_quantile(est[, "Phi"], c(0.025, 0.975))))
})

test_that("failed bootstrap refits are NA with a warning, and many failures stop confint()", {
  fit <- ovary_ar1()
  # a fit object whose refits the engine refuses (a corrupted residual order)
  broken <- fit
  broken$spec$residual$engine$order <- integer(0)
  expect_warning(est <- parametric_bootstrap(broken, nsim = 5, seed = 1, progress = FALSE),
                 "5 of 5 bootstrap refits failed", class = "mlmfit_warning_bootstrap")
  expect_true(all(is.na(est$t)))
  expect_equal(attr(est, "n_failed"), 5L)
  expect_error(suppressWarnings(confint(broken, method = "boot", nsim = 5, seed = 1, progress = FALSE)),
               class = "mlmfit_error_bootstrap")
  # the rule: more than a tenth of the refits failed
  est <- parametric_bootstrap(fit, nsim = 10, seed = 1, progress = FALSE)
  est$t[1:2, ] <- NA
  expect_error(mlmfit:::check_bootstrap_failures(est), class = "mlmfit_error_bootstrap")
  est$t[2, ] <- est$t[3, ]
  expect_silent(mlmfit:::check_bootstrap_failures(est))
})

test_that("lme4's refit() generic reaches the structured refit", {
  skip_if_not_installed("lme4")
  fit <- ovary_ar1()
  y <- simulate(fit, seed = 30)$sim_1
  expect_equal(deviance(lme4::refit(fit, y)), deviance(refit(fit, y)))
  expect_s3_class(lme4::refit(fit, y), "mlmfit_lmm_structured")
})
