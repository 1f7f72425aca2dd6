# as_lmerMod()/as_glmerMod(): lme4 objects at mlmfit's estimates, with
# mlmfit's numbers; lme4's extractors on mlmfit fits.

test_that("as_lmerMod() gives an lmerMod with mlmfit's estimates (sleepstudy, Hsb82, Penicillin)", {
  skip_if_not_installed("lme4")
  for (name in c("sleepstudy", "hsb", "penicillin")) {
    fit <- test_fit(name)$mlm
    m <- as_lmerMod(fit)
    expect_s4_class(m, "lmerMod")
    expect_equal(lme4::fixef(m), fixef(fit), tolerance = 1e-10)
    expect_equal(unname(as.matrix(stats::vcov(m))), unname(vcov(fit)), tolerance = 1e-8)
    expect_equal(as.numeric(stats::logLik(m)), as.numeric(logLik(fit)), tolerance = 1e-10)
    expect_equal(attr(stats::logLik(m), "df"), attr(logLik(fit), "df"))
    expect_equal(as.data.frame(lme4::VarCorr(m))$sdcor, as.data.frame(VarCorr(fit))$sdcor, tolerance = 1e-8)
    re_m <- as.data.frame(lme4::ranef(m, condVar = TRUE))
    re_f <- as.data.frame(ranef(fit))
    expect_equal(re_m$condval, re_f$condval, tolerance = 1e-6)
    expect_equal(re_m$condsd, re_f$condsd, tolerance = 1e-6)
    # lme4's own deviance function at mlmfit's theta gives mlmfit's criterion
    expect_equal(lme4::getME(m, "devfun")(lme4::getME(m, "theta")), deviance(fit), tolerance = 1e-8)
    # and the whole contract of DESIGN.md holds against the independent lme4 fit
    expect_lme4_agreement(fit, test_fit(name)$lme4, se_tol = 2e-3, vc_tol = 2e-3)
  }
})

test_that("as_glmerMod() gives a glmerMod with mlmfit's estimates (cbpp, Poisson with offset)", {
  skip_if_not_installed("lme4")
  for (name in c("cbpp", "poisson")) {
    fit <- test_fit(name)$mlm
    m <- as_glmerMod(fit)
    expect_s4_class(m, "glmerMod")
    expect_equal(lme4::fixef(m), fixef(fit), tolerance = 1e-10)
    expect_equal(unname(as.matrix(stats::vcov(m))), unname(vcov(fit)), tolerance = 1e-8)
    expect_equal(as.numeric(stats::logLik(m)), as.numeric(logLik(fit)), tolerance = 1e-10)
    expect_equal(as.data.frame(lme4::VarCorr(m))$sdcor, as.data.frame(VarCorr(fit))$sdcor, tolerance = 1e-8)
    re_m <- as.data.frame(lme4::ranef(m, condVar = TRUE))
    re_f <- as.data.frame(ranef(fit))
    expect_equal(re_m$condval, re_f$condval, tolerance = 1e-6)
    expect_equal(re_m$condsd, re_f$condsd, tolerance = 1e-3)
    expect_equal(unname(stats::fitted(m)), unname(fitted(fit)), tolerance = 1e-8)
    expect_equal(stats::deviance(m), deviance(fit), tolerance = 1e-6)
  }
  # lme4's predict() on new data uses the frame's variables
  m <- as_glmerMod(test_fit("poisson")$mlm)
  nd <- test_fit("poisson")$data[1:5, ]
  expect_equal(unname(stats::predict(m, newdata = nd)), unname(predict(test_fit("poisson")$mlm, newdata = nd)),
               tolerance = 1e-8)
})

