# Residual correlation and variance structures for lmm(): nlme's corStruct
# objects (corAR1, corCAR1, corCompSymm) and varFunc objects (varIdent,
# varPower, varExp, varConstPower) turned into what the engine needs: residual groups, the
# order of observations within them, times, strata, covariates and starting
# values of the parameters on nlme's unconstrained scale.
#
# The residual covariance is sigma^2 R, R block diagonal over residual
# groups, R_g = S_g C_g S_g: S_g holds the variance function's multipliers
# (divided by the square roots of any prior weights), C_g the correlation
# matrix of the group.

# nlme's constructors, so that `library(mlmfit)` alone lets users write
# `correlation = corAR1(form = ~ 1 | g)`.

#' @importFrom nlme corAR1 corCAR1 corCompSymm varIdent varPower varExp varConstPower
#' @export
nlme::corAR1
#' @export
nlme::corCAR1
#' @export
nlme::corCompSymm
#' @export
nlme::varIdent
#' @export
nlme::varPower
#' @export
nlme::varExp
#' @export
nlme::varConstPower
#' @export
nlme::getVarCov

supported_correlations <- c(corAR1 = "ar1", corCAR1 = "car1", corCompSymm = "comp_symm")
supported_variances <- c(varIdent = "ident", varPower = "power", varExp = "exp", varConstPower = "const_power")
correlation_labels <- c(ar1 = "AR(1)", car1 = "Continuous AR(1)", comp_symm = "Compound symmetry")
variance_labels <- c(ident = "Different standard deviations per stratum",
                     power = "Power of variance covariate",
                     exp = "Exponential of variance covariate",
                     const_power = "Constant plus power of variance covariate")

# Refuse anything but the supported constructors, before the model frame is built.
check_residual_arguments <- function(correlation, variance) {
  if (!is.null(correlation)) {
    cls <- class(correlation)[1L]
    if (!inherits(correlation, "corStruct") || !cls %in% names(supported_correlations)) {
      mlm_abort(c("{.arg correlation} must be made by {.fn nlme::corAR1}, {.fn nlme::corCAR1} or {.fn nlme::corCompSymm}.",
                  x = "It is of class {.cls {class(correlation)}}."),
                "mlmfit_error_residual_structure")
    }
  }
  if (!is.null(variance)) {
    cls <- class(variance)[1L]
    if (inherits(variance, "formula")) {
      mlm_abort(c("{.arg variance} must be a variance function such as {.code varPower(form = ~ x)}.",
                  i = "For known variances proportional to {.var x} (nlme's {.code weights = ~ x}), use {.code weights = 1 / x}."),
                "mlmfit_error_residual_structure")
    }
    if (!inherits(variance, "varFunc") || !cls %in% names(supported_variances)) {
      mlm_abort(c("{.arg variance} must be made by {.fn nlme::varIdent}, {.fn nlme::varPower}, {.fn nlme::varExp} or {.fn nlme::varConstPower}.",
                  x = "It is of class {.cls {class(variance)}}."),
                "mlmfit_error_residual_structure")
    }
    form <- stats::formula(variance)
    if (cls != "varIdent") {
      rhs <- nlme::getCovariateFormula(form)[[2L]]
      if (!is_fitted_covariate(rhs) && ("fitted" %in% all.names(rhs) || "." %in% all.vars(rhs))) {
        mlm_abort(c("The covariate {.code {deparse1(rhs)}} of {.fn {cls}} is not supported.",
                    i = "Use the fitted values as they are ({.code {cls}(form = ~ fitted(.))}, the default) or a variable, e.g. {.code {cls}(form = ~ age)}."),
                  "mlmfit_error_residual_structure")
      }
      if (!is.null(nlme::getGroupsFormula(form))) {
        mlm_abort(c("{.fn {cls}} with strata ({.code {deparse1(form)}}) is not supported.",
                    i = "Use one {.fn {cls}} parameter for all observations: {.code {cls}(form = {deparse1(nlme::getCovariateFormula(form))})}."),
                  "mlmfit_error_residual_structure")
      }
    }
  }
  invisible()
}

# nlme's default covariate of varPower(), varExp() and varConstPower(): the fitted values,
# X beta + Z b, which the engine iterates with the fit as nlme::lme does.
is_fitted_covariate <- function(rhs) {
  is.call(rhs) && identical(rhs[[1L]], as.name("fitted")) && length(rhs) == 2L && identical(rhs[[2L]], as.name("."))
}

