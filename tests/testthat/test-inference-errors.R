# Bad requests to the inference methods get classed errors that name the
# problem.

test_that("predict, simulate, refit, confint and tidy refuse bad input", {
  nels88 <- nels88_data()
  fit <- lmm(math ~ homework + (homework | schid), nels88)
  expect_error(predict(fit, data.frame(homework = 1, schid = "nope")), class = "mlmfit_error_new_levels")
  expect_error(predict(fit, data.frame(schid = "7472")), class = "mlmfit_error_newdata")
  expect_error(predict(fit, re.form = "all"), class = "mlmfit_error_argument")
  expect_error(simulate(fit, nsim = 0), class = "mlmfit_error_argument")
  expect_error(refit(fit, letters), class = "mlmfit_error_argument")
  expect_error(confint(fit, level = 2), class = "mlmfit_error_argument")
  expect_error(confint(fit, parm = 99), class = "mlmfit_error_argument")
  expect_error(parametric_bootstrap(fit, nsim = -1), class = "mlmfit_error_argument")
  expect_error(parametric_bootstrap(fit, nsim = 5, cores = 0), class = "mlmfit_error_argument")
  expect_error(anova(fit, type = "IV"), class = "mlmfit_error_argument")
  expect_error(ranova(lm(math ~ homework, nels88)), class = "mlmfit_error_argument")
  expect_error(tidy(fit, conf.int = TRUE, conf.method = "magic"))
  expect_error(augment(fit, data = nels88[1:3, ]), class = "mlmfit_error_argument")
})

test_that("the new-level error names the grouping factor and the levels", {
  nels88 <- nels88_data()
  fit <- lmm(math ~ homework + (1 | schid), nels88)
  err <- tryCatch(predict(fit, data.frame(homework = 1, schid = c("x1", "x2"))), error = function(e) e)
  expect_s3_class(err, "mlmfit_error_new_levels")
  expect_match(conditionMessage(err), "schid")
  expect_match(conditionMessage(err), "x1")
  expect_identical(err$variable, "schid")
})
