# The response distribution of a GLMM: which families and links glmm()
# fits, how each kind of response becomes the numbers the engine reads
# (y, prior weights), and the constants of the log-likelihood.

glmm_links <- list(
  binomial = c("logit", "probit", "cauchit", "cloglog", "log"),
  poisson = c("log", "identity", "sqrt"),
  Gamma = c("log", "inverse", "identity"),
  negative_binomial = c("log", "identity", "sqrt")
)

# A family object from what the user passed: a family, a family function or
# its name. Refuses families glmm() does not fit, saying what to use.
glmm_family <- function(family, env = parent.frame()) {
  if (is.character(family) && length(family) == 1L) {
    fun <- tryCatch(get(family, mode = "function", envir = env), error = function(e) NULL)
    if (is.null(fun)) {
      mlm_abort(c("{.arg family} {.val {family}} is not a known family.",
                  i = "Use {.code binomial}, {.code poisson} or {.code Gamma}, with a link as in {.code binomial(link = \"probit\")}."),
                "mlmfit_error_family")
    }
    family <- fun
  }
  if (is.function(family)) family <- family()
  if (!inherits(family, "family")) {
    mlm_abort(c("{.arg family} must be a family such as {.code binomial} or {.code poisson(link = \"log\")}.",
                x = "It is of class {.cls {class(family)}}."),
              "mlmfit_error_family")
  }
  name <- family$family
  if (identical(name, "gaussian")) {
    mlm_abort(c("{.fn glmm} does not fit the gaussian family.",
                i = "For a normal response use {.fn lmm}."),
              "mlmfit_error_family")
  }
  if (startsWith(name, "quasi")) {
    mlm_abort(c("The {.val {name}} family has no likelihood, so {.fn glmm} cannot fit it.",
                i = "For overdispersed counts add an observation-level random effect, e.g. {.code (1 | obs)}, or use a negative binomial family."),
              "mlmfit_error_family")
  }
  dist <- if (startsWith(name, "Negative Binomial")) "negative_binomial" else name
  if (!dist %in% names(glmm_links)) {
    mlm_abort(c("{.fn glmm} does not fit the {.val {name}} family.",
                i = "Families fitted: binomial, poisson, Gamma and {.fn negative_binomial}."),
              "mlmfit_error_family")
  }
  if (!family$link %in% glmm_links[[dist]]) {
    mlm_abort(c("The {.val {family$link}} link is not available for the {.val {name}} family in {.fn glmm}.",
                i = "Links available: {.val {glmm_links[[dist]]}}."),
              "mlmfit_error_family")
  }
  nb_size <- 1
  if (dist == "negative_binomial") {
    nb_size <- get(".Theta", envir = environment(family$variance))
    if (is.null(nb_size)) nb_size <- NA_real_
  }
  list(family = family, dist = dist, link = family$link, nb_size = nb_size)
}

