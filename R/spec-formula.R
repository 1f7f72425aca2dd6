# Parsing lme4-style formulas: the fixed part, the random-effect terms
# `(lhs | group)` and `(lhs || group)`, nested `a/b` and interaction `a:b`
# grouping, and the formula whose variables make the model frame.

# The formula `x` (a call to `~`) with environment env: what evaluating the
# call gives, without evaluating it (as.formula() deparses on the way).
formula_in <- function(x, env) {
  class(x) <- "formula"
  attr(x, ".Environment") <- env
  x
}

# deparse1(x) without deparse() for a name (the usual grouping factor or
# response): deparse() writes a name as it is, without backticks.
expr_label <- function(x) if (is.symbol(x)) as.character(x) else deparse1(x)

is_bar <- function(x) is.call(x) && (identical(x[[1L]], quote(`|`)) || identical(x[[1L]], quote(`||`)))

strip_parens <- function(x) {
  while (is.call(x) && identical(x[[1L]], quote(`(`))) x <- x[[2L]]
  x
}

# The random-effect terms among the summands of a formula's right-hand side.
find_bars <- function(rhs) {
  x <- strip_parens(rhs)
  if (is_bar(x)) return(list(x))
  if (is.call(x) && identical(x[[1L]], quote(`+`))) {
    return(c(find_bars(x[[2L]]), if (length(x) == 3L) find_bars(x[[3L]])))
  }
  if (is.call(x) && identical(x[[1L]], quote(`-`)) && length(x) == 3L) {
    return(c(find_bars(x[[2L]]), find_bars(x[[3L]])))
  }
  if (contains_bar(x)) {
    mlm_abort(c("A random-effect term must be a summand of the formula, as in {.code y ~ x + (1 | g)}.",
                x = "Found {.code {deparse1(x)}}."), "mlmfit_error_formula")
  }
  NULL
}

contains_bar <- function(x) {
  if (!is.call(x)) return(FALSE)
  if (is_bar(x)) return(TRUE)
  any(vapply(as.list(x)[-1L], contains_bar, logical(1)))
}

# The right-hand side without its random-effect terms (NULL if nothing is left).
drop_bars <- function(x) {
  if (is_bar(strip_parens(x))) return(NULL)
  if (is.call(x) && (identical(x[[1L]], quote(`+`)) || identical(x[[1L]], quote(`-`)))) {
    if (length(x) == 2L) {
      inner <- drop_bars(x[[2L]])
      if (is.null(inner)) return(NULL)
      x[[2L]] <- inner
      return(x)
    }
    left <- drop_bars(x[[2L]])
    right <- drop_bars(x[[3L]])
    if (is.null(left) && is.null(right)) return(NULL)
    if (is.null(left)) {
      return(if (identical(x[[1L]], quote(`-`))) call("-", right) else right)
    }
    if (is.null(right)) return(left)
    x[[2L]] <- left
    x[[3L]] <- right
    return(x)
  }
  x
}

# `|` and `||` replaced by `+`: every variable of the model in one formula.
bars_to_plus <- function(x) {
  if (!is.call(x)) return(x)
  if (is_bar(x)) x[[1L]] <- quote(`+`)
  for (i in seq_along(x)[-1L]) x[[i]] <- bars_to_plus(x[[i]])
  x
}

# `a/b/c` -> list(a, b:a, c:b:a) as lme4 names nested grouping factors.
expand_slash <- function(g) {
  g <- strip_parens(g)
  if (is.call(g) && identical(g[[1L]], quote(`/`))) {
    outer <- expand_slash(g[[2L]])
    inner <- g[[3L]]
    deepest <- outer[[length(outer)]]
    return(c(outer, list(prepend_interaction(inner, deepest))))
  }
  if (is.call(g) && identical(g[[1L]], quote(`+`))) {
    mlm_abort(c("A grouping factor cannot be a sum.",
                x = "Found {.code {deparse1(g)}} on the right of a {.code |}.",
                i = "Write one random-effect term per grouping factor, as in {.code (1 | a) + (1 | b)}."),
              "mlmfit_error_formula")
  }
  list(g)
}

# inner:chain written flat, so that c:(b:a) reads c:b:a.
prepend_interaction <- function(inner, chain) {
  if (is.call(chain) && identical(chain[[1L]], quote(`:`))) {
    return(call(":", prepend_interaction(inner, chain[[2L]]), chain[[3L]]))
  }
  call(":", inner, chain)
}

# `(lhs || g)`: independent terms, one per column (lme4's expansion).
expand_double_bar <- function(lhs, group) {
  tt <- stats::terms(formula_in(call("~", lhs), environment()))
  labels <- attr(tt, "term.labels")
  out <- list()
  if (attr(tt, "intercept") == 1L) out <- list(list(lhs = quote(1), group = group))
  for (lab in labels) {
    out[[length(out) + 1L]] <- list(lhs = call("+", 0, str2lang(lab)), group = group)
  }
  out
}

#' Parse an lme4-style mixed-model formula
#'
#' Splits a formula such as `y ~ x + (1 + x | g)` into its fixed part and its
#' random-effect terms. Nested grouping `(1 | a/b)` becomes `(1 | a)` and
#' `(1 | b:a)`; `(x || g)` becomes independent terms `(1 | g)` and
#' `(0 + x | g)`, as in lme4.
#'
#' @param formula A two-sided formula with at least one random-effect term.
#' @return A list with `fixed` (the formula without random-effect terms),
#'   `random` (a list of terms, each with `lhs`, `group` and `label`) and
#'   `frame` (a formula naming every variable the model uses).
#' @examples
#' parse_mixed_formula(Reaction ~ Days + (Days | Subject))$fixed
#' @export
parse_mixed_formula <- function(formula) {
  if (!inherits(formula, "formula") || length(formula) != 3L) {
    mlm_abort(c("{.arg formula} must be a two-sided formula such as {.code y ~ x + (1 | g)}."),
              "mlmfit_error_formula")
  }
  env <- environment(formula)
  rhs <- formula[[3L]]
  bars <- find_bars(rhs)
  if (length(bars) == 0L) {
    mlm_abort(c("The formula has no random-effect term.",
                i = "Add one such as {.code (1 | group)}, or fit a model without random effects with {.fn lm} or {.fn glm}."),
              "mlmfit_error_no_random")
  }
  random <- list()
  lme4_position <- 0L
  for (b in bars) {
    lhs <- b[[2L]]
    groups <- expand_slash(b[[3L]])
    double <- identical(b[[1L]], quote(`||`))
    n_pieces <- if (double) length(expand_double_bar(lhs, groups[[1L]])) else 1L
    for (j in seq_along(groups)) {
      g <- groups[[j]]
      pieces <- if (double) expand_double_bar(lhs, g) else list(list(lhs = lhs, group = g))
      for (k in seq_along(pieces)) {
        pc <- pieces[[k]]
        # lme4 lists nested factors innermost first: its order breaks ties
        # in the number of levels (build_re_terms).
        random[[length(random) + 1L]] <- list(lhs = pc$lhs, group = pc$group, label = expr_label(pc$group),
                                              lme4_order = lme4_position + (length(groups) - j) * n_pieces + k)
      }
    }
    lme4_position <- lme4_position + length(groups) * n_pieces
  }
  fixed_rhs <- drop_bars(rhs)
  if (is.null(fixed_rhs)) fixed_rhs <- 1
  fixed <- formula_in(call("~", formula[[2L]], fixed_rhs), env)
  frame <- formula_in(call("~", formula[[2L]], bars_to_plus(rhs)), env)
  list(fixed = fixed, random = random, frame = frame, response = formula[[2L]])
}
