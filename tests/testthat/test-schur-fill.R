# The fill of a dense Schur complement enters in one of two ways, chosen by
# cost (blocked_cholesky.cpp): one dense rank update when the secondary
# levels meet most primary levels (a fully crossed design), or gathered
# column by column (a sparse crossing, as in InstEval). Each way is checked
# against lme4 (deviance, fixed effects, components, modes and conditional
# variances, which read the selected inverse through the same fill
# structures) and the analytic gradient against finite differences of the
# deviance, with random intercepts and with random slopes on one or both
# factors.

crossed_data <- function(persons, items, per_person, seed) {
  set.seed(seed)
  d <- do.call(rbind, lapply(seq_len(persons), function(p) {
    data.frame(person = p, item = sort(sample.int(items, per_person)))
  }))
  d$x <- rnorm(nrow(d))
  d$y <- 1 + 0.4 * d$x + rnorm(persons)[d$person] + rnorm(items, sd = 0.6)[d$item] +
    rnorm(persons, sd = 0.3)[d$person] * d$x + rnorm(items, sd = 0.2)[d$item] * d$x + rnorm(nrow(d))
  d$person <- factor(d$person)
  d$item <- factor(d$item)
  d
}

# every person answers every item: the dense rank update
full_crossing <- crossed_data(persons = 150, items = 30, per_person = 30, seed = 17)
# each person answers 12 of 260 items: the gathered fill (S dense, L_R1 sparse)
sparse_crossing <- crossed_data(persons = 400, items = 260, per_person = 12, seed = 18)

expect_gradient_matches_differences <- function(fit) {
  ns <- asNamespace("mlmfit")
  spec <- ns$fit_spec(fit)
  xp <- ns$fit_xp(fit)
  theta <- unname(fit$theta) * 0.8 + 0.05 * (spec$theta$lower == 0)  # away from the optimum, inside the bounds
  g <- ns$engine_deviance(spec, theta, fit$REML, xp, gradient = TRUE)$gradient[, 1]
  h <- 1e-5
  fd <- vapply(seq_along(theta), function(k) {
    e <- replace(numeric(length(theta)), k, h)
    d <- ns$engine_deviance(spec, cbind(theta + e, theta - e), fit$REML, xp)$deviance
    (d[1] - d[2]) / (2 * h)
  }, numeric(1))
  expect_lt(max(abs(g - fd)), 1e-5 * max(1, max(abs(fd))))
}

expect_cond_var_agrees <- function(fit, ref) {
  for (nm in c("person", "item")) {
    a <- attr(ranef(fit)[[nm]], "postVar")
    b <- attr(lme4::ranef(ref, condVar = TRUE)[[nm]], "postVar")
    expect_equal(dim(a), dim(b))
    expect_lt(max(abs(a - b)) / max(abs(b)), 1e-3)
  }
}

for (design in c("full_crossing", "sparse_crossing")) {
  formulas <- c(y ~ x + (1 | person) + (1 | item), y ~ x + (x | person) + (x | item),
                y ~ x + (1 | person) + (x | item))  # more columns in the secondary factor than in the primary
  for (formula in formulas) {
    test_that(paste("a dense Schur complement with", design, "fits as lme4 does:", deparse(formula)), {
      skip_if_not_installed("lme4")
      data <- get(design)
      fit <- lmm(formula, data)
      ref <- lme4::lmer(formula, data)
      expect_lme4_agreement(fit, ref)
      expect_cond_var_agrees(fit, ref)
      expect_gradient_matches_differences(fit)
    })
  }
}