# The model-frame formula with the variables of the structures added, so
# that missing values drop the same rows from every part of the model.
add_structure_variables <- function(frame, correlation, variance) {
  vars <- character()
  for (s in list(correlation, variance)) {
    if (!is.null(s)) vars <- c(vars, all.vars(stats::formula(s)))
  }
  # Added even when the formula mentions them (inside factor(year), say):
  # the frame must hold the variables themselves.
  vars <- setdiff(unique(vars), c(".", all.vars(frame[[2L]])))
  rhs <- frame[[3L]]
  for (v in vars) rhs <- call("+", rhs, as.name(v))
  frame[[3L]] <- rhs
  frame
}

# Is every level of `inner` within one level of `outer`?
levels_lie_within <- function(inner, outer) {
  ci <- as.integer(inner)
  co <- as.integer(outer)
  first <- co[match(seq_len(nlevels(inner)), ci)]
  all(co == first[ci])
}

# nlme's default group for a correlation structure: the innermost grouping
# factor of the random effects (one nested within all others).
innermost_block <- function(re) {
  for (b in re$blocks) {
    if (all(vapply(re$blocks, function(o) levels_lie_within(b$factor, o$factor), logical(1)))) return(b)
  }
  NULL
}

structure_grouping <- function(gform, mf, env) {
  pieces <- expand_slash(gform[[2L]])
  expr <- pieces[[length(pieces)]]
  list(factor = grouping_factor(expr, deparse1(expr), mf, env), label = deparse1(gform[[2L]]))
}

structure_covariate <- function(rhs, mf, env, what) {
  v <- tryCatch(eval(rhs, mf, env), error = function(e) {
    mlm_abort(c("The covariate {.code {deparse1(rhs)}} of {what} could not be evaluated.", x = conditionMessage(e)),
              "mlmfit_error_residual_structure")
  })
  if (!is.numeric(v) || length(v) != nrow(mf)) {
    mlm_abort("The covariate {.code {deparse1(rhs)}} of {what} must be numeric with one value per observation.",
              "mlmfit_error_residual_structure", variable = deparse1(rhs))
  }
  if (any(!is.finite(v))) {
    mlm_abort("The covariate {.code {deparse1(rhs)}} of {what} has infinite values.",
              "mlmfit_error_residual_structure", variable = deparse1(rhs))
  }
  as.double(v)
}

correlation_part <- function(obj, mf, re, env) {
  cls <- class(obj)[1L]
  kind <- supported_correlations[[cls]]
  what <- paste0(cls, "()")
  form <- stats::formula(obj)
  gform <- nlme::getGroupsFormula(form)
  if (is.null(gform)) {
    b <- innermost_block(re)
    if (is.null(b)) {
      mlm_abort(c("The random effects have crossed grouping factors, so the groups of {.fn {cls}} must be given.",
                  i = "Write them into the structure, e.g. {.code {cls}(form = ~ 1 | subject)}."),
                "mlmfit_error_residual_grouping")
    }
    grp <- b$factor
    glabel <- b$label
    form <- stats::as.formula(call("~", call("|", nlme::getCovariateFormula(form)[[2L]], str2lang(glabel))),
                              env = environment(form))
  } else {
    g <- structure_grouping(gform, mf, env)
    grp <- g$factor
    glabel <- g$label
  }
  for (b in re$blocks) {
    if (!levels_lie_within(grp, b$factor)) {
      mlm_abort(c("The groups of {.fn {cls}} ({.code {glabel}}) must each lie within one level of every grouping factor of the random effects; {.var {b$label}} varies within them.",
                  i = "Group the correlation by the innermost grouping factor, e.g. {.code {cls}(form = ~ 1 | {b$label})}."),
                "mlmfit_error_residual_grouping", variable = glabel)
    }
  }
  sizes <- tabulate(grp, nlevels(grp))
  rhs <- nlme::getCovariateFormula(form)[[2L]]
  time <- if (identical(rhs, 1) || identical(rhs, 1L) || kind == "comp_symm") NULL else structure_covariate(rhs, mf, env, what)
  if (!is.null(time)) {
    if (kind == "ar1" && any(abs(time - round(time)) > 1e-8)) {
      mlm_abort(c("{.fn corAR1} needs whole-number times; {.code {deparse1(rhs)}} has other values.",
                  i = "For measurements in continuous time use {.code corCAR1(form = ~ {deparse1(rhs)} | {glabel})}."),
                "mlmfit_error_residual_structure", variable = deparse1(rhs))
    }
    ord <- order(as.integer(grp), time)
    dup <- which(diff(time[ord]) == 0 & diff(as.integer(grp)[ord]) == 0)
    if (length(dup) > 0L) {
      mlm_abort(c("{.code {deparse1(rhs)}} must take distinct values within each group of {.fn {cls}}.",
                  x = "Group {.val {as.character(grp[ord[dup[1L]]])}} has two observations at {deparse1(rhs)} = {time[ord[dup[1L]]]}."),
                "mlmfit_error_residual_structure", variable = deparse1(rhs))
    }
  } else {
    ord <- order(as.integer(grp))
  }
  starts <- c(0, cumsum(sizes))
  position <- numeric(length(grp))
  position[ord] <- seq_along(ord) - rep(starts[-length(starts)], sizes)

  value <- as.vector(unclass(obj))
  n_max <- max(sizes)
  psi0 <- switch(kind,
    ar1 = if (length(value)) value[[1L]] else 0,
    car1 = if (length(value)) value[[1L]] else stats::qlogis(0.2),
    comp_symm = {
      if (n_max < 2L) {
        mlm_abort("Every group of {.fn corCompSymm} has a single observation: there is no correlation to estimate.",
                  "mlmfit_error_residual_structure")
      }
      rho <- if (!is.null(attr(obj, "inf"))) unname(stats::coef(obj, unconstrained = FALSE)) else if (length(value)) value[[1L]] else 0
      inf <- -1 / (n_max - 1)
      if (rho <= inf || rho >= 1) {
        mlm_abort("The starting value of {.fn corCompSymm} must lie between {round(inf, 4)} and 1.",
                  "mlmfit_error_residual_structure")
      }
      log((rho - inf) / (1 - rho))
    })
  list(kind = kind, class = cls, label = correlation_labels[[kind]], formula = form, group = grp,
       group_label = glabel, time = time, position = if (is.null(time)) position else time,
       order = ord, group_start = starts, n_max = n_max, psi0 = psi0, free = !isTRUE(attr(obj, "fixed")),
       names = if (kind == "comp_symm") "Rho" else "Phi")
}

