# Published figures beside the numbers a fit gives: the lessons' check that
# a model reproduces a textbook or lecture, to the digits the source prints.

#' Compare published figures with estimates
#'
#' Puts numbers as a book or lecture prints them beside the same quantities
#' computed by one or more fits, and says whether each computed value,
#' rounded to the digits printed, equals the printed one. A lesson uses it
#' to show that a model reproduces its source (and where it does not).
#'
#' @param printed A named character vector of the published numbers exactly
#'   as printed, e.g. `c(intercept = "12.65", ICC = ".18")`: the number of
#'   digits after the decimal point is the precision that is checked.
#' @param ... Named numeric vectors of computed values, one per source, in
#'   the order of `printed`, e.g. `mlmfit = c(12.6493, 0.1811)`.
#' @return A data frame with columns `quantity`, `printed`, one column per
#'   source with its value shown to two more digits than printed, and one
#'   logical column `same_<source>` per source: does the value round to the
#'   printed number?
#' @examples
#' fit <- lmm(mathach ~ 1 + (1 | school), hsb)
#' v <- as.data.frame(VarCorr(fit))$vcov
#' compare_published(c(`school variance` = "8.61", `residual variance` = "39.15",
#'                     ICC = ".18"),
#'                   mlmfit = c(v, v[1] / sum(v)))
#' @export
compare_published <- function(printed, ...) {
  if (!is.character(printed) || is.null(names(printed)) || any(names(printed) == "")) {
    mlm_abort(c("{.arg printed} must be a named character vector of numbers as printed.",
                i = "For example {.code c(intercept = \"12.65\")}."), "mlmfit_error_argument")
  }
  published <- suppressWarnings(as.numeric(printed))
  if (anyNA(published)) {
    mlm_abort(c("Every element of {.arg printed} must be a number.",
                x = "Not numbers: {.val {printed[is.na(published)]}}."), "mlmfit_error_argument")
  }
  digits <- printed_decimals(printed)
  sources <- list(...)
  if (length(sources) == 0L || is.null(names(sources)) || any(names(sources) == "")) {
    mlm_abort(c("Give the computed values as named arguments.",
                i = "For example {.code compare_published(printed, mlmfit = values)}."), "mlmfit_error_argument")
  }
  out <- data.frame(quantity = names(printed), printed = unname(printed), stringsAsFactors = FALSE)
  for (s in names(sources)) {
    v <- sources[[s]]
    if (!is.numeric(v) || length(v) != length(printed)) {
      mlm_abort(c("{.arg {s}} must be numeric with one value per published number.",
                  x = "It has {length(v)} value{?s}; {.arg printed} has {length(printed)}."),
                "mlmfit_error_argument")
    }
    out[[s]] <- mapply(formatC, unname(v), format = "f", digits = digits + 2L)
    out[[paste0("same_", s)]] <- unname(round(v, digits) == round(published, digits))
  }
  out
}

# Decimals of numbers written as strings: "12.65" -> 2, ".055" -> 3, "65" -> 0.
printed_decimals <- function(x) {
  x <- trimws(x)
  ifelse(grepl(".", x, fixed = TRUE), nchar(sub("^[^.]*[.]", "", x)), 0L)
}
