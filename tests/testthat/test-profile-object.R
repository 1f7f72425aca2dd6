# profile(): lme4's profile object ("thpr") traced by mlmfit's profile,
# against lme4's profile() of the same models (stored traces,
# fixtures/lme4-profile-traces.csv) and, for a residual structure,
# likelihood-ratio statistics of nlme.

# Largest gaps between a profile and lme4's, at the points of the
# profile within lme4's trace and |zeta| <= zmax: of zeta (lme4's spline
# of zeta against the parameter held) and of every other parameter
# (lme4's trace interpolated), relative to that parameter's size.
profile_gaps <- function(pr, ref, zmax = 3.5) {
  lapply(stats::setNames(levels(pr$.par), levels(pr$.par)), function(nm) {
    tr <- pr[pr$.par == nm, ]
    rt <- ref[ref$.par == nm, ]
    rt <- rt[order(rt[[nm]]), ]
    ok <- tr[[nm]] >= min(rt[[nm]]) & tr[[nm]] <= max(rt[[nm]]) & abs(tr$.zeta) <= zmax
    others <- setdiff(names(ref), c(".zeta", ".par", nm))
    c(n = sum(ok), zeta = max(abs(stats::predict(attr(ref, "forward")[[nm]], tr[[nm]][ok])$y - tr$.zeta[ok])),
      vapply(others, function(cl) {
        f <- stats::splinefun(rt[[nm]], rt[[cl]])
        max(abs(f(tr[[nm]][ok]) - tr[[cl]][ok])) / max(abs(rt[[cl]]))
      }, numeric(1)))
  })
}

expect_traces_like_lme4 <- function(pr, ref, tolerance_estimates = 2e-4) {
  expect_identical(names(pr), names(ref))
  expect_identical(levels(pr$.par), levels(ref$.par))
  for (g in profile_gaps(pr, ref)) {
    expect_gte(g[["n"]], 8)
    expect_lt(g[["zeta"]], 5e-3)
    expect_true(all(g[-(1:2)] < 5e-3), info = paste(names(g), signif(g, 2), collapse = "; "))
  }
  # the estimate: zeta 0 at the ML estimates (lme4 profiles a REML fit on
  # its ML deviance)
  expect_equal(unlist(pr[pr$.zeta == 0, -c(1L, ncol(pr))][1L, ]), unlist(ref[ref$.zeta == 0, -c(1L, ncol(ref))][1L, ]),
               tolerance = tolerance_estimates)
}

test_that("profile() traces lme4's profile of linear mixed models (sleepstudy, Penicillin)", {
  skip_if_not_installed("lme4")
  ss <- test_fit("sleepstudy")$mlm
  pr <- profile(ss)
  expect_s3_class(pr, c("mlmfit_profile", "thpr", "data.frame"))
  expect_traces_like_lme4(pr, lme4_profile_trace("sleepstudy"))
  # confint() of the profile interpolates it: the limits of confint(fit),
  # which are lme4's
  ci <- confint(pr)
  expect_equal(ci, confint(ss), tolerance = 1e-5)
  expect_equal(ci, lme4_profile_limits("sleepstudy"), tolerance = 1e-4)
  expect_equal(confint(pr, "Days", level = 0.9), confint(ss, "Days", level = 0.9), tolerance = 1e-5)
  expect_identical(rownames(confint(pr, "theta_")), c(".sig01", ".sig02", ".sig03", ".sigma"))
  # as.data.frame(): lme4's .focal column, the value of the parameter held
  d <- as.data.frame(pr)
  expect_identical(class(d), "data.frame")
  for (nm in levels(pr$.par)) expect_identical(d$.focal[d$.par == nm], pr[[nm]][pr$.par == nm])
  # zeta is the signed root of the rise of the ML deviance: by hand at one
  # point of the trace of Days (all other parameters as the trace has them)
  row <- pr[pr$.par == "Days", ][3L, ]
  ml <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = FALSE)
  held <- lme4::lmer(Reaction - row$Days * Days ~ 1 + (Days | Subject), lme4::sleepstudy, REML = FALSE)
  expect_lt(row$Days, lme4::fixef(ml)[["Days"]])
  expect_equal(row$.zeta, -sqrt(deviance(held) - deviance(ml)), tolerance = 1e-5)
  expect_equal(row$.sigma, sigma(held), tolerance = 1e-4)

  pen <- test_fit("penicillin")$mlm
  pr <- profile(pen)
  expect_traces_like_lme4(pr, lme4_profile_trace("penicillin"))
  expect_equal(confint(pr), confint(pen), tolerance = 1e-5)
})

