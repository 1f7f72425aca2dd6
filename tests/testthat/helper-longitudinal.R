# Longitudinal data and the agreement with nlme::lme for models with a
# residual correlation or variance structure.

# The JSP file (Junior School Project: mathematics and English scores of
# pupils in 50 schools over three school years): the packaged data set when
# it exists on this branch, otherwise the test fixture made from
# ../shared/data/jsp.csv.
jsp_longitudinal <- function() {
  e <- new.env()
  has_data <- tryCatch({
    utils::data("jsp", package = "mlmfit", envir = e)
    all(c("school", "id", "year", "math", "gender") %in% names(e$jsp))
  }, warning = function(w) FALSE, error = function(err) FALSE)
  d <- if (isTRUE(has_data)) as.data.frame(e$jsp) else {
    utils::read.csv(testthat::test_path("fixtures", "jsp-longitudinal.csv"))
  }
  d$school <- factor(d$school)
  d$id <- factor(d$id)
  d$year <- as.numeric(d$year)
  # boy = 1, girl = 0 (the packaged data codes them as a factor)
  d$gender <- if (is.factor(d$gender)) as.numeric(d$gender == "boy") else as.numeric(d$gender)
  d
}

# The issue's contract: log-likelihood within 1e-3 of lme's or higher, fixed
# effects within relative 1e-3, the same number of parameters; here also the
# structure's parameters (absolute 2e-3 on the natural scale), sigma and the
# standard errors of the fixed effects (relative 2e-3).
expect_nlme_agreement <- function(fit, ref, ll_tol = 1e-3, par_tol = 2e-3) {
  ll <- as.numeric(logLik(fit))
  ll_ref <- as.numeric(logLik(ref))
  testthat::expect_gt(ll - ll_ref, -ll_tol)
  testthat::expect_equal(attr(logLik(fit), "df"), attr(logLik(ref), "df"))
  fe <- fixef(fit)
  fr <- nlme::fixef(ref)
  testthat::expect_equal(unname(fe), unname(fr), tolerance = 1e-3)
  testthat::expect_equal(sqrt(diag(vcov(fit))), sqrt(diag(stats::vcov(ref))), tolerance = 2e-3,
                         ignore_attr = TRUE)
  testthat::expect_equal(sigma(fit), ref$sigma, tolerance = 2e-3)
  ms <- ref$modelStruct
  pr <- c(if (!is.null(ms$corStruct)) stats::coef(ms$corStruct, unconstrained = FALSE),
          if (!is.null(ms$varStruct)) stats::coef(ms$varStruct, unconstrained = FALSE))
  pm <- residual_parameters(fit)
  testthat::expect_length(pm, length(pr))
  testthat::expect_true(all(abs(pm - pr) < par_tol), info = paste("parameters", paste(signif(pm - pr, 3), collapse = " ")))
  invisible(TRUE)
}
