test_that("plot() of a fit draws residuals against fitted values and QQ plots", {
  skip_if_not_installed("ggplot2")
  nels88 <- teaching_dataset("nels88")
  fit <- lmm(math ~ homework + (homework | schid), nels88)
  p <- plot(fit)
  expect_s3_class(p, "ggplot")
  b <- ggplot2::ggplot_build(p)
  panels <- levels(p$data$panel)
  expect_length(panels, 4L)
  pts <- b$data[[2L]]
  r <- unname(residuals(fit)) / sigma(fit)
  first <- pts[pts$PANEL == 1L, ]
  expect_equal(first$x, unname(fitted(fit)))
  expect_equal(first$y, r)
  lines <- b$data[[1L]]
  expect_equal(c(lines$intercept[lines$PANEL == 1L], lines$slope[lines$PANEL == 1L]), c(0, 0))
  # the QQ panel is stats::qqnorm's pairing, with qqline's reference line
  qq <- pts[pts$PANEL == 2L, ]
  ref <- stats::qqnorm(r, plot.it = FALSE)
  expect_equal(qq$x[order(qq$y)], sort(ref$x))
  expect_equal(sort(qq$y), sort(r))
  yq <- stats::quantile(r, c(0.25, 0.75), names = FALSE)
  slope <- diff(yq) / diff(stats::qnorm(c(0.25, 0.75)))
  expect_equal(lines$slope[lines$PANEL == 2L], slope)
  # random effects: the conditional modes of the slope
  re <- pts[pts$PANEL == 4L, ]
  expect_equal(sort(re$y), sort(ranef(fit)$schid$homework))
  only_qq <- ggplot2::ggplot_build(plot(fit, which = "qq"))
  expect_equal(nrow(only_qq$data[[2L]]), nobs(fit))
})

test_that("plot(ranef()) draws conditional modes with intervals from lme4's conditional variances", {
  skip_if_not_installed("ggplot2")
  skip_if_not_installed("lme4")
  nels88 <- teaching_dataset("nels88")
  f <- math ~ homework + (homework | schid)
  fit <- lmm(f, nels88)
  ref <- as.data.frame(lme4::ranef(lme4::lmer(f, nels88), condVar = TRUE))
  p <- plot(ranef(fit), level = 0.9)
  expect_s3_class(p, "ggplot")
  b <- ggplot2::ggplot_build(p)
  seg <- b$data[[2L]]
  pts <- b$data[[3L]]
  expect_equal(nrow(seg), 46L)
  expect_equal(sort(pts$x), sort(ref$condval), tolerance = 1e-3)
  z <- stats::qnorm(0.95)
  expect_equal(sort(seg$xend - seg$x), sort(2 * z * ref$condsd), tolerance = 1e-3)
  expect_equal(sort((seg$xend + seg$x) / 2), sort(ref$condval), tolerance = 1e-3)
  # schools are sorted by their intercept in both panels
  d <- p$data
  first <- d[d$term == "(Intercept)", ]
  expect_equal(as.character(first$grp[order(as.integer(first$key))]),
               rownames(ranef(fit)$schid)[order(ranef(fit)$schid[["(Intercept)"]])])
  expect_error(plot(ranef(fit), level = 2), class = "mlmfit_error_argument")
})

