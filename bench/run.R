# The benchmark: mlmfit against lme4 1.1-31 (Debian), the current lme4 from
# CRAN, glmmTMB and nlme, under the reference BLAS and OpenBLAS, with the
# floor of each mlmfit fit, then peak memory in fresh processes. Writes
# bench/results.md (copied into the README by tools/readme-bench.R).
#
# From the package root, once: Rscript bench/setup.R (the CRAN lme4 and
# OpenBLAS into bench/.peers/; nothing system-wide), and mlmfit installed
# (R CMD INSTALL --library=<lib> .; put <lib> in R_LIBS).
#   Rscript bench/run.R                 # everything (see results.md for how long it took)
#   Rscript bench/run.R --quick         # small data, 2 runs, no memory: checks the harness (~5 min)
#   Rscript bench/run.R --only=insteval,crossed_1e7 --blas=reference --no-memory
# Options: --only=case,... --blas=reference,openblas --peers=lme4,lme4_cran,glmmTMB,nlme
#   --slow-limit=seconds (a peer fit slower than this is not repeated; 60)
#   --peer-limit=seconds (a peer fit still running after this is abandoned; 600)
#   --clock=cpu (CPU seconds instead of elapsed ones, OpenBLAS on one thread: for a busy machine)
#   --max-reps=N (at most N runs per case) --no-memory --no-scaling --out=file
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default = NULL) {
  hit <- grep(paste0("^--", name, "(=|$)"), args, value = TRUE)
  if (length(hit) == 0L) return(default)
  val <- sub(paste0("^--", name, "=?"), "", hit[[1]])
  if (val == "") TRUE else val
}
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
source(file.path(bench_dir, "cases.R"))
`%||%` <- function(a, b) if (is.null(a)) b else a
quick <- isTRUE(opt("quick"))
only <- opt("only", "all")
blas_wanted <- strsplit(opt("blas", "reference,openblas"), ",")[[1]]
out_file <- opt("out", file.path(bench_dir, if (quick) "results-quick.md" else "results.md"))
peer_limit <- as.numeric(opt("peer-limit", "600"))
cpu_clock <- identical(opt("clock", "elapsed"), "cpu")
do_memory <- !quick && !isTRUE(opt("no-memory"))
do_scaling <- !quick && !isTRUE(opt("no-scaling")) && only == "all"
openblas_dir <- normalizePath(file.path(bench_dir, ".peers", "openblas", "usr", "lib", "x86_64-linux-gnu",
                                        "openblas-pthread"), mustWork = FALSE)
rscript <- file.path(R.home("bin"), "Rscript")
started <- Sys.time()
# Which cases time several fits in a row per run (a fit of a few
# milliseconds is below the resolution of the CPU clock).
batch_note <- function() {
  b <- Filter(Negate(is.null), lapply(bench_cases, `[[`, "batch"))
  if (!length(b)) return(character())
  paste0("A timed run of ", paste(sprintf("%s is %d fits", names(b), unlist(b)), collapse = " and of "),
         " in a row, reported per fit (a single fit of a few milliseconds is below the resolution of the clock).")
}
load_average <- function() paste(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], collapse = " ")
load_start <- load_average()

# The reference suite runs on the machine's default BLAS. Installing a
# libopenblas0-* package makes OpenBLAS (threaded) that default, and the
# "reference" rows would then time OpenBLAS: refuse before the long run.
default_blas <- extSoftVersion()[["BLAS"]]
if ("reference" %in% blas_wanted && grepl("openblas|mkl|blis|atlas", default_blas, ignore.case = TRUE))
  stop("the machine's default BLAS is ", default_blas, ", not the reference BLAS: set it back ",
       "(update-alternatives --config libblas.so.3-x86_64-linux-gnu, and liblapack.so.3 likewise) ",
       "or run with --blas=openblas")

