# The bridge to lme4: an lme4 merMod object at mlmfit's estimates, built
# with lme4's own modular functions (mkReTrms -> mkLmerDevfun or
# mkGlmerDevfun, evaluated once at mlmfit's theta and beta -> mkMerMod).
# Nothing is optimised again, so every number the merMod reports is
# mlmfit's; what it costs is lme4's model matrices (Z, the sparse
# factor), which mlmfit itself never forms.

#' Convert a fit to an lme4 object
#'
#' `as_lmerMod()` turns a fit from [lmm()] into an `lmerMod` object, and
#' `as_glmerMod()` a fit from [glmm()] into a `glmerMod` object, at
#' mlmfit's estimates: lme4's own functions build the model (`mkReTrms()`,
#' `mkLmerDevfun()` or `mkGlmerDevfun()`) and evaluate its deviance once at
#' mlmfit's variance parameters `theta` (and, for a GLMM, its fixed
#' effects); nothing is re-optimised. Every tool that knows lme4's objects
#' then works, with mlmfit's numbers: `fixef()`, `vcov()`, `VarCorr()`,
#' `logLik()` and `ranef()` of the result agree with those of the fit.
#'
#' This is the way to the long tail of lme4's ecosystem (packages that read
#' the slots of a `merMod` object). The common tools (performance,
#' parameters, car, emmeans, ggeffects, sjPlot, effects, broom.mixed,
#' lattice, `lme4::getME()`) work on mlmfit's fits directly, without it.
#'
#' **Cost:** lme4's model matrices are built: the sparse random-effects
#' matrix `Z` (one column per random effect and level, one row per
#' observation) and the sparse Cholesky factor of the penalised system. For
#' large data that is the memory and time that mlmfit avoids; for data of
#' the sizes lme4 handles it is a fraction of one lme4 fit.
#'
#' Fits with a residual `correlation` or `variance` structure have no lme4
#' counterpart and are refused with an error of class
#' `mlmfit_error_residual_structure`. The random-effect terms must be
#' expressions of variables of the model frame (lme4 rebuilds them from it).
#'
#' @param fit A fit from [lmm()] (`as_lmerMod()`) or [glmm()] (`as_glmerMod()`).
#' @return An object of class `lmerMod` or `glmerMod` (package lme4). Its
#'   call is the call of an equivalent `lme4::lmer()` or `lme4::glmer()`
#'   fit (used by `update()`, which refits with lme4), and its optimiser is
#'   recorded as `"mlmfit"`.
#' @examples
#' if (requireNamespace("lme4", quietly = TRUE)) {
#'   fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#'   m <- as_lmerMod(fit)
#'   class(m)
#'   all.equal(lme4::fixef(m), fixef(fit))
#'   lme4::getME(m, "Lambda")[1:4, 1:4]
#' }
#' @export
as_lmerMod <- function(fit) {
  if (!inherits(fit, "mlmfit_lmm")) {
    mlm_abort(c("{.fn as_lmerMod} converts fits from {.fn lmm}.",
                x = "{.arg fit} is of class {.cls {class(fit)}}.",
                i = if (inherits(fit, "mlmfit_glmm")) "Use {.fn as_glmerMod} for a fit from {.fn glmm}."),
              "mlmfit_error_argument")
  }
  refuse_residual_structure(fit, "lme4 objects")
  if (inherits(fit, "mlmfit_db")) refuse_without_rows(fit, "An lme4 object of the fit")
  pieces <- lme4_pieces(fit)
  devfun <- in_lme4(lme4::mkLmerDevfun, list(pieces$fr, pieces$X, pieces$reTrms, REML = fit_reml(fit),
                                              start = pieces$theta, control = lme4::lmerControl()))
  devfun(pieces$theta)
  opt <- merMod_optimum(pieces$theta, deviance(fit))
  lme4::mkMerMod(environment(devfun), opt, pieces$reTrms, pieces$fr, mc = lme4_call(fit, "lmer"))
}