test_that("the bridge refuses what lme4 cannot represent, with classed errors", {
  skip_if_not_installed("lme4")
  ar1 <- lmm(follicles ~ sin(2 * pi * Time) + (1 | Mare), nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
  expect_error(as_lmerMod(ar1), class = "mlmfit_error_residual_structure")
  expect_error(lme4::getME(ar1, "RX"), class = "mlmfit_error_residual_structure")  # lme4's factorisation
  expect_error(as_lmerMod(test_fit("cbpp")$mlm), class = "mlmfit_error_argument")
  expect_error(as_glmerMod(test_fit("sleepstudy")$mlm), class = "mlmfit_error_argument")
})

test_that("lme4's getME() on mlmfit fits returns lme4's components", {
  skip_if_not_installed("lme4")
  names <- c("X", "Z", "Zt", "y", "mu", "u", "b", "Gp", "Lambda", "Lambdat", "Lind", "Tlist", "ST", "sigma",
             "flist", "beta", "theta", "REML", "is_REML", "n_rtrms", "n_rfacs", "N", "n", "p", "q", "p_i", "l_i",
             "q_i", "k", "m_i", "m", "cnms", "offset", "lower")
  dense <- function(x) if (methods::is(x, "Matrix")) as.matrix(x) else x
  pen <- test_fit("penicillin")
  double_bar <- list(mlm = lmm(Reaction ~ Days + (Days || Subject), lme4::sleepstudy),
                     lme4 = lme4::lmer(Reaction ~ Days + (Days || Subject), lme4::sleepstudy))
  for (fits in list(test_fit("sleepstudy"), pen, double_bar, test_fit("cbpp"))) {
    for (nm in names) {
      a <- dense(lme4::getME(fits$mlm, nm))
      b <- dense(lme4::getME(fits$lme4, nm))
      if (is.list(a) && !is.data.frame(a)) {
        a <- lapply(a, dense)
        b <- lapply(b, dense)
      }
      expect_equal(a, b, tolerance = 2e-3, info = nm, ignore_attr = !nm %in% c("theta", "p_i", "cnms"))
    }
  }
  # the devcomp components (mlmfit's deviance, lme4's layout)
  expect_named(lme4::getME(pen$mlm, "devcomp")$cmp, names(lme4::getME(pen$lme4, "devcomp")$cmp))
  expect_equal(lme4::getME(pen$mlm, "devcomp")$dims, lme4::getME(pen$lme4, "devcomp")$dims)
  # the components lme4 computes itself come through the bridge
  expect_equal(dense(lme4::getME(pen$mlm, "RX")), dense(lme4::getME(pen$lme4, "RX")), tolerance = 1e-3)
  expect_error(lme4::getME(pen$mlm, "nonsense"), class = "mlmfit_error_argument")
})

test_that("isSingular(), isREML(), isLMM(), isGLMM(), REMLcrit() and extractAIC() agree with lme4", {
  skip_if_not_installed("lme4")
  ss <- test_fit("sleepstudy")
  expect_identical(lme4::isSingular(ss$mlm), lme4::isSingular(ss$lme4))
  expect_true(lme4::isREML(ss$mlm))
  expect_true(lme4::isLMM(ss$mlm))
  expect_false(lme4::isGLMM(ss$mlm))
  expect_true(lme4::isGLMM(test_fit("cbpp")$mlm))
  expect_false(lme4::isREML(test_fit("cbpp")$mlm))
  expect_equal(mlmfit::REMLcrit(ss$mlm), lme4::REMLcrit(ss$lme4), tolerance = 1e-7)
  expect_equal(mlmfit::REMLcrit(ss$lme4), lme4::REMLcrit(ss$lme4))
  expect_error(mlmfit::REMLcrit(test_fit("cbpp")$mlm), class = "mlmfit_error_argument")
  expect_equal(extractAIC(ss$mlm), stats::extractAIC(ss$lme4), tolerance = 1e-7)
  expect_equal(extractAIC(test_fit("cbpp")$mlm), stats::extractAIC(test_fit("cbpp")$lme4),
               tolerance = 1e-5)
  # a singular fit: a random slope with no variance
  d <- lme4::sleepstudy
  set.seed(3)
  d$noise <- stats::rnorm(nrow(d))
  sing <- suppressMessages(lmm(Reaction ~ Days + (1 | Subject) + (0 + noise | Subject), d))
  sing_lme4 <- suppressMessages(lme4::lmer(Reaction ~ Days + (1 | Subject) + (0 + noise | Subject), d))
  expect_identical(lme4::isSingular(sing), lme4::isSingular(sing_lme4))
})
