# Data sets the tests share, and the lme4 fits whose profile limits are
# stored as fixtures (data-raw/lme4-profiles.R sources this file).

# A data set of an installed package, without attaching it or touching the
# global environment.
package_dataset <- function(name, package) {
  e <- new.env()
  utils::data(list = name, package = package, envir = e)
  e[[name]]
}

# The teaching datasets of ../shared/data are shipped as package data.
nels88_data <- function() package_dataset("nels88", "mlmfit")
lme4_data <- function(name) package_dataset(name, "lme4")
hsb82_data <- function() package_dataset("Hsb82", "mlmRev")
contraception_data <- function() package_dataset("Contraception", "mlmRev")

# Simulated Poisson counts with exposures, 30 groups of 8.
profile_poisson_data <- function() {
  set.seed(2)
  d <- data.frame(g = factor(rep(1:30, each = 8)), x = stats::rnorm(240), exposure = stats::runif(240, 1, 5))
  d$y <- stats::rpois(240, d$exposure * exp(0.2 + 0.4 * d$x + stats::rnorm(30, sd = 0.5)[d$g]))
  d
}

# The models whose lme4 profile limits the tests compare with (stored in
# fixtures/lme4-profiles.csv): for each, the lme4 fit and the limits asked
# of it; `quick` ones are recomputed by the full tier of the tests.
lme4_profile_models <- function() {
  profile <- function(fit) stats::confint(fit)
  list(
    sleepstudy = list(quick = TRUE, limits = profile,
                      fit = function() lme4::lmer(Reaction ~ Days + (Days | Subject), lme4_data("sleepstudy"))),
    nels88_ses = list(quick = TRUE, limits = profile,
                      fit = function() lme4::lmer(math ~ homework + ses + (1 | schid), nels88_data())),
    dyestuff2 = list(quick = TRUE, limits = profile,
                     fit = function() lme4::lmer(Yield ~ 1 + (1 | Batch), lme4_data("Dyestuff2"))),
    dyestuff_ml = list(quick = TRUE, limits = profile,
                       fit = function() lme4::lmer(Yield ~ 1 + (1 | Batch), lme4_data("Dyestuff"), REML = FALSE)),
    cbpp = list(quick = TRUE, limits = profile,
                fit = function() lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                                             binomial)),
    cbpp_period2_90 = list(quick = TRUE, limits = function(fit) stats::confint(fit, parm = "period2", level = 0.9),
                           fit = function() lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                                        lme4::cbpp, binomial)),
    poisson_offset = list(quick = TRUE, limits = profile,
                          fit = function() lme4::glmer(y ~ x + offset(log(exposure)) + (1 | g), profile_poisson_data(),
                                                       poisson)),
    laplace = list(quick = FALSE, limits = profile,
                   fit = function() lme4::glmer(use ~ age + I(age^2) + urban + livch + (1 | district),
                                                contraception_data(), binomial)),
    agq9 = list(quick = FALSE, limits = profile,
                fit = function() lme4::glmer(use ~ age + urban + (1 | district), contraception_data(), binomial,
                                             nAGQ = 9L)),
    slope = list(quick = FALSE, limits = profile,
                 fit = function() lme4::glmer(use ~ age + urban + (urban | district), contraception_data(), binomial))
  )
}

# lme4's profile limits of one of those models, from the fixture.
lme4_profile_limits <- function(model) {
  ref <- utils::read.csv(testthat::test_path("fixtures", "lme4-profiles.csv"), stringsAsFactors = FALSE)
  ref <- ref[ref$model == model, ]
  level <- if (model == "cbpp_period2_90") c("5 %", "95 %") else c("2.5 %", "97.5 %")
  matrix(c(ref$lower, ref$upper), ncol = 2L, dimnames = list(ref$parameter, level))
}

# The models whose lme4 profile traces (lme4's profile()) the tests of
# profile() compare with, stored in fixtures/lme4-profile-traces.csv
# (data-raw/lme4-profile-traces.R); the full tier recomputes them.
lme4_trace_models <- function() {
  list(
    sleepstudy = function() lme4::lmer(Reaction ~ Days + (Days | Subject), lme4_data("sleepstudy")),
    penicillin = function() lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), lme4_data("Penicillin")),
    cbpp = function() lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4_data("cbpp"), binomial)
  )
}

# A profile ("thpr") as a long table: model, par (held), point (row of
# its trace), column, value.
thpr_to_long <- function(pr, model) {
  pr <- as.data.frame(pr)[setdiff(names(pr), ".focal")]
  columns <- setdiff(names(pr), ".par")
  point <- stats::ave(seq_len(nrow(pr)), pr$.par, FUN = seq_along)
  data.frame(model = model, par = rep(as.character(pr$.par), length(columns)), point = rep(point, length(columns)),
             column = rep(columns, each = nrow(pr)), value = unlist(pr[columns], use.names = FALSE),
             stringsAsFactors = FALSE)
}

# lme4's profile of a stored model rebuilt from the fixture: the traces,
# and the splines lme4 makes of them (interpolating splines of zeta
# against each parameter held, and back).
lme4_profile_trace <- function(model) {
  long <- utils::read.csv(testthat::test_path("fixtures", "lme4-profile-traces.csv"), stringsAsFactors = FALSE,
                          check.names = FALSE)
  long <- long[long$model == model, ]
  pars <- unique(long$par)
  columns <- unique(long$column)
  rows <- unique(long[c("par", "point")])
  out <- data.frame(row.names = seq_len(nrow(rows)))
  for (cl in columns) {
    part <- long[long$column == cl, ]
    out[[cl]] <- part$value[match(paste(rows$par, rows$point), paste(part$par, part$point))]
  }
  out$.par <- factor(rows$par, levels = pars)
  forward <- lapply(stats::setNames(pars, pars), function(p) {
    tr <- out[out$.par == p, c(p, ".zeta")]
    tr <- tr[order(tr[[1L]]), ]
    splines::interpSpline(tr[[1L]], tr[[2L]])
  })
  backward <- lapply(forward, function(s) tryCatch(splines::backSpline(s), error = function(e) e))
  structure(out, forward = forward, backward = backward, class = c("thpr", "data.frame"))
}