# The strata of varIdent(form = ~ 1 | a * b): a factor, labels "a*b" as nlme
# writes them.
varident_strata <- function(gform, data, env) {
  parts <- nlme::splitFormula(gform, "*")
  vals <- lapply(parts, function(p) {
    v <- tryCatch(eval(p[[2L]], data, env), error = function(e) {
      mlm_abort(c("The strata {.code {deparse1(p[[2L]])}} of {.fn varIdent} could not be formed.", x = conditionMessage(e)),
                "mlmfit_error_residual_structure")
    })
    if (length(v) != nrow(data)) {
      mlm_abort("The strata {.code {deparse1(p[[2L]])}} of {.fn varIdent} need one value per observation.",
                "mlmfit_error_residual_structure")
    }
    if (is.factor(v)) droplevels(v) else factor(v)
  })
  if (length(vals) == 1L) return(vals[[1L]])
  lab <- do.call(paste, c(lapply(vals, as.character), sep = "*"))
  key <- do.call(order, lapply(vals, as.integer))
  factor(lab, levels = unique(lab[key]))
}

variance_part <- function(obj, mf, env) {
  cls <- class(obj)[1L]
  kind <- supported_variances[[cls]]
  form <- stats::formula(obj)
  what <- paste0(cls, "()")
  if (kind == "ident") {
    gform <- nlme::getGroupsFormula(form)
    if (is.null(gform)) {
      mlm_abort(c("{.fn varIdent} needs strata.", i = "Write them as {.code varIdent(form = ~ 1 | stratum)}."),
                "mlmfit_error_residual_structure")
    }
    strata <- varident_strata(gform, mf, env)
    lev <- levels(strata)
    value <- stats::setNames(as.vector(unclass(obj)), names(obj))
    fixed <- attr(obj, "fixed")
    named <- union(names(value), names(fixed))
    unknown <- setdiff(named, lev)
    if (length(unknown) > 0L) {
      mlm_abort(c("{.fn varIdent} names {cli::qty(length(unknown))}strat{?um/a} {.val {unknown}}, not found in {.code {deparse1(gform[[2L]])}}.",
                  i = "The strata are {.val {lev}}."),
                "mlmfit_error_residual_structure")
    }
    free_lev <- setdiff(lev, named)
    if (length(free_lev) == 0L) {
      mlm_abort("{.fn varIdent} gives values for every stratum: one stratum must be left as the reference (standard deviation ratio 1).",
                "mlmfit_error_residual_structure")
    }
    ref <- free_lev[[1L]]
    lev <- c(ref, setdiff(lev, ref))
    strata <- factor(as.character(strata), levels = lev)
    others <- lev[-1L]
    psi0 <- vapply(others, function(s) {
      if (s %in% names(fixed)) fixed[[s]] else if (s %in% names(value)) value[[s]] else 0
    }, numeric(1))
    return(list(kind = kind, class = cls, label = variance_labels[[kind]], formula = form, strata = strata,
                reference = ref, psi0 = unname(psi0), free = !others %in% names(fixed), names = others))
  }
  rhs <- nlme::getCovariateFormula(form)[[2L]]
  fitted <- is_fitted_covariate(rhs)
  covariate <- if (!fitted) structure_covariate(rhs, mf, env, what)
  if (kind == "power" && any(covariate == 0)) {
    mlm_abort(c("The covariate {.code {deparse1(rhs)}} of {.fn varPower} is zero for some observations: their variance would be zero.",
                i = "Use {.fn varExp}, or shift the covariate."),
              "mlmfit_error_residual_structure", variable = deparse1(rhs))
  }
  start <- variance_function_start(obj, kind)
  list(kind = kind, class = cls, label = variance_labels[[kind]], formula = form, covariate = covariate,
       fitted = fitted, psi0 = start$psi0, free = start$free, names = start$names)
}

