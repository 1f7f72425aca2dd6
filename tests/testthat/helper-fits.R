# Fitted models shared by the test files, each made once per test run (as
# glmmTMB keeps its test models): test_fit(name) gives a list with `mlm`
# (mlmfit's fit), `lme4` (lme4's fit of the same model; `nlme` for a fit
# with a residual structure) and for some `data`.
# Fits are values: a test may change its copy. An lme4 fit that a test
# profiles is made in that test (lme4's profile() changes a glmer fit's
# modes, which would change the shared one).
test_fits <- new.env()
test_fit <- function(name) {
  if (!exists(name, envir = test_fits, inherits = FALSE)) {
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
      contraception = {
        Contraception <- contraception_data()
        fm <- use ~ age + I(age^2) + urban + livch + (1 | district)
        list(mlm = glmm(fm, Contraception, binomial),
             lme4 = suppressWarnings(lme4::glmer(fm, Contraception, binomial)))
      },
      poisson = {
        d <- poisson_offset_data()
        f <- y ~ x + offset(log(exposure)) + (1 | g)
        list(mlm = glmm(f, d, poisson), lme4 = lme4::glmer(f, d, poisson), data = d)
      },
      # rows left out by na.exclude (fitted values and residuals padded)
      sleepstudy_na = {
        d <- lme4::sleepstudy
        d$Reaction[c(3, 50, 101)] <- NA
        f <- Reaction ~ Days + (Days | Subject)
        list(mlm = lmm(f, d, na.action = stats::na.exclude), lme4 = lme4::lmer(f, d, na.action = stats::na.exclude),
             data = d)
      },
      cbpp_na = {
        d <- lme4::cbpp
        d$incidence[c(2, 17)] <- NA
        f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
        list(mlm = glmm(f, d, binomial, na.action = stats::na.exclude),
             lme4 = lme4::glmer(f, d, binomial, na.action = stats::na.exclude), data = d)
      },
      # a residual variance structure: nlme::lme's fit of the same model
      orthodont_varident = list(
        mlm = lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont,
                  variance = nlme::varIdent(form = ~ 1 | Sex)),
        nlme = nlme::lme(distance ~ age + Sex, random = ~ 1 | Subject, data = nlme::Orthodont,
                         weights = nlme::varIdent(form = ~ 1 | Sex))),
      stop("unknown test fit ", name))
    assign(name, fits, envir = test_fits)
  }
  get(name, envir = test_fits)
}
