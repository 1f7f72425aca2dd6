# What users ask of a glmm() fit: residuals, predictions, simulation,
# summaries, and the methods shared with lmm() fits.

test_that("residuals of each type follow their definitions and agree with glmer's", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  f <- fits$mlm
  y <- spec_y(f)
  mu <- fitted(f)
  w <- weights(f)
  eta <- predict(f)
  fam <- binomial()
  expect_equal(unname(residuals(f, "response")), unname(y - mu))
  expect_equal(unname(residuals(f, "pearson")), unname((y - mu) * sqrt(w / (mu * (1 - mu)))))
  expect_equal(unname(residuals(f, "working")), unname((y - mu) / fam$mu.eta(eta)))
  expect_equal(unname(residuals(f)^2), fam$dev.resids(y, mu, w))
  expect_equal(sign(residuals(f)), sign(y - mu))
  expect_equal(sum(residuals(f)^2), deviance(f))
  for (type in c("deviance", "pearson", "working", "response")) {
    expect_equal(residuals(f, type = type), residuals(fits$lme4, type = type), tolerance = 2e-3)
  }
  expect_equal(residuals(f, "pearson", scaled = TRUE), residuals(f, "pearson"))
  expect_equal(unname(weights(f)), unname(weights(fits$lme4)))
  expect_equal(unname(weights(f, type = "working")), unname(weights(fits$lme4, type = "working")), tolerance = 2e-3)
})

test_that("fitted values, ranef with conditional variances and coef agree with glmer", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  expect_equal(fitted(fits$mlm), fitted(fits$lme4), tolerance = 2e-3)
  r1 <- ranef(fits$mlm)
  r2 <- lme4::ranef(fits$lme4, condVar = TRUE)
  expect_equal(attr(r1$herd, "postVar"), attr(r2$herd, "postVar"), tolerance = 2e-3)
  cf1 <- coef(fits$mlm)$herd
  cf2 <- stats::coef(fits$lme4)$herd
  expect_equal(as.matrix(cf1), as.matrix(cf2), tolerance = 2e-3, ignore_attr = TRUE)
})

test_that("predict: link and response scales, new data, re.form and new levels", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  f <- fits$mlm
  g <- fits$lme4
  expect_equal(predict(f), predict(g), tolerance = 2e-3)
  expect_equal(predict(f, type = "response"), fitted(f))
  expect_equal(predict(f, re.form = NA), predict(g, re.form = NA), tolerance = 2e-3)

  nd <- data.frame(period = factor(c(1, 2, 4), levels = 1:4), herd = factor(c(1, 5, 2), levels = 1:15))
  p_link <- predict(f, nd)
  # by hand: X beta + b of the herd
  X <- stats::model.matrix(~period, nd)
  b <- ranef(f)$herd[as.character(nd$herd), 1]
  expect_equal(unname(p_link), unname(drop(X %*% fixef(f)) + b))
  expect_equal(predict(f, nd, type = "response"), stats::plogis(p_link))
  expect_equal(predict(f, nd), predict(g, nd), tolerance = 2e-3)
  expect_equal(predict(f, nd, re.form = NA), predict(g, nd, re.form = NA), tolerance = 2e-3)
  expect_equal(predict(f, nd, re.form = ~ (1 | herd)), p_link)
  expect_equal(predict(f, nd, re.form = ~0), predict(f, nd, re.form = NA))

  nd_new <- data.frame(period = factor(c(1, 3), levels = 1:4), herd = factor(c(1, 99)))
  err <- expect_error(predict(f, nd_new), class = "mlmfit_error_newdata")
  expect_match(conditionMessage(err), "99")
  p_new <- predict(f, nd_new, allow.new.levels = TRUE)
  expect_equal(p_new, predict(g, nd_new, allow.new.levels = TRUE), tolerance = 2e-3)
  expect_equal(unname(p_new[2]), unname(predict(f, nd_new, re.form = NA)[2]))
  expect_error(predict(f, nd, re.form = ~ (1 | farm)), class = "mlmfit_error_argument")
})

test_that("predict with a random slope and with offsets in new data", {
  skip_if_not_installed("lme4")
  set.seed(5)
  k <- 30
  n <- 600
  d <- data.frame(grp = factor(sample(k, n, TRUE)), expo = stats::runif(n, 1, 3), x = stats::rnorm(n))
  d$y <- stats::rpois(n, d$expo * exp(0.2 + (0.4 + stats::rnorm(k, 0, 0.3)[d$grp]) * d$x + stats::rnorm(k, 0, 0.4)[d$grp]))
  fm <- y ~ x + offset(log(expo)) + (x | grp)
  f <- glmm(fm, d, poisson)
  g <- lme4::glmer(fm, d, poisson)
  nd <- data.frame(x = c(-1, 0, 2), expo = c(1, 2, 5), grp = factor(c(3, 7, 7)))
  expect_equal(predict(f, nd), predict(g, nd), tolerance = 2e-3)
  expect_equal(predict(f, nd, type = "response"), predict(g, nd, type = "response"), tolerance = 2e-3)
  expect_equal(predict(f, nd, re.form = NA), predict(g, nd, re.form = NA), tolerance = 2e-3)
})