# Starting values (nlme's unconstrained scale) of a varPower(), varExp() or
# varConstPower() object, which parameters are held fixed, and their names.
# varConstPower starts as nlme starts it: const 0.1, power 0.
variance_function_start <- function(obj, kind) {
  fixed <- attr(obj, "fixed")
  if (kind != "const_power") {
    value <- as.vector(unclass(obj))
    psi0 <- if (length(fixed)) fixed[[1L]] else if (length(value)) value[[1L]] else 0
    return(list(psi0 = psi0, free = !length(fixed), names = if (kind == "power") "power" else "expon"))
  }
  names <- c("const", "power")
  given <- lapply(names, function(nm) {
    v <- if (!is.null(fixed[[nm]])) fixed[[nm]] else unclass(obj)[[nm]]
    if (length(v)) as.numeric(v)[[1L]] else NULL
  })
  const <- given[[1L]] %||% 0.1
  if (!(const > 0)) {
    mlm_abort("The constant of {.fn varConstPower} must be positive.", "mlmfit_error_residual_structure")
  }
  list(psi0 = c(log(const), given[[2L]] %||% 0), free = vapply(names, function(nm) is.null(fixed[[nm]]), logical(1)),
       names = names)
}

# The residual structure of a model: the parts and the engine's description.
build_residual_structure <- function(correlation, variance, mf, re, env, control) {
  n <- nrow(mf)
  cor <- if (!is.null(correlation)) correlation_part(correlation, mf, re, env)
  var <- if (!is.null(variance)) variance_part(variance, mf, env)
  engine <- list(
    correlation = if (is.null(cor)) "none" else cor$kind,
    variance = if (is.null(var)) "none" else var$kind,
    order = if (is.null(cor)) seq_len(n) else as.integer(cor$order),
    group_start = if (is.null(cor)) as.double(0:n) else as.double(cor$group_start),
    time = if (is.null(cor)) NULL else cor$time,
    stratum = if (!is.null(var) && var$kind == "ident") as.integer(var$strata) - 1L else NULL,
    n_strata = if (!is.null(var) && var$kind == "ident") nlevels(var$strata) else 1L,
    covariate = if (!is.null(var) && var$kind != "ident") var$covariate else NULL,
    covariate_fitted = isTRUE(var$fitted),
    psi0 = as.double(c(cor$psi0, var$psi0)),
    psi_free = c(cor$free, var$free),
    method = control$residual_method %||% "auto"
  )
  cor$order <- NULL
  list(correlation = cor, variance = var, engine = engine)
}

# Unconstrained psi (nlme's scale) to the natural scale, named.
natural_residual_parameters <- function(res, psi = res$psi) {
  out <- numeric()
  k <- 0L
  if (!is.null(cor <- res$correlation)) {
    k <- 1L
    x <- psi[[1L]]
    val <- switch(cor$kind,
      ar1 = tanh(x / 2),
      car1 = stats::plogis(x),
      comp_symm = {
        inf <- -1 / (cor$n_max - 1)
        e <- exp(x)
        if (is.infinite(e)) 1 else (e + inf) / (e + 1)
      })
    out <- c(out, stats::setNames(val, cor$names))
  }
  if (!is.null(var <- res$variance)) {
    x <- psi[k + seq_along(var$names)]
    val <- switch(var$kind, ident = exp(x), const_power = c(exp(x[[1L]]), x[[2L]]), x)
    out <- c(out, stats::setNames(val, var$names))
  }
  out
}

# Attach the residual structure and its estimates to a fit, which becomes
# an "mlmfit_lmm_structured": an lmm whose residuals have the covariance
# sigma^2 R of the structure.
add_residual_structure <- function(fit, engine, structure) {
  res <- structure
  res$psi <- as.vector(engine$psi)
  res$free <- structure$engine$psi_free
  res$whitening <- engine$whitening
  res$log_det <- engine$log_det_R
  if (!is.null(engine$covariate)) {
    # the fitted values the last fit used as covariate: every later
    # evaluation holds it (refits iterate it again)
    res$variance$covariate <- engine$covariate
    res$engine$covariate <- engine$covariate
  }
  names(res$psi) <- names(natural_residual_parameters(res))
  fit$residual <- res
  class(fit) <- c("mlmfit_lmm_structured", class(fit))
  fit
}

