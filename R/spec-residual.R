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
# factor of the random effects (one nested within all others). `groups`: the
# grouping factor of each block, named by its label. Returns the label.
innermost_block <- function(groups) {
  for (b in names(groups)) {
    if (all(vapply(groups, function(o) levels_lie_within(groups[[b]], o), logical(1)))) return(b)
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

correlation_part <- function(obj, mf, groups, env) {
  cls <- class(obj)[1L]
  kind <- supported_correlations[[cls]]
  what <- paste0(cls, "()")
  form <- stats::formula(obj)
  gform <- nlme::getGroupsFormula(form)
  if (is.null(gform)) {
    b <- innermost_block(groups)
    if (is.null(b)) {
      mlm_abort(c("The random effects have crossed grouping factors, so the groups of {.fn {cls}} must be given.",
                  i = "Write them into the structure, e.g. {.code {cls}(form = ~ 1 | subject)}."),
                "mlmfit_error_residual_grouping")
    }
    grp <- groups[[b]]
    glabel <- b
    form <- stats::as.formula(call("~", call("|", nlme::getCovariateFormula(form)[[2L]], str2lang(glabel))),
                              env = environment(form))
  } else {
    g <- structure_grouping(gform, mf, env)
    grp <- g$factor
    glabel <- g$label
  }
  for (b in names(groups)) {
    if (!levels_lie_within(grp, groups[[b]])) {
      mlm_abort(c("The groups of {.fn {cls}} ({.code {glabel}}) must each lie within one level of every grouping factor of the random effects; {.var {b}} varies within them.",
                  i = "Group the correlation by the innermost grouping factor, e.g. {.code {cls}(form = ~ 1 | {b})}."),
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

# The residual structure of a model (the spec's residual): the parts, which
# of their parameters are estimated, and the engine's description.
build_residual_structure <- function(correlation, variance, mf, groups, env, method = "auto") {
  n <- nrow(mf)
  cor <- if (!is.null(correlation)) correlation_part(correlation, mf, groups, env)
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
    method = method
  )
  cor$order <- NULL
  list(correlation = cor, variance = var, free = engine$psi_free, engine = engine)
}

# The names of the structure's parameters (psi), in the engine's order.
residual_parameter_names <- function(res) c(res$correlation$names, res$variance$names)

# Unconstrained psi (nlme's scale) to the natural scale, named.
natural_residual_parameters <- function(res, psi) {
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

# The standard-deviation multiplier of a variance function of a covariate
# at its natural parameters.
variance_multiplier <- function(kind, par, v) {
  switch(kind,
    power = abs(v)^par[[1L]],
    exp = exp(par[[1L]] * v),
    const_power = par[[1L]] + abs(v)^par[[2L]])
}

# A covariate of fitted values (varPower() and the like without form): the
# engine's fit iterated it; the spec keeps the last fit's, which every later
# evaluation (profiles, Satterthwaite's derivatives, residuals) holds, while
# refits iterate it again.
spec_with_fitted_covariate <- function(spec, engine) {
  if (is.null(engine$covariate)) return(spec)
  spec$residual$variance$covariate <- as.vector(engine$covariate)
  spec$residual$engine$covariate <- as.vector(engine$covariate)
  spec
}

# The model with a covariate of fitted values held at the fit's (profiles:
# the likelihood at the fit's covariate).
spec_hold_covariate <- function(spec) {
  if (!is.null(spec$residual)) spec$residual$engine$covariate_fitted <- FALSE
  spec
}

# varConstPower()'s constant next to |v|^power decides the model: far below
# it the fit is varPower()'s (a boundary, like a zero variance); far above
# it, with sigma shrinking, the likelihood rises towards a limit that no
# finite parameters reach (the constant and the power drift together). On
# nlme's data sets the fits with a maximum have ratios up to about 30, the
# drifting ones above 1e4. Either is said, not returned silently.
report_unbounded_variance_function <- function(fit) {
  var <- spec_residual(fit)$variance
  if (is.null(var) || var$kind != "const_power") return(invisible())
  par <- fit_residual_natural(fit)[var$names]
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