test_that("simulate: the response in its own form, reproducible with a seed", {
  skip_if_not_installed("lme4")
  f <- test_fit("cbpp")$mlm
  s1 <- simulate(f, nsim = 2, seed = 10)
  s2 <- simulate(f, nsim = 2, seed = 10)
  expect_identical(s1, s2)
  expect_named(s1, c("sim_1", "sim_2"))
  expect_true(is.matrix(s1$sim_1))
  expect_equal(unname(rowSums(s1$sim_1)), lme4::cbpp$size)
  # with the conditional modes kept, the mean of many simulations is the fitted mean
  s <- simulate(f, nsim = 400, seed = 1, use.u = TRUE)
  props <- vapply(s, function(m) m[, 1] / rowSums(m), numeric(nobs(f)))
  se <- sqrt(fitted(f) * (1 - fitted(f)) / lme4::cbpp$size / 400)
  expect_true(all(abs(rowMeans(props) - fitted(f)) < 5 * se + 1e-12))
  # drawing new random effects spreads herd means more than keeping them
  fc <- test_fit("contraception")$mlm
  sb <- simulate(fc, nsim = 3, seed = 2)
  expect_true(all(vapply(sb, function(v) all(v %in% c(0, 1)), logical(1))) ||
                all(vapply(sb, is.factor, logical(1))))
})

test_that("summary: z tests and the layout of glmer's", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  s <- summary(fits$mlm)
  cf <- s$coefficients
  expect_identical(colnames(cf), c("Estimate", "Std. Error", "z value", "Pr(>|z|)"))
  expect_equal(unname(cf[, "z value"]), unname(cf[, 1] / cf[, 2]))
  expect_equal(unname(cf[, "Pr(>|z|)"]), 2 * stats::pnorm(-abs(unname(cf[, "z value"]))))
  ref <- summary(fits$lme4)$coefficients
  expect_equal(unname(cf[, 1]), unname(ref[, 1]), tolerance = 1e-3)
  # glmer's standard errors come from a cruder Hessian (its PIRLS stops at a
  # relative 1e-7 and uses stale weights); they agree to about 1.5%
  expect_equal(unname(cf[, 2]), unname(ref[, 2]), tolerance = 2e-2)
  out <- capture.output(print(s))
  expect_true(any(grepl("Generalized linear mixed model fit by maximum likelihood (Laplace", out, fixed = TRUE)))
  expect_true(any(grepl("Family: binomial  ( logit )", out, fixed = TRUE)))
  expect_true(any(grepl("Pr(>|z|)", out, fixed = TRUE)))
  expect_true(any(grepl("Number of obs: 56, groups:  herd, 15", out, fixed = TRUE)))
  expect_false(any(grepl("Residual", out)))
  p <- capture.output(print(fits$mlm))
  expect_true(any(grepl("AIC", p)) && any(grepl("Fixed Effects:", p)))
})

test_that("shared methods: VarCorr, ngrps, nobs, formula, family, logLik", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  f <- fits$mlm
  vc <- as.data.frame(VarCorr(f))
  expect_identical(vc$grp, "herd")
  expect_equal(attr(VarCorr(f), "useSc"), FALSE)
  expect_identical(ngrps(f), c(herd = 15L))
  expect_identical(nobs(f), 56L)
  expect_identical(deparse1(formula(f)), "cbind(incidence, size - incidence) ~ period + (1 | herd)")
  expect_identical(family(f)$family, "binomial")
  expect_identical(family(f)$link, "logit")
  expect_equal(sigma(f), 1)
  ll <- logLik(f)
  expect_identical(attr(ll, "df"), 5L)
  expect_false(is_singular(f))
  expect_identical(class(f), c("mlmfit_glmm", "mlmfit"))
  f2 <- stats::update(f, . ~ . - period)
  expect_identical(names(fixef(f2)), "(Intercept)")
  expect_gt(as.numeric(logLik(f)), as.numeric(logLik(f2)))
})

test_that("confint: Wald intervals of the fixed effects, as lme4's Wald method", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  ci <- confint(fits$mlm, parm = "beta_", method = "Wald")
  se <- sqrt(diag(vcov(fits$mlm)))
  expect_equal(unname(ci[, 1]), unname(fixef(fits$mlm) - stats::qnorm(0.975) * se))
  expect_identical(colnames(ci), c("2.5 %", "97.5 %"))
  ref <- stats::confint(fits$lme4, method = "Wald")[rownames(ci), ]
  expect_equal(ci, ref, tolerance = 1e-2)  # glmer's standard errors differ by about 1%
  expect_identical(rownames(confint(fits$mlm, "period2", level = 0.9, method = "Wald")), "period2")
})

test_that("random.only and na.exclude behave as in lme4", {
  skip_if_not_installed("lme4")
  fits <- test_fit("cbpp")
  f <- fits$mlm
  expect_equal(predict(f, random.only = TRUE), predict(f) - predict(f, re.form = NA))
  expect_equal(predict(f, random.only = TRUE), predict(fits$lme4, random.only = TRUE), tolerance = 2e-3)
  cbpp <- lme4::cbpp
  cbpp$size[3] <- NA
  fe <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, na.action = stats::na.exclude)
  ge <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, na.action = stats::na.exclude)
  expect_length(residuals(fe), 56L)
  expect_true(is.na(residuals(fe)[3]) && is.na(predict(fe)[3]))
  expect_equal(residuals(fe), residuals(ge), tolerance = 2e-3)
  expect_equal(predict(fe, type = "response"), predict(ge, type = "response"), tolerance = 2e-3)
})
