# Fits shared by the tests of the ecosystem methods (bridge to lme4,
# insight/performance, car, effects, emmeans, lattice, model selection):
# each model fitted once per run by mlmfit and by lme4.
ecosystem_fits <- new.env()
ecosystem_fixture <- function(name) {
  if (!exists(name, envir = ecosystem_fits, inherits = FALSE)) {
    fits <- switch(name,
      sleepstudy = list(
        mlm = lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy),
        lme4 = lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)),
      hsb = {
        data("Hsb82", package = "mlmRev", envir = environment())
        f <- mAch ~ meanses * cses + sector * cses + (cses | school)
        list(mlm = lmm(f, Hsb82), lme4 = lme4::lmer(f, Hsb82), data = Hsb82)
      },
      penicillin = list(
        mlm = lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
        lme4 = lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)),
      cbpp = list(
        mlm = glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial),
        lme4 = lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp, binomial)),
      poisson = {
        d <- poisson_offset_data()
        f <- y ~ x + offset(log(exposure)) + (1 | g)
        list(mlm = glmm(f, d, poisson), lme4 = lme4::glmer(f, d, poisson), data = d)
      },
      stop("unknown fixture ", name))
    assign(name, fits, envir = ecosystem_fits)
  }
  get(name, envir = ecosystem_fits)
}

# Counts with exposures: 30 groups of 8, a log-normal group effect.
poisson_offset_data <- function() {
  set.seed(214)
  d <- data.frame(g = factor(rep(seq_len(30), each = 8)), x = stats::rnorm(240),
                  exposure = stats::runif(240, 1, 10))
  u <- stats::rnorm(30, sd = 0.6)
  d$y <- stats::rpois(240, d$exposure * exp(0.4 + 0.3 * d$x + u[d$g]))
  d
}

# Numbers of two results (data frames, lists, vectors) compared as numbers.
expect_same_numbers <- function(object, expected, tolerance = 1e-4) {
  num <- function(x) {
    x <- unlist(lapply(unclass(as.list(x)), function(v) if (is.numeric(v)) as.vector(v)))
    unname(x)
  }
  testthat::expect_equal(num(object), num(expected), tolerance = tolerance)
}