test_that("profile() of a glmm fit traces glmer's profile (cbpp)", {
  skip_if_not_installed("lme4")
  cb <- test_fit("cbpp")$mlm
  pr <- profile(cb)
  # (mlmfit's and glmer's estimates of cbpp differ by up to 5e-4)
  expect_traces_like_lme4(pr, lme4_profile_trace("cbpp"), tolerance_estimates = 1e-3)
  expect_equal(unlist(pr[pr$.zeta == 0, 2:6][1L, ]), c(.sig01 = sqrt(unlist(VarCorr(cb))), fixef(cb)),
               tolerance = 1e-10, ignore_attr = TRUE)
  expect_equal(confint(pr), confint(cb), tolerance = 1e-4)
  expect_equal(confint(pr), lme4_profile_limits("cbpp"), tolerance = 2e-4)
  # a subset of the parameters, lme4's descriptive names
  sub <- profile(cb, which = c("period2", "theta_"), signames = FALSE)
  expect_identical(levels(sub$.par), c("sd_(Intercept)|herd", "period2"))
  expect_equal(unname(confint(sub)), unname(confint(pr)[c(".sig01", "period2"), ]), tolerance = 1e-8)
})

test_that("lattice pictures and lme4's transformations of a profile are lme4's", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("lattice")
  pr <- profile(test_fit("penicillin")$mlm)
  ref <- lme4_profile_trace("penicillin")
  x1 <- lattice::xyplot(pr)
  x2 <- lattice::xyplot(ref)
  expect_s3_class(x1, "trellis")
  expect_equal(x1$panel.args, x2$panel.args, tolerance = 1e-3)
  d1 <- lattice::densityplot(pr)
  d2 <- lattice::densityplot(ref)
  expect_equal(d1$panel.args, d2$panel.args, tolerance = 1e-2)
  s1 <- lattice::splom(pr)
  expect_s3_class(s1, "trellis")
  expect_identical(s1$panel.args, lattice::splom(ref)$panel.args[seq_along(s1$panel.args)])
  print(x1)
  print(d1)
  print(s1)
  # lme4's transformations work on it: log of standard deviations, variances
  logged <- lme4::logProf(pr)
  # (their splines are made anew on the transformed scale)
  expect_equal(confint(logged)[".lsig01", ], log(confint(pr)[".sig01", ]), tolerance = 1e-4)
  variances <- lme4::varianceProf(pr)
  expect_equal(confint(variances)[".sigmasq", ], confint(pr)[".sigma", ]^2, tolerance = 1e-4)
})

test_that("profile() of a fit with a residual structure: zeta is nlme's likelihood-ratio statistic", {
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), nlme::Ovary,
             correlation = corAR1(form = ~ 1 | Mare))
  pr <- profile(fit, which = "Phi")
  expect_identical(names(pr), c(".zeta", ".sig01", ".sigma", "Phi", "(Intercept)", "sin(2 * pi * Time)",
                                "cos(2 * pi * Time)", ".par"))
  full <- nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), nlme::Ovary, random = ~ 1 | Mare,
                    correlation = nlme::corAR1(form = ~ 1 | Mare), method = "ML")
  tr <- pr[pr$.zeta != 0, ]
  for (k in c(1L, 4L, nrow(tr))) {
    ref <- nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), nlme::Ovary, random = ~ 1 | Mare,
                     method = "ML", correlation = nlme::corAR1(tr$Phi[k], form = ~ 1 | Mare, fixed = TRUE))
    expect_equal(tr$.zeta[k]^2, 2 * as.numeric(logLik(full) - logLik(ref)), tolerance = 1e-5)
    expect_equal(tr$.sigma[k], ref$sigma, tolerance = 1e-4)
    expect_equal(unlist(tr[k, 5:7]), nlme::fixef(ref), tolerance = 1e-5, ignore_attr = TRUE)
  }
  expect_equal(confint(pr), confint(fit, "Phi"), tolerance = 1e-4)
})

test_that("profile() refuses what it cannot do, with classed conditions", {
  ss <- test_fit("sleepstudy")$mlm
  expect_error(profile(ss, prof.scale = "varcov"), class = "mlmfit_error_argument")
  expect_error(profile(ss, which = "nonsense"), class = "mlmfit_error_argument")
  expect_error(profile(ss, alphamax = 2), class = "mlmfit_error_argument")
  expect_warning(profile(ss, which = "Days", parallel = "multicore"), class = "mlmfit_warning_argument")
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial, nAGQ = 0)
  expect_error(profile(gfit), class = "mlmfit_error_argument")
})