#' @rdname as_lmerMod
#' @export
as_glmerMod <- function(fit) {
  if (!inherits(fit, "mlmfit_glmm")) {
    mlm_abort(c("{.fn as_glmerMod} converts fits from {.fn glmm}.",
                x = "{.arg fit} is of class {.cls {class(fit)}}.",
                i = if (inherits(fit, "mlmfit_lmm")) "Use {.fn as_lmerMod} for a fit from {.fn lmm}."),
              "mlmfit_error_argument")
  }
  pieces <- lme4_pieces(fit)
  family <- lme4_family(fit)
  # As glmer: a first devfun over theta alone (nAGQ = 0), then the devfun
  # over (theta, beta) of the fit's nAGQ, evaluated at mlmfit's estimates.
  devfun <- in_lme4(lme4::mkGlmerDevfun, list(pieces$fr, pieces$X, pieces$reTrms, family = family, nAGQ = 0L,
                                               control = lme4::glmerControl()))
  rho <- environment(devfun)
  devfun(pieces$theta)
  rho$control <- list()
  # The deviance recorded is mlmfit's: lme4's evaluation at the same
  # estimates takes log|L| from the weights of PIRLS's last-but-one step and
  # can differ in the fourth decimal.
  deviance <- -2 * as.numeric(stats::logLik(fit))
  nagq <- fit_nagq(fit)
  if (nagq == 0L) {
    opt <- merMod_optimum(pieces$theta, deviance)
  } else {
    devfun <- lme4::updateGlmerDevfun(devfun, pieces$reTrms, nAGQ = nagq)
    par <- c(pieces$theta, unname(fixef(fit)))
    devfun(par)
    opt <- merMod_optimum(par, deviance)
    rho$resp$setOffset(rho$baseOffset)
    optinfo <- fit_optinfo(fit)
    hess <- optinfo$hessian
    if (length(hess) > 0L && all(is.finite(hess)) && identical(fit_vcov_method(fit), "hessian")) {
      ord <- c(pieces$theta_order, length(pieces$theta) + seq_along(fixef(fit)))
      attr(opt, "derivs") <- list(gradient = unname(optinfo$gradient)[ord], Hessian = unname(hess)[ord, ord])
    }
  }
  lme4::mkMerMod(rho, opt, pieces$reTrms, pieces$fr, mc = lme4_call(fit, "glmer"))
}

# lme4's deviance functions keep the caller's environment as the parent of
# theirs and look up lme4's internal functions there: call them from lme4's
# namespace, as lmer() and glmer() do.
in_lme4 <- function(fun, args) do.call(fun, args, envir = asNamespace("lme4"))

refuse_residual_structure <- function(fit, what) {
  if (inherits(fit, "mlmfit_lmm_structured")) {
    mlm_abort(c("This fit has a residual {.arg correlation} or {.arg variance} structure, which {what} cannot represent.",
                i = "Use mlmfit's own methods on it, or fit the model without the structure."),
              "mlmfit_error_residual_structure")
  }
}

require_lme4 <- function(what) {
  if (!requireNamespace("lme4", quietly = TRUE)) {
    mlm_abort(c("{what} needs the {.pkg lme4} package, which is not installed.",
                i = "Install it with {.code install.packages(\"lme4\")}."),
              "mlmfit_error_missing_package")
  }
}

# The optimum in the form lme4's mkMerMod() reads (as optwrap() returns it).
merMod_optimum <- function(par, fval) {
  structure(list(par = par, fval = fval, feval = 0L, conv = 0L,
                 message = "estimates of mlmfit (evaluated by lme4, not re-optimised)"),
            optimizer = "mlmfit", control = list(), warnings = list())
}

# The family as lme4 knows it (a negative binomial as MASS's family with
# the estimated size, as glmer.nb() returns it).
lme4_family <- function(fit) {
  fam <- spec_family(fit)
  if (identical(fam$dist, "negative_binomial")) {
    return(MASS::negative.binomial(theta = fam$nb_size, link = fam$link))
  }
  fam$family
}

