# The benchmark: mlmfit against lme4 in one R process, runs alternating
# between the two, then peak memory of each in fresh processes.
# Writes bench/results.md. Usage, from the package root:
#   Rscript bench/run.R                  # the whole suite and the scaling table
#   Rscript bench/run.R --only=hsb,insteval --no-scaling
# mlmfit must be installed (R CMD INSTALL .).
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default = NULL) {
  hit <- grep(paste0("^--", name, "(=|$)"), args, value = TRUE)
  if (length(hit) == 0L) return(default)
  val <- sub(paste0("^--", name, "=?"), "", hit[[1]])
  if (val == "") TRUE else val
}
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
source(file.path(bench_dir, "cases.R"))
suppressPackageStartupMessages({ library(mlmfit); library(lme4) })
only <- opt("only")
cases <- if (is.null(only)) bench_cases else bench_cases[strsplit(only, ",")[[1]]]
out_file <- opt("out", file.path(bench_dir, "results.md"))

time_case <- function(case) {
  data <- case$data()
  pkgs <- if (isFALSE(case$lme4)) "mlmfit" else c("mlmfit", "lme4")
  times <- setNames(vector("list", length(pkgs)), pkgs)
  fits <- list()
  for (r in seq_len(case$reps)) {
    order <- if (r %% 2L == 1L) pkgs else rev(pkgs)  # alternate who goes first
    for (pkg in order) {
      invisible(gc())
      t <- system.time(fit <- suppressMessages(suppressWarnings(fit_with(pkg, case, data))))[["elapsed"]]
      times[[pkg]] <- c(times[[pkg]], t)
      fits[[pkg]] <- fit
    }
  }
  dev <- vapply(fits, criterion, numeric(1))
  list(median = vapply(times, stats::median, numeric(1)), deviance = dev, n = nrow(data))
}

memory_case <- function(name, pkg, n = NULL) {
  res <- system2(file.path(R.home("bin"), "Rscript"),
                 c(shQuote(file.path(bench_dir, "memory.R")), name, pkg, if (!is.null(n)) format(n, scientific = FALSE)),
                 stdout = TRUE, stderr = FALSE, env = "MALLOC_MMAP_THRESHOLD_=131072")
  vals <- as.numeric(strsplit(utils::tail(res, 1L), " ")[[1]])
  if (length(vals) != 2L) c(NA, NA) else vals
}

fmt_t <- function(x) ifelse(is.na(x), "–", ifelse(x < 0.1, sprintf("%.1f ms", 1000 * x), sprintf("%.2f s", x)))
fmt_mb <- function(x) ifelse(is.na(x), "–", ifelse(x < 10, sprintf("%.1f MB", pmax(x, 0)), sprintf("%.0f MB", x)))

load_average <- function() paste(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], collapse = " ")
load_start <- load_average()
rows <- list()
for (name in names(cases)) {
  case <- cases[[name]]
  message("timing ", name)
  tm <- time_case(case)
  mem <- if (isTRUE(opt("no-memory"))) list(mlmfit = c(NA, NA), lme4 = c(NA, NA)) else {
    message("memory ", name)
    list(mlmfit = memory_case(name, "mlmfit"),
         lme4 = if (isFALSE(case$lme4)) c(NA, NA) else memory_case(name, "lme4"))
  }
  lme4_t <- if ("lme4" %in% names(tm$median)) tm$median[["lme4"]] else NA
  ddev <- if (is.na(lme4_t)) NA else tm$deviance[["mlmfit"]] - tm$deviance[["lme4"]]
  rows[[name]] <- data.frame(
    model = case$label, n = tm$n, mlmfit = fmt_t(tm$median[["mlmfit"]]), lme4 = fmt_t(lme4_t),
    ratio = if (is.na(lme4_t)) "–" else sprintf("%.1fx", lme4_t / tm$median[["mlmfit"]]),
    mem_mlmfit = fmt_mb(mem$mlmfit[1]), mem_lme4 = fmt_mb(mem$lme4[1]),
    data = fmt_mb(mem$mlmfit[2]),
    deviance = if (is.na(ddev)) sprintf("%.2f", tm$deviance[["mlmfit"]]) else sprintf("%+.1e", ddev),
    agree = if (is.na(ddev)) "–" else if (ddev <= 1e-4) "yes" else "NO",
    stringsAsFactors = FALSE)
  print(rows[[name]])
}

