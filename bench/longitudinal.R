# Benchmark: lmm() with AR(1) residuals against nlme::lme on the same model.
#
#   Rscript bench/longitudinal.R                 # school-sized panel and 1e6 rows
#   Rscript bench/longitudinal.R --lme-limit=600 # also try lme on 1e6 rows (seconds)
#
# Model: y ~ time + (time | id) with AR(1) residuals within id over
# whole-number times, about 8% of occasions missing (gaps of 2 and 3), REML.
# lme needs minutes and gigabytes at 1e6 rows; by default it is timed on a
# 1e5-row panel and the ratio is reported there, lmm alone at 1e6 rows.
# Run from the package root after installing mlmfit (R CMD INSTALL .).
args <- commandArgs(trailingOnly = TRUE)
lme_limit <- as.numeric(sub("--lme-limit=", "", grep("^--lme-limit=", args, value = TRUE)))
if (!length(lme_limit)) lme_limit <- NA

suppressPackageStartupMessages({
  library(mlmfit)
  library(nlme)
})

# The panel of the benchmark suite (bench/cases.R), with id as a factor.
source(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))), "cases.R"))
panel <- function(...) transform(simulate_panel(...), id = factor(id))

time_it <- function(expr) {
  gc()
  t <- system.time(v <- expr)[["elapsed"]]
  list(time = t, value = v)
}

fit_lmm <- function(d) lmm(y ~ time + (time | id), d, correlation = corAR1(form = ~ time | id))
fit_lme <- function(d) lme(y ~ time, d, random = ~ time | id, correlation = corAR1(form = ~ time | id),
                           control = lmeControl(returnObject = TRUE))

compare <- function(label, d) {
  a <- time_it(fit_lmm(d))
  b <- time_it(fit_lme(d))
  data.frame(panel = label, rows = nrow(d), subjects = nlevels(d$id),
             lmm_s = a$time, lme_s = b$time, ratio = b$time / a$time,
             loglik_lmm = as.numeric(logLik(a$value)), loglik_lme = as.numeric(logLik(b$value)),
             phi_lmm = residual_parameters(a$value)[["Phi"]],
             phi_lme = unname(coef(b$value$modelStruct$corStruct, unconstrained = FALSE)))
}

cat("machine:", R.version$platform, "R", format(getRversion()), "| nlme", format(packageVersion("nlme")), "\n")
school <- panel(1500, 6)
mid <- panel(12500, 8, seed = 2)
res <- rbind(compare("school-sized", school), compare("1e5 rows", mid))

big <- panel(125000, 8, seed = 3)
a <- time_it(fit_lmm(big))
res <- rbind(res, data.frame(panel = "1e6 rows", rows = nrow(big), subjects = nlevels(big$id),
                             lmm_s = a$time, lme_s = NA, ratio = NA,
                             loglik_lmm = as.numeric(logLik(a$value)), loglik_lme = NA,
                             phi_lmm = residual_parameters(a$value)[["Phi"]], phi_lme = NA))
cat("lmm on 1e6 rows: whitening by pattern classes =", a$value$residual$whitening$classes,
    "with", a$value$residual$whitening$n_classes, "classes\n")
if (is.finite(lme_limit)) {
  # lme in a child process under a wall-clock limit, so that it can be stopped
  f <- tempfile(fileext = ".rds")
  saveRDS(big, f)
  script <- tempfile(fileext = ".R")
  writeLines(c("suppressPackageStartupMessages(library(nlme))", sprintf("d <- readRDS('%s')", f),
               "t <- system.time(lme(y ~ time, d, random = ~ time | id, correlation = corAR1(form = ~ time | id)))",
               "cat(t[['elapsed']], '\\n')"), script)
  out <- suppressWarnings(system2("timeout", c(lme_limit, file.path(R.home("bin"), "Rscript"), script),
                                  stdout = TRUE, stderr = FALSE))
  lme_big <- suppressWarnings(as.numeric(out[length(out)]))
  if (length(lme_big) && is.finite(lme_big)) {
    res$lme_s[3] <- lme_big
    res$ratio[3] <- lme_big / res$lmm_s[3]
  } else {
    cat(sprintf("lme on 1e6 rows did not finish within %g s (ratio > %.0f)\n", lme_limit, lme_limit / a$time))
  }
}
print(res, digits = 6, row.names = FALSE)
