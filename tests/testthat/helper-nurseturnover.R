# The simulation behind the nurseturnover data (data-raw/nurseturnover.R
# builds data/nurseturnover.rda with seed 1): 1389 nurses in 18 hospitals,
# the lecture notes' glmer estimates as the truth. Other seeds give the
# samples the vignette speaks of ("a different simulated sample would give
# a quite different value"); with seed 3 glmm() used to leave the hospital
# variance at zero.
simulate_nurseturnover <- function(seed) {
  set.seed(seed)
  n_hospitals <- 18L
  n_nurses <- 1389L
  # truth: the estimates the notes print
  truth <- c(`(Intercept)` = 3.02, famyes = -0.75, valuedyes = -0.93, age = -0.05, sexmale = 0.28,
             `INN_OUTOuter London` = -0.73)
  hospital_sd <- 0.18
  # hospitals of unequal size (at least 30 nurses), half in inner and half in outer London
  size <- 30L + as.vector(stats::rmultinom(1L, n_nurses - 30L * n_hospitals, stats::rgamma(n_hospitals, 3)))
  HOSPITAL <- factor(rep(seq_len(n_hospitals), size))
  inn_out <- factor(rep(c("Inner London", "Outer London"), length.out = n_hospitals)[sample(n_hospitals)],
                    levels = c("Inner London", "Outer London"))
  INN_OUT <- inn_out[as.integer(HOSPITAL)]
  age <- as.integer(pmin(64, pmax(19, round(stats::rnorm(n_nurses, 36, 10)))))
  age[sample(n_nurses, 4L)] <- 18L # four records the notes' model leaves out (subset = age > 18)
  fam <- factor(ifelse(stats::runif(n_nurses) < stats::plogis(-2 + 0.06 * age), "yes", "no"), levels = c("no", "yes"))
  valued <- factor(ifelse(stats::runif(n_nurses) < 0.45, "yes", "no"), levels = c("no", "yes"))
  sex <- factor(ifelse(stats::runif(n_nurses) < 0.12, "male", "female"), levels = c("female", "male"))
  u <- stats::rnorm(n_hospitals, 0, hospital_sd)
  eta <- truth[[1]] + truth[[2]] * (fam == "yes") + truth[[3]] * (valued == "yes") + truth[[4]] * age +
    truth[[5]] * (sex == "male") + truth[[6]] * (INN_OUT == "Outer London") + u[as.integer(HOSPITAL)]
  leave <- factor(ifelse(stats::runif(n_nurses) < stats::plogis(eta), "yes", "no"), levels = c("no", "yes"))
  data.frame(HOSPITAL, INN_OUT, leave, fam, valued, age, sex)
}
