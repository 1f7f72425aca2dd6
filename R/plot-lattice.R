# lme4's lattice pictures of a fit, drawn by lme4's own methods: the
# caterpillar plot and normal QQ plot of the conditional modes
# (dotplot/qqmath of ranef(condVar = TRUE)), the diagnostic plot of
# plot.merMod() for a formula such as resid(.) ~ fitted(.) | g, and the
# pictures of a profile (xyplot, densityplot, splom). mlmfit's ranef() and
# profile() have lme4's layout (data frames with "postVar"; a "thpr" data
# frame with its splines), and every function these methods call on a fit
# (residuals, fitted, sigma, getData) has a method for mlmfit's fits.

#' lme4's lattice plots of a fit
#'
#' With the lattice and lme4 packages installed:
#' * `lattice::dotplot(ranef(fit, condVar = TRUE))` draws lme4's caterpillar
#'   plot (conditional modes with intervals of plus or minus 1.96
#'   conditional standard deviations, groups sorted), and
#'   `lattice::qqmath(ranef(fit, condVar = TRUE))` lme4's normal QQ plot of
#'   the conditional modes, one panel per term.
#' * `plot(fit, form)` draws lme4's `plot.merMod()` picture for a formula
#'   such as `resid(., type = "pearson") ~ fitted(.) | Subject`, in which
#'   `.` stands for the fit and the other variables come from the data
#'   (`sqrt(abs(resid(.))) ~ fitted(.)`, `Reaction ~ fitted(.)`, ...);
#'   `abline`, `id`, `idLabels` and `grid` as in lme4. For a fit from
#'   [glmm()], `plot(fit)` draws Pearson residuals against fitted values
#'   (lme4's default picture).
#'
#' * `lattice::xyplot()`, `densityplot()` and `splom()` of [profile()]'s
#'   result draw lme4's pictures of a profile: zeta against each parameter
#'   (with the limits of 50, 80, 90, 95 and 99% intervals), the profile
#'   densities, and the pairs of profile traces.
#'
#' `getData()` (nlme's generic) returns the rows of the data used by the fit
#' (with those `na.exclude` left out, whose fitted values and residuals are
#' `NA`).
#'
#' @param x A fit, or the result of [ranef()] on a fit.
#' @param form A formula, as for lme4's `plot.merMod()`.
#' @param object A fit from [lmm()] or [glmm()].
#' @param data Unused (for compatibility with the lattice generics).
#' @param ... Passed to lme4's method (lattice arguments).
#' @return A lattice object (`trellis`), or for `dotplot()` and
#'   `qqmath()` a list of them, one per grouping factor, as lme4 returns.
#' @name mlmfit-lattice
#' @examplesIf requireNamespace("lattice", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' lattice::dotplot(ranef(fit, condVar = TRUE))
#' lattice::qqmath(ranef(fit, condVar = TRUE))
#' plot(fit, resid(.) ~ fitted(.) | Subject)
#' pr <- profile(fit)
#' lattice::xyplot(pr)
#' lattice::splom(pr)
NULL

require_lattice_lme4 <- function(what) {
  for (pkg in c("lattice", "lme4")) {
    if (!requireNamespace(pkg, quietly = TRUE)) {
      mlm_abort(c("{what} needs the {.pkg {pkg}} package, which is not installed.",
                  i = "Install it with {.code install.packages(\"{pkg}\")}."),
                "mlmfit_error_missing_package")
    }
  }
}

as_ranef_mer <- function(x) structure(unclass(x), class = "ranef.mer")

#' @rdname mlmfit-lattice
dotplot.ranef.mlmfit <- function(x, data, ...) {
  require_lattice_lme4("{.fn dotplot} of random effects")
  lattice::dotplot(as_ranef_mer(x), data, ...)
}

#' @rdname mlmfit-lattice
qqmath.ranef.mlmfit <- function(x, data, ...) {
  require_lattice_lme4("{.fn qqmath} of random effects")
  lattice::qqmath(as_ranef_mer(x), data, ...)
}

# lme4's pictures of a profile: the profile has lme4's layout.
lme4_profile_plot <- function(name, x, ...) {
  require_lattice_lme4(paste0("{.fn ", name, "} of a profile"))
  method <- utils::getS3method(name, "thpr", envir = asNamespace("lme4"))
  method(x, ...)
}

#' @rdname mlmfit-lattice
xyplot.mlmfit_profile <- function(x, data = NULL, ...) lme4_profile_plot("xyplot", x, data = data, ...)

#' @rdname mlmfit-lattice
densityplot.mlmfit_profile <- function(x, data = NULL, ...) lme4_profile_plot("densityplot", x, data = data, ...)

#' @rdname mlmfit-lattice
splom.mlmfit_profile <- function(x, data = NULL, ...) lme4_profile_plot("splom", x, data = data, ...)

# lme4's plot.merMod() on the fit itself.
plot_merMod_formula <- function(x, form, ...) {
  require_lattice_lme4("{.fn plot} with a formula")
  if (!inherits(form, "formula")) {
    mlm_abort("{.arg form} must be a formula such as {.code resid(.) ~ fitted(.) | group}.", "mlmfit_error_argument")
  }
  method <- utils::getS3method("plot", "merMod", envir = asNamespace("lme4"))
  method(x, form, ...)
}

#' @rdname mlmfit-lattice
#' @export
plot.mlmfit_glmm <- function(x, form = resid(., type = "pearson") ~ fitted(.), ...) {
  require_lattice_lme4("{.fn plot}")
  # lme4 draws the zero line only for its default formula
  if (missing(form)) return(utils::getS3method("plot", "merMod", envir = asNamespace("lme4"))(x, ...))
  plot_merMod_formula(x, form, ...)
}

#' @rdname mlmfit-lattice
#' @importFrom nlme getData
#' @method getData mlmfit
#' @export
getData.mlmfit <- function(object) fit_data_rows(object, excluded = TRUE)

# The rows of the data the fit used: with `excluded`, also those na.exclude
# left out (one row per value of fitted() and residuals(), as lme4's
# plot() of a formula needs).
fit_data_rows <- function(object, excluded = FALSE) {
  frame <- spec_frame(object)
  data <- tryCatch(eval(fit_call(object)$data, environment(spec_formula(object))), error = function(e) NULL)
  if (!is.data.frame(data)) return(as.data.frame(frame))
  keep <- rownames(frame)
  omit <- attr(frame, "na.action")
  if (excluded && inherits(omit, "exclude")) keep <- c(keep, names(omit))
  if (nrow(data) != length(keep)) data <- data[rownames(data) %in% keep, , drop = FALSE]
  data
}