#' Residuals of a fit with a residual correlation or variance structure
#'
#' For a fit from [lmm()] with `correlation` or `variance`: `"response"`
#' (and `"working"`) residuals are `y` minus the fitted values;
#' `"pearson"` (and `"deviance"`) residuals are divided by each
#' observation's standard-deviation multiplier (the variance function at
#' the estimates, and the prior weights); `"normalized"` residuals (nlme's)
#' are the Pearson residuals multiplied by the inverse Cholesky factor of
#' their estimated correlation matrix within each group, divided by sigma:
#' uncorrelated with unit variance when the structure is right.
#' `scaled = TRUE` divides the other types by sigma.
#'
#' @param object A fit from [lmm()] with a residual structure.
#' @param type `"response"`, `"pearson"`, `"working"`, `"deviance"` or
#'   `"normalized"`.
#' @param scaled Divide by sigma.
#' @param ... Unused.
#' @return A named numeric vector.
#' @examples
#' fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
#'            nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
#' head(residuals(fit, type = "normalized"))
#' @export
residuals.mlmfit_lmm_structured <- function(object, type = c("response", "pearson", "working", "deviance",
                                                              "normalized"), scaled = FALSE, ...) {
  type <- match.arg(type)
  r <- object$y - object$fitted
  if (type %in% c("pearson", "deviance", "normalized")) r <- r / residual_sd_multipliers(object)
  if (type == "normalized") r <- normalized_residuals(object, r)
  if (scaled || type == "normalized") r <- r / object$sigma
  stats::naresid(attr(object$frame, "na.action"), stats::setNames(as.vector(r), rownames(object$frame)))
}

#' Parameters of the residual correlation and variance structure
#'
#' The estimated parameters of the `correlation` and `variance` structures
#' of a fit from [lmm()], as nlme reports them:
#' `Phi` for [nlme::corAR1()] and [nlme::corCAR1()] (the correlation of
#' observations one time unit apart), `Rho` for [nlme::corCompSymm()], the
#' standard-deviation ratio of each non-reference stratum for
#' [nlme::varIdent()], `power` for [nlme::varPower()], `expon` for
#' [nlme::varExp()], `const` and `power` for [nlme::varConstPower()]. With
#' `unconstrained = TRUE` the same parameters on the unconstrained scale the
#' optimiser uses (nlme's `coef(..., unconstrained = TRUE)`):
#' `log((1 + Phi) / (1 - Phi))`, `qlogis(Phi)`, the log ratio of standard
#' deviations, `log(const)`, and so on.
#'
#' @param object A fit from [lmm()].
#' @param unconstrained Report on the optimiser's unconstrained scale.
#' @param fixed Include parameters held fixed (`fixed = TRUE` in the nlme
#'   constructor); they are not estimated and not counted in `logLik()`'s df.
#' @param ... Unused.
#' @return A named numeric vector; empty for a fit without residual structure.
#' @examples
#' fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
#'            nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
#' residual_parameters(fit)
#' @export
residual_parameters <- function(object, ...) UseMethod("residual_parameters")

#' @rdname residual_parameters
#' @export
residual_parameters.mlmfit_lmm <- function(object, unconstrained = FALSE, fixed = FALSE, ...) {
  res <- object$residual
  if (is.null(res)) return(stats::setNames(numeric(), character()))
  val <- if (unconstrained) res$psi else natural_residual_parameters(res)
  if (!fixed) val <- val[res$free]
  val
}

n_residual_parameters <- function(object) {
  if (is.null(object$residual)) 0L else sum(object$residual$free)
}

# varConstPower()'s constant next to |v|^power decides the model: far below
# it the fit is varPower()'s (a boundary, like a zero variance); far above
# it, with sigma shrinking, the likelihood rises towards a limit that no
# finite parameters reach (the constant and the power drift together). On
# nlme's data sets the fits with a maximum have ratios up to about 30, the
# drifting ones above 1e4. Either is said, not returned silently.
report_unbounded_variance_function <- function(fit) {
  var <- fit$residual$variance
  if (is.null(var) || var$kind != "const_power") return(invisible())
  par <- natural_residual_parameters(fit$residual)[var$names]
  ratio <- par[["const"]] / stats::median(abs(var$covariate)^par[["power"]])
  if (!is.finite(ratio)) return(invisible())
  if (ratio < 1e-8) {
    mlm_inform(c("The constant of {.fn varConstPower} is estimated as zero: the fit is that of {.fn varPower}.",
                 i = "Fit {.fn varPower} instead: it has one parameter fewer."),
               "mlmfit_message_singular")
  } else if (ratio > 1e3) {
    mlm_warn(c("The constant of {.fn varConstPower} grows without bound: the likelihood rises towards a limit that no finite parameters reach, and the estimates are not a maximum.",
               i = "Use {.fn varExp} or {.fn varPower} for this variance, or fix the power."),
             "mlmfit_warning_convergence")
  }
  invisible()
}

