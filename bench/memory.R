# Peak memory of one fit in a fresh R process: the rise of the resident set
# size's high-water mark over the level after the data are made (and, on
# small data, after warm-up fits). Linux: writing 5 to /proc/self/clear_refs
# resets VmHWM. Counts R and C++ allocations alike.
# bench/run.R starts this script with MALLOC_MMAP_THRESHOLD_ fixed, so that
# glibc returns freed large blocks to the system instead of keeping them for
# the next fit (a retained heap would hide the measured fit's peak).
# Usage: Rscript bench/memory.R <case> <mlmfit|lme4|lme4_cran|glmmTMB|nlme> [n]
args <- commandArgs(trailingOnly = TRUE)
source(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))), "cases.R"))
case <- if (args[[1]] == "scaling") scaling_case(as.numeric(args[[3]])) else bench_cases[[args[[1]]]]
pkg <- args[[2]]
if (pkg == "lme4_cran") .libPaths(c(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))), ".peers", "lib"), .libPaths()))
suppressPackageStartupMessages({ library(sub("_cran$", "", pkg), character.only = TRUE) })
data <- case$data(FALSE)
# Two warm-up fits load the packages' lazily loaded code: on the data
# itself when they are small, otherwise on their first 5000 rows, so that
# the memory the measured fit needs is not already held by the process.
warm <- if (nrow(data) <= 2e4) data else droplevels(data[seq_len(5000L), , drop = FALSE])
for (i in 1:2) invisible(suppressMessages(suppressWarnings(try(fit_with(pkg, case, warm), silent = TRUE))))
rm(warm)
status_kb <- function(field) {
  line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line))
}
invisible(gc(full = TRUE)); invisible(gc(full = TRUE))
base <- status_kb("VmRSS")
writeLines("5", "/proc/self/clear_refs")
fit <- suppressMessages(suppressWarnings(fit_with(pkg, case, data)))
peak <- status_kb("VmHWM")
cat(sprintf("%.1f %.1f\n", (peak - base) / 1024, as.numeric(object.size(data)) / 2^20))
