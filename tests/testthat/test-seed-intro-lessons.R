# Seed 001 (Anderson's introduction): the Junior School Project lessons
# (ranking schools, per-school regressions, growth, three levels) and the
# cross-classification of primary and secondary schools. The notes print
# the JSP file's facts, no model estimates; the models of the lessons are
# checked against lme4.

jsp_both_years <- function() {
  jsp <- teaching_dataset("jsp")
  wide <- reshape(jsp[c("school", "id", "math", "year")], idvar = "id", timevar = "year",
                  direction = "wide", v.names = "math")
  both <- wide[!is.na(wide$math.0) & !is.na(wide$math.2), ]
  both$intake <- both$math.0 - mean(both$math.0)
  both
}

test_that("JSP as the notes describe it: 3236 records, over 1000 pupils, schools 1-50, scores 1-40, years 0-2", {
  jsp <- teaching_dataset("jsp")
  expect_equal(nrow(jsp), 3236L)
  expect_gt(length(unique(jsp$id)), 1000L)
  expect_true(all(jsp$school %in% 1:50))
  expect_true(all(jsp$math >= 1 & jsp$math <= 40))
  expect_setequal(unique(jsp$year), 0:2)
})

test_that("JSP value added: the random-intercept model agrees with lme4, and ranks come with intervals", {
  skip_if_not_installed("lme4")
  both <- jsp_both_years()
  expect_equal(c(nrow(both), length(unique(both$school))), c(924L, 48L))
  fits <- fit_both(math.2 ~ intake + (1 | school), both)
  expect_lme4_agreement(fits$mlm, fits$lme4)
  # conditional SDs (the intervals of the caterpillar plot) agree with lme4's
  re <- as.data.frame(ranef(fits$mlm))
  re_lme4 <- as.data.frame(lme4::ranef(fits$lme4, condVar = TRUE))
  expect_equal(re$condsd, re_lme4$condsd, tolerance = 1e-3)
})

test_that("JSP growth over the three years and the three-level model agree with lme4", {
  skip_if_not_installed("lme4")
  jsp <- teaching_dataset("jsp")
  growth <- fit_both(math ~ year + (1 | id) + (1 + year | school), jsp)
  expect_lme4_agreement(growth$mlm, growth$lme4)
  third <- subset(jsp, year == 2)
  three <- fit_both(math ~ 1 + (1 | school / class), third)
  expect_lme4_agreement(three$mlm, three$lme4)
  # class ICC counts the school variance too: 0.0866 + 0.0403
  i <- icc(three$mlm)
  v <- as.data.frame(lme4::VarCorr(three$lme4))$vcov
  expect_equal(i$correlation[i$group == "class:school"], (v[1] + v[2]) / sum(v), tolerance = 1e-3)
})

test_that("crossed primary and secondary schools (ScotsSec) agree with lme4", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("mlmRev")
  scots <- package_dataset("ScotsSec", "mlmRev")
  # crossed, not nested: most primary schools feed more than one secondary school
  feeds <- rowSums(table(scots$primary, scots$second) > 0)
  expect_equal(sum(feeds > 1), 91L)
  empty <- fit_both(attain ~ 1 + (1 | primary) + (1 | second), scots)
  expect_lme4_agreement(empty$mlm, empty$lme4)
  full <- fit_both(attain ~ verbal + sex + social + (1 | primary) + (1 | second), scots)
  expect_lme4_agreement(full$mlm, full$lme4)
  # for crossed factors the two ICC columns agree
  i <- icc(empty$mlm)
  expect_equal(i$icc, i$correlation)
})
