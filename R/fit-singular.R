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
is_singular <- function(x, tol = singular_tol) {
  any(theta_at_boundary(x, tol))
}

# The boundary rule, written once: a diagonal entry of a relative covariance
# factor T (a theta with lower bound 0) below tol is a variance estimated as
# zero. lme4 uses the same rule (its isSingular(), tol = 1e-4), on theta in
# natural units here (lme4's units for intercepts without weights).
singular_tol <- 1e-4
theta_at_boundary <- function(fit, tol = singular_tol, theta = natural_theta(fit)) {
  theta_lower(fit) == 0 & abs(theta) < tol
}

# theta in the natural units the engine optimises in (as it is where the
# engine did not report them: GLMM fits, fits saved by older versions).
natural_theta <- function(fit) {
  theta <- fit_theta(fit)
  scale <- fit_optinfo(fit)$theta_scale
  if (length(scale) != length(theta)) return(theta)
  theta / scale
}

# Which parts of the random-effect structure sit on the boundary.
singular_terms <- function(fit, tol = singular_tol) {
  at_zero <- theta_at_boundary(fit, tol)
  out <- character()
  for (tm in re_terms(fit)) {
    lay <- theta_layout_term(tm)
    diag_zero <- at_zero[tm$theta[lay$row == lay$col]]
    if (all(diag_zero)) {
      out <- c(out, paste0("the variance of the random effects of ", term_label(tm), " is estimated as zero"))
    } else if (any(diag_zero)) {
      out <- c(out, paste0("the random effects of ", term_label(tm), " are perfectly correlated (the covariance matrix is singular)"))
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

# The engine's convergence warnings (its tests at the optimum), in words a
# user can act on: the same for every kind of fit.
report_convergence <- function(warnings) {
  for (w in warnings) {
    mlm_warn(c("Convergence: {w}.",
               i = "Check the estimates; rescaling predictors (centring, standardising) or a simpler random-effect structure often helps."),
             "mlmfit_warning_convergence")
  }
}

# The notes print() and summary() add below a fit: convergence and boundary.
print_fit_notes <- function(x) {
  for (w in fit_optinfo(x)$warnings) cat("Convergence: ", w, "\n", sep = "")
  if (is_singular(x)) cat("boundary (singular) fit: see ?is_singular\n")
}