# The standard-deviation multiplier of a variance function of a covariate
# at its natural parameters.
variance_multiplier <- function(kind, par, v) {
  switch(kind,
    power = abs(v)^par[[1L]],
    exp = exp(par[[1L]] * v),
    const_power = par[[1L]] + abs(v)^par[[2L]])
}

# Standard-deviation multiplier of each observation: the variance function
# at the estimates divided by the square root of the prior weight.
residual_sd_multipliers <- function(object) {
  n <- nobs(object)
  s <- rep(1, n)
  var <- object$residual$variance
  if (!is.null(var)) {
    par <- natural_residual_parameters(object$residual)[var$names]
    s <- switch(var$kind,
      ident = c(1, par)[as.integer(var$strata)],
      variance_multiplier(var$kind, par, var$covariate))
  }
  if (!is.null(object$prior_weights)) s <- s / sqrt(object$prior_weights)
  unname(s)
}

# The residual correlation matrix of observations of one residual group at
# times (or positions) `time`.
group_correlation <- function(cor, par, time) {
  m <- length(time)
  if (is.null(cor) || m == 1L) return(diag(1, m))
  switch(cor$kind,
    ar1 = ,
    car1 = par^abs(outer(time, time, "-")),
    comp_symm = {
      C <- matrix(par, m, m)
      diag(C) <- 1
      C
    })
}

#' Residual covariance of observations of a fit with a residual structure
#'
#' `residual_covariance()` returns sigma^2 R for observations of a fit from
#' [lmm()]: the covariance of their residuals given the random effects,
#' with the correlation structure within residual groups, zero between
#' groups, and the variance function (and prior weights) on the diagonal.
#' For a fit without `correlation` or `variance` it is `sigma^2 / weights`
#' on the diagonal. With `newdata`, the same for new observations at the
#' estimates (their groups, times, strata or covariates read from
#' `newdata`; positions within groups in the order of its rows where the
#' correlation has no time covariate), e.g. to simulate new residuals.
#'
#' @param object A fit from [lmm()].
#' @param rows Observations, by number or name: rows of
#'   `model.frame(object)`, or of `newdata` when it is given (all by
#'   default).
#' @param newdata Optional data frame of new observations.
#' @return A square matrix with dimnames the rows' names.
#' @seealso [getVarCov.mlmfit_lmm()] for whole groups, as nlme returns them.
#' @examples
#' fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
#'            nlme::Ovary, correlation = nlme::corAR1(form = ~ 1 | Mare))
#' round(residual_covariance(fit, 1:4), 3)
#' new <- data.frame(Mare = 1, Time = c(0.1, 0.2, 0.3))
#' round(residual_covariance(fit, newdata = new), 3)
#' @export
residual_covariance <- function(object, rows = NULL, newdata = NULL) {
  if (is.null(newdata)) {
    nm <- rownames(object$frame)
    n <- nobs(object)
  } else {
    newdata <- as_model_data(newdata)
    nm <- rownames(newdata)
    n <- nrow(newdata)
  }
  if (is.null(rows)) rows <- seq_len(n)
  if (is.character(rows)) rows <- match(rows, nm)
  if (anyNA(rows) || any(rows < 1L | rows > n)) {
    mlm_abort("{.arg rows} must name observations of {if (is.null(newdata)) 'the fit (rows of {.code model.frame(object)})' else '{.arg newdata}'}.",
              "mlmfit_error_argument")
  }
  parts <- if (is.null(newdata)) {
    cor <- object$residual$correlation
    list(s = residual_sd_multipliers(object), group = if (!is.null(cor)) as.integer(cor$group),
         time = if (!is.null(cor)) cor$position)
  } else {
    residual_structure_newdata(object, newdata)
  }
  s <- parts$s[rows]
  C <- diag(1, length(rows))
  cor <- object$residual$correlation
  if (!is.null(cor)) {
    par <- natural_residual_parameters(object$residual)[[1L]]
    g <- parts$group[rows]
    for (grp in unique(g)) {
      k <- which(g == grp)
      C[k, k] <- group_correlation(cor, par, parts$time[rows[k]])
    }
  }
  V <- object$sigma^2 * C * tcrossprod(s)
  dimnames(V) <- list(nm[rows], nm[rows])
  V
}