# One suite run per BLAS, each in its own process. Debian's R puts
# R_LD_LIBRARY_PATH before LD_LIBRARY_PATH, so OpenBLAS is chosen there.
run_suite <- function(blas) {
  env <- character()
  if (blas == "openblas") {
    if (!file.exists(file.path(openblas_dir, "libblas.so.3"))) {
      message("no OpenBLAS in ", openblas_dir, " (run Rscript bench/setup.R): skipped")
      return(NULL)
    }
    env <- paste0("R_LD_LIBRARY_PATH=", openblas_dir, ":", R.home("lib"), ":/usr/lib/x86_64-linux-gnu")
    if (cpu_clock) env <- c(env, "OPENBLAS_NUM_THREADS=1")
  }
  rds <- tempfile(fileext = ".rds")
  # mlmfit calls no BLAS: the cases it fits alone are not run again.
  cases <- if (only == "all") names(bench_cases) else strsplit(only, ",")[[1]]
  if (blas == "openblas") cases <- Filter(function(nm) length(bench_cases[[nm]]$peers) > 0L, cases)
  if (!length(cases)) return(NULL)
  suite_args <- c(shQuote(file.path(bench_dir, "suite.R")), rds, paste(cases, collapse = ","), if (quick) "--quick",
                  grep("^--(peers|slow-limit|peer-limit|clock|max-reps)=", args, value = TRUE))
  status <- system2(rscript, suite_args, env = env)
  if (status != 0L || !file.exists(rds)) stop("the suite under ", blas, " BLAS failed")
  s <- readRDS(rds)
  if (grepl("openblas", s$blas, ignore.case = TRUE) != (blas == "openblas"))
    stop("the suite meant for the ", blas, " BLAS ran on ", s$blas)
  s
}
suites <- list()
for (b in blas_wanted) {
  message("== suite under ", b, " BLAS")
  s <- run_suite(b)
  if (!is.null(s)) suites[[b]] <- s
}

memory_case <- function(name, pkg, n = NULL) {
  res <- system2(rscript, c(shQuote(file.path(bench_dir, "memory.R")), name, pkg,
                            if (!is.null(n)) format(n, scientific = FALSE)),
                 stdout = TRUE, stderr = FALSE, env = "MALLOC_MMAP_THRESHOLD_=131072")
  vals <- suppressWarnings(as.numeric(strsplit(utils::tail(res, 1L), " ")[[1]]))
  if (length(vals) != 2L) c(NA, NA) else vals
}

fmt_t <- function(x) ifelse(is.na(x), "–", ifelse(x < 1e-3, sprintf("%.0f µs", 1e6 * x),
                     ifelse(x < 0.1, sprintf("%.1f ms", 1000 * x), ifelse(x < 100, sprintf("%.2f s", x), sprintf("%.0f s", x)))))
fmt_mb <- function(x) ifelse(is.na(x), "–", ifelse(x < 10, sprintf("%.1f MB", pmax(x, 0)), sprintf("%.0f MB", x)))
peer_names <- c("lme4", "lme4_cran", "glmmTMB", "nlme")

# The time cell of a peer: median, with the number of runs when only one.
time_cell <- function(r, pkg) {
  if (!pkg %in% names(r$median)) return("–")
  if (!is.null(r$errors[[pkg]]) && is.na(r$median[[pkg]])) {
    return(if (grepl("time limit", r$errors[[pkg]])) sprintf("> %g s", peer_limit) else "failed")
  }
  cell <- fmt_t(r$median[[pkg]])
  if (pkg != "mlmfit" && r$runs[[pkg]] == 1L && !identical(r$label, "")) cell <- paste0(cell, "¹")
  cell
}
ratio_cell <- function(r) {
  peers <- intersect(peer_names, names(r$median))
  t <- r$median[peers]
  if (!length(peers) || all(is.na(t))) return("–")
  best <- min(t, na.rm = TRUE)
  sprintf("%.1fx (%s)", best / r$median[["mlmfit"]], display_name(names(t)[which.min(t)]))
}
display_name <- function(pkg) c(lme4 = "lme4 1.1", lme4_cran = "lme4 2", glmmTMB = "glmmTMB", nlme = "nlme")[[pkg]]
dev_cells <- function(r) {
  peers <- intersect(peer_names, names(r$criterion))
  crit <- r$criterion[peers]
  if (!length(peers) || all(is.na(crit)) || is.na(r$criterion[["mlmfit"]])) return(c("–", "–"))
  d <- r$criterion[["mlmfit"]] - min(crit, na.rm = TRUE)
  c(sprintf("%+.1e", d), if (d <= 1e-4) "yes" else "NO")
}

