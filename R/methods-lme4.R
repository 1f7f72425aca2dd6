# lme4's extractor generics on mlmfit's fits: getME(), isREML(), isLMM(),
# isGLMM() (registered on lme4's generics when lme4 is loaded), REMLcrit(),
# and the model-selection generic extractAIC() of stats. The matrices are
# laid out as lme4 lays them out (terms in lme4's order, random effects
# level by level within a term), built from mlmfit's blocks.

#' lme4's extractors on mlmfit fits
#'
#' With lme4 installed, `lme4::getME()`, `lme4::isREML()`, `lme4::isLMM()`,
#' `lme4::isGLMM()` and `lme4::isSingular()` work on fits from [lmm()] and
#' [glmm()], and return what they return for the corresponding `lmerMod`
#' or `glmerMod` fit. `getME()` builds these components itself: `"X"`,
#' `"Z"`, `"Zt"`, `"y"`, `"mu"`, `"u"`, `"b"`, `"Gp"`, `"Lambda"`,
#' `"Lambdat"`, `"Lind"`, `"Tlist"`, `"ST"`, `"sigma"`, `"flist"`,
#' `"fixef"`, `"beta"`, `"theta"`, `"REML"`, `"is_REML"`, `"n_rtrms"`,
#' `"n_rfacs"`, `"N"`, `"n"`, `"p"`, `"q"`, `"p_i"`, `"l_i"`, `"q_i"`,
#' `"k"`, `"m_i"`, `"m"`, `"cnms"`, `"devcomp"`, `"offset"`, `"lower"` and
#' `"glmer.nb.theta"`. The others (`"L"`, `"A"`, `"RX"`, `"RZX"`, `"Tp"`,
#' `"Ztlist"`, `"mmList"`, `"devfun"`) come from lme4's own object, made by
#' [as_lmerMod()] or [as_glmerMod()] (which builds lme4's matrices).
#' A fit with a residual structure has no lme4 counterpart: `getME()`
#' gives its estimates and random-effect design (`"theta"`, `"beta"`,
#' `"sigma"`, `"Z"`, `"Lambda"`, ...), which `lme4::isSingular()` and
#' `lme4::bootMer()` read, and refuses lme4's factorisation and deviance
#' components (`"L"`, `"RX"`, `"devcomp"`, ...).
#'
#' `REMLcrit()` is the REML criterion of a REML fit (lme4's function of
#' the same name is not generic, so mlmfit exports its own, which passes
#' lme4 fits on to lme4). `extractAIC()` gives the equivalent degrees of
#' freedom and the AIC of the model refitted by maximum likelihood (as
#' lme4 does), which makes [stats::drop1()], [stats::add1()] and
#' [stats::step()] work.
#'
#' @param object,x,fit A fit from [lmm()] or [glmm()].
#' @param name Names of the components (see Details).
#' @param scale Unused (for compatibility with the generic).
#' @param k Penalty per parameter (2 for AIC, `log(nobs)` for BIC).
#' @param ... Unused.
#' @return `getME()`: the component, or a named list of several.
#'   `isREML()`, `isLMM()`, `isGLMM()`: `TRUE` or `FALSE`. `REMLcrit()`: a
#'   number. `extractAIC()`: the degrees of freedom and the criterion.
#' @name lme4-extractors
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' lme4::getME(fit, "theta")
#' dim(lme4::getME(fit, "Z"))
#' lme4::isSingular(fit)
#' lme4::isREML(fit)
#' REMLcrit(fit)
#' extractAIC(fit)
NULL

