# Pictures of a fit, as ggplot2 objects a user can restyle: diagnostics,
# caterpillar plots of the random effects, and the pooling picture (no,
# complete and partial pooling). ggplot2 is suggested, not imported: only
# drawing needs it.

utils::globalVariables(c("x_value", "y_value", "panel", "intercept", "slope", "key", "lower", "upper",
                         "approach", "group_label", "condval"))

has_ggplot2 <- function() requireNamespace("ggplot2", quietly = TRUE)

require_ggplot2 <- function(what) {
  if (!has_ggplot2()) {
    mlm_abort(c("{what} needs the {.pkg ggplot2} package, which is not installed.",
                i = "Install it with {.code install.packages(\"ggplot2\")}."),
              "mlmfit_error_missing_package")
  }
}

# Intercept and slope of the line through the quartiles of a normal QQ plot
# (as stats::qqline draws it).
qq_reference <- function(y) {
  yq <- stats::quantile(y, c(0.25, 0.75), names = FALSE, type = 7)
  xq <- stats::qnorm(c(0.25, 0.75))
  slope <- diff(yq) / diff(xq)
  c(intercept = yq[1L] - slope * xq[1L], slope = slope)
}

qq_points <- function(y, panel) {
  y <- y[is.finite(y)]
  data.frame(panel = panel, x_value = stats::qnorm(stats::ppoints(length(y)))[order(order(y))], y_value = y,
             stringsAsFactors = FALSE)
}

#' Diagnostic plots of a linear mixed model
#'
#' Draws, in one faceted ggplot, the standardised residuals against the
#' fitted values (look for a trend or a funnel), a normal QQ plot of the
#' residuals, and a normal QQ plot of the conditional modes of each random
#' effect (look for curvature and outlying groups). Reference lines: zero
#' for the residuals, the line through the quartiles for the QQ plots.
#'
#' @param x A fit from [lmm()].
#' @param which Panels to draw: any of `"fitted"`, `"qq"` and `"ranef"`;
#'   or a formula such as `resid(.) ~ fitted(.) | g`, for lme4's lattice
#'   picture (see [mlmfit-lattice]).
#' @param ... Unused.
#' @return A ggplot object.
#' @seealso [plot.ranef.mlmfit()] for intervals around the random effects,
#'   [plot_pooling()].
#' @examplesIf requireNamespace("ggplot2", quietly = TRUE)
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' plot(fit)
#' plot(fit, which = "qq")
#' @export
plot.mlmfit_lmm <- function(x, which = c("fitted", "qq", "ranef"), ...) {
  if (inherits(which, "formula")) return(plot_merMod_formula(x, which, ...))
  warn_unused_dots(..., method = "plot")
  require_ggplot2("{.fn plot}")
  which <- match.arg(which, several.ok = TRUE)
  r <- residual_values(x, "pearson", scaled = TRUE)
  pieces <- list()
  lines <- list()
  if ("fitted" %in% which) {
    p <- "Standardised residuals vs fitted values"
    pieces$fitted <- data.frame(panel = p, x_value = fit_fitted(x), y_value = unname(r), stringsAsFactors = FALSE)
    lines$fitted <- data.frame(panel = p, intercept = 0, slope = 0, stringsAsFactors = FALSE)
  }
  if ("qq" %in% which) {
    p <- "Normal QQ: standardised residuals"
    pieces$qq <- qq_points(unname(r), p)
    ref <- qq_reference(r)
    lines$qq <- data.frame(panel = p, intercept = ref[["intercept"]], slope = ref[["slope"]], stringsAsFactors = FALSE)
  }
  if ("ranef" %in% which) {
    re <- ranef(x, condVar = FALSE)
    for (g in names(re)) {
      for (term in names(re[[g]])) {
        p <- paste0("Normal QQ: random effects, ", g, " ", term)
        b <- re[[g]][[term]]
        pieces[[p]] <- qq_points(b, p)
        ref <- qq_reference(b)
        lines[[p]] <- data.frame(panel = p, intercept = ref[["intercept"]], slope = ref[["slope"]],
                                 stringsAsFactors = FALSE)
      }
    }
  }
  points <- do.call(rbind, pieces)
  refs <- do.call(rbind, lines)
  panels <- unique(points$panel)
  points$panel <- factor(points$panel, levels = panels)
  refs$panel <- factor(refs$panel, levels = panels)
  ggplot2::ggplot(points, ggplot2::aes(x = x_value, y = y_value)) +
    ggplot2::geom_abline(data = refs, ggplot2::aes(intercept = intercept, slope = slope), colour = "grey50",
                         linetype = "dashed") +
    ggplot2::geom_point(alpha = 0.5) +
    ggplot2::facet_wrap(~panel, scales = "free") +
    ggplot2::labs(x = "fitted value (first panel) or normal quantile", y = "value")
}