# lme4's frame, fixed-effect matrix and random-effect terms for the model
# of `fit`, and mlmfit's theta in lme4's order of terms.
lme4_pieces <- function(fit) {
  require_lme4(if (inherits(fit, "mlmfit_glmm")) "{.fn as_glmerMod}" else "{.fn as_lmerMod}")
  fr <- lme4_frame(fit)
  bars <- lme4::findbars(lme4::expandDoubleVerts(spec_formula(fit)))
  reTrms <- tryCatch(lme4::mkReTrms(bars, fr),
                     error = function(e) {
                       mlm_abort(c("lme4 could not rebuild the random-effect terms from the model frame.",
                                   x = conditionMessage(e),
                                   i = "Write the terms with variables of the data (create transformed variables first)."),
                                 "mlmfit_error_bridge")
                     })
  order <- merMod_term_match(fit, reTrms$cnms)
  terms <- re_terms(fit)
  theta_order <- unlist(lapply(order, function(t) terms[[t]]$theta))
  list(fr = fr, X = spec_X(fit), reTrms = reTrms, theta = unname(fit_theta(fit)[theta_order]),
       theta_order = theta_order)
}

# For each of lme4's terms (grouping factor and columns), the matching term
# of the fit: the two packages order terms alike, but match them by content.
merMod_term_match <- function(fit, cnms) {
  terms <- re_terms(fit)
  used <- logical(length(terms))
  vapply(seq_along(cnms), function(i) {
    hit <- which(!used & vapply(terms, function(tm) {
      identical(tm$label, names(cnms)[i]) && identical(tm$colnames, cnms[[i]])
    }, logical(1)))
    if (length(hit) == 0L) {
      mlm_abort(c("lme4's random-effect term for {.var {names(cnms)[i]}} ({.val {cnms[[i]]}}) has no counterpart in the fit.",
                  i = "This is a bug in the bridge to lme4: please report it with the formula."),
                "mlmfit_error_bridge")
    }
    used[hit[1L]] <<- TRUE
    hit[1L]
  }, integer(1))
}

# The model frame with the attributes lme4's lFormula() gives it: the whole
# formula, and the variables of the fixed and random parts (with their
# "predvars", so that predict(newdata) on the merMod works as for lme4).
lme4_frame <- function(fit) {
  fr <- spec_frame(fit)
  formula <- spec_formula(fit)
  fixed_formula <- spec_fixed_formula(fit)
  tt <- attr(fr, "terms")
  attr(fr, "formula") <- formula
  vars <- as.list(attr(tt, "variables"))[-1L]
  predvars <- as.list(attr(tt, "predvars") %||% attr(tt, "variables"))[-1L]
  keys <- vapply(vars, deparse1, "")
  subset_vars <- function(formula) {
    want <- vapply(as.list(attr(stats::terms(formula), "variables"))[-1L], deparse1, "")
    as.call(c(quote(list), predvars[match(want, keys)]))
  }
  attr(tt, "predvars.fixed") <- subset_vars(fixed_formula)
  attr(tt, "varnames.fixed") <- vapply(as.list(attr(stats::terms(fixed_formula), "variables"))[-1L], deparse1, "")
  random <- stats::reformulate(c("1", vapply(lme4::findbars(formula), function(b) {
    paste(deparse1(b[[2L]]), "+", deparse1(b[[3L]]))
  }, "")), response = formula[[2L]])
  attr(tt, "predvars.random") <- subset_vars(random)
  attr(fr, "terms") <- tt
  fr
}

# The call of the equivalent lme4 fit.
lme4_call <- function(fit, fun) {
  mc <- fit_call(fit)
  keep <- intersect(names(mc), c("", "formula", "data", "REML", "family", "nAGQ", "weights", "offset", "subset",
                                 "na.action"))
  mc <- mc[c(1L, match(keep[keep != ""], names(mc)))]
  mc[[1L]] <- call("::", as.name("lme4"), as.name(fun))
  mc$formula <- spec_formula(fit)
  if (fun == "glmer") mc$family <- lme4_family(fit)
  mc
}