# The response as the engine reads it: y (proportions for binomial) and
# prior weights (numbers of trials for binomial counts), as glm() and glmer
# set them up, plus what simulate() and residuals() need to give the
# response back in its own form.
glmm_response <- function(y, weights, fam, yname) {
  dist <- fam$dist
  kind <- "numeric"
  levels <- NULL
  trials <- NULL
  if (dist == "binomial") {
    if (is.matrix(y)) {
      if (ncol(y) != 2L || !is.numeric(y)) {
        mlm_abort(c("A binomial response given as a matrix must have two numeric columns: {.code cbind(successes, failures)}.",
                    x = "{.var {yname}} has {ncol(y)} column{?s}."),
                  "mlmfit_error_response", variable = yname)
      }
      if (any(y < 0)) {
        bad <- which(rowSums(y < 0) > 0)
        mlm_abort(c("The counts in {.var {yname}} must not be negative; {cli::qty(length(bad))}row{?s} {rows_text(bad)} {?is/are}.",
                    i = "Write the response as {.code cbind(successes, failures)}, not {.code cbind(successes, trials)}."),
                  "mlmfit_error_response", variable = yname, rows = bad)
      }
      if (any(abs(y - round(y)) > 1e-7)) {
        mlm_warn("{.var {yname}} has non-integer counts of successes or failures.", "mlmfit_warning_response")
      }
      kind <- "cbind"
      trials <- y[, 1L] + y[, 2L]
      p <- ifelse(trials == 0, 0, y[, 1L] / pmax(trials, 1e-300))
      weights <- (if (is.null(weights)) 1 else weights) * trials
      y <- p
    } else {
      if (is.character(y)) {
        mlm_abort(c("The response {.var {yname}} is text.",
                    i = "Make it a factor (the first level is failure, the second success), a logical, or 0/1."),
                  "mlmfit_error_response", variable = yname)
      }
      if (is.factor(y)) {
        y <- droplevels(y)
        if (nlevels(y) > 2L) {
          mlm_abort(c("The response {.var {yname}} is a factor with {nlevels(y)} levels; a binomial model needs two.",
                      i = "Make a two-level factor or a logical that says which outcome counts as success, e.g. {.code {yname} == \"{levels(y)[nlevels(y)]}\"}."),
                    "mlmfit_error_response", variable = yname)
        }
        kind <- "factor"
        levels <- levels(y)
        y <- as.numeric(as.integer(y) > 1L)
      } else if (is.logical(y)) {
        kind <- "logical"
        y <- as.numeric(y)
      } else if (is.numeric(y)) {
        # 0/1 outcomes (the commonest) need neither the range check nor,
        # without weights, the check for whole numbers of successes.
        binary <- isTRUE(all(y == 0 | y == 1))
        if (!binary && any(y < 0 | y > 1)) {
          bad <- which(y < 0 | y > 1)
          mlm_abort(c("A binomial response must lie between 0 and 1; {.var {yname}} does not in {cli::qty(length(bad))}row{?s} {rows_text(bad)}.",
                      i = "For counts of successes out of trials write {.code cbind(successes, trials - successes)}."),
                    "mlmfit_error_response", variable = yname, rows = bad)
        }
        kind <- if (binary) "binary" else "proportion"
        m <- if (binary && is.null(weights)) 0 else y * (if (is.null(weights)) 1 else weights)
        if (any(abs(m - round(m)) > 1e-3)) {
          mlm_warn(c("The response {.var {yname}} times the weights is not a whole number of successes.",
                     i = "For proportions give the numbers of trials in {.arg weights}."),
                   "mlmfit_warning_response", variable = yname)
        }
      } else {
        mlm_abort("The response {.var {yname}} must be numeric, logical, a factor or {.code cbind(successes, failures)}.",
                  "mlmfit_error_response", variable = yname)
      }
      y <- as.double(y)
    }
    # Every outcome a failure (a success): no weight on y > 0 (on y < 1).
    if (is.null(weights)) {
      r <- range(y)
      no_success <- r[2L] == 0
      no_failure <- r[1L] == 1
    } else {
      no_success <- sum(weights * y) == 0
      no_failure <- sum(weights * (1 - y)) == 0
    }
    if (no_success || no_failure) {
      mlm_abort(c("The response {.var {yname}} is constant: every observation is a {if (no_success) 'failure' else 'success'}.",
                  i = "A binomial model needs both outcomes in the data."),
                "mlmfit_error_response", variable = yname)
    }
  } else {
    if (is.matrix(y) || is.factor(y) || is.logical(y) || is.character(y) || !is.numeric(y)) {
      mlm_abort(c("The response {.var {yname}} must be a numeric vector for the {.val {fam$family$family}} family.",
                  x = "It is {.cls {class(y)[1]}}."),
                "mlmfit_error_response", variable = yname)
    }
    y <- as.double(y)
    if (dist %in% c("poisson", "negative_binomial")) {
      if (any(y < 0)) {
        bad <- which(y < 0)
        mlm_abort("Counts cannot be negative: {.var {yname}} is in {cli::qty(length(bad))}row{?s} {rows_text(bad)}.",
                  "mlmfit_error_response", variable = yname, rows = bad)
      }
      if (any(abs(y - round(y)) > 1e-7)) {
        mlm_warn(c("The response {.var {yname}} has non-integer values: the {.val {fam$family$family}} log-likelihood is defined for counts.",
                   i = "For rates, model the counts with {.code offset(log(exposure))}."),
                 "mlmfit_warning_response", variable = yname)
      }
      if (all(y == 0)) {
        mlm_abort("The response {.var {yname}} is zero everywhere: there is nothing to model.",
                  "mlmfit_error_response", variable = yname)
      }
    } else if (dist == "Gamma") {
      if (any(y <= 0)) {
        bad <- which(y <= 0)
        mlm_abort(c("The Gamma family needs a positive response; {.var {yname}} is not in {cli::qty(length(bad))}row{?s} {rows_text(bad)}.",
                    i = "Drop those rows or choose another family."),
                  "mlmfit_error_response", variable = yname, rows = bad)
      }
    }
  }
  attributes(y) <- NULL
  list(y = y, weights = weights, kind = kind, levels = levels, trials = trials)
}

# Starting values of the mean, as glm()'s family initialisation sets them.
glmm_mustart <- function(y, weights, dist) {
  w <- if (is.null(weights)) rep(1, length(y)) else weights
  switch(dist,
    binomial = (w * y + 0.5) / (w + 1),
    poisson = y + 0.1,
    negative_binomial = y + (y == 0) / 6,
    Gamma = y
  )
}