#' Caterpillar plot of random effects
#'
#' Plots the conditional modes of the random effects of each group, sorted,
#' with intervals of plus or minus `qnorm((1 + level) / 2)` conditional
#' standard deviations (from the conditional variances stored in the
#' attribute `"postVar"`). Groups whose interval excludes zero differ from
#' the average group beyond what their data alone would show by chance; the
#' width of an interval shows how much information a group carries.
#'
#' @param x The result of `ranef()` on a fit from [lmm()] (with the default
#'   `condVar = TRUE`).
#' @param level Coverage of the intervals.
#' @param ... Unused.
#' @return A ggplot object, one panel per grouping factor and term.
#' @examplesIf requireNamespace("ggplot2", quietly = TRUE)
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' plot(ranef(fit))
#' @export
plot.ranef.mlmfit <- function(x, level = 0.95, ...) {
  warn_unused_dots(..., method = "plot")
  require_ggplot2("{.fn plot} of random effects")
  check_level(level)
  d <- as.data.frame(x)
  z <- stats::qnorm((1 + level) / 2)
  d$lower <- d$condval - z * d$condsd
  d$upper <- d$condval + z * d$condsd
  d$panel <- paste(d$grpvar, d$term)
  # Groups sorted by their first term, as lme4's dotplot sorts them.
  keys <- character()
  for (g in unique(d$grpvar)) {
    first <- as.character(d$term[d$grpvar == g][1L])
    rows <- d[d$grpvar == g & d$term == first, ]
    keys <- c(keys, paste(g, as.character(rows$grp)[order(rows$condval)], sep = "\r"))
  }
  d$key <- factor(paste(d$grpvar, as.character(d$grp), sep = "\r"), levels = keys)
  d$panel <- factor(d$panel, levels = unique(d$panel))
  labels <- sub("^.*\r", "", keys)
  names(labels) <- keys
  p <- ggplot2::ggplot(d, ggplot2::aes(x = condval, y = key)) +
    ggplot2::geom_vline(xintercept = 0, colour = "grey50", linetype = "dashed")
  if (any(!is.na(d$condsd))) {
    p <- p + ggplot2::geom_segment(ggplot2::aes(x = lower, xend = upper, y = key, yend = key), colour = "grey40",
                                   na.rm = TRUE)
  }
  p + ggplot2::geom_point(colour = "steelblue4") +
    ggplot2::scale_y_discrete(labels = labels, guide = ggplot2::guide_axis(check.overlap = TRUE)) +
    ggplot2::facet_wrap(~panel, scales = "free") +
    ggplot2::labs(x = "conditional mode", y = NULL)
}

#' No pooling, complete pooling and partial pooling
#'
#' The picture behind multilevel models: for each group, the regression line
#' fitted to that group alone (no pooling), the single line fitted to all
#' groups together (complete pooling), and the line of the multilevel model
#' (partial pooling). The multilevel line lies between the other two: closer
#' to the group's own line when the group's data determine that line well
#' (many observations, spread over the predictor), closer to the common line
#' when they determine it poorly. This is shrinkage.
#'
#' The lines span the range of the predictor over all the groups shown, and
#' the vertical axis is the range of the data, so a group with two or three
#' observations (whose own line can be very steep) stays readable.
#'
#' `fit` must have one grouping factor and one numeric predictor (as in
#' `y ~ x + (1 | g)` or `y ~ x + (x | g)`).
#'
#' @param fit A fit from [lmm()].
#' @param groups Levels of the grouping factor to draw. By default all when
#'   there are at most 12, otherwise 12 levels spread over the range of group
#'   sizes (from the smallest group to the largest).
#' @return A ggplot object, one panel per group, with the data as points and
#'   the three lines coloured by approach.
#' @examplesIf requireNamespace("ggplot2", quietly = TRUE)
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' plot_pooling(fit)
#' plot_pooling(lmm(posttest ~ pretest.c + (1 | classroom), twoclassrooms))
#' @export
plot_pooling <- function(fit, groups = NULL) {
  require_ggplot2("{.fn plot_pooling}")
  d <- pooling_lines(fit, groups)
  ggplot2::ggplot(d$points, ggplot2::aes(x = x_value, y = y_value)) +
    ggplot2::geom_point(alpha = 0.4) +
    ggplot2::geom_line(data = d$lines, ggplot2::aes(colour = approach, linetype = approach), linewidth = 0.8) +
    ggplot2::facet_wrap(~group_label) +
    # the data's vertical range: a steep line of a small group is cut, not
    # allowed to squash every panel
    ggplot2::coord_cartesian(ylim = range(d$points$y_value)) +
    ggplot2::scale_colour_manual(values = c(`no pooling` = "#D55E00", `complete pooling` = "grey40",
                                            `partial pooling` = "#0072B2")) +
    ggplot2::labs(x = d$x_name, y = d$y_name, colour = NULL, linetype = NULL)
}

