# tidy(), glance() and augment() against broom.mixed on lme4/lmerTest fits.

expect_frame_like <- function(ours, theirs, rel = 1e-3) {
  ours <- as.data.frame(ours)
  theirs <- as.data.frame(theirs)
  expect_identical(names(ours), names(theirs))
  expect_identical(nrow(ours), nrow(theirs))
  for (nm in names(theirs)) {
    if (is.numeric(theirs[[nm]])) {
      expect_close(ours[[nm]], theirs[[nm]], rel = rel, abs = 1e-6, info = nm)
    } else {
      expect_identical(as.character(ours[[nm]]), as.character(theirs[[nm]]), info = nm)
    }
  }
}

test_that("tidy() has broom.mixed's rows and columns (lmerTest fit: df and p-values)", {
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("lmerTest")
  sleepstudy <- lme4_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_frame_like(tidy(fit), broom.mixed::tidy(ref))
  expect_frame_like(tidy(fit, conf.int = TRUE), broom.mixed::tidy(ref, conf.int = TRUE))
  expect_frame_like(tidy(fit, effects = "ran_vals"), broom.mixed::tidy(ref, effects = "ran_vals"))
  expect_frame_like(tidy(fit, effects = "ran_coefs"), broom.mixed::tidy(ref, effects = "ran_coefs"))
  expect_frame_like(tidy(fit, effects = "ran_pars", scales = "vcov"),
                    broom.mixed::tidy(ref, effects = "ran_pars", scales = "vcov"))
  expect_frame_like(tidy(fit, effects = "fixed", ddf.method = "Kenward-Roger"),
                    broom.mixed::tidy(ref, effects = "fixed", ddf.method = "Kenward-Roger"), rel = 1e-2)
  expect_error(tidy(fit, effects = "everything"), class = "mlmfit_error_argument")
})

test_that("tidy() with profile intervals, and uncorrelated terms", {
  skip_if_not_installed("broom.mixed")
  sleepstudy <- lme4_data("sleepstudy")
  fm <- Reaction ~ Days + (Days || Subject)
  fit <- lmm(fm, sleepstudy)
  ref <- lme4::lmer(fm, sleepstudy)
  a <- tidy(fit, conf.int = TRUE, conf.method = "profile")
  b <- suppressMessages(broom.mixed::tidy(ref, conf.int = TRUE, conf.method = "profile"))
  a <- as.data.frame(a)[, names(b)]  # lme4 fits have no df and p-value columns
  expect_identical(a$group, b$group)
  expect_identical(a$term, b$term)
  expect_close(a$estimate, b$estimate, rel = 1e-3)
  expect_close(a$conf.low, b$conf.low, rel = 5e-3)
  expect_close(a$conf.high, b$conf.high, rel = 5e-3)
})

test_that("glance() and augment() as broom.mixed", {
  skip_if_not_installed("broom.mixed")
  sleepstudy <- lme4_data("sleepstudy")
  fit <- test_fit("sleepstudy")$mlm
  ref <- test_fit("sleepstudy")$lme4
  expect_frame_like(glance(fit), broom.mixed::glance(ref), rel = 1e-6)
  ml <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
  expect_frame_like(glance(ml), broom.mixed::glance(lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy,
                                                               REML = FALSE)), rel = 1e-4)
  fit <- at_lme4_estimates(fit, ref)
  expect_frame_like(augment(fit), broom.mixed::augment(ref), rel = 1e-5)
  nd <- sleepstudy[c(1, 20, 40), ]
  aug <- augment(fit, newdata = nd)
  expect_close(aug$.fitted, predict(ref, newdata = nd), rel = 1e-6)
  expect_close(aug$.resid, nd$Reaction - predict(ref, newdata = nd), rel = 1e-6)
  skip_if_not_installed("lmerTest")
  ref_t <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_frame_like(tidy(fit, effects = c("ran_vals", "fixed")),
                    broom.mixed::tidy(ref_t, effects = c("ran_vals", "fixed")), rel = 1e-3)
})

test_that("leverages and Cook's distances are lme4's, also for crossed and nested factors", {
  for (case in list(list(diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin"),
                    list(strength ~ 1 + (1 | batch / cask), "Pastes"))) {
    d <- lme4_data(case[[2]])
    ref <- lme4::lmer(case[[1]], d)
    fit <- at_lme4_estimates(lmm(case[[1]], d), ref)
    expect_close(hatvalues(fit), stats::hatvalues(ref), rel = 1e-6)
    expect_close(cooks.distance(fit), stats::cooks.distance(ref), rel = 1e-5)
  }
  # weights: the leverages sum to the effective number of parameters, as lme4's
  sleepstudy <- lme4_data("sleepstudy")
  w <- rep(c(1, 2, 0.5), length.out = nrow(sleepstudy))
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, weights = w)
  fit <- at_lme4_estimates(lmm(Reaction ~ Days + (Days | Subject), sleepstudy, weights = w), ref)
  expect_close(hatvalues(fit), stats::hatvalues(ref), rel = 1e-6)
})
