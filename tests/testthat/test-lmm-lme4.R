# Agreement with lme4::lmer within the accuracy contract of DESIGN.md.

test_that("sleepstudy: correlated and uncorrelated random slopes, REML and ML", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  for (reml in c(TRUE, FALSE)) {
    f <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    g <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    expect_lme4_agreement(f, g)
    f2 <- lmm(Reaction ~ Days + (Days || Subject), sleepstudy, REML = reml)
    g2 <- lme4::lmer(Reaction ~ Days + (Days || Subject), sleepstudy, REML = reml)
    expect_lme4_agreement(f2, g2)
  }
})

test_that("High School and Beyond: the four models of the lesson", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("mlmRev")
  data("Hsb82", package = "mlmRev")
  forms <- list(mAch ~ 1 + (1 | school),
                mAch ~ meanses + (1 | school),
                mAch ~ cses + (1 + cses | school),
                mAch ~ meanses * cses + sector * cses + (1 + cses | school))
  for (fm in forms) {
    expect_lme4_agreement(lmm(fm, Hsb82), lme4::lmer(fm, Hsb82))
  }
  expect_lme4_agreement(lmm(forms[[4]], Hsb82, REML = FALSE), lme4::lmer(forms[[4]], Hsb82, REML = FALSE))
})

test_that("London Exam: random slope of standLRT and the school-level schgend", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("mlmRev")
  data("Exam", package = "mlmRev")
  fm1 <- normexam ~ standLRT + (standLRT | school)
  fm2 <- normexam ~ standLRT + sex + schgend + (standLRT | school)
  expect_lme4_agreement(lmm(fm1, Exam), lme4::lmer(fm1, Exam))
  expect_lme4_agreement(lmm(fm2, Exam), lme4::lmer(fm2, Exam))
  expect_lme4_agreement(lmm(fm2, Exam, REML = FALSE), lme4::lmer(fm2, Exam, REML = FALSE))
})

test_that("crossed (Penicillin) and nested (Pastes) factors", {
  skip_if_not_installed("lme4")
  data("Penicillin", package = "lme4")
  data("Pastes", package = "lme4")
  fm <- diameter ~ 1 + (1 | plate) + (1 | sample)
  expect_lme4_agreement(lmm(fm, Penicillin), lme4::lmer(fm, Penicillin))
  fm <- strength ~ 1 + (1 | batch / cask)
  f <- lmm(fm, Pastes)
  expect_lme4_agreement(f, lme4::lmer(fm, Pastes))
  expect_identical(names(ngrps(f)), c("cask:batch", "batch"))
  # a:b written out gives the same fit as the nested shorthand
  f2 <- lmm(strength ~ 1 + (1 | batch) + (1 | cask:batch), Pastes)
  expect_equal(deviance(f2), deviance(f), tolerance = 1e-8)
})

test_that("Dyestuff2: a singular fit with the batch variance at zero", {
  skip_if_not_installed("lme4")
  data("Dyestuff2", package = "lme4")
  f <- lmm(Yield ~ 1 + (1 | Batch), Dyestuff2)
  g <- suppressMessages(lme4::lmer(Yield ~ 1 + (1 | Batch), Dyestuff2))
  expect_lme4_agreement(f, g)
  expect_true(is_singular(f))
  expect_equal(unname(f$theta), 0)
  expect_output(print(summary(f)), "singular")
  data("Dyestuff", package = "lme4")
  expect_false(is_singular(lmm(Yield ~ 1 + (1 | Batch), Dyestuff)))
})

test_that("NELS88: random slope of homework in 23 schools", {
  skip_if_not_installed("lme4")
  nels88 <- nels88_data()
  fm <- math ~ homework + (homework | schid)
  expect_lme4_agreement(lmm(fm, nels88), lme4::lmer(fm, nels88))
  expect_lme4_agreement(lmm(fm, nels88, REML = FALSE), lme4::lmer(fm, nels88, REML = FALSE))
})

test_that("prior weights have lme4's meaning, REML and ML", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  set.seed(11)
  sleepstudy$w <- runif(nrow(sleepstudy), 0.5, 2)
  for (reml in c(TRUE, FALSE)) {
    f <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, weights = w, REML = reml)
    g <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, weights = w, REML = reml)
    expect_lme4_agreement(f, g)
    expect_equal(as.numeric(logLik(f)), as.numeric(logLik(g)), tolerance = 1e-6)
    expect_equal(unname(residuals(f, type = "pearson")), unname(residuals(g, type = "pearson")), tolerance = 1e-4)
  }
})

test_that("an offset, in the formula or as an argument", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  sleepstudy$o <- 3 * sleepstudy$Days
  f1 <- lmm(Reaction ~ Days + offset(o) + (Days | Subject), sleepstudy)
  g1 <- lme4::lmer(Reaction ~ Days + offset(o) + (Days | Subject), sleepstudy)
  expect_lme4_agreement(f1, g1)
  f2 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, offset = o)
  expect_equal(fixef(f2), fixef(f1), tolerance = 1e-8)
  expect_equal(fitted(f1), fitted(g1), tolerance = 1e-6, ignore_attr = TRUE)
  # the offset shifts the slope by exactly 3
  f0 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_equal(unname(fixef(f1)["Days"]), unname(fixef(f0)["Days"]) - 3, tolerance = 1e-6)
})

test_that("several terms on one factor, factors in the random part, numeric grouping", {
  skip_if_not_installed("lme4")
  nels88 <- nels88_data()
  nels88$public_f <- factor(nels88$public, labels = c("private", "public"))
  fm <- math ~ homework + (1 | schid) + (0 + homework | schid)
  expect_lme4_agreement(lmm(fm, nels88), lme4::lmer(fm, nels88))
  # a cross-level interaction: public school (level 2) by homework (level 1)
  fm <- math ~ homework * public_f + ses + (homework | schid)
  expect_lme4_agreement(lmm(fm, nels88), lme4::lmer(fm, nels88))
  nels88$sch_chr <- as.character(nels88$schid)
  expect_equal(deviance(lmm(math ~ homework + (1 | sch_chr), nels88)),
               deviance(lmm(math ~ homework + (1 | schid), nels88)), tolerance = 1e-10)
})

test_that("conditional variances match lme4's condVar", {
  skip_if_not_installed("lme4")
  f <- test_fit("sleepstudy")$mlm
  g <- test_fit("sleepstudy")$lme4
  a <- attr(ranef(f)$Subject, "postVar")
  b <- attr(lme4::ranef(g, condVar = TRUE)$Subject, "postVar")
  expect_equal(dim(a), dim(b))
  expect_true(max(abs(a - b) / abs(b)) < 1e-3)
  data("Penicillin", package = "lme4")
  f <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
  g <- lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
  for (nm in c("plate", "sample")) {
    a <- as.vector(attr(ranef(f)[[nm]], "postVar"))
    b <- as.vector(attr(lme4::ranef(g, condVar = TRUE)[[nm]], "postVar"))
    expect_true(max(abs(a - b) / b) < 1e-3)
  }
  expect_equal(as.data.frame(ranef(f))$condsd, as.data.frame(lme4::ranef(g, condVar = TRUE))$condsd,
               tolerance = 1e-3)
})