# The points and the three lines of each chosen group.
pooling_lines <- function(fit, groups) {
  check_lmm_fit(fit)
  blocks <- re_blocks(fit)
  if (length(blocks) != 1L) {
    mlm_abort(c("{.fn plot_pooling} needs a model with one grouping factor.",
                x = "This one has {length(blocks)}: {.var {names(blocks)}}."),
              "mlmfit_error_argument")
  }
  X <- spec_X(fit)
  frame <- spec_frame(fit)
  x_name <- setdiff(colnames(X), "(Intercept)")
  if (length(x_name) != 1L || !"(Intercept)" %in% colnames(X) || !x_name %in% names(frame) ||
      !is.numeric(frame[[x_name]])) {
    mlm_abort(c("{.fn plot_pooling} needs a model with an intercept and one numeric predictor, as in {.code y ~ x + (x | g)}.",
                x = "The fixed effects are {.var {colnames(X)}}."),
              "mlmfit_error_argument")
  }
  blk <- blocks[[1L]]
  g <- block_factor(fit, 1L)
  x <- frame[[x_name]]
  y <- spec_y(fit)
  sizes <- tabulate(g, nlevels(g))
  if (is.null(groups)) {
    if (nlevels(g) <= 12L) {
      groups <- levels(g)
    } else {
      by_size <- levels(g)[order(sizes, seq_along(sizes))]
      groups <- by_size[unique(round(seq(1, length(by_size), length.out = 12L)))]
    }
  } else {
    groups <- as.character(groups)
    unknown <- setdiff(groups, levels(g))
    if (length(unknown) > 0L) {
      label <- blk$label
      mlm_abort(c("{.arg groups} names {length(unknown)} level{?s} that {?is/are} not in the data: {.val {unknown}}.",
                  i = "Use levels of the grouping factor {.var {label}}."),
                "mlmfit_error_argument")
    }
  }
  pooled <- stats::coef(stats::lm.fit(cbind(1, x), y))
  partial <- coef(fit)[[1L]]
  # Every line spans the predictor's range over the groups shown, so that a
  # group with few observations close together still shows three lines.
  xr <- range(x[as.character(g) %in% groups])
  lines <- list()
  for (lev in groups) {
    keep <- g == lev
    own <- if (sum(keep) >= 2L && diff(range(x[keep])) > 0) stats::coef(stats::lm.fit(cbind(1, x[keep]), y[keep])) else c(NA, NA)
    coefs <- rbind(`no pooling` = own, `complete pooling` = pooled,
                   `partial pooling` = c(partial[lev, "(Intercept)"], partial[lev, x_name]))
    for (a in rownames(coefs)) {
      if (anyNA(coefs[a, ])) next
      lines[[length(lines) + 1L]] <- data.frame(group = lev, approach = a, x_value = xr,
                                                y_value = coefs[a, 1L] + coefs[a, 2L] * xr,
                                                intercept = coefs[a, 1L], slope = coefs[a, 2L],
                                                stringsAsFactors = FALSE)
    }
  }
  lines <- do.call(rbind, lines)
  label_of <- stats::setNames(paste0(groups, " (n = ", sizes[match(groups, levels(g))], ")"), groups)
  lines$group_label <- factor(label_of[lines$group], levels = label_of)
  lines$approach <- factor(lines$approach, levels = c("no pooling", "complete pooling", "partial pooling"))
  keep <- as.character(g) %in% groups
  points <- data.frame(group = as.character(g[keep]), x_value = x[keep], y_value = y[keep], stringsAsFactors = FALSE)
  points$group_label <- factor(label_of[points$group], levels = label_of)
  list(points = points, lines = lines, x_name = x_name, y_name = spec_response_name(fit))
}