md_table <- function(rows, header) {
  c(paste0("| ", paste(header, collapse = " | "), " |"),
    paste0("|", paste(rep("---", length(header)), collapse = "|"), "|"),
    vapply(rows, function(r) paste0("| ", paste(gsub("|", "\\|", r, fixed = TRUE), collapse = " | "), " |"), ""))
}
versions <- suites[[1]]$versions
peer_header <- c(sprintf("lme4 %s", versions[["lme4"]]), sprintf("lme4 %s (CRAN)", versions[["lme4_cran"]]),
                 sprintf("glmmTMB %s", versions[["glmmTMB"]]), sprintf("nlme %s", versions[["nlme"]]))

time_table <- function(s) {
  md_table(lapply(s$results, function(r) c(r$label, format(r$n, big.mark = ","), time_cell(r, "mlmfit"),
                                           vapply(peer_names, function(p) time_cell(r, p), ""),
                                           ratio_cell(r), dev_cells(r))),
           c("model", "n", "mlmfit", peer_header, "fastest peer / mlmfit", "deviance", "agree"))
}
floor_table <- function(s) {
  rows <- lapply(Filter(function(r) !is.null(r$floor) && is.null(r$floor$error), s$results), function(r) {
    f <- r$floor
    tm <- r$median[["mlmfit"]]
    c(r$label, fmt_t(tm), fmt_t(f$pass), sprintf("%.0f", tm / f$pass), fmt_t(f$eval), fmt_t(f$gradient),
      as.character(f$evals), if (is.na(f$passes)) "–" else as.character(f$passes),
      sprintf("%.0f%%", 100 * f$evals * f$eval / tm))
  })
  md_table(rows, c("model", "mlmfit", "one pass over the data", "fit / pass", "one evaluation", "gradient (extra)",
                   "evaluations", "PIRLS passes", "evaluations x cost / fit"))
}