test_that("plot_pooling() draws no, complete and partial pooling lines", {
  skip_if_not_installed("ggplot2")
  skip_if_not_installed("lme4")
  nels88 <- teaching_dataset("nels88")
  f <- math ~ homework + (homework | schid)
  fit <- lmm(f, nels88)
  p <- plot_pooling(fit, groups = c(24725, 62821, 7472))
  expect_s3_class(p, "ggplot")
  b <- ggplot2::ggplot_build(p)
  expect_equal(length(unique(b$data[[2L]]$PANEL)), 3L)
  lines <- ggplot2::layer_data(p, 2L)
  expect_equal(nrow(lines), 3L * 3L * 2L)
  d <- p$layers[[2L]]$data
  own <- coef(lme4::lmList(math ~ homework | schid, nels88))
  partial <- coef(lme4::lmer(f, nels88))$schid
  pooled <- coef(lm(math ~ homework, nels88))
  for (s in c("24725", "62821", "7472")) {
    np <- d[d$group == s & d$approach == "no pooling", ][1, ]
    expect_equal(c(np$intercept, np$slope), unname(unlist(own[s, ])), tolerance = 1e-8)
    pp <- d[d$group == s & d$approach == "partial pooling", ][1, ]
    expect_equal(c(pp$intercept, pp$slope), unname(unlist(partial[s, ])), tolerance = 1e-3)
    cp <- d[d$group == s & d$approach == "complete pooling", ][1, ]
    expect_equal(c(cp$intercept, cp$slope), unname(pooled), tolerance = 1e-8)
  }
  # published separate regressions of the two-school lesson
  expect_equal(round(unname(unlist(own["24725", ])), 2), c(34.39, 5.59))
  expect_equal(round(unname(unlist(own["62821", ])), 2), c(59.21, 1.09))
  # the default picks 12 of the 23 schools, from the smallest to the largest
  dflt <- plot_pooling(fit)
  sizes <- table(nels88$schid)
  shown <- unique(dflt$layers[[2L]]$data$group)
  expect_length(shown, 12L)
  expect_true(names(sizes)[which.max(sizes)] %in% shown)
  expect_true(names(sizes)[which.min(sizes)] %in% shown)
  # random intercept only: partial pooling lines are parallel
  two <- teaching_dataset("twoclassrooms")
  ri <- plot_pooling(lmm(posttest ~ pretest.c + (1 | classroom), two))
  slopes <- ri$layers[[2L]]$data
  expect_equal(length(unique(round(slopes$slope[slopes$approach == "partial pooling"], 10))), 1L)
})

test_that("plot_pooling() refuses models it cannot draw", {
  skip_if_not_installed("ggplot2")
  nels88 <- teaching_dataset("nels88")
  expect_error(plot_pooling(lmm(math ~ homework + ses + (1 | schid), nels88)), class = "mlmfit_error_argument")
  expect_error(plot_pooling(lmm(math ~ homework + (1 | schid) + (1 | region), nels88)),
               class = "mlmfit_error_argument")
  expect_error(plot_pooling(lmm(math ~ homework + (1 | schid), nels88), groups = "nope"),
               class = "mlmfit_error_argument")
})

test_that("drawing without ggplot2 is a classed error", {
  # replace the package's check for ggplot2 for the duration of this test
  ns <- asNamespace("mlmfit")
  original <- get("has_ggplot2", envir = ns)
  unlockBinding("has_ggplot2", ns)
  assign("has_ggplot2", function() FALSE, envir = ns)
  on.exit({
    assign("has_ggplot2", original, envir = ns)
    lockBinding("has_ggplot2", ns)
  }, add = TRUE)
  nels88 <- teaching_dataset("nels88")
  fit <- lmm(math ~ homework + (1 | schid), nels88)
  expect_error(plot(fit), class = "mlmfit_error_missing_package")
  expect_error(plot(ranef(fit)), class = "mlmfit_error_missing_package")
  expect_error(plot_pooling(fit), class = "mlmfit_error_missing_package")
})

test_that("pictures of a three-level model have a panel per grouping factor", {
  skip_if_not_installed("ggplot2")
  jsp <- teaching_dataset("jsp")
  fit <- lmm(math ~ raven + (1 | school) + (1 | school:class), jsp, subset = year == 2)
  re <- ranef(fit)
  p <- plot(re)
  b <- ggplot2::ggplot_build(p)
  expect_equal(nlevels(p$data$panel), 2L)
  pts <- b$data[[3L]]
  expect_equal(nrow(pts), nrow(re$school) + nrow(re$`school:class`))
  cls <- as.data.frame(re)
  cls <- cls[cls$grpvar == "school:class", ]
  expect_equal(sort(pts$x[pts$PANEL == 1L]), sort(cls$condval))
  d <- ggplot2::ggplot_build(plot(fit))
  expect_equal(length(unique(d$data[[2L]]$PANEL)), 4L)
})
