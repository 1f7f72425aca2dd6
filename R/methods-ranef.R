# Conditional modes of the random effects and the per-group coefficients.

#' Random effects and per-group coefficients
#'
#' `ranef()` returns the conditional modes of the random effects (the
#' "BLUPs"), one data frame per grouping factor with one row per level. With
#' `condVar = TRUE` each carries the conditional covariance matrices in the
#' attribute `"postVar"`, as lme4 does: a `q x q x levels` array, or a list
#' of such arrays (one per term) when several terms share the factor.
#' `as.data.frame()` gives lme4's long form (`grpvar`, `term`, `grp`,
#' `condval`, `condsd`).
#'
#' `coef()` adds the fixed effects to the random effects: the intercept and
#' slopes of each group.
#'
#' @param object A fit from [lmm()].
#' @param condVar Attach conditional variances.
#' @param drop Return a named vector instead of a one-column data frame
#'   (with the conditional variances as a vector in attribute
#'   `"postVar"`), as lme4.
#' @param whichel Names of the grouping factors to return (all by default).
#' @param x A `ranef.mlmfit` object.
#' @param row.names,optional Ignored.
#' @param ... Not used (reported in a warning).
#' @return `ranef()`: a list of class `ranef.mlmfit` of data frames.
#'   `coef()`: a list of class `coef.mlmfit` of data frames.
#' @name lmm-ranef
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' head(ranef(fit)$schid)
#' head(coef(fit)$schid)
#' head(as.data.frame(ranef(fit)))
NULL

#' @rdname lmm-ranef
#' @export
ranef.mlmfit <- function(object, condVar = TRUE, drop = FALSE, whichel = NULL, ...) {
  warn_unused_dots(..., method = "ranef")
  blocks <- re_blocks(object)
  if (!is.null(whichel)) {
    bad <- setdiff(whichel, names(blocks))
    if (length(bad)) {
      mlm_abort(c("{.arg whichel} names {?a grouping factor/grouping factors} the model does not have: {.val {bad}}.",
                  i = "The grouping factors: {.val {names(blocks)}}."), "mlmfit_error_argument")
    }
    blocks <- blocks[whichel]
  }
  terms <- re_terms(object)
  b <- fit_b(object)
  cond_var <- fit_cond_var(object)
  out <- lapply(names(blocks), function(nm) {
    blk <- blocks[[nm]]
    bm <- b[[nm]]
    df <- as.data.frame(t(bm), optional = TRUE)
    names(df) <- blk$colnames
    rownames(df) <- blk$levels
    if (condVar && length(cond_var) > 0L) {
      cv <- cond_var[[nm]]
      if (length(blk$terms) == 1L) {
        attr(df, "postVar") <- cv
      } else {
        attr(df, "postVar") <- stats::setNames(lapply(blk$terms, function(t) {
          cols <- terms[[t]]$block_cols
          cv[cols, cols, , drop = FALSE]
        }), vapply(blk$terms, function(t) paste(terms[[t]]$colnames, collapse = ":"), ""))
      }
    }
    if (drop && ncol(df) == 1L) {
      v <- stats::setNames(df[[1L]], rownames(df))
      pv <- attr(df, "postVar")
      if (!is.null(pv)) attr(v, "postVar") <- drop(pv)
      return(v)
    }
    df
  })
  names(out) <- names(blocks)
  structure(out, class = c("ranef.mlmfit", "list"))
}

#' @export
print.ranef.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "print")
  for (nm in names(x)) {
    cat("$", nm, "\n", sep = "")
    df <- x[[nm]]
    attr(df, "postVar") <- NULL
    print(df)
    cat("\n")
  }
  invisible(x)
}

#' @rdname lmm-ranef
#' @export
as.data.frame.ranef.mlmfit <- function(x, row.names = NULL, optional = FALSE, ...) {
  warn_unused_dots(..., method = "as.data.frame")
  pieces <- lapply(names(x), function(nm) {
    df <- x[[nm]]
    pv <- attr(df, "postVar")
    sds <- matrix(NA_real_, nrow(df), ncol(df))
    if (is.array(pv)) {
      for (k in seq_len(ncol(df))) sds[, k] <- sqrt(pv[k, k, ])
    } else if (is.list(pv)) {
      k0 <- 0L
      for (a in pv) {
        for (k in seq_len(dim(a)[1L])) sds[, k0 + k] <- sqrt(a[k, k, ])
        k0 <- k0 + dim(a)[1L]
      }
    }
    data.frame(grpvar = nm, term = factor(rep(names(df), each = nrow(df)), levels = unique(names(df))),
               grp = factor(rep(rownames(df), times = ncol(df)), levels = rownames(df)),
               condval = unlist(df, use.names = FALSE), condsd = as.vector(sds), stringsAsFactors = FALSE)
  })
  do.call(rbind, pieces)
}

#' @rdname lmm-ranef
#' @export
coef.mlmfit <- function(object, ...) {
  warn_unused_dots(..., method = "coef")
  fe <- fixef(object)
  re <- ranef(object, condVar = FALSE)
  out <- lapply(re, function(df) {
    res <- as.data.frame(matrix(fe, nrow(df), length(fe), byrow = TRUE, dimnames = list(rownames(df), names(fe))),
                         optional = TRUE)
    for (nm in names(df)) {
      if (nm %in% names(res)) res[[nm]] <- res[[nm]] + df[[nm]] else res[[nm]] <- df[[nm]]
    }
    res
  })
  structure(out, class = c("coef.mlmfit", "list"))
}

#' @export
print.coef.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "print")
  print(unclass(x))
  invisible(x)
}
