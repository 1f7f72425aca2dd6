# Type III hypotheses for the fixed-effect terms: for each term, the
# contrast matrix L (rows: hypotheses, columns: coefficients of the fit)
# whose test is invariant to the coding of the factors and respects
# marginality (the hypotheses of SAS's type III, as lmerTest's anova()
# builds them). The overparametrised design (every level of every factor
# of a term) is mapped onto the fit's parameters; each term's columns are
# then made orthogonal to those of the terms that contain it.

fixed_term_map <- function(term_labels, has_intercept, assign) {
  col_terms <- if (has_intercept) c("(Intercept)", term_labels)[assign + 1L] else term_labels[assign]
  out <- lapply(stats::setNames(term_labels, term_labels), function(t) which(col_terms == t))
  if (has_intercept) out <- c(list(`(Intercept)` = which(col_terms == "(Intercept)")), out)
  out
}

# Term a is contained in term b when b has all of a's variables and more,
# and both have the same numeric variables (a factor-only refinement).
term_containment <- function(tt, data_classes) {
  fac <- attr(tt, "factors")
  labels <- attr(tt, "term.labels")
  vars <- lapply(stats::setNames(labels, labels), function(t) rownames(fac)[fac[, t] > 0])
  numerics <- lapply(vars, function(v) v[data_classes[v] %in% c("numeric", "nmatrix")])
  lapply(stats::setNames(labels, labels), function(a) {
    labels[vapply(labels, function(b) {
      all(vars[[a]] %in% vars[[b]]) && length(setdiff(vars[[b]], vars[[a]])) > 0L &&
        setequal(numerics[[a]], numerics[[b]])
    }, logical(1))]
  })
}

full_rank_columns <- function(X, tol = 1e-7) {
  qx <- qr(X, tol = tol, LAPACK = FALSE)
  if (qx$rank == ncol(X)) return(seq_len(ncol(X)))
  sort(qx$pivot[seq_len(qx$rank)])
}

type3_contrasts <- function(fit) {
  tt <- spec_fixed_terms(fit)
  labels <- attr(tt, "term.labels")
  has_int <- attr(tt, "intercept") > 0
  data_classes <- attr(spec_frame_terms(fit), "dataClasses")
  codings <- unlist(spec_contrasts(fit))
  treatment <- length(codings) > 0L && all(vapply(codings, function(x) identical(x, "contr.treatment"), logical(1)))
  m <- spec_fixed_designs(fit, treatment)
  Xorig <- m$X
  if (treatment) {
    X <- Xorig
  } else {
    X <- m$X_treatment
    keep <- full_rank_columns(X)
    asg <- attr(X, "assign")[keep]
    X <- X[, keep, drop = FALSE]
    attr(X, "assign") <- asg
  }
  rd <- m$rd
  rdX <- do.call(cbind, rd)
  if (has_int) rdX <- cbind(`(Intercept)` = m$ones, rdX)
  if (is.null(rdX)) rdX <- matrix(0, nrow(X), 0L)
  L <- zapsmall(t(pseudo_inverse(X) %*% rdX))
  dimnames(L) <- list(colnames(rdX), colnames(X))
  map <- fixed_term_map(labels, has_int, attr(X, "assign"))
  contained_in <- term_containment(tt, data_classes)
  for (term in labels[order(attr(tt, "order"), decreasing = TRUE)]) {
    within <- contained_in[[term]]
    if (length(within) == 0L || length(map[[term]]) == 0L) next
    Lc <- L[, unlist(map[within]), drop = FALSE]
    if (ncol(Lc) == 0L) next
    L[, map[[term]]] <- zapsmall(stats::lm.fit(x = Lc, y = L[, map[[term]], drop = FALSE])$residuals)
  }
  L <- L[colnames(X), , drop = FALSE]
  out <- lapply(map[labels], function(cols) {
    Lt <- t(L[, cols, drop = FALSE])
    Lt[rowSums(abs(Lt)) > 1e-8, , drop = FALSE]
  })
  if (!treatment) {
    to_orig <- zapsmall(pseudo_inverse(X) %*% Xorig)
    out <- lapply(out, function(Lt) {
      m <- Lt %*% to_orig
      colnames(m) <- colnames(Xorig)
      m
    })
  }
  out
}