#' @rdname lme4-extractors
getME.mlmfit <- function(object, name, ...) {
  if (inherits(object, "mlmfit_db")) refuse_without_rows(object, "getME()")
  warn_unused_dots(..., method = "getME")
  if (missing(name) || !is.character(name) || length(name) == 0L) {
    mlm_abort("{.arg name} must name one or more components, e.g. {.val theta}.", "mlmfit_error_argument")
  }
  structured <- inherits(object, "mlmfit_lmm_structured")
  if (length(name) > 1L) return(stats::setNames(lapply(name, function(nm) getME.mlmfit(object, nm)), name))
  if (name == "ALL") {
    return(getME.mlmfit(object, setdiff(if (structured) getme_structured else getme_names, "ALL")))
  }
  if (!name %in% getme_names) {
    mlm_abort(c("{.val {name}} is not a component lme4's {.fn getME} knows.",
                i = "Use one of {.val {getme_names}}."), "mlmfit_error_argument")
  }
  if (structured && !name %in% getme_structured) refuse_residual_structure(object, paste0("lme4's component \"", name, "\""))
  if (name %in% getme_via_lme4) {
    merMod <- if (inherits(object, "mlmfit_glmm")) as_glmerMod(object) else as_lmerMod(object)
    return(lme4::getME(merMod, name))
  }
  lay <- merMod_layout(object)
  switch(name,
    X = spec_X(object),
    Z = Matrix::t(merMod_Zt(object, lay)),
    Zt = merMod_Zt(object, lay),
    y = stats::setNames(spec_y(object), rownames(spec_frame(object))),
    mu = fit_fitted(object),
    u = merMod_effects(object, lay, spherical = TRUE),
    b = Matrix::Matrix(merMod_effects(object, lay, spherical = FALSE), ncol = 1L, sparse = FALSE),
    Gp = lay$Gp,
    Lambda = Matrix::t(merMod_Lambdat(object, lay)),
    Lambdat = merMod_Lambdat(object, lay),
    Lind = merMod_Lind(object, lay),
    Tlist = merMod_Tlist(object, lay),
    ST = lapply(merMod_Tlist(object, lay), function(Tm) {
      d <- diag(Tm)
      S <- Tm %*% diag(1 / ifelse(d == 0, 1, d), nrow(Tm))
      diag(S) <- d
      S
    }),
    sigma = stats::sigma(object),
    flist = lay$flist,
    fixef = , beta = fixef(object),
    theta = fit_theta(object)[lay$theta_order],
    REML = if (fit_reml(object)) length(fixef(object)) else 0L,
    is_REML = fit_reml(object),
    n_rtrms = length(lay$terms),
    n_rfacs = length(lay$flist),
    N = , n = nobs(object),
    p = length(fixef(object)),
    q = lay$Gp[length(lay$Gp)],
    p_i = stats::setNames(lay$q, lay$bar_names),
    l_i = vapply(lay$flist, nlevels, 1L),
    q_i = stats::setNames(lay$q * lay$n_levels, lay$bar_names),
    k = length(lay$terms),
    m_i = stats::setNames(lay$q * (lay$q + 1) / 2, lay$bar_names),
    m = length(fit_theta(object)),
    cnms = lay$cnms,
    devcomp = merMod_devcomp(object, lay),
    offset = spec_offset(object) %||% rep(0, nobs(object)),
    lower = stats::setNames(theta_lower(object)[lay$theta_order], names(fit_theta(object))[lay$theta_order]),
    glmer.nb.theta = if (identical(spec_family(object)$dist, "negative_binomial")) spec_family(object)$nb_size else NULL
  )
}

getme_names <- c("X", "Z", "Zt", "Ztlist", "mmList", "y", "mu", "u", "b", "Gp", "Tp", "L", "Lambda", "Lambdat",
                 "Lind", "Tlist", "A", "RX", "RZX", "sigma", "flist", "fixef", "beta", "theta", "ST", "REML",
                 "is_REML", "n_rtrms", "n_rfacs", "N", "n", "p", "q", "p_i", "l_i", "q_i", "k", "m_i", "m", "cnms",
                 "devcomp", "offset", "lower", "devfun", "glmer.nb.theta", "ALL")
getme_via_lme4 <- c("Ztlist", "mmList", "Tp", "L", "A", "RX", "RZX", "devfun")
# What a fit with a residual structure has as lme4 defines it: the
# estimates and the random-effect design; not lme4's factorisation or
# deviance components, which assume independent residuals.
getme_structured <- setdiff(getme_names, c(getme_via_lme4, "devcomp", "glmer.nb.theta"))

