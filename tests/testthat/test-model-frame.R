# The model frame, model matrix and factor levels the spec builds without
# stats::model.frame(), model.matrix()'s reordering and .getXlevels() must be
# exactly what those functions give: methods (predict(), emmeans, anova's
# contrasts, update()) read them.

frame_test_data <- function() {
  d <- package_dataset("sleepstudy", "lme4")
  d$text <- as.character(d$Subject)
  d$extra <- factor(d$Subject, levels = c(levels(d$Subject), "unused"))
  d$late <- d$Days > 4
  d$whole <- as.integer(d$Days)
  d$ord <- factor(d$whole %% 3, ordered = TRUE)
  d$extra[3] <- NA
  d$Reaction[5] <- NA
  d
}

test_that("the plain model frame is identical to stats::model.frame()", {
  skip_if_not_installed("lme4")
  d <- frame_test_data()
  cases <- list(
    list(Reaction ~ Days + text + extra + late + Subject, d),
    list(Reaction ~ whole + ord + Subject + late, d[d$Days > 2, ]),
    list(Reaction ~ Days + late + text, d[sample(nrow(d)), ]),
    list(Reaction ~ Days + Subject, structure(d, row.names = paste0("r", seq_len(nrow(d)))))
  )
  if (requireNamespace("tibble", quietly = TRUE)) cases <- c(cases, list(list(Reaction ~ Days * late + text, tibble::as_tibble(d))))
  for (cs in cases) {
    plain <- mlmfit:::plain_model_frame(quote(lmm()), cs[[1]], cs[[2]])
    expect_false(is.null(plain))
    expect_identical(plain, stats::model.frame(cs[[1]], cs[[2]], na.action = stats::na.pass, drop.unused.levels = TRUE))
  }
  expect_identical(levels(mlmfit:::plain_model_frame(quote(lmm()), Reaction ~ extra, d)$extra), levels(d$Subject))
})

test_that("model.frame() builds the frames the plain frame does not cover", {
  skip_if_not_installed("lme4")
  d <- frame_test_data()
  d$when <- as.Date("2020-01-01") + d$Days
  d$contrasted <- d$Subject
  stats::contrasts(d$contrasted) <- stats::contr.sum(nlevels(d$Subject))
  plain <- function(formula, call = quote(lmm())) mlmfit:::plain_model_frame(call, formula, d)
  expect_null(plain(Reaction ~ log(Days + 1) + Subject))
  expect_null(plain(Reaction ~ when + Subject))
  expect_null(plain(Reaction ~ contrasted + Days))
  expect_null(plain(Reaction ~ Days + Subject, quote(lmm(subset = Days > 1))))
  expect_null(plain(Reaction ~ Days + Subject, quote(lmm(weights = whole + 1))))
  expect_null(mlmfit:::plain_model_frame(quote(lmm()), Reaction ~ Days, as.list(d)))
  # the fits agree either way
  fit_plain <- lmm(Reaction ~ Days + (Days | Subject), d)
  fit_general <- lmm(Reaction ~ I(Days) + (Days | Subject), d)
  expect_equal(unname(fixef(fit_plain)), unname(fixef(fit_general)), tolerance = 1e-10)
  expect_identical(attr(model.frame(fit_plain), "na.action"), attr(model.frame(fit_general), "na.action"))
})

test_that("a fit's model frame, model matrix and factor levels are stats' own", {
  skip_if_not_installed("lme4")
  d <- frame_test_data()
  fit <- lmm(Reaction ~ Days * late + ord + (1 | text), d)
  spec <- mlmfit:::fit_spec(fit)
  mf <- stats::model.frame(Reaction ~ Days + late + ord + text, d, na.action = stats::na.omit,
                           drop.unused.levels = TRUE)
  expect_identical(mlmfit:::spec_frame(spec)[names(mf)], mf[names(mf)])
  expect_identical(attr(mlmfit:::spec_frame(spec), "na.action"), attr(mf, "na.action"))
  tt <- stats::terms(Reaction ~ Days * late + ord, data = mf)
  expect_identical(mlmfit:::spec_X(spec), stats::model.matrix(tt, mf))
  expect_identical(mlmfit:::spec_xlevels(spec), stats::.getXlevels(tt, mf))
})

test_that("the factor levels of the fixed part are those of stats::.getXlevels()", {
  skip_if_not_installed("lme4")
  d <- frame_test_data()
  formulas <- list(Reaction ~ Days, Reaction ~ 1, Reaction ~ text + Days * late, ~ Days + text,
                   Reaction ~ log(Days + 1) + ord + poly(Days, 2) + I(text == "308"), Reaction ~ Subject:Days)
  for (f in formulas) {
    mf <- stats::model.frame(f, d)
    tt <- stats::terms(f, data = mf)
    expect_identical(mlmfit:::fixed_xlevels(tt, mf), stats::.getXlevels(tt, mf))
    expect_identical(stats::model.matrix(tt, mlmfit:::frame_of_terms(tt, mf)), stats::model.matrix(tt, mf))
  }
})

test_that("the model matrix of numeric predictors is identical to stats::model.matrix()", {
  skip_if_not_installed("mlmRev")
  d <- package_dataset("Hsb82", "mlmRev")
  d$whole <- as.integer(round(d$cses * 10))
  d2 <- d[d$cses > 0.1, ]
  rownames(d2) <- paste0("r", seq_len(nrow(d2)))
  d2$cses[3] <- NA
  built <- function(f, data) {
    mf <- stats::na.omit(stats::model.frame(f, data))
    tt <- stats::terms(f, data = mf)
    list(numeric = mlmfit:::numeric_model_matrix(tt, mf), stats = stats::model.matrix(tt, mf))
  }
  for (f in list(mAch ~ meanses * cses, mAch ~ cses * meanses + whole, mAch ~ 0 + cses + whole,
                 mAch ~ exp(cses) + cses, ~ cses + meanses)) {
    for (data in list(d, d2)) {
      m <- built(f, data)
      expect_false(is.null(m$numeric))
      expect_identical(m$numeric, m$stats)
    }
  }
  # factors, margins left out and intercept-only models go to model.matrix()
  for (f in list(mAch ~ sector + cses, mAch ~ cses + meanses:whole, mAch ~ 1, mAch ~ cses + offset(meanses))) {
    expect_null(built(f, d)$numeric)
  }
})