# What the engine needs to know about the family besides its name and link
# (the spec's family$constants): the constant that turns the sum of
# deviance residuals into -2 log-likelihood (R's family$aic(), evaluated at
# the starting means; it does not depend on the means for whole numbers of
# successes or counts), for Gamma the sums its aic() uses, and the link of
# the mean response (a safe linear predictor to restart from).
family_constants <- function(spec) {
  fam <- spec$family
  y <- spec$rows$y
  weights <- spec$rows$weights
  aic_const <- 0
  # 0/1 outcomes of single trials: the binomial log-likelihood is minus
  # half the deviance exactly, and the constant is zero.
  binary <- fam$dist == "binomial" && is.null(weights) && is.null(spec$rows$trials) && all(y == 0 | y == 1)
  if (fam$dist != "Gamma" && !is.na(fam$nb_size) && !binary) {
    mu <- glmm_mustart(y, weights, fam$dist)
    n <- spec$rows$trials %||% rep(1, length(y))
    w <- if (is.null(weights)) rep(1, length(y)) else weights
    dev <- sum(fam$family$dev.resids(y, mu, w))
    aic_const <- suppressWarnings(fam$family$aic(y, n, mu, w, dev)) - dev
    if (!is.finite(aic_const)) aic_const <- 0
  }
  # Without weights, the sums of unit weights written out: the same bits,
  # without a vector of ones.
  weighted_sum <- function(x) if (is.null(weights)) sum(x) else sum(weights * x)
  sum_w <- if (is.null(weights)) as.double(length(y)) else sum(weights)
  eta_mean <- suppressWarnings(fam$family$linkfun(weighted_sum(y) / sum_w))
  list(aic_const = as.double(aic_const), sum_weights = sum_w,
       sum_wt_log_y = if (fam$dist == "Gamma") weighted_sum(log(y)) else 0,
       eta_mean = if (is.finite(eta_mean)) as.double(eta_mean) else 0)
}

#' The negative binomial family
#'
#' A family object for counts more variable than Poisson counts: variance
#' `mu + mu^2 / theta`. With `theta = NULL` (the default), [glmm()]
#' estimates `theta` by maximising the profile likelihood, as
#' `lme4::glmer.nb()` does; with a number it is held fixed (the same as
#' `MASS::negative.binomial(theta)`).
#'
#' @param theta The size (shape) parameter, or `NULL` to estimate it.
#' @param link The link function: `"log"` (default), `"identity"` or `"sqrt"`.
#' @return An object of class `family`.
#' @examples
#' set.seed(1)
#' d <- data.frame(g = factor(rep(1:30, each = 20)), x = rnorm(600))
#' d$y <- rnbinom(600, size = 2, mu = exp(1 + 0.5 * d$x + rnorm(30, sd = 0.4)[d$g]))
#' fit <- glmm(y ~ x + (1 | g), d, family = negative_binomial())
#' family(fit)
#' fixef(fit)
#' @export
negative_binomial <- function(theta = NULL, link = "log") {
  if (!is.null(theta) && (!is.numeric(theta) || length(theta) != 1L || !(theta > 0))) {
    mlm_abort("{.arg theta} must be one positive number, or {.code NULL} to estimate it.", "mlmfit_error_family")
  }
  if (!link %in% glmm_links$negative_binomial) {
    mlm_abort("The {.val {link}} link is not available for the negative binomial family; use {.val {glmm_links$negative_binomial}}.",
              "mlmfit_error_family")
  }
  .Theta <- if (is.null(theta)) NA_real_ else as.double(theta)
  lk <- stats::make.link(link)
  variance <- function(mu) mu + mu^2 / .Theta
  validmu <- function(mu) all(mu > 0)
  dev.resids <- function(y, mu, wt) {
    2 * wt * (y * log(pmax(1, y) / mu) - (y + .Theta) * log((y + .Theta) / (mu + .Theta)))
  }
  aic <- function(y, n, mu, wt, dev) {
    term <- (y + .Theta) * log(mu + .Theta) - y * log(mu) + lgamma(y + 1) - .Theta * log(.Theta) +
      lgamma(.Theta) - lgamma(.Theta + y)
    2 * sum(term * wt)
  }
  initialize <- expression({
    if (any(y < 0)) stop("negative values not allowed for the negative binomial family")
    n <- rep(1, nobs)
    mustart <- y + (y == 0) / 6
  })
  name <- if (is.na(.Theta)) "Negative Binomial" else sprintf("Negative Binomial(%s)", format(round(.Theta, 4)))
  structure(list(family = name, link = link, linkfun = lk$linkfun, linkinv = lk$linkinv, variance = variance,
                 dev.resids = dev.resids, aic = aic, mu.eta = lk$mu.eta, initialize = initialize,
                 validmu = validmu, valideta = lk$valideta),
            class = "family")
}

# The maximum-likelihood size of a negative binomial given the means (the
# Newton iteration of MASS::theta.ml()).
nb_theta_ml <- function(y, mu, weights = NULL, limit = 20L) {
  w <- if (is.null(weights)) rep(1, length(y)) else weights
  n <- sum(w)
  score <- function(th) sum(w * (digamma(th + y) - digamma(th) + log(th) + 1 - log(th + mu) - (y + th) / (mu + th)))
  info <- function(th) sum(w * (-trigamma(th + y) + trigamma(th) - 1 / th + 2 / (mu + th) - (y + th) / (mu + th)^2))
  th <- n / sum(w * (y / mu - 1)^2)
  if (!is.finite(th) || th <= 0) th <- 1
  for (it in seq_len(limit)) {
    step <- score(th) / info(th)
    th_new <- th + step
    if (!is.finite(th_new) || th_new <= 0) th_new <- th / 2
    if (abs(th_new - th) < 1e-8 * th) {
      th <- th_new
      break
    }
    th <- th_new
  }
  min(max(th, 1e-4), 1e6)
}
