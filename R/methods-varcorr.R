# Variance components: the covariance matrix of each random-effect term and
# the residual standard deviation, printed and tabulated as lme4 does.

#' Variance components of a mixed model
#'
#' `VarCorr()` returns, for each random-effect term, the estimated
#' covariance matrix of its random effects (with attributes `stddev` and
#' `correlation`), and the residual standard deviation as attribute `sc`.
#' For a fit with a residual `correlation` or `variance` structure, `sc` is
#' sigma (the residual standard deviation where the variance function is 1)
#' and the structure's estimates are printed below the table as nlme prints
#' them (see also [residual_parameters()]).
#' Terms that share a grouping factor are named as lme4 names them
#' (`Subject`, `Subject.1`). `as.data.frame()` gives lme4's columns `grp`,
#' `var1`, `var2`, `vcov` and `sdcor`: variances and standard deviations
#' first, then covariances and correlations, then the residual.
#'
#' @param x A fit from [lmm()], or the result of `VarCorr()`.
#' @param sigma The residual standard deviation the covariances are scaled
#'   by (lme4's argument): `sigma(x)` by default; `sigma = 1` gives them
#'   relative to the residual variance.
#' @param comp For `print()`: `"Variance"`, `"Std.Dev."` or both.
#' @param digits Significant digits to print.
#' @param row.names,optional Ignored.
#' @param ... Unused.
#' @return A list of class `VarCorr.mlmfit`.
#' @name lmm-varcorr
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' VarCorr(fit)
#' as.data.frame(VarCorr(fit))
NULL

#' @rdname lmm-varcorr
#' @export
VarCorr.mlmfit <- function(x, sigma = 1, ...) {
  warn_unused_dots(..., method = "VarCorr")
  sc <- if (missing(sigma)) fit_sigma(x) else sigma
  Tb <- relative_factors(x, fit_theta(x))
  terms <- re_terms(x)
  out <- lapply(terms, function(tm) {
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    S <- sc^2 * tcrossprod(Tt)
    dimnames(S) <- list(tm$colnames, tm$colnames)
    sd <- sqrt(diag(S))
    corr <- S / tcrossprod(sd)
    diag(corr) <- 1
    structure(S, stddev = sd, correlation = corr)
  })
  names(out) <- vapply(terms, function(tm) tm$display, "")
  # Binomial and Poisson GLMMs have no residual scale (lme4's useSc).
  structure(out, sc = sc, useSc = has_scale(x), residual_structure = format_residual_structure(x),
            class = "VarCorr.mlmfit")
}

#' @rdname lmm-varcorr
#' @export
as.data.frame.VarCorr.mlmfit <- function(x, row.names = NULL, optional = FALSE, ...) {
  warn_unused_dots(..., method = "as.data.frame")
  rows <- list()
  for (g in names(x)) {
    S <- x[[g]]
    nm <- colnames(S)
    sd <- attr(S, "stddev")
    corr <- attr(S, "correlation")
    rows[[length(rows) + 1L]] <- data.frame(grp = g, var1 = nm, var2 = NA_character_, vcov = diag(S), sdcor = sd)
    q <- length(nm)
    if (q > 1L) {
      pairs <- which(upper.tri(S), arr.ind = TRUE)
      pairs <- pairs[order(pairs[, "row"], pairs[, "col"]), , drop = FALSE]
      rows[[length(rows) + 1L]] <- data.frame(grp = g, var1 = nm[pairs[, "row"]], var2 = nm[pairs[, "col"]],
                                              vcov = S[pairs], sdcor = corr[pairs])
    }
  }
  sc <- attr(x, "sc")
  if (!isFALSE(attr(x, "useSc"))) {
    rows[[length(rows) + 1L]] <- data.frame(grp = "Residual", var1 = NA_character_, var2 = NA_character_,
                                            vcov = sc^2, sdcor = sc)
  }
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}

# The lme4-style table of variance components as a character matrix.
format_varcorr <- function(x, digits, comp = c("Variance", "Std.Dev.")) {
  groups <- character()
  names_col <- character()
  variances <- numeric()
  corr_rows <- list()
  for (g in names(x)) {
    S <- x[[g]]
    q <- ncol(S)
    corr <- attr(S, "correlation")
    groups <- c(groups, g, rep("", q - 1L))
    names_col <- c(names_col, colnames(S))
    variances <- c(variances, diag(S))
    for (i in seq_len(q)) {
      corr_rows[[length(corr_rows) + 1L]] <- if (i > 1L) corr[i, seq_len(i - 1L)] else numeric()
    }
  }
  sc <- attr(x, "sc")
  if (!isFALSE(attr(x, "useSc"))) {
    groups <- c(groups, "Residual")
    names_col <- c(names_col, "")
    variances <- c(variances, sc^2)
    corr_rows[[length(corr_rows) + 1L]] <- numeric()
  }
  m <- cbind(Groups = groups, Name = names_col)
  if ("Variance" %in% comp) m <- cbind(m, Variance = format(variances, digits = digits))
  if ("Std.Dev." %in% comp) m <- cbind(m, Std.Dev. = format(sqrt(variances), digits = digits))
  max_corr <- max(lengths(corr_rows))
  if (max_corr > 0L) {
    cm <- t(vapply(corr_rows, function(r) {
      c(formatC(r, digits = 2, format = "f"), rep("", max_corr - length(r)))
    }, character(max_corr)))
    if (max_corr == 1L) cm <- matrix(cm, ncol = 1L)
    colnames(cm) <- c("Corr", rep("", max_corr - 1L))
    m <- cbind(m, cm)
  }
  m
}

#' @rdname lmm-varcorr
#' @export
print.VarCorr.mlmfit <- function(x, digits = max(3, getOption("digits") - 2), comp = "Std.Dev.", ...) {
  warn_unused_dots(..., method = "print")
  m <- format_varcorr(x, digits, comp)
  rownames(m) <- rep("", nrow(m))
  print(m, quote = FALSE, right = FALSE)
  rs <- attr(x, "residual_structure")
  if (length(rs)) cat(rs, sep = "\n")
  invisible(x)
}