cpu <- unique(sub(".*: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)))
mem_total <- sub(" +", " ", sub("MemTotal: *", "", grep("MemTotal", readLines("/proc/meminfo"), value = TRUE)))
ref <- suites[["reference"]] %||% suites[[1]]
lines <- c(
  "# Benchmark: mlmfit against lme4, glmmTMB and nlme",
  "",
  sprintf("Run on %s with `Rscript bench/run.R%s` (%.0f minutes).", format(started, "%Y-%m-%d"),
          if (length(args)) paste0(" ", paste(args, collapse = " ")) else "",
          as.numeric(difftime(Sys.time(), started, units = "mins"))),
  sprintf("Machine: %s, %d cores, %s RAM; %s; mlmfit %s.", paste(cpu, collapse = "; "), parallel::detectCores(),
          mem_total, R.version.string, versions[["mlmfit"]]),
  sprintf("Load average (1, 5, 15 min) at the start: %s; at the end: %s.", load_start, load_average()),
  "",
  if (cpu_clock) "Times are CPU seconds (user + system), not elapsed ones: the machine was busy; OpenBLAS ran on one thread." else "Times are elapsed seconds.",
  "Times are medians of runs alternating between the packages (lmer, glmmTMB and lme: REML fits; glmer and",
  "glmmTMB: Laplace). The current lme4 from CRAN runs in a worker process with its own library (it cannot share",
  sprintf("a process with Debian's lme4); it is timed inside the worker. ¹ one run only (a peer fit slower than %g s", ref$slow_limit),
  sprintf("is not repeated); a peer fit still running after %g s is abandoned.", peer_limit),
  "`deviance` is mlmfit's criterion (REML criterion or -2 log-likelihood) minus the lowest of the",
  "peers' (negative: mlmfit found a lower optimum); `agree` means within 1e-4 or lower, mlmfit's accuracy contract with lme4.",
  batch_note(),
  "")
if (!is.null(suites[["reference"]])) {
  lines <- c(lines, sprintf("## Reference BLAS (%s)", basename(suites[["reference"]]$blas)), "",
             time_table(suites[["reference"]]), "")
}
if (!is.null(suites[["openblas"]])) {
  lines <- c(lines, sprintf("## OpenBLAS (%s, Debian's libopenblas0-pthread, %s)", basename(suites[["openblas"]]$blas),
                            if (cpu_clock) "one thread" else "all cores"), "",
             time_table(suites[["openblas"]]), "")
}
lines <- c(lines, "## The floor of each mlmfit fit", "",
           "Measured in the same process as the timings (reference BLAS). One pass: reading X, y and the codes and",
           "columns of Z once (bench/floor.cpp). One evaluation: the profiled deviance at a nearby theta from the",
           "stored cross-products (linear models), one PIRLS to convergence from the fitted linear predictor",
           "(GLMMs: one engine call, whose set-up dominates on small data), or the deviance with the residual",
           "structure (which whitens the data per evaluation). The",
           "gradient column is the extra cost of the analytic gradient over an evaluation. Evaluations and PIRLS",
           "passes are what the fit reported in `optinfo` (for linear models `evaluations` counts every",
           "deviance evaluation, some of them with a gradient). The last column is the share of the fit that",
           "the evaluations explain at the cost of one without gradient.", "",
           floor_table(ref), "")

lines <- c(lines, "## Reference: MixedModels.jl (published, not run here)", "",
           "MixedModels.jl cannot run on this machine. Its own benchmark report (JuliaStats/MixedModels.jl,",
           "`docs/src/benchmarks.md`: MixedModels.jl on Julia 1.0.0, 2 Oct 2018, Intel Core i5-3570 @ 3.40GHz,",
           "maximum likelihood fits) gives:", "",
           md_table(list(c("InstEval `1 + service + (1|s) + (1|d) + (1|dept:service)`", "73,421", "2.00 s"),
                         c("InstEval `1 + service * dept + (1|s) + (1|d)`", "73,421", "1.25 s"),
                         c("MovieLens 1M `1 + (1|user) + (1|movie)` (crossed, 6,040 x 3,706)", "1,000,209", "36.7 s")),
                    c("model", "n", "MixedModels.jl")), "")

if (do_memory) {
  mem_rows <- list()
  for (name in names(ref$results)) {
    case <- bench_cases[[name]]
    if (identical(case$kind, "bootstrap")) next
    message("memory ", name)
    m <- memory_case(name, "mlmfit")
    l <- if ("lme4" %in% case$peers) memory_case(name, "lme4") else c(NA, NA)
    mem_rows[[name]] <- c(case$label, fmt_mb(m[1]), fmt_mb(l[1]), fmt_mb(m[2]))
  }
  lines <- c(lines, "## Peak memory", "",
             "The rise of the process's resident-set high-water mark during one fit, in a fresh process (R and C++",
             "allocations alike); `data` is the size of the data frame.", "",
             md_table(mem_rows, c("model", "mlmfit", sprintf("lme4 %s", versions[["lme4"]]), "data")), "")
}

if (do_scaling) {
  sc_rows <- list()
  for (n in scaling_sizes) {
    message("scaling ", n)
    rds <- tempfile(fileext = ".rds")
    status <- system2(rscript, c(shQuote(file.path(bench_dir, "suite.R")), rds, paste0("scaling:", n), "--peers=lme4"))
    if (status != 0L) next
    r <- readRDS(rds)$results[[1]]
    mem_m <- if (do_memory) memory_case("scaling", "mlmfit", n) else c(NA, NA)
    mem_l <- if (do_memory && n <= 1e6) memory_case("scaling", "lme4", n) else c(NA, NA)
    lt <- if ("lme4" %in% names(r$median)) r$median[["lme4"]] else NA
    sc_rows[[length(sc_rows) + 1L]] <- c(format(n, big.mark = ",", scientific = FALSE),
      format(max(100, n / 100), big.mark = ",", scientific = FALSE), fmt_t(r$median[["mlmfit"]]), fmt_t(lt),
      if (is.na(lt)) "–" else sprintf("%.1fx", lt / r$median[["mlmfit"]]), fmt_mb(mem_m[1]), fmt_mb(mem_l[1]),
      fmt_mb(mem_m[2]))
  }
  lines <- c(lines, "## Scaling: `y ~ x + (x | g)`, n/100 groups", "",
             md_table(sc_rows, c("n", "groups", "mlmfit", sprintf("lme4 %s", versions[["lme4"]]), "lme4/mlmfit",
                                 "peak mem mlmfit", "peak mem lme4", "data")), "")
}
lines[3] <- sprintf("Run on %s with `Rscript bench/run.R%s` (%.0f minutes).", format(started, "%Y-%m-%d"),
                    if (length(args)) paste0(" ", paste(args, collapse = " ")) else "",
                    as.numeric(difftime(Sys.time(), started, units = "mins")))
writeLines(lines, out_file)
message("wrote ", out_file)