# The random-effect terms in lme4's order, with what lme4 derives from them.
merMod_layout <- function(fit) {
  ord <- lme4_term_order(fit)
  terms <- re_terms(fit)[ord]
  q <- vapply(terms, function(tm) as.integer(tm$q), integer(1))
  n_levels <- vapply(terms, function(tm) as.integer(tm$n_levels), integer(1))
  groups <- vapply(terms, function(tm) tm$label, "")
  unique_groups <- unique(groups)
  flist <- lapply(unique_groups, function(g) block_factor(fit, g))
  names(flist) <- unique_groups
  attr(flist, "assign") <- match(groups, unique_groups)
  list(order = ord, terms = terms, q = q, n_levels = n_levels, groups = groups, Gp = c(0L, cumsum(q * n_levels)),
       theta_order = unlist(lapply(terms, function(tm) tm$theta)),
       cnms = stats::setNames(lapply(terms, function(tm) tm$colnames), groups),
       bar_names = vapply(terms, function(tm) paste(deparse1(tm$lhs), "|", tm$label), ""),
       flist = flist)
}

# Z' (q x n, sparse): row Gp[t] + (level - 1) * q_t + column for term t.
merMod_Zt <- function(fit, lay) {
  n <- nobs(fit)
  pieces <- lapply(seq_along(lay$terms), function(t) {
    tm <- lay$terms[[t]]
    Z <- term_z(fit, tm)
    g <- as.integer(block_factor(fit, tm$block))
    rows <- lay$Gp[t] + (rep(g, lay$q[t]) - 1L) * lay$q[t] + rep(seq_len(lay$q[t]), each = n)
    list(i = rows, j = rep(seq_len(n), lay$q[t]), x = as.vector(Z))
  })
  Matrix::sparseMatrix(i = unlist(lapply(pieces, `[[`, "i")), j = unlist(lapply(pieces, `[[`, "j")),
                       x = unlist(lapply(pieces, `[[`, "x")), dims = c(lay$Gp[length(lay$Gp)], n),
                       dimnames = list(merMod_effect_names(fit, lay), rownames(spec_frame(fit))))
}

merMod_effect_names <- function(fit, lay) {
  unlist(lapply(seq_along(lay$terms), function(t) {
    rep(levels(lay$flist[[lay$groups[t]]]), each = lay$q[t])
  }))
}

# Lambda' with the positions of theta in its non-zero pattern (lme4's Lind).
merMod_Lambdat_pattern <- function(fit, lay) {
  pieces <- lapply(seq_along(lay$terms), function(t) {
    tm <- lay$terms[[t]]
    q <- lay$q[t]
    # theta index (position in lme4's theta) of entry (r, c) of T, r >= c
    local <- matrix(0L, q, q)
    local[lower.tri(local, diag = TRUE)] <- match(tm$theta, lay$theta_order)
    nz <- which(lower.tri(local, diag = TRUE), arr.ind = TRUE)
    levels <- seq_len(lay$n_levels[t]) - 1L
    offset <- lay$Gp[t] + rep(levels * q, each = nrow(nz))
    # Lambda' holds T' in each diagonal block: row c, column r
    list(i = offset + nz[, "col"], j = offset + nz[, "row"], ind = rep(local[nz], length(levels)))
  })
  q <- lay$Gp[length(lay$Gp)]
  i <- unlist(lapply(pieces, `[[`, "i"))
  j <- unlist(lapply(pieces, `[[`, "j"))
  ind <- unlist(lapply(pieces, `[[`, "ind"))
  # column-major order of the non-zeros, as a dgCMatrix stores them
  o <- order(j, i)
  list(i = i[o], j = j[o], ind = ind[o], q = q)
}

merMod_Lind <- function(fit, lay) merMod_Lambdat_pattern(fit, lay)$ind

merMod_Lambdat <- function(fit, lay) {
  pat <- merMod_Lambdat_pattern(fit, lay)
  theta <- unname(fit_theta(fit)[lay$theta_order])
  Matrix::sparseMatrix(i = pat$i, j = pat$j, x = theta[pat$ind], dims = c(pat$q, pat$q))
}

