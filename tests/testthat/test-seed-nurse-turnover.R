# Seed 002's multilevel logistic regression: 1389 nurses in 18 London
# hospitals, glmer estimates 3.02, -0.75, -0.93, -0.05, 0.28, -0.73, hospital
# SD 0.18, AIC 1678.9, deviance 1652.0. These numbers cannot be reproduced:
# the survey's data are not public (../shared/data/PROVENANCE.md).
# nurseturnover simulates the design with the notes' estimates as the
# truth; the tests check the design, agreement with glmer, recovery of the
# truth and the latent-scale ICC against performance.

notes_truth <- c(`(Intercept)` = 3.02, famyes = -0.75, valuedyes = -0.93, age = -0.05, sexmale = 0.28,
                 `INN_OUTOuter London` = -0.73)

turnover_fit <- function() {
  glmm(leave ~ fam + valued + age + sex + INN_OUT + (1 | HOSPITAL), teaching_dataset("nurseturnover"),
       family = binomial, subset = age > 18)
}

test_that("nurseturnover has the notes' design: 1389 nurses, 18 hospitals, 1385 older than 18", {
  d <- teaching_dataset("nurseturnover")
  expect_equal(dim(d), c(1389L, 7L))
  expect_equal(nlevels(d$HOSPITAL), 18L)
  expect_equal(sum(d$age > 18), 1385L)
  # INN_OUT is a hospital-level variable, nine hospitals each
  per_hospital <- tapply(as.character(d$INN_OUT), d$HOSPITAL, function(v) length(unique(v)))
  expect_true(all(per_hospital == 1L))
  expect_equal(as.vector(table(tapply(as.character(d$INN_OUT), d$HOSPITAL, unique))), c(9L, 9L))
  expect_equal(nobs(turnover_fit()), 1385L)
})

test_that("the turnover model agrees with glmer and recovers the simulation's truth", {
  skip_if_not_installed("lme4")
  fit <- turnover_fit()
  ref <- lme4::glmer(leave ~ fam + valued + age + sex + INN_OUT + (1 | HOSPITAL), teaching_dataset("nurseturnover"),
                     family = binomial, subset = age > 18)
  expect_glmer_agreement(fit, ref)
  z <- (fixef(fit) - notes_truth) / sqrt(diag(vcov(fit)))
  expect_true(all(abs(z) < 3))
})

test_that("latent-scale ICC: sigma_u^2 / (sigma_u^2 + pi^2 / 3), as performance::icc() of the glmer fit", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("performance")
  fit <- turnover_fit()
  s2 <- VarCorr(fit)$HOSPITAL[1, 1]
  ref <- lme4::glmer(leave ~ fam + valued + age + sex + INN_OUT + (1 | HOSPITAL), teaching_dataset("nurseturnover"),
                     family = binomial, subset = age > 18)
  expect_equal(s2 / (s2 + pi^2 / 3), performance::icc(ref)$ICC_adjusted, tolerance = 5e-3)
  expect_equal(icc(fit)$icc, s2 / (s2 + pi^2 / 3), tolerance = 1e-10)
  # the notes' SD of 0.18 corresponds to a latent ICC of about 0.01
  expect_equal(round(0.18^2 / (0.18^2 + pi^2 / 3), 3), 0.010)
})
