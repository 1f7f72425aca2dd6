# Degrees of freedom and p-values of summary() against lmerTest (and
# pbkrtest for Kenward-Roger): df relative 1e-2, p-values absolute 1e-3.

expect_lmertest_table <- function(fit, ref, ddf) {
  ours <- summary(fit, ddf = ddf)$coefficients
  theirs <- summary(ref, ddf = ddf)$coefficients
  expect_identical(colnames(ours), colnames(theirs))
  expect_identical(rownames(ours), rownames(theirs))
  expect_close(ours[, "df"], theirs[, "df"], rel = 1e-2, info = paste(ddf, "df"))
  expect_true(all(abs(ours[, "Pr(>|t|)"] - theirs[, "Pr(>|t|)"]) <= 1e-3))
  expect_close(ours[, "Std. Error"], theirs[, "Std. Error"], rel = 1e-3, info = paste(ddf, "SE"))
}

test_that("sleepstudy: Satterthwaite and Kenward-Roger as lmerTest", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  sleepstudy <- lme4_data("sleepstudy")
  for (fm in list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (Days || Subject),
                  Reaction ~ Days + (1 | Subject))) {
    fit <- lmm(fm, sleepstudy)
    ref <- lmerTest::lmer(fm, sleepstudy)
    expect_lmertest_table(fit, ref, "Satterthwaite")
    expect_lmertest_table(fit, ref, "Kenward-Roger")
  }
  # a balanced design: both methods give the textbook n - 1 = 17 df
  fit <- test_fit("sleepstudy")$mlm
  expect_equal(unname(summary(fit)$coefficients[, "df"]), c(17, 17), tolerance = 1e-4)
  ml <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
  expect_lmertest_table(ml, lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE),
                        "Satterthwaite")
})

test_that("High School and Beyond: cross-level interactions (Satterthwaite)", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("mlmRev")
  Hsb82 <- hsb82_data()
  fm <- mAch ~ meanses * cses + sector * cses + (1 + cses | school)
  fit <- lmm(fm, Hsb82)
  expect_lmertest_table(fit, lmerTest::lmer(fm, Hsb82), "Satterthwaite")
})

test_that("London Exam, Orthodont and NELS88: Satterthwaite and Kenward-Roger", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  skip_if_not_installed("mlmRev")
  exam <- package_dataset("Exam", "mlmRev")
  fm <- normexam ~ standLRT + sex + schgend + (standLRT | school)
  expect_lmertest_table(lmm(fm, exam), lmerTest::lmer(fm, exam), "Satterthwaite")

  Orthodont <- as.data.frame(nlme::Orthodont)
  fm <- distance ~ age + Sex + (age | Subject)
  fit <- lmm(fm, Orthodont)
  ref <- lmerTest::lmer(fm, Orthodont)
  expect_lmertest_table(fit, ref, "Satterthwaite")
  expect_lmertest_table(fit, ref, "Kenward-Roger")

  nels88 <- nels88_data()
  fm <- math ~ homework + ses + public + (homework | schid)
  fit <- lmm(fm, nels88)
  ref <- lmerTest::lmer(fm, nels88)
  expect_lmertest_table(fit, ref, "Satterthwaite")
  expect_lmertest_table(fit, ref, "Kenward-Roger")
})

test_that("Kenward-Roger adjusted covariance agrees with pbkrtest: one, crossed and nested factors", {
  skip_if_not_installed("pbkrtest")
  check <- function(fm, data) {
    fit <- lmm(fm, data)
    ref <- lme4::lmer(fm, data)
    ours <- kenward_roger_basis(fit)$vcov_adjusted
    theirs <- as.matrix(pbkrtest::vcovAdj(ref))
    expect_close(ours, theirs, rel = 2e-3, info = deparse1(fm))
    p <- length(fixef(fit))
    df <- vapply(seq_len(p), function(j) kenward_roger_1d(kenward_roger_basis(fit), diag(p)[j, ])$df, 0)
    df_ref <- vapply(seq_len(p), function(j) pbkrtest::Lb_ddf(diag(p)[j, ], stats::vcov(ref), pbkrtest::vcovAdj(ref)), 0)
    expect_close(df, df_ref, rel = 1e-2, info = deparse1(fm))
  }
  check(diameter ~ 1 + (1 | plate) + (1 | sample), lme4_data("Penicillin"))
  check(strength ~ 1 + (1 | batch / cask), lme4_data("Pastes"))
  check(Reaction ~ Days + (Days | Subject), lme4_data("sleepstudy"))
})

test_that("ddf = 'none' gives Wald z tests", {
  fit <- lmm(math ~ homework + (homework | schid), nels88_data())
  tab <- summary(fit, ddf = "none")$coefficients
  expect_identical(colnames(tab), c("Estimate", "Std. Error", "z value", "Pr(>|z|)"))
  se <- sqrt(diag(vcov(fit)))
  expect_equal(unname(tab[, "z value"]), unname(fixef(fit) / se))
  expect_equal(unname(tab[, "Pr(>|z|)"]), unname(2 * pnorm(-abs(fixef(fit) / se))))
  expect_output(print(summary(fit)), "Satterthwaite")
  expect_output(print(summary(fit)), "Pr\\(>\\|t\\|\\)")
})

test_that("bad ddf requests are refused with classed errors", {
  nels88 <- nels88_data()
  fit <- lmm(math ~ homework + (1 | schid), nels88, REML = FALSE)
  expect_error(summary(fit, ddf = "Kenward-Roger"), class = "mlmfit_error_ddf")
  expect_error(summary(fit, ddf = "bogus"), class = "mlmfit_error_argument")
})

test_that("Satterthwaite's df with a correlation at the edge of its space hold it fixed (lmerTest's df without it)", {
  skip_if_not_installed("lmerTest")
  # a design of the second fuzz generator where corCAR1's phi runs to 0:
  # the fit stops at the edge of the correlation's space (psi = -20)
  case <- design_case(20261184)
  fit <- lmm(y ~ x + (1 | g1), case$data, REML = FALSE, correlation = corCAR1(form = ~ ctime | g1))
  expect_equal(abs(unname(fit_psi(fit))), 20)
  # phi ~ 2e-9: the model is the one without the correlation
  ref <- suppressMessages(lmerTest::lmer(y ~ x + (1 | g1), case$data, REML = FALSE))
  ct <- coef(summary(fit))
  cr <- coef(summary(ref))
  expect_close(ct[, "df"], cr[, "df"], rel = 1e-3)
  expect_close(ct[, "Pr(>|t|)"], cr[, "Pr(>|t|)"], rel = 1e-3)
})
