# The benchmark suite: each case makes its data (deterministically), names
# the model and the peers that can fit it. Shared by suite.R (timing, one
# process per BLAS), memory.R (peak memory, one fresh process per fit) and
# run.R (the driver).
#
# A case: label, data(quick) (quick = TRUE: a small version of the same
# design, for checking the harness), formula, family (NULL: linear), reps,
# peers (of "lme4", "lme4_cran", "glmmTMB", "nlme"), and optionally
# mlmfit_args (extra arguments of lmm()), nlme (a function fitting the case
# with nlme::lme) and kind = "bootstrap".

simulate_slopes <- function(n, groups, seed = 1) {
  set.seed(seed)
  g <- sample.int(groups, n, replace = TRUE)
  x <- rnorm(n)
  b0 <- rnorm(groups, sd = 1)
  b1 <- rnorm(groups, sd = 0.5)
  data.frame(y = 1 + 0.5 * x + b0[g] + b1[g] * x + rnorm(n), x = x, g = g)
}

simulate_binary <- function(n, groups, seed = 1) {
  set.seed(seed)
  g <- sample.int(groups, n, replace = TRUE)
  d <- data.frame(x1 = rnorm(n), x2 = rbinom(n, 1, 0.4), g = g)
  d$y <- rbinom(n, 1, stats::plogis(-0.5 + 0.6 * d$x1 - 0.4 * d$x2 + rnorm(groups, 0, 0.8)[g]))
  d
}

simulate_three_level <- function(n, schools, classes_per_school, seed = 1, slopes = FALSE) {
  set.seed(seed)
  classes <- schools * classes_per_school
  class <- sample.int(classes, n, replace = TRUE)
  school <- (class - 1L) %/% classes_per_school + 1L
  x <- rnorm(n)
  y <- 2 + 0.3 * x + rnorm(schools)[school] + rnorm(classes, sd = 0.5)[class] + rnorm(n)
  if (slopes) y <- y + rnorm(schools, sd = 0.3)[school] * x + rnorm(classes, sd = 0.2)[class] * x
  data.frame(y = y, x = x, school = school, class = class)
}

# An item-response design: persons answer a random subset of items (crossed
# factors, partly filled), a person covariate and an item covariate.
simulate_crossed <- function(n, persons, items, family = c("gaussian", "binomial", "poisson"), seed = 1) {
  family <- match.arg(family)
  set.seed(seed)
  person <- sample.int(persons, n, replace = TRUE)
  item <- sample.int(items, n, replace = TRUE)
  ability <- rnorm(persons)
  easiness <- rnorm(items, sd = 0.7)
  x <- rnorm(n)
  w <- rbinom(items, 1, 0.5)[item]
  eta <- 0.2 + 0.3 * x - 0.4 * w + ability[person] + easiness[item]
  y <- switch(family,
              gaussian = eta + rnorm(n),
              binomial = rbinom(n, 1, stats::plogis(eta)),
              poisson = rpois(n, exp(0.5 * eta)))
  data.frame(y = y, x = x, w = w, person = person, item = item)
}

# A panel with AR(1) residuals within subjects over whole-number times,
# about 8% of occasions missing.
simulate_panel <- function(n_id, n_time, phi = 0.6, seed = 1) {
  set.seed(seed)
  id <- rep(seq_len(n_id), each = n_time)
  time <- rep(seq_len(n_time) - 1, n_id)
  b0 <- rnorm(n_id, 0, 2)
  b1 <- rnorm(n_id, 0, 0.5)
  e <- numeric(length(id))
  innov <- rnorm(length(id), 0, sqrt(1 - phi^2))
  for (t in seq_len(n_time)) {
    k <- (seq_len(n_id) - 1) * n_time + t
    e[k] <- if (t == 1) rnorm(n_id) else phi * e[k - 1] + innov[k]
  }
  d <- data.frame(id = id, time = time, y = 10 + 1.5 * time + b0[id] + b1[id] * time + 1.2 * e)
  d[runif(nrow(d)) > 0.08 | d$time == 0, ]
}

package_data <- function(name, package) {
  e <- new.env()
  utils::data(list = name, package = package, envir = e)
  e[[name]]
}

# nlme::lme for y ~ x + (x | g)-like cases and the AR(1) panels.
lme_slopes <- function(data) nlme::lme(y ~ x, data, random = ~ x | g, control = nlme::lmeControl(returnObject = TRUE))
lme_panel <- function(data) {
  nlme::lme(y ~ time, data, random = ~ time | id, correlation = nlme::corAR1(form = ~ time | id),
            control = nlme::lmeControl(returnObject = TRUE))
}
ar1_panel <- function() list(correlation = nlme::corAR1(form = ~ time | id))

