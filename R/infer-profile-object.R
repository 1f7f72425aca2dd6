# profile(): the profile of a fit as lme4 lays it out (a "thpr" data
# frame), traced by the one profile of infer-profile.R. For each parameter
# the trace steps away from the estimate on both sides, each step aimed at
# a rise of zeta by `delta`, until |zeta| passes the cutoff of lme4 (the
# root of the chi-square quantile for alphamax and all parameters) or the
# parameter reaches a bound; each point records every parameter where the
# others were re-optimised. Interpolating splines of zeta against the
# parameter ("forward") and back ("backward") complete the object, so
# confint(), and lme4's lattice pictures and transformations (xyplot,
# densityplot, splom, logProf, varianceProf), read it as lme4's own.

#' Profile the likelihood of a mixed model
#'
#' Traces the profile likelihood of each parameter, as lme4's `profile()`
#' does for an `lmerMod` or `glmerMod` fit, and returns it in lme4's layout:
#' a data frame of class `"thpr"` with column `.zeta` (the signed square
#' root of the rise of the deviance), one column per parameter (the
#' parameter held, and where the others went when re-optimised) and
#' `.par` (which parameter is held), with interpolating splines of zeta
#' against each parameter as attributes `"forward"` and `"backward"`. The
#' parameters are named as lme4 names them (`.sig01`, ..., `.sigma`, then
#' the fixed effects; or `sd_(Intercept)|Subject`, ... with
#' `signames = FALSE`); a fit with a residual `correlation` or `variance`
#' structure adds its free parameters (e.g. `Phi`) after `.sigma`.
#'
#' Each point of a trace is computed by the profile behind
#' `confint(fit, method = "profile")` (see [confint.mlmfit()]): a linear
#' mixed model on its ML deviance (a REML fit is refitted by ML first, as
#' lme4 does), from the stored cross-products; a GLMM on the approximate
#' deviance it minimised. Each trace steps from the estimate towards each
#' side, every step aimed at a rise of zeta by `delta`, until |zeta|
#' exceeds `sqrt(qchisq(1 - alphamax, k))` (k: the number of parameters)
#' or the parameter reaches a bound (a standard deviation of zero, a
#' correlation of plus or minus one).
#'
#' `confint()` of the result interpolates the traces as lme4's does and
#' gives the limits of `confint(fit, method = "profile")` (which finds them
#' by root finding) to the accuracy of the interpolation (about 1e-5
#' relative). `as.data.frame()` adds column `.focal` (the value of the
#' parameter held). With lattice and lme4 installed, `lattice::xyplot()`,
#' `densityplot()` and `splom()` draw lme4's pictures of the profile, and
#' lme4's `logProf()` and `varianceProf()` transform it.
#'
#' @param fitted A fit from [lmm()] or [glmm()].
#' @param which Parameters to profile: names, indices, `"theta_"` (the
#'   variance parameters) or `"beta_"` (the fixed effects); all by default.
#' @param alphamax Largest significance level the profile must cover: the
#'   traces go to |zeta| = `sqrt(qchisq(1 - alphamax, k))`.
#' @param maxpts Largest number of points on each side of each trace.
#' @param delta Rise of zeta each step aims at (default
#'   `delta.cutoff` times the cutoff).
#' @param delta.cutoff `delta` as a fraction of the cutoff.
#' @param verbose Report each parameter as it is profiled.
#' @param maxmult Largest factor by which a step may exceed the one before.
#' @param signames Name the variance parameters `.sig01`, ... (`TRUE`) or
#'   descriptively.
#' @param prof.scale `"sdcor"` (standard deviations and correlations); for
#'   variances and covariances transform the result with
#'   `lme4::varianceProf()`.
#' @param ... Other arguments of lme4's `profile()` (`parallel`,
#'   `optimizer`, ...) do not apply and are refused with a warning.
#' @return An object of class `c("mlmfit_profile", "thpr", "data.frame")`
#'   with attributes `"forward"`, `"backward"` (lists of splines, one per
#'   parameter), `"lower"` and `"upper"` (bounds of the variance
#'   parameters).
#' @seealso [confint.mlmfit()] for the limits found by root finding.
#' @examples
#' fit <- lmm(math ~ homework + (1 | schid), nels88)
#' pr <- profile(fit)
#' head(as.data.frame(pr))
#' confint(pr)
#' confint(pr, level = 0.99)
#' if (requireNamespace("lattice", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)) {
#'   lattice::xyplot(pr)
#'   lattice::densityplot(pr)
#'   lattice::splom(pr)
#' }
#' @importFrom stats profile
#' @export
profile.mlmfit <- function(fitted, which = NULL, alphamax = 0.01, maxpts = 100, delta = NULL, delta.cutoff = 1 / 8,
                           verbose = 0, maxmult = 10, signames = TRUE, prof.scale = c("sdcor", "varcov"), ...) {
  prof.scale <- match.arg(prof.scale)
  if (prof.scale == "varcov") {
    mlm_abort(c("{.fn profile} traces standard deviations and correlations ({.code prof.scale = \"sdcor\"}).",
                i = "Transform the result to variances and covariances with {.code lme4::varianceProf()}."),
              "mlmfit_error_argument")
  }
  ignored <- names(list(...))
  if (length(ignored) > 0L) {
    mlm_warn(c("{.fn profile} of an mlmfit fit ignores {cli::qty(length(ignored))}argument{?s} {.arg {ignored}}.",
               i = "They set lme4's optimiser and parallel runs, which mlmfit's profile does not use."),
             c("mlmfit_warning_unused_argument", "mlmfit_warning_argument"))
  }
  if (!is.numeric(alphamax) || length(alphamax) != 1L || !(alphamax > 0 && alphamax < 1)) {
    mlm_abort("{.arg alphamax} must be a number between 0 and 1.", "mlmfit_error_argument")
  }
  maxpts <- positive_count(maxpts, "maxpts")
  if (!is.numeric(maxmult) || length(maxmult) != 1L || !(maxmult > 1)) {
    mlm_abort("{.arg maxmult} must be a number greater than 1.", "mlmfit_error_argument")
  }
  all_names <- parameter_names(fitted, signames)
  p <- length(fixef(fitted))
  nvp <- length(all_names) - p
  which <- profile_which(which, all_names, nvp)
  cutoff <- sqrt(stats::qchisq(1 - alphamax, length(all_names)))
  if (is.null(delta)) delta <- cutoff * delta.cutoff
  if (!is.numeric(delta) || length(delta) != 1L || !(delta > 0)) {
    mlm_abort("{.arg delta} must be a positive number.", "mlmfit_error_argument")
  }
  setup <- if (inherits(fitted, "mlmfit_glmm")) glmm_profile_setup(fitted) else lmm_profile_setup(fitted)
  traces <- lapply(which, function(w) {
    if (verbose > 0) mlm_inform("Profiling {.val {all_names[w]}}")
    profile_trace(setup, w, cutoff, delta, maxpts, maxmult, all_names[w])
  })
  thpr_object(traces, all_names, all_names[which], setup)
}

