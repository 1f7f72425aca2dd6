# Separation: a combination of fixed effects that predicts the outcome
# perfectly (every success on one side, every failure on the other, or for
# counts every zero), so that the likelihood keeps rising as that
# combination grows and the maximum-likelihood estimate is infinite. Random
# effects do not change this: the marginal likelihood rises along the same
# direction. A fit is never returned silently in that case.
#
# A direction d separates when X d >= 0 for observations that are all
# successes, <= 0 for those that are all failures (zero counts), = 0 for
# the others, and is not zero everywhere. Before the fit, the directions
# of single columns (against a threshold when there is an intercept) and of
# the reference level of each factor are checked exactly. After the fit,
# estimates that have run off to the edge of the scale trigger a search for
# a separating direction along the path of a fixed-effects glm, verified
# by the same test.

# +1 all successes, -1 all failures (zero counts), 0 both, NA no weight.
outcome_classes <- function(y, weights, dist) {
  if (!dist %in% c("binomial", "poisson", "negative_binomial")) return(NULL)
  cls <- integer(length(y))
  if (dist == "binomial") cls[y == 1] <- 1L
  cls[y == 0] <- -1L
  if (!is.null(weights)) cls[weights == 0] <- NA_integer_
  cls
}

# The rows of each class of outcomes (rows without weight in none), found
# once for all the directions tested.
class_rows <- function(cls) {
  list(success = which(cls == 1L), failure = which(cls == -1L), mixed = which(cls == 0L))
}

# The same from the outcomes themselves (NULL where outcome_classes() is),
# without the vector of classes: without weights, 0/1 outcomes need two
# comparisons with y instead of five.
outcome_rows <- function(y, weights, dist) {
  if (!is.null(weights)) {
    cls <- outcome_classes(y, weights, dist)
    return(if (is.null(cls)) NULL else class_rows(cls))
  }
  if (!dist %in% c("binomial", "poisson", "negative_binomial")) return(NULL)
  failure <- which(y == 0)
  if (dist != "binomial") return(list(success = integer(), failure = failure, mixed = which(y != 0)))
  success <- which(y == 1)
  mixed <- if (length(success) + length(failure) == length(y)) integer() else which(y != 0 & y != 1)
  list(success = success, failure = failure, mixed = mixed)
}

# Does t = X d separate (1), or -t (-1), or neither (0)? tol is relative
# to the largest |t|.
separation_sign <- function(t, rows, tol = 0) {
  ts <- t[rows$success]
  tf <- t[rows$failure]
  tm <- t[rows$mixed]
  if (length(ts) + length(tf) + length(tm) == 0L) return(0)
  s <- max(max(ts, tf, tm), -min(ts, tf, tm))
  if (!is.finite(s) || s == 0) return(0)
  eps <- tol * s
  if (length(tm) && max(abs(tm)) > eps) return(0)
  if (all(ts >= -eps) && all(tf <= eps)) return(1)
  if (all(ts <= eps) && all(tf >= -eps)) return(-1)
  0
}

# The range of column j of X in each class of outcomes (c(Inf, -Inf) for
# an empty class): no sorting, and no copy of the column beyond the rows
# of each class.
class_ranges <- function(X, j, rows) {
  at <- (j - 1) * nrow(X)  # X[at + i] reads rows i of column j as a vector: no row names, no copy of the column
  rng <- function(i) if (length(i)) range(X[at + i]) else c(Inf, -Inf)
  list(success = rng(rows$success), failure = rng(rows$failure), mixed = rng(rows$mixed))
}

# separation_sign(1 - x, rows) for a column x from its class_ranges(): each
# condition there (every t >= 0, ...) is one on the largest or smallest t.
complement_separation_sign <- function(ranges) {
  rs <- ranges$success
  rf <- ranges$failure
  rm <- ranges$mixed
  lo <- min(rs[1L], rf[1L], rm[1L])
  hi <- max(rs[2L], rf[2L], rm[2L])
  if (!is.finite(lo) || (lo == 1 && hi == 1)) return(0)  # no rows, or 1 - x zero everywhere
  if (is.finite(rm[1L]) && !(rm[1L] == 1 && rm[2L] == 1)) return(0)
  if (rs[2L] <= 1 && rf[1L] >= 1) return(1)
  if (rs[1L] >= 1 && rf[2L] <= 1) return(-1)
  0
}

# A threshold c with x - c (or c - x) separating, for x column j of X, or
# NULL. Without an intercept only c = 0 is available. Decided from the
# ranges of x in each class of outcomes (class_ranges()).
threshold_separation <- function(ranges, intercept) {
  rs <- ranges$success
  rf <- ranges$failure
  rm <- ranges$mixed
  if (min(rs[1L], rf[1L], rm[1L]) == max(rs[2L], rf[2L], rm[2L])) return(NULL)
  fixed_c <- if (is.finite(rm[1L])) {  # some mixed outcomes
    if (rm[1L] != rm[2L]) return(NULL)
    rm[1L]
  } else if (!intercept) {
    0
  } else {
    NA_real_
  }
  if (!is.na(fixed_c)) {
    if (!intercept && fixed_c != 0) return(NULL)
    if (rf[2L] <= fixed_c && fixed_c <= rs[1L]) return(list(threshold = fixed_c, sign = 1))
    if (rs[2L] <= fixed_c && fixed_c <= rf[1L]) return(list(threshold = fixed_c, sign = -1))
    return(NULL)
  }
  if (rf[2L] <= rs[1L]) return(list(threshold = rf[2L], sign = 1))
  if (rs[2L] <= rf[1L]) return(list(threshold = rs[2L], sign = -1))
  NULL
}