merMod_Tlist <- function(fit, lay) {
  Tb <- relative_factors(fit, fit_theta(fit))
  out <- lapply(lay$terms, function(tm) unname(Tb[[tm$block]][tm$block_cols, tm$block_cols, drop = FALSE]))
  stats::setNames(out, lay$groups)
}

# b (or u, with b = T u level by level) as one vector in lme4's order.
merMod_effects <- function(fit, lay, spherical) {
  Tl <- merMod_Tlist(fit, lay)
  unlist(lapply(seq_along(lay$terms), function(t) {
    tm <- lay$terms[[t]]
    u <- fit_u(fit)
    if (spherical && !is.null(u)) return(as.vector(u[[tm$block]][tm$block_cols, , drop = FALSE]))
    b <- fit_b(fit)[[tm$block]][tm$block_cols, , drop = FALSE]
    if (!spherical) return(as.vector(b))
    # The penalised least-squares u: the least-norm solution of T u = b
    # (components outside the range of T are zero, as lme4's are).
    as.vector(pseudo_inverse(Tl[[t]]) %*% b)
  }))
}

merMod_devcomp <- function(fit, lay) {
  glmm <- inherits(fit, "mlmfit_glmm")
  dc <- fit_devcomp(fit)
  n <- nobs(fit)
  p <- length(fixef(fit))
  ussq <- sum(merMod_effects(fit, lay, spherical = TRUE)^2)
  pwrss <- dc$pwrss
  reml <- fit_reml(fit)
  cmp <- c(ldL2 = dc$ld_L2, ldRX2 = dc$ld_RX2,
           wrss = pwrss - ussq, ussq = ussq, pwrss = pwrss, drsum = if (glmm) dc$sum_dev_resid else NA,
           REML = if (reml) dc$criterion else NA, dev = if (reml) NA else -2 * as.numeric(stats::logLik(fit)),
           sigmaML = if (!has_scale(fit)) NA else sqrt(pwrss / n),
           sigmaREML = if (glmm) NA else sqrt(pwrss / (n - p)))
  if (glmm) cmp <- c(cmp, tolPwrss = 1e-7)
  dims <- c(N = n, n = n, p = p, nmp = n - p, q = lay$Gp[length(lay$Gp)], nth = length(fit_theta(fit)),
            nAGQ = if (glmm) fit_nagq(fit) else NULL, compDev = if (glmm) 1L else NULL,
            useSc = as.integer(has_scale(fit)), reTrms = length(lay$terms), spFe = 0L,
            REML = if (reml) p else 0L, GLMM = as.integer(glmm), NLMM = 0L)
  storage.mode(dims) <- "integer"
  list(cmp = cmp, dims = dims)
}

#' @rdname lme4-extractors
isREML.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "isREML")
  fit_reml(x)
}

#' @rdname lme4-extractors
isLMM.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "isLMM")
  inherits(x, "mlmfit_lmm")
}

#' @rdname lme4-extractors
isGLMM.mlmfit <- function(x, ...) {
  warn_unused_dots(..., method = "isGLMM")
  inherits(x, "mlmfit_glmm")
}

#' @rdname lme4-extractors
#' @export
REMLcrit <- function(object) UseMethod("REMLcrit")

#' @rdname lme4-extractors
#' @export
REMLcrit.mlmfit <- function(object) {
  if (!inherits(object, "mlmfit_lmm")) {
    mlm_abort("A generalized linear mixed model has no REML criterion.", "mlmfit_error_argument")
  }
  deviance(object, REML = TRUE)
}

#' @rdname lme4-extractors
#' @export
REMLcrit.default <- function(object) {
  require_lme4("{.fn REMLcrit}")
  lme4::REMLcrit(object)
}

#' @rdname lme4-extractors
#' @importFrom stats extractAIC
#' @export
extractAIC.mlmfit <- function(fit, scale = 0, k = 2, ...) {
  warn_unused_dots(..., method = "extractAIC")
  ll <- stats::logLik(refit_ml(fit))
  edf <- attr(ll, "df")
  c(edf, -2 * as.numeric(ll) + k * edf)
}