scaling <- list()
if (!isTRUE(opt("no-scaling"))) {
  for (n in scaling_sizes) {
    case <- scaling_case(n)
    message("scaling ", n)
    tm <- time_case(case)
    mem_m <- memory_case("scaling", "mlmfit", n)
    mem_l <- if (case$lme4) memory_case("scaling", "lme4", n) else c(NA, NA)
    lt <- if ("lme4" %in% names(tm$median)) tm$median[["lme4"]] else NA
    scaling[[length(scaling) + 1L]] <- data.frame(
      n = format(n, big.mark = ",", scientific = FALSE), groups = format(max(100, n / 100), big.mark = ",", scientific = FALSE),
      mlmfit = fmt_t(tm$median[["mlmfit"]]), lme4 = fmt_t(lt),
      ratio = if (is.na(lt)) "–" else sprintf("%.1fx", lt / tm$median[["mlmfit"]]),
      mem_mlmfit = fmt_mb(mem_m[1]), mem_lme4 = fmt_mb(mem_l[1]), data = fmt_mb(mem_m[2]))
    print(scaling[[length(scaling)]])
  }
}

md_table <- function(df, header) {
  c(paste0("| ", paste(header, collapse = " | "), " |"),
    paste0("|", paste(rep("---", length(header)), collapse = "|"), "|"),
    apply(df, 1, function(r) paste0("| ", paste(gsub("|", "\\|", trimws(r), fixed = TRUE), collapse = " | "), " |")))
}
cpu <- unique(sub(".*: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)))
mem_total <- sub(" +", " ", sub("MemTotal: *", "", grep("MemTotal", readLines("/proc/meminfo"), value = TRUE)))
lines <- c(
  "# Benchmark: mlmfit against lme4",
  "",
  sprintf("Run on %s with `Rscript bench/run.R%s`.", format(Sys.time(), "%Y-%m-%d"), if (length(args)) paste0(" ", paste(args, collapse = " ")) else ""),
  sprintf("Machine: %s, %d cores, %s RAM; %s; mlmfit %s, lme4 %s; BLAS %s.",
          paste(cpu, collapse = "; "), parallel::detectCores(), mem_total, R.version.string,
          utils::packageVersion("mlmfit"), utils::packageVersion("lme4"), basename(extSoftVersion()[["BLAS"]])),
  "",
  sprintf("Load average (1, 5, 15 min) at the start: %s; at the end: %s.", load_start, load_average()),
  "",
  "Times are medians of runs alternating between the packages in one R process (lmer: REML fits;",
  "glmer: Laplace).",
  "Peak memory is the rise of the process's resident-set high-water mark during one fit, in a",
  "fresh process (R and C++ allocations alike); `data` is the size of the data frame.",
  "`deviance` is mlmfit's REML criterion (or -2 log-likelihood for GLMMs) minus lme4's (negative:",
  "mlmfit found a lower optimum);",
  "`agree` means within 1e-4 or lower (mlmfit's accuracy contract with lme4).",
  "",
  md_table(do.call(rbind, rows), c("model", "n", "mlmfit", "lme4", "lme4/mlmfit", "peak mem mlmfit", "peak mem lme4", "data", "deviance", "agree")))
if (length(scaling)) {
  lines <- c(lines, "", "## Scaling: `y ~ x + (x | g)`, n/100 groups", "",
             md_table(do.call(rbind, scaling), c("n", "groups", "mlmfit", "lme4", "lme4/mlmfit", "peak mem mlmfit", "peak mem lme4", "data")))
}
writeLines(lines, out_file)
message("wrote ", out_file)