# Positions of the parameters to profile: all (NULL), indices, or names
# mixed with "theta_" (the variance parameters) and "beta_" (the fixed
# effects), as lme4's profile() takes them.
profile_which <- function(which, all_names, nvp) {
  if (is.null(which)) return(seq_along(all_names))
  if (!is.character(which)) return(confint_which(which, all_names, nvp, length(all_names) - nvp))
  groups <- list(theta_ = seq_len(nvp), beta_ = setdiff(seq_along(all_names), seq_len(nvp)))
  named <- setdiff(which, names(groups))
  unknown <- setdiff(named, all_names)
  if (length(unknown) > 0L) {
    mlm_abort(c("Unknown parameter{?s} {.val {unknown}}.", i = "The parameters are {.val {all_names}}."),
              "mlmfit_error_argument")
  }
  sort(unique(c(unlist(groups[intersect(which, names(groups))]), match(named, all_names))))
}

# The points of the trace of parameter w: a matrix with columns zeta and
# every parameter (confint()'s scale), from the estimate to each side.
profile_trace <- function(setup, w, cutoff, delta, maxpts, maxmult, name) {
  rows <- list(c(0, setup$estimates))
  for (dir in c(-1, 1)) {
    # a fresh parameter per side: each side's re-optimisations start from
    # the estimates
    par <- setup$parameter(w)
    if ((dir < 0 && par$est <= par$lower) || (dir > 0 && par$est >= par$upper)) next
    side <- profile_side(par, dir, cutoff, delta, maxpts, maxmult, name)
    rows <- c(rows, side)
  }
  out <- do.call(rbind, rows)
  out[order(out[, 1L + w]), , drop = FALSE]
}

# The points on one side (dir = -1 or 1) of a trace: rows (zeta, every
# parameter). Each step aims at a rise of |zeta| by delta along the secant
# through the last two points, at most maxmult times the step before, and
# stops past the cutoff, at a bound, or where the profile fails or turns.
profile_side <- function(par, dir, cutoff, delta, maxpts, maxmult, name) {
  clamp <- function(v) min(max(v, par$lower), par$upper)
  rows <- list()
  v_prev <- par$est
  z_prev <- 0
  v <- clamp(par$est + dir * par$step)
  for (k in seq_len(maxpts)) {
    z <- par$zeta(v, trace = TRUE)
    if (!is.finite(z)) {
      mlm_warn("The profile of {.val {name}} could not be followed beyond {signif(par$natural(v_prev), 6)}.",
               "mlmfit_warning_profile")
      break
    }
    if (dir * (z - z_prev) < 0) {
      mlm_warn("The profile of {.val {name}} is not monotone near {signif(par$natural(v), 6)}: the trace stops there.",
               "mlmfit_warning_profile")
      break
    }
    point <- attr(z, "par")
    rows[[length(rows) + 1L]] <- c(z, point)
    if (abs(z) >= cutoff || v <= par$lower || v >= par$upper) break
    step <- v - v_prev
    slope <- (z - z_prev) / step
    next_step <- if (is.finite(slope) && slope > 0) dir * delta / slope else 2 * step
    if (abs(next_step) > maxmult * abs(step)) next_step <- maxmult * step
    v_prev <- v
    z_prev <- z
    v <- clamp(v + next_step)
    if (v == v_prev) break
  }
  rows
}

