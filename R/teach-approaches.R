# The five ways to estimate the slope of a level-1 predictor in clustered
# data, side by side: the London schools lesson in one call.

#' Five analytic approaches to clustered data, side by side
#'
#' Estimates the slope of `x` in `y ~ x` for data clustered in groups in the
#' five ways a multilevel course compares:
#'
#' 1. **aggregated**: regress the group means of `y` on the group means of
#'    `x` (one point per group). Every group weighs the same, only
#'    group-level inference is possible, and reading the result as a
#'    statement about individuals risks the ecological fallacy.
#' 2. **disaggregated**: ordinary least squares on all rows, as if they were
#'    independent. The standard error pretends there are `n` independent
#'    units.
#' 3. **per-group regressions**: one regression in each group; the estimate
#'    is the average of the group slopes, its standard error their standard
#'    deviation over the square root of the number of groups.
#' 4. **fixed effects with interactions**: one least-squares model with an
#'    intercept and a slope for every group (`y ~ group * x`, with sum-to-zero
#'    contrasts so the coefficient of `x` is the unweighted average of the
#'    group slopes); it spends two parameters per group and speaks only about
#'    these groups.
#' 5. **multilevel**: [lmm()] with a random intercept and a random slope,
#'    `y ~ x + (1 + x | group)`: one average slope and the spread of the
#'    slopes, with groups as the independent units.
#'
#' Approaches 3 and 4 use the groups whose slope can be estimated (at least
#' three observations and some variation in `x`); the others use every
#' complete row.
#'
#' @param formula A formula `y ~ x` with one numeric predictor.
#' @param data A data frame.
#' @param group The name of the grouping column of `data`, as a string
#'   (`"school"`) or a bare name (`school`).
#' @param REML For the multilevel model: REML (`TRUE`, default) or ML.
#' @return A data frame with one row per approach: `approach`, `estimate`
#'   (slope of `x`), `std.error`, `units` (the number of independent units
#'   the estimate rests on: groups or rows) and `slope_sd` (the standard
#'   deviation of the group slopes, where the approach has one).
#' @references Goldstein, H., Rasbash, J., Yang, M., Woodhouse, G., Pan, H.,
#'   Nuttall, D. and Thomas, S. (1993). A multilevel analysis of school
#'   examination results. *Oxford Review of Education* 19, 425-433.
#' @examples
#' compare_approaches(math ~ homework, nels88, group = "schid")
#' @export
compare_approaches <- function(formula, data, group, REML = TRUE) {
  group_expr <- substitute(group)
  if (is.name(group_expr) && as.character(group_expr) %in% names(data)) group <- as.character(group_expr)
  d <- approaches_data(formula, data, group)
  y <- d$y
  x <- d$x
  g <- d$g
  k <- nlevels(g)
  n <- length(y)

  ybar <- tapply(y, g, mean)
  xbar <- tapply(x, g, mean)
  aggregated <- slope_of(stats::lm(ybar ~ xbar), "xbar")
  disaggregated <- slope_of(stats::lm(y ~ x), "x")

  sizes <- tabulate(g, k)
  spread_x <- tapply(x, g, function(v) diff(range(v)))
  estimable <- levels(g)[sizes >= 3L & spread_x > 0]
  if (length(estimable) < 2L) {
    mlm_abort(c("Fewer than two groups of {.var {group}} have a slope that can be estimated.",
                i = "A group needs at least three observations and some variation in the predictor."),
              "mlmfit_error_grouping")
  }
  slopes <- vapply(estimable, function(lev) {
    keep <- g == lev
    stats::coef(stats::lm.fit(cbind(1, x[keep]), y[keep]))[[2L]]
  }, numeric(1))
  m <- length(slopes)
  per_group <- c(mean(slopes), stats::sd(slopes) / sqrt(m))

  keep <- g %in% estimable
  gk <- droplevels(g[keep])
  fe_fit <- stats::lm(yk ~ gk * xk, data = data.frame(yk = y[keep], xk = x[keep], gk = gk),
                      contrasts = list(gk = "contr.sum"))
  fixed_effects <- slope_of(fe_fit, "xk")

  ml_data <- data.frame(.y = y, .x = x, .g = g)
  ml <- lmm(.y ~ .x + (1 + .x | .g), ml_data, REML = REML)
  ml_slope <- c(fixef(ml)[[".x"]], sqrt(diag(vcov(ml)))[[".x"]])
  ml_sd <- attr(VarCorr(ml)[[1L]], "stddev")[[".x"]]

  out <- data.frame(
    approach = c("aggregated", "disaggregated", "per-group regressions", "fixed effects with interactions",
                 "multilevel"),
    estimate = c(aggregated[1], disaggregated[1], per_group[1], fixed_effects[1], ml_slope[1]),
    std.error = c(aggregated[2], disaggregated[2], per_group[2], fixed_effects[2], ml_slope[2]),
    units = c(k, n, m, sum(keep), k),
    slope_sd = c(NA, NA, stats::sd(slopes), stats::sd(slopes), ml_sd),
    stringsAsFactors = FALSE
  )
  attr(out, "variable") <- d$x_name
  out
}

slope_of <- function(fit, name) {
  unname(summary(fit)$coefficients[name, c("Estimate", "Std. Error")])
}

# The response, the predictor and the grouping factor of complete rows.
approaches_data <- function(formula, data, group) {
  if (!inherits(formula, "formula") || length(formula) != 3L) {
    mlm_abort("{.arg formula} must be a two-sided formula {.code y ~ x}.", "mlmfit_error_formula")
  }
  data <- as_model_data(data)
  if (!is.character(group) || length(group) != 1L || !group %in% names(data)) {
    mlm_abort(c("{.arg group} must name a column of {.arg data}.",
                i = "Pass the column's name, e.g. {.code group = \"school\"}."),
              "mlmfit_error_variable")
  }
  check_variables_exist(formula, data)
  labels <- attr(stats::terms(formula), "term.labels")
  if (length(labels) != 1L) {
    mlm_abort(c("{.arg formula} must have exactly one predictor, as in {.code y ~ x}.",
                x = "It has {length(labels)}."), "mlmfit_error_formula")
  }
  y <- eval(formula[[2L]], data, environment(formula))
  x <- eval(formula[[3L]], data, environment(formula))
  if (!is.numeric(y) || !is.numeric(x)) {
    mlm_abort("The response and the predictor of {.arg formula} must be numeric.", "mlmfit_error_variable")
  }
  g <- data[[group]]
  ok <- !is.na(y) & !is.na(x) & !is.na(g)
  g <- droplevels(factor(g[ok]))
  if (nlevels(g) < 3L) {
    mlm_abort("{.var {group}} must have at least three groups with complete data.", "mlmfit_error_grouping")
  }
  list(y = as.double(y[ok]), x = as.double(x[ok]), g = g, x_name = labels)
}