# The residual structure's variables for new observations: standard
# deviation multipliers, residual groups and times (positions in the order
# of the rows where the correlation has no time covariate).
residual_structure_newdata <- function(object, newdata) {
  res <- object$residual
  env <- environment(object$formula)
  n <- nrow(newdata)
  out <- list(s = rep(1, n), group = NULL, time = NULL)
  if (!is.null(var <- res$variance)) {
    par <- natural_residual_parameters(res)[var$names]
    if (var$kind == "ident") {
      st <- as.character(varident_strata(nlme::getGroupsFormula(var$formula), newdata, env))
      k <- match(st, levels(var$strata))
      if (anyNA(k)) {
        mlm_abort("{.arg newdata} has strata of {.fn varIdent} that the fit has not seen: {.val {unique(st[is.na(k)])}}.",
                  "mlmfit_error_newdata")
      }
      out$s <- c(1, par)[k]
    } else {
      rhs <- nlme::getCovariateFormula(var$formula)[[2L]]
      v <- if (isTRUE(var$fitted)) {
        stats::predict(object, newdata = newdata)
      } else {
        structure_covariate(rhs, newdata, env, paste0(var$class, "()"))
      }
      out$s <- variance_multiplier(var$kind, par, v)
    }
  }
  if (!is.null(cor <- res$correlation)) {
    g <- structure_grouping(nlme::getGroupsFormula(cor$formula), newdata, env)$factor
    out$group <- as.integer(g)
    out$time <- if (is.null(cor$time)) {
      stats::ave(seq_len(n), out$group, FUN = seq_along)
    } else {
      structure_covariate(nlme::getCovariateFormula(cor$formula)[[2L]], newdata, env, paste0(cor$class, "()"))
    }
  }
  out
}

# Residual groups as nlme's "individuals": the correlation groups, else the
# innermost grouping factor of the random effects.
individual_factor <- function(object) {
  cor <- object$residual$correlation
  if (!is.null(cor)) return(cor$group)
  b <- innermost_block(object$re)
  if (is.null(b)) b <- object$re$blocks[[1L]]
  b$factor
}

# Z (sigma^2 T T') Z' for the given rows: random effects shared through a
# common level of each grouping factor.
random_effect_covariance <- function(object, rows) {
  Tb <- relative_factors(object$re, object$theta)
  V <- matrix(0, length(rows), length(rows))
  for (b in names(object$re$blocks)) {
    blk <- object$re$blocks[[b]]
    Z <- vapply(blk$refs, function(ref) {
      if (is.null(ref)) rep(1, length(rows)) else if (is.integer(ref) && length(ref) == 1L) object$X[rows, ref] else ref[rows]
    }, numeric(length(rows)))
    Z <- matrix(Z, nrow = length(rows))
    same <- outer(as.integer(blk$factor)[rows], as.integer(blk$factor)[rows], "==")
    V <- V + same * (Z %*% tcrossprod(object$sigma^2 * tcrossprod(Tb[[b]]), Z))
  }
  V
}

#' Covariance matrices of a linear mixed model, as nlme's getVarCov
#'
#' For a fit from [lmm()]: `type = "random.effects"` gives the covariance
#' matrix of the random effects of the innermost grouping factor;
#' `"conditional"` the covariance of the residuals of each individual given
#' the random effects (sigma^2 R_i, with the correlation and variance
#' structure); `"marginal"` their covariance including the random effects
#' (Z_i G Z_i' + sigma^2 R_i). Individuals are the groups of the correlation
#' structure, or else the levels of the innermost grouping factor.
#'
#' @param obj A fit from [lmm()].
#' @param individuals Individuals (levels, or their numbers) for the
#'   conditional and marginal covariances; the first by default.
#' @param type `"random.effects"`, `"conditional"` or `"marginal"`.
#' @param ... Unused.
#' @return As nlme's: a matrix (random effects) or a named list of
#'   matrices, of class `c(type, "VarCov")`, printed by nlme's method.
#' @examples
#' fit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont,
#'            correlation = nlme::corAR1(form = ~ 1 | Subject))
#' nlme::getVarCov(fit, type = "marginal")
#' @importFrom nlme getVarCov
#' @method getVarCov mlmfit_lmm
#' @export
getVarCov.mlmfit_lmm <- function(obj, individuals, type = c("random.effects", "conditional", "marginal"), ...) {
  type <- match.arg(type)
  if (type == "random.effects") {
    b <- innermost_block(obj$re)
    if (is.null(b)) b <- obj$re$blocks[[1L]]
    Tb <- relative_factors(obj$re, obj$theta)[[b$label]]
    S <- obj$sigma^2 * tcrossprod(Tb)
    dimnames(S) <- list(b$colnames, b$colnames)
    return(structure(S, group.levels = b$label, class = c("random.effects", "VarCov")))
  }
  ind <- individual_factor(obj)
  if (missing(individuals)) individuals <- levels(ind)[1L]
  if (is.numeric(individuals)) individuals <- levels(ind)[individuals]
  bad <- setdiff(as.character(individuals), levels(ind))
  if (length(bad) > 0L || anyNA(individuals)) {
    mlm_abort("{.arg individuals} must be levels of the residual groups; {.val {bad}} {?is/are} not.", "mlmfit_error_argument")
  }
  out <- lapply(as.character(individuals), function(i) {
    rows <- which(ind == i)
    cor <- obj$residual$correlation
    if (!is.null(cor)) rows <- rows[order(cor$position[rows])]
    V <- residual_covariance(obj, rows)
    if (type == "marginal") V <- V + random_effect_covariance(obj, rows)
    V
  })
  names(out) <- as.character(individuals)
  glabel <- if (!is.null(obj$residual$correlation)) obj$residual$correlation$group_label else {
    b <- innermost_block(obj$re)
    if (is.null(b)) obj$re$blocks[[1L]]$label else b$label
  }
  structure(out, group.levels = glabel, class = c(type, "VarCov"))
}

