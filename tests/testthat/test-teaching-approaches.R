test_that("compare_approaches() matches lm, per-group fits and lme4 on the London schools data", {
  skip_if_not_installed("mlmRev")
  skip_if_not_installed("lme4")
  exam <- package_dataset("Exam", "mlmRev")
  out <- compare_approaches(normexam ~ standLRT, exam, group = "school")
  expect_named(out, c("approach", "estimate", "std.error", "units", "slope_sd"))
  expect_equal(out$approach, c("aggregated", "disaggregated", "per-group regressions",
                               "fixed effects with interactions", "multilevel"))
  k <- nlevels(exam$school)

  agg <- aggregate(cbind(normexam, standLRT) ~ school, exam, mean)
  a <- summary(lm(normexam ~ standLRT, agg))$coefficients["standLRT", 1:2]
  expect_equal(unlist(out[1, c("estimate", "std.error")]), a, ignore_attr = TRUE, tolerance = 1e-10)
  d <- summary(lm(normexam ~ standLRT, exam))$coefficients["standLRT", 1:2]
  expect_equal(unlist(out[2, c("estimate", "std.error")]), d, ignore_attr = TRUE, tolerance = 1e-10)

  # one school has two pupils: its line has no residual degrees of freedom
  # and is left out of approaches 3 and 4
  sizes <- table(exam$school)
  expect_equal(sum(sizes < 3), 1L)
  used <- exam[exam$school %in% names(sizes)[sizes >= 3], ]
  used$school <- droplevels(used$school)
  m <- nlevels(used$school)
  slopes <- coef(lme4::lmList(normexam ~ standLRT | school, used))[, "standLRT"]
  expect_equal(out$estimate[3], mean(slopes), tolerance = 1e-10)
  expect_equal(out$std.error[3], sd(slopes) / sqrt(m), tolerance = 1e-10)
  expect_equal(out$slope_sd[3], sd(slopes), tolerance = 1e-10)
  # the interaction model's average slope is the average per-group slope;
  # its SE uses the pooled within-school residual variance
  expect_equal(out$estimate[4], mean(slopes), tolerance = 1e-8)
  fe <- lm(normexam ~ 0 + school + school:standLRT, used)
  se_each <- summary(fe)$coefficients[grep(":standLRT", names(coef(fe))), 2]
  expect_equal(out$std.error[4], sqrt(sum(se_each^2)) / m, tolerance = 1e-8)

  ref <- lme4::lmer(normexam ~ standLRT + (standLRT | school), exam)
  expect_equal(out$estimate[5], unname(lme4::fixef(ref)["standLRT"]), tolerance = 1e-4)
  expect_equal(out$std.error[5], sqrt(diag(as.matrix(vcov(ref))))[[2]], tolerance = 1e-3)
  expect_equal(out$slope_sd[5], attr(lme4::VarCorr(ref)$school, "stddev")[["standLRT"]], tolerance = 1e-3)
  expect_equal(out$units, c(k, nrow(exam), m, nrow(used), k))
})

test_that("compare_approaches() drops groups whose slope cannot be estimated", {
  nels88 <- teaching_dataset("nels88")
  drop <- which(nels88$schid == 6467)[-(1:2)]
  small <- nels88[-drop, ]
  expect_equal(sum(small$schid == 6467), 2L)
  out <- compare_approaches(math ~ homework, small, group = "schid")
  expect_equal(out$units[3], 22)
  sizes <- table(small$schid)
  ok <- names(sizes)[sizes >= 3]
  slopes <- vapply(ok, function(s) coef(lm(math ~ homework, small, subset = schid == s))[[2]], 0)
  expect_equal(out$estimate[3], mean(slopes), tolerance = 1e-10)
  expect_equal(out$estimate[4], mean(slopes), tolerance = 1e-8)
  expect_equal(out$units[1], 23)
})

test_that("compare_approaches() refuses bad input with classed errors", {
  nels88 <- teaching_dataset("nels88")
  expect_error(compare_approaches(math ~ homework, nels88, group = "school"), class = "mlmfit_error_variable")
  expect_equal(compare_approaches(math ~ homework, nels88, group = schid),
               compare_approaches(math ~ homework, nels88, group = "schid"))
  expect_error(compare_approaches(math ~ homework, nels88, group = 1), class = "mlmfit_error_variable")
  expect_error(compare_approaches(math ~ homework + ses, nels88, group = "schid"), class = "mlmfit_error_formula")
  expect_error(compare_approaches(~ homework, nels88, group = "schid"), class = "mlmfit_error_formula")
  expect_error(compare_approaches(math ~ nothere, nels88, group = "schid"), class = "mlmfit_error_variable")
})

test_that("compare_fits() tabulates the numbers lme4 reports", {
  skip_if_not_installed("lme4")
  nels88 <- teaching_dataset("nels88")
  f <- math ~ homework + (homework | schid)
  fit <- lmm(f, nels88)
  ref <- lme4::lmer(f, nels88)
  tab <- compare_fits(mlmfit = fit, lme4 = ref)
  expect_named(tab, c("quantity", "mlmfit", "lme4"))
  expect_equal(tab$lme4[match(c("(Intercept)", "homework"), tab$quantity)], unname(lme4::fixef(ref)))
  expect_equal(tab$lme4[tab$quantity == "SE homework"], sqrt(vcov(ref)[2, 2]))
  vc <- as.data.frame(lme4::VarCorr(ref))
  expect_equal(tab$lme4[tab$quantity == "sd schid homework"], vc$sdcor[2])
  expect_equal(tab$lme4[tab$quantity == "cor schid (Intercept), homework"], vc$sdcor[3])
  expect_equal(tab$lme4[tab$quantity == "sigma"], sigma(ref))
  expect_equal(tab$lme4[tab$quantity == "REML criterion"], lme4::REMLcrit(ref))
  expect_equal(tab$mlmfit[tab$quantity == "REML criterion"], deviance(fit))
  expect_equal(tab$mlmfit, tab$lme4, tolerance = 1e-3)
  ml <- compare_fits(lmm(f, nels88, REML = FALSE))
  expect_named(ml, c("quantity", "fit1"))
  expect_true("deviance" %in% ml$quantity)
  expect_error(compare_fits(), class = "mlmfit_error_argument")
})