# lme4's "thpr" object from the traces: rows of every trace (parameters
# held in `profiled`, in that order), splines of zeta against each
# parameter held and back, and the bounds of the variance parameters.
thpr_object <- function(traces, all_names, profiled, setup) {
  values <- do.call(rbind, traces)
  out <- data.frame(.zeta = values[, 1L], check.names = FALSE)
  for (k in seq_along(all_names)) out[[all_names[k]]] <- values[, 1L + k]
  out$.par <- factor(rep(profiled, vapply(traces, nrow, 1L)), levels = profiled)
  forward <- backward <- stats::setNames(vector("list", length(profiled)), profiled)
  for (nm in profiled) {
    tr <- out[out$.par == nm, c(nm, ".zeta")]
    tr <- tr[!duplicated(tr[[1L]]), , drop = FALSE]
    forward[[nm]] <- tryCatch(splines::interpSpline(tr[[1L]], tr[[2L]]), error = function(e) e)
    backward[[nm]] <- if (inherits(forward[[nm]], "error")) forward[[nm]] else {
      tryCatch(splines::backSpline(forward[[nm]]), error = function(e) e)
    }
  }
  nvp <- setup$n_variance
  structure(out, forward = forward, backward = backward, lower = setup$lower, upper = setup$upper,
            n_variance = sum(match(profiled, all_names) <= nvp),
            class = c("mlmfit_profile", "thpr", "data.frame"))
}

#' @rdname profile.mlmfit
#' @param object,x The result of `profile()`.
#' @param parm Parameters: names, indices, `"theta_"` or `"beta_"`; all
#'   profiled ones by default.
#' @param level Confidence level.
#' @export
confint.mlmfit_profile <- function(object, parm, level = 0.95, ...) {
  check_level(level)
  backward <- attr(object, "backward")
  profiled <- names(backward)
  which <- confint_which(parm, profiled, attr(object, "n_variance"), length(profiled) - attr(object, "n_variance"))
  a <- (1 + c(-level, level)) / 2
  zeta <- stats::qnorm(a)
  out <- t(vapply(profiled[which], function(nm) profile_limits_from_trace(object, nm, zeta), numeric(2)))
  matrix(out, ncol = 2L,
         dimnames = list(profiled[which], paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")))
}

# The limits of one parameter at zeta values (lower, upper) from its
# backward spline; a trace that ends at a bound before reaching zeta gives
# the bound, one that ends short of it NA with a warning.
profile_limits_from_trace <- function(object, nm, zeta) {
  tr <- object[object$.par == nm, c(nm, ".zeta")]
  spline <- attr(object, "backward")[[nm]]
  lim <- if (inherits(spline, "error")) {
    mlm_warn("The spline of the profile of {.val {nm}} failed: its limits interpolate the trace linearly.",
             "mlmfit_warning_profile")
    stats::approx(tr[[2L]], tr[[1L]], xout = zeta)$y
  } else {
    vapply(zeta, function(z) if (z < min(tr[[2L]]) || z > max(tr[[2L]])) NA_real_ else stats::predict(spline, z)$y,
           numeric(1))
  }
  k <- match(nm, names(object)) - 1L
  bounds <- if (k <= length(attr(object, "lower"))) c(attr(object, "lower")[k], attr(object, "upper")[k]) else c(-Inf, Inf)
  ends <- range(tr[[1L]])
  for (s in 1:2) {
    if (!is.na(lim[s])) next
    if (ends[s] == bounds[s]) {
      lim[s] <- bounds[s]
    } else {
      mlm_warn("The profile of {.val {nm}} does not reach the {if (s == 1L) 'lower' else 'upper'} limit: it is {.val NA}.",
               "mlmfit_warning_profile")
    }
  }
  lim
}

#' @rdname profile.mlmfit
#' @param row.names,optional Unused (for compatibility with the generic).
#' @export
as.data.frame.mlmfit_profile <- function(x, row.names = NULL, optional = FALSE, ...) {
  out <- x
  attributes(out) <- attributes(x)[c("names", "row.names")]
  class(out) <- "data.frame"
  held <- as.character(out$.par)
  values <- as.matrix(out[setdiff(names(out), c(".zeta", ".par"))])
  out$.focal <- values[cbind(seq_len(nrow(out)), match(held, colnames(values)))]
  out
}
