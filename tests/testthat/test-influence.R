# influence(): deletion refits as lme4's influence.merMod(), against lme4's
# numbers (its influence() for groups, lmer() refits without single
# observations), and car's plot of them.

test_that("influence(groups =) gives lme4's deletion estimates and Cook's distances (sleepstudy)", {
  skip_if_not_installed("lme4")
  ss <- test_fit("sleepstudy")
  a <- influence(ss$mlm, groups = "Subject")
  b <- influence(ss$lme4, groups = "Subject")
  expect_s3_class(a, c("mlmfit_influence", "influence.merMod"))
  expect_identical(names(a), names(b))
  expect_identical(a$deleted, b$deleted)
  expect_identical(dimnames(a[["fixed.effects[-Subject]"]]), dimnames(b[["fixed.effects[-Subject]"]]))
  expect_equal(a[["fixed.effects[-Subject]"]], b[["fixed.effects[-Subject]"]], tolerance = 1e-5)
  expect_identical(colnames(a[["var.cov.comps[-Subject]"]]), colnames(b[["var.cov.comps[-Subject]"]]))
  expect_equal(a[["var.cov.comps[-Subject]"]], b[["var.cov.comps[-Subject]"]], tolerance = 1e-4)
  expect_equal(a[["vcov[-Subject]"]], lapply(b[["vcov[-Subject]"]], as.matrix), tolerance = 1e-3)
  expect_equal(a$var.cov.comps, b$var.cov.comps, tolerance = 1e-5)
  expect_true(all(a$converged))
  expect_equal(dfbeta(a), lme4:::dfbeta.influence.merMod(b), tolerance = 1e-4)
  expect_equal(dfbeta(a, "var.cov"), lme4:::dfbeta.influence.merMod(b, "var.cov"), tolerance = 1e-3)
  expect_equal(dfbetas(a), lme4:::dfbetas.influence.merMod(b), tolerance = 1e-4)
  expect_equal(unname(cooks.distance(a)), unname(cooks.distance(b)), tolerance = 1e-4)
  expect_identical(names(cooks.distance(a)), levels(lme4::sleepstudy$Subject))
  # car's index plot of the measures
  skip_if_not_installed("car")
  expect_silent(car::infIndexPlot(a, vars = c("dfbeta", "dfbetas", "var.cov.comps", "cookd")))
})

test_that("influence() of single observations: lmer() refitted without each, by hand", {
  skip_if_not_installed("lme4")
  ss <- test_fit("sleepstudy")
  a <- influence(ss$mlm)
  expect_identical(rownames(a[["fixed.effects[-case]"]]), rownames(lme4::sleepstudy))
  V_inv <- solve(vcov(ss$mlm))
  for (i in c(1L, 57L, 180L)) {
    m <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy[-i, ])
    expect_equal(a[["fixed.effects[-case]"]][i, ], lme4::fixef(m), tolerance = 1e-5)
    expect_equal(a[["var.cov.comps[-case]"]][i, "sigma^2"], sigma(m)^2, tolerance = 1e-4, ignore_attr = TRUE)
    db <- lme4::fixef(m) - fixef(ss$mlm)
    expect_equal(cooks.distance(a)[[i]], sum(db * (V_inv %*% db)) * (180 - 2) / (180 * 2), tolerance = 1e-3)
  }
  # a weighted fit with an offset and rows left out by na.exclude
  d <- lme4::sleepstudy
  d$w <- rep(c(1, 2, 3), 60)
  d$off <- d$Days / 10
  d$Reaction[c(4, 40)] <- NA
  fit <- lmm(Reaction ~ Days + offset(off) + (1 | Subject), d, weights = w, na.action = na.exclude)
  inf <- influence(fit, groups = "Subject")
  ref <- lme4::lmer(Reaction ~ Days + offset(off) + (1 | Subject), d[d$Subject != "309", ], weights = w)
  expect_equal(inf[["fixed.effects[-Subject]"]]["309", ], lme4::fixef(ref), tolerance = 1e-5)
  expect_equal(inf[["var.cov.comps[-Subject]"]]["309", ], c(sigma(ref)^2, unlist(lme4::VarCorr(ref))),
               tolerance = 1e-4, ignore_attr = TRUE)
  cases <- influence(fit)
  expect_identical(nrow(cases[["fixed.effects[-case]"]]), 180L)
  # deleting a row the fit left out changes nothing
  expect_equal(cases[["fixed.effects[-case]"]]["4", ], fixef(fit))
})

test_that("influence() of a glmm fit gives glmer's deletion estimates (cbpp)", {
  skip_if_not_installed("lme4")
  cb <- test_fit("cbpp")
  a <- influence(cb$mlm, groups = "herd")
  b <- influence(cb$lme4, groups = "herd")
  expect_equal(a[["fixed.effects[-herd]"]], b[["fixed.effects[-herd]"]], tolerance = 2e-3)
  expect_equal(a[["var.cov.comps[-herd]"]], b[["var.cov.comps[-herd]"]], tolerance = 2e-3)
  # The covariances of the fixed effects come, as for the full fits, from
  # the Hessian of the deviance, which mlmfit and glmer approximate apart
  # (within 3%); Cook's distances scale the changes by the full fit's.
  expect_equal(a[["vcov[-herd]"]], lapply(b[["vcov[-herd]"]], as.matrix), tolerance = 0.03)
  expect_equal(unname(cooks.distance(a)), unname(cooks.distance(b)), tolerance = 0.03)
  db <- dfbeta(a)
  expect_equal(unname(cooks.distance(a)), unname(rowSums((db %*% solve(vcov(cb$mlm))) * db) * (15 - 4) / (15 * 4)),
               tolerance = 1e-10)
})

test_that("influence() refuses what it cannot do, with classed conditions", {
  ss <- test_fit("sleepstudy")$mlm
  expect_error(influence(ss, groups = "nonsense"), class = "mlmfit_error_argument")
  expect_warning(influence(ss, groups = "Subject", maxfun = 10), class = "mlmfit_warning_argument")
  expect_identical(influence(ss, do.coef = FALSE)$hat, hatvalues(ss))
  fit <- lmm(follicles ~ sin(2 * pi * Time) + (1 | Mare), nlme::Ovary, correlation = corAR1(form = ~ 1 | Mare))
  expect_error(influence(fit, groups = "Mare"), class = "mlmfit_error_residual_structure")
})