# Residuals multiplied by the inverse Cholesky factor of their estimated
# correlation matrix within each residual group (nlme's "normalized"):
# uncorrelated with unit variance when the structure is right.
normalized_residuals <- function(object, r) {
  cor <- object$residual$correlation
  if (is.null(cor)) return(r)
  par <- natural_residual_parameters(object$residual)[[1L]]
  out <- r
  for (rows in split(seq_along(r), cor$group, drop = TRUE)) {
    rows <- rows[order(cor$position[rows])]
    if (length(rows) == 1L) next
    L <- t(chol(group_correlation(cor, par, cor$position[rows])))
    out[rows] <- forwardsolve(L, r[rows])
  }
  out
}

# The nlme-style description of the structures, for print and summary.
format_residual_structure <- function(res, digits = 4) {
  if (is.null(res)) return(character())
  par <- natural_residual_parameters(res)
  fixed_note <- function(nms) {
    fx <- nms[!res$free[match(nms, names(res$psi))]]
    if (length(fx)) paste0(" (held fixed: ", paste(fx, collapse = ", "), ")") else ""
  }
  out <- character()
  if (!is.null(cor <- res$correlation)) {
    out <- c(out, paste0("Correlation structure: ", cor$label),
             paste0(" Formula: ", deparse1(cor$formula)),
             paste0(" Parameter estimate(s)", fixed_note(cor$names), ":"),
             utils::capture.output(print(signif(par[cor$names], digits + 3))))
  }
  if (!is.null(var <- res$variance)) {
    shown <- par[var$names]
    if (var$kind == "ident") shown <- c(stats::setNames(1, var$reference), shown)
    out <- c(out, "Variance function:", paste0(" Structure: ", var$label),
             paste0(" Formula: ", deparse1(var$formula)),
             paste0(" Parameter estimates", fixed_note(var$names), ":"),
             utils::capture.output(print(signif(shown, digits + 3))))
  }
  out
}

# For inference on fits with a residual structure (profiles, derivatives of
# the deviance, Satterthwaite or Kenward-Roger degrees of freedom): the
# engine at other values of theta and psi, without refitting. psi covers
# every residual parameter (fixed ones too) on the unconstrained scale of
# residual_parameters(object, unconstrained = TRUE, fixed = TRUE).

engine_residual <- function(object, method = NULL) {
  eng <- object$residual$engine
  if (!is.null(method)) eng$method <- method
  eng
}

# The deviance (REML criterion or -2 log-likelihood) at each column of
# `params` = rbind(theta, psi); Inf outside the parameter space.
residual_structure_deviance <- function(object, params, REML = object$REML, method = NULL) {
  params <- as.matrix(params)
  storage.mode(params) <- "double"
  lmm_residual_deviance_cpp(object$X, object$y, object$prior_weights, object$offset,
                            match("(Intercept)", colnames(object$X), nomatch = 0L) - 1L,
                            engine_blocks(object$re), engine_residual(object, method), params,
                            length(object$theta), REML)
}

# Everything the engine reports at (theta, psi): deviance, beta, vcov,
# sigma, b, conditional variances (with cond_var), log |R| and the whitened
# cross-products.
residual_structure_evaluate <- function(object, theta = object$theta, psi = object$residual$psi,
                                        REML = object$REML, cond_var = FALSE, method = NULL) {
  lmm_residual_evaluate_cpp(object$X, object$y, object$prior_weights, object$offset,
                            match("(Intercept)", colnames(object$X), nomatch = 0L) - 1L,
                            engine_blocks(object$re), engine_residual(object, method),
                            as.double(theta), as.double(psi), REML, cond_var)
}
