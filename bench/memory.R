# Peak memory of one fit in a fresh R process: the rise of the resident set
# size's high-water mark over the level after the data are made (and, on
# small data, after warm-up fits). Linux: writing 5 to /proc/self/clear_refs
# resets VmHWM. Counts R and C++ allocations alike.
# Usage: Rscript bench/memory.R <case> <mlmfit|lme4> [n]
args <- commandArgs(trailingOnly = TRUE)
source(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))), "cases.R"))
case <- if (args[[1]] == "scaling") scaling_case(as.numeric(args[[3]])) else bench_cases[[args[[1]]]]
pkg <- args[[2]]
suppressPackageStartupMessages({ library(pkg, character.only = TRUE) })
data <- case$data()
# On small data two warm-up fits load the packages' lazily loaded code and
# settle R's heap, and the third fit is measured; on large data those
# effects are negligible and the first fit is measured.
if (nrow(data) < 1e5) for (i in 1:2) invisible(suppressMessages(suppressWarnings(fit_with(pkg, case, data))))
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