all_lmm_peers <- c("lme4", "lme4_cran", "glmmTMB", "nlme")
glmm_peers <- c("lme4", "lme4_cran", "glmmTMB")

bench_cases <- list(
  sleepstudy = list(
    data = function(quick) package_data("sleepstudy", "lme4"),
    formula = Reaction ~ Days + (Days | Subject), reps = 20L, batch = 20L, peers = all_lmm_peers,
    nlme = function(data) nlme::lme(Reaction ~ Days, data, random = ~ Days | Subject),
    label = "sleepstudy `(Days | Subject)`"),
  hsb = list(
    data = function(quick) package_data("Hsb82", "mlmRev"),
    formula = mAch ~ meanses * cses + sector * cses + (1 + cses | school), reps = 20L, batch = 5L, peers = all_lmm_peers,
    nlme = function(data) nlme::lme(mAch ~ meanses * cses + sector * cses, data, random = ~ cses | school),
    label = "Hsb82 `meanses * cses + sector * cses + (cses | school)`"),
  insteval = list(
    data = function(quick) {
      d <- package_data("InstEval", "lme4")
      if (quick) droplevels(d[d$s %in% levels(d$s)[1:500], ]) else d
    },
    formula = y ~ service + (1 | s) + (1 | d) + (1 | dept:service), reps = 3L,
    peers = c("lme4", "lme4_cran", "glmmTMB"),
    label = "InstEval `service + (1 | s) + (1 | d) + (1 | dept:service)`"),
  nested_1e5 = list(
    data = function(quick) simulate_slopes(if (quick) 1e4 else 1e5, if (quick) 1e3 else 1e4),
    formula = y ~ x + (x | g), reps = 5L, peers = all_lmm_peers, nlme = lme_slopes,
    label = "simulated 1e5 rows, 10,000 groups, `(x | g)`"),
  nested_1e6 = list(
    data = function(quick) simulate_slopes(if (quick) 2e4 else 1e6, if (quick) 200 else 1e4),
    formula = y ~ x + (x | g), reps = 3L, peers = all_lmm_peers, nlme = lme_slopes,
    label = "simulated 1e6 rows, 10,000 groups, `(x | g)`"),
  three_level_1e6 = list(
    data = function(quick) simulate_three_level(if (quick) 2e4 else 1e6, if (quick) 100L else 2000L, 10L),
    formula = y ~ x + (1 | school / class), reps = 3L, peers = all_lmm_peers,
    nlme = function(data) nlme::lme(y ~ x, data, random = ~ 1 | school / class),
    label = "simulated 1e6 pupils, 20,000 classes in 2,000 schools, `(1 | school/class)`"),
  three_level_slopes_1e6 = list(
    data = function(quick) simulate_three_level(if (quick) 2e4 else 1e6, if (quick) 100L else 2000L, 10L, slopes = TRUE),
    formula = y ~ x + (x | school) + (x | school:class), reps = 3L, peers = all_lmm_peers,
    nlme = function(data) nlme::lme(y ~ x, data, random = ~ x | school / class,
                                    control = nlme::lmeControl(returnObject = TRUE)),
    label = "simulated 1e6 pupils, 20,000 classes in 2,000 schools, `(x | school) + (x | school:class)`"),
  crossed_1e6 = list(
    data = function(quick) simulate_crossed(if (quick) 2e4 else 1e6, if (quick) 500 else 5000, 100),
    formula = y ~ x + w + (1 | person) + (1 | item), reps = 3L, peers = c("lme4", "lme4_cran", "glmmTMB"),
    label = "simulated crossed 1e6 rows, 5,000 persons x 100 items, `(1 | person) + (1 | item)`"),
  crossed_1e7 = list(
    data = function(quick) simulate_crossed(if (quick) 1e5 else 1e7, if (quick) 1000 else 5000, 100),
    formula = y ~ x + w + (1 | person) + (1 | item), reps = 2L, peers = character(),
    label = "simulated crossed 1e7 rows, 5,000 persons x 100 items (mlmfit only)"),
  ar1_1e4 = list(
    data = function(quick) simulate_panel(if (quick) 300 else 1250, 8),
    formula = y ~ time + (time | id), mlmfit_args = ar1_panel(), reps = 5L, peers = "nlme", nlme = lme_panel,
    label = "panel 1e4 rows, 1,250 subjects, `(time | id)`, AR(1) residuals"),
  ar1_1e5 = list(
    data = function(quick) simulate_panel(if (quick) 600 else 12500, 8),
    formula = y ~ time + (time | id), mlmfit_args = ar1_panel(), reps = 3L, peers = "nlme", nlme = lme_panel,
    label = "panel 1e5 rows, 12,500 subjects, `(time | id)`, AR(1) residuals"),
  ar1_1e6 = list(
    data = function(quick) simulate_panel(if (quick) 1200 else 125000, 8),
    formula = y ~ time + (time | id), mlmfit_args = ar1_panel(), reps = 1L, peers = "nlme", nlme = lme_panel,
    label = "panel 1e6 rows, 125,000 subjects, `(time | id)`, AR(1) residuals"),
  contraception = list(
    data = function(quick) package_data("Contraception", "mlmRev"),
    formula = use ~ age + I(age^2) + urban + livch + (1 | district), family = stats::binomial, reps = 20L,
    peers = glmm_peers, label = "Contraception, binomial `(1 | district)` (Laplace)"),
  binomial_1e6 = list(
    data = function(quick) simulate_binary(if (quick) 2e4 else 1e6, if (quick) 200 else 1e4),
    formula = y ~ x1 + x2 + (1 | g), family = stats::binomial, reps = 2L, peers = glmm_peers,
    label = "simulated binary, 1e6 rows, 10,000 groups, `(1 | g)` (Laplace)"),
  crossed_binomial_2e5 = list(
    data = function(quick) simulate_crossed(if (quick) 1e4 else 2e5, if (quick) 200 else 2000, if (quick) 50 else 500, "binomial"),
    formula = y ~ x + w + (1 | person) + (1 | item), family = stats::binomial, reps = 2L, peers = glmm_peers,
    label = "simulated item responses, binary, 2e5 rows, 2,000 persons x 500 items (Laplace)"),
  crossed_poisson_1e6 = list(
    data = function(quick) simulate_crossed(if (quick) 2e4 else 1e6, if (quick) 500 else 5000, if (quick) 50 else 500, "poisson"),
    formula = y ~ x + w + (1 | person) + (1 | item), family = stats::poisson, reps = 2L, peers = glmm_peers,
    label = "simulated counts, Poisson, 1e6 rows, 5,000 persons x 500 items (Laplace)"),
  nested_1e7 = list(
    data = function(quick) simulate_slopes(if (quick) 1e5 else 1e7, if (quick) 1e3 else 1e5),
    formula = y ~ x + (x | g), reps = 2L, peers = character(),
    label = "simulated 1e7 rows, 100,000 groups, `(x | g)` (mlmfit only)"),
  bootstrap = list(
    kind = "bootstrap", nsim = 1000L,
    data = function(quick) package_data("Hsb82", "mlmRev"),
    formula = mAch ~ cses + (1 + cses | school), reps = 1L, peers = c("lme4", "lme4_cran"),
    label = "parametric bootstrap, 1000 refits, Hsb82 `cses + (cses | school)` (lme4: `bootMer`)")
)

