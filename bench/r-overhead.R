# The R side of a fit on small models: lmm() and lme4::lmer() (and glmm()
# and glmer() on cbpp) timed in one process, alternating, in CPU seconds,
# batches of fits, medians; and lmm()'s time split into the model spec, the
# engine and the fit object.
#
# Usage: R_LIBS=<library with mlmfit> Rscript bench/r-overhead.R [--rounds=15] [--batch=50]
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
  hit <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(hit) == 0L) default else as.integer(sub(".*=", "", hit[[1L]]))
}
rounds <- opt("rounds", 15L)
batch <- opt("batch", 50L)

suppressPackageStartupMessages({
  library(mlmfit)
  library(lme4)
})
data_of <- function(name, package) {
  e <- new.env()
  utils::data(list = name, package = package, envir = e)
  e[[name]]
}

# CPU seconds (user + system) per run of `expr`, over `n` runs in a row.
cpu_per_run <- function(expr, n, env = parent.frame()) {
  t <- system.time(for (i in seq_len(n)) eval(expr, env), gcFirst = FALSE)
  (t[["user.self"]] + t[["sys.self"]]) / n
}

cases <- list(
  sleepstudy = list(data = data_of("sleepstudy", "lme4"), formula = Reaction ~ Days + (Days | Subject),
                    batch = batch),
  hsb = list(data = data_of("Hsb82", "mlmRev"), formula = mAch ~ meanses * cses + sector * cses + (1 + cses | school),
             batch = max(1L, batch %/% 5L))
)
glmm_case <- list(data = data_of("cbpp", "lme4"),
                  formula = cbind(incidence, size - incidence) ~ period + (1 | herd), batch = max(1L, batch %/% 2L))

cat(sprintf("mlmfit %s, lme4 %s, R %s; %d rounds, CPU ms per fit, medians\n\n", packageVersion("mlmfit"),
            packageVersion("lme4"), getRversion(), rounds))
rows <- list()
for (nm in names(cases)) {
  cs <- cases[[nm]]
  d <- cs$data
  f <- cs$formula
  fit <- lmm(f, d)
  spec <- mlmfit:::model_spec(f, quote(lmm(formula = f, data = d)), environment(), stats::na.omit, data = d)
  ctrl <- lmm_control()
  exprs <- list(
    mlmfit = quote(lmm(f, d)),
    lme4 = quote(lme4::lmer(f, d)),
    spec = quote(mlmfit:::model_spec(f, quote(lmm(formula = f, data = d)), environment(), stats::na.omit, data = d)),
    engine = quote(mlmfit:::engine_fit(spec, ctrl, TRUE)),
    fit_object = quote(mlmfit:::new_lmm_fit(spec, eng, quote(lmm(formula = f, data = d)), TRUE, ctrl))
  )
  eng <- mlmfit:::engine_fit(spec, ctrl, TRUE)
  for (e in exprs) for (i in 1:3) eval(e)
  times <- matrix(NA_real_, rounds, length(exprs), dimnames = list(NULL, names(exprs)))
  for (r in seq_len(rounds)) {
    for (k in names(exprs)) {
      n <- if (k == "lme4") max(1L, cs$batch %/% 5L) else cs$batch
      times[r, k] <- cpu_per_run(exprs[[k]], n)
    }
  }
  med <- apply(times, 2L, stats::median) * 1000
  rows[[nm]] <- med
  cat(sprintf("%-10s lmm %.3f ms  lmer %.2f ms  ratio %.1fx  | spec %.3f  engine %.3f  fit object %.3f  rest %.3f ms\n",
              nm, med[["mlmfit"]], med[["lme4"]], med[["lme4"]] / med[["mlmfit"]], med[["spec"]], med[["engine"]],
              med[["fit_object"]], med[["mlmfit"]] - med[["spec"]] - med[["engine"]] - med[["fit_object"]]))
}

d <- glmm_case$data
f <- glmm_case$formula
exprs <- list(mlmfit = quote(glmm(f, d, family = binomial)), lme4 = quote(lme4::glmer(f, d, family = binomial)))
for (e in exprs) for (i in 1:3) eval(e)
times <- matrix(NA_real_, rounds, 2L, dimnames = list(NULL, names(exprs)))
for (r in seq_len(rounds)) {
  times[r, "mlmfit"] <- cpu_per_run(exprs$mlmfit, glmm_case$batch)
  times[r, "lme4"] <- cpu_per_run(exprs$lme4, max(1L, glmm_case$batch %/% 5L))
}
med <- apply(times, 2L, stats::median) * 1000
cat(sprintf("%-10s glmm %.3f ms  glmer %.2f ms  ratio %.1fx\n", "cbpp", med[["mlmfit"]], med[["lme4"]],
            med[["lme4"]] / med[["mlmfit"]]))