# what: descriptions of the separating effects, already formatted.
separation_found <- function(what, action, dist) {
  outcome <- if (dist == "binomial") "the outcome" else "which counts are zero"
  k <- length(what)
  msg <- c("Separation: {what} {cli::qty(k)}predict{?s/} {outcome} perfectly, so {cli::qty(k)}{?its effect is/their effects are} estimated as infinite.",
           i = "Remove or recode the predictor (e.g. merge sparse categories), or use a penalised (bias-reduced or Bayesian) model.",
           i = "{.code control = glmm_control(separation = \"warning\")} returns the fit anyway, with meaningless estimates for {cli::qty(k)}{?this effect/these effects}.")
  if (identical(action, "warning")) {
    mlm_warn(msg, "mlmfit_warning_separation", effects = what)
  } else {
    mlm_abort(msg, "mlmfit_error_separation", effects = what)
  }
}

backquote <- function(x) paste0("`", x, "`")

check_separation <- function(X, y, weights, dist, intercept_col, action, term_labels = character(),
                             xlevels = list()) {
  if (ncol(X) == 0L) return(invisible(character()))
  rows <- outcome_rows(y, weights, dist)
  if (is.null(rows)) return(invisible(character()))
  intercept <- intercept_col > 0L
  found <- character()
  ranges <- vector("list", ncol(X))
  for (j in seq_len(ncol(X))) {
    if (j == intercept_col) next
    ranges[[j]] <- class_ranges(X, j, rows)
    if (!is.null(threshold_separation(ranges[[j]], intercept))) found <- c(found, backquote(colnames(X)[j]))
  }
  # The reference level of a factor: 1 - (sum of its dummies). One dummy
  # (two levels, a logical, a 0/1 column): decided from its ranges first,
  # and only a separating one checked for holding 0/1 alone.
  assign <- attr(X, "assign")
  if (intercept && !is.null(assign)) {
    for (k in setdiff(unique(assign), 0L)) {
      cols <- which(assign == k)
      if (length(cols) == 1L && !is.null(ranges[[cols]])) {
        if (complement_separation_sign(ranges[[cols]]) == 0) next
        x <- X[, cols]
        if (!all(x == 0 | x == 1)) next
        sep <- TRUE
      } else {
        block <- X[, cols, drop = FALSE]
        if (!all(block == 0 | block == 1)) next
        rs <- rowSums(block)
        if (any(rs > 1)) next
        sep <- separation_sign(1 - rs, rows) != 0
      }
      if (sep) {
        label <- if (k <= length(term_labels)) term_labels[k] else colnames(X)[cols[1L]]
        ref <- xlevels[[label]]
        found <- c(found, if (length(ref)) sprintf("level \"%s\" of %s", ref[1L], backquote(label))
                          else paste("the reference level of", backquote(label)))
      }
    }
  }
  if (length(found) > 0L) separation_found(unique(found), action, dist)
  invisible(unique(found))
}

# A separating direction along the path of a fixed-effects glm, verified;
# the names of the effects it involves, or NULL.
separation_certificate <- function(X, y, weights, offset, family, dist) {
  cls <- outcome_classes(y, weights, dist)
  if (is.null(cls) || ncol(X) == 0L) return(NULL)
  fam <- if (dist == "binomial") family else stats::poisson(link = family$link)
  path <- function(maxit) {
    f <- suppressWarnings(stats::glm.fit(X, y, weights = if (is.null(weights)) rep(1, length(y)) else weights,
                                         offset = offset, family = fam,
                                         control = list(maxit = maxit, epsilon = 1e-16)))
    b <- f$coefficients
    b[is.na(b)] <- 0
    b
  }
  d <- tryCatch(path(60L) - path(30L), error = function(e) NULL)
  if (is.null(d) || !all(is.finite(d)) || max(abs(d)) < 1e-2) return(NULL)
  if (separation_sign(drop(X %*% d), class_rows(cls), tol = 1e-6) != 1) return(NULL)
  effects <- setdiff(names(d)[abs(d) > 1e-3 * max(abs(d))], "(Intercept)")
  if (length(effects) == 0L) effects <- names(d)[which.max(abs(d))]
  backquote(effects)
}

# After the fit: estimates far out on the scale of the linear predictor are
# checked for a separating direction.
check_separation_after <- function(fit, action) {
  fam <- spec_family(fit)
  if (!fam$dist %in% c("binomial", "poisson", "negative_binomial")) return(invisible(NULL))  # as outcome_classes()
  y <- spec_y(fit)
  w <- spec_weights(fit)
  X <- spec_X(fit)
  if (max(abs(range(fit_eta(fit)))) <= 20) {
    # the intercept's column is constant: its SD is 0, not worth a pass
    ic <- spec_intercept_col(fit)
    sds <- vapply(seq_len(ncol(X)), function(j) if (j == ic) 0 else stats::sd(X[, j]), 1)
    scaled <- abs(fixef(fit)) * ifelse(sds > 0, sds, 1)
    if (!any(scaled > 5)) return(invisible(NULL))
  }
  found <- separation_certificate(X, y, w, spec_offset(fit), fam$family, fam$dist)
  if (length(found) > 0L) separation_found(found, action, fam$dist)
  invisible(found)
}