# Fit the case with one package. lme4 and lme4_cran differ only in which
# library the process loaded lme4 from.
fit_with <- function(pkg, case, data) {
  linear <- is.null(case$family)
  switch(pkg,
    mlmfit = if (linear) do.call(mlmfit::lmm, c(list(case$formula, data), case$mlmfit_args))
             else mlmfit::glmm(case$formula, data, case$family),
    lme4 = , lme4_cran = if (linear) lme4::lmer(case$formula, data) else lme4::glmer(case$formula, data, case$family),
    glmmTMB = glmmTMB::glmmTMB(case$formula, data, family = if (linear) stats::gaussian else case$family,
                               REML = linear),
    nlme = case$nlme(data),
    stop("unknown package ", pkg))
}

# The parametric bootstrap of a fit: nsim refits, the fixed effects and
# sigma of each kept.
bootstrap_with <- function(pkg, fit, nsim) {
  if (pkg == "mlmfit") return(mlmfit::parametric_bootstrap(fit, nsim = nsim, seed = 1, progress = FALSE))
  lme4::bootMer(fit, function(m) c(lme4::fixef(m), sigma = stats::sigma(m)), nsim = nsim, seed = 1)
}

# The criterion every package minimises: -2 log-likelihood, restricted for
# linear models (lme4's REML criterion), Laplace for generalized ones.
criterion <- function(fit) -2 * as.numeric(stats::logLik(fit))

scaling_sizes <- c(1e4, 1e5, 1e6, 1e7)
scaling_case <- function(n) {
  list(data = function(quick) simulate_slopes(n, max(100, n / 100)), formula = y ~ x + (x | g),
       reps = if (n <= 1e5) 5L else 2L, peers = if (n <= 1e6) "lme4" else character(),
       label = sprintf("%g rows, %g groups", n, max(100, n / 100)))
}
