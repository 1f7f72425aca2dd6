# Centring predictors: group means, within-group (group-mean) centring and
# grand-mean centring, the three codings of a level-1 predictor in a
# multilevel model.

check_centring_input <- function(x, group = NULL) {
  if (!is.numeric(x)) {
    mlm_abort(c("{.arg x} must be numeric.", x = "It is of class {.cls {class(x)}}."), "mlmfit_error_argument")
  }
  if (!is.null(group) && length(group) != length(x)) {
    mlm_abort(c("{.arg x} and {.arg group} must have the same length.",
                x = "{.arg x} has {length(x)} value{?s}, {.arg group} has {length(group)}."),
              "mlmfit_error_argument")
  }
}

#' Group means, within-group centring and grand-mean centring
#'
#' A level-1 predictor such as a pupil's SES carries two effects: where the
#' pupil stands within the school, and where the school stands among
#' schools. `group_mean()` gives each observation the mean of its group
#' (High School and Beyond's `meanses`, a level-2 predictor);
#' `center_within()` subtracts it (`cses`: the pupil's position within the
#' school, with mean zero in every group); `center_grand()` subtracts the
#' overall mean, which moves the intercept to the average observation without
#' changing the model.
#'
#' Missing values in `x` are left out of the means (and stay missing);
#' observations with a missing `group` get a missing mean.
#'
#' @param x A numeric vector.
#' @param group A vector (factor, character or numeric) of group memberships,
#'   as long as `x`.
#' @return A numeric vector as long as `x`.
#' @examples
#' nels88$ses_school <- group_mean(nels88$ses, nels88$schid)
#' nels88$ses_within <- center_within(nels88$ses, nels88$schid)
#' nels88$ses_grand <- center_grand(nels88$ses)
#' # the school mean agrees with the one shipped in the data
#' all.equal(nels88$ses_school, nels88$meanses, tolerance = 1e-6)
#' lmm(math ~ ses_within + ses_school + (1 | schid), nels88)
#' @export
group_mean <- function(x, group) {
  check_centring_input(x, group)
  g <- factor(group)
  sums <- tapply(x, g, sum, na.rm = TRUE)
  counts <- tapply(!is.na(x), g, sum)
  means <- as.vector(sums / counts)
  means[counts == 0] <- NA_real_
  out <- means[as.integer(g)]
  names(out) <- names(x)
  out
}

#' @rdname group_mean
#' @export
center_within <- function(x, group) {
  x - group_mean(x, group)
}

#' @rdname group_mean
#' @export
center_grand <- function(x) {
  check_centring_input(x)
  x - mean(x, na.rm = TRUE)
}
