#' Is a fit singular?
#'
#' A fit is singular when a random-effect variance is estimated as zero or a
#' correlation as plus or minus one: the estimated covariance matrix of the
#' random effects is then not of full rank. This is a property of the
#' estimate, not an error; the usual remedy is a simpler random-effect
#' structure.
#'
#' @param x A fit from [lmm()].
#' @param tol Diagonal entries of the relative covariance factor below
#'   `tol` count as zero: lme4's rule, with each entry measured in the
#'   natural unit of its random-effect column (one over the root mean square
#'   of the column, prior weights included), so that the answer does not
#'   depend on the units of the predictors or the scale of the weights. For
#'   random intercepts without weights the unit is 1, as in lme4.
#' @return `TRUE` or `FALSE`.
#' @examples
#' fit <- lmm(math ~ homework + (homework | schid), nels88)
#' is_singular(fit)
#' @export
is_singular <- function(x, tol = 1e-4) {
  diag_theta <- natural_theta(x)[x$lower == 0]
  any(diag_theta < tol)
}

# theta in the natural units the engine optimises in (1 where the engine
# did not report them: GLMM fits, fits saved by older versions).
natural_theta <- function(fit) {
  scale <- fit$optinfo$theta_scale
  if (length(scale) != length(fit$theta)) return(fit$theta)
  fit$theta / scale
}

# Which parts of the random-effect structure sit on the boundary.
singular_terms <- function(fit, tol = 1e-4) {
  out <- character()
  Tb <- relative_factors(fit$re, natural_theta(fit))
  for (tm in fit$re$terms) {
    Tt <- Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]
    d <- abs(diag(Tt))
    if (all(d < tol)) {
      out <- c(out, paste0("the variance of the random effects for ", tm$display, " is estimated as zero"))
    } else if (any(d < tol)) {
      out <- c(out, paste0("the random effects for ", tm$display, " are perfectly correlated (the covariance matrix is singular)"))
    }
  }
  out
}

# A fit on the boundary is reported (not an error), naming the terms.
report_singular <- function(fit) {
  if (!is_singular(fit)) return(invisible())
  at_zero <- singular_terms(fit)
  if (length(at_zero) == 0L) at_zero <- "a random-effect variance is estimated as zero"
  mlm_inform(c("Boundary (singular) fit: {at_zero}.",
               i = "The data do not support this random-effect structure; consider removing the term or the correlation (see {.fn is_singular})."),
             "mlmfit_message_singular")
}
