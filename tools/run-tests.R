# The test command: installs the package from this checkout into a private
# library (compiled objects are reused between runs), runs the testthat
# suite against it and prints one line "N passed, N failed". Exits
# non-zero when a test fails or errors.
#
# Usage: Rscript tools/run-tests.R [--sanitize] [filter]
#
# Tiers: by default the fast tier runs (for iterating: tests marked with
# skip_unless_full_tests() are skipped, tests/testthat/helper-tiers.R);
# with MLMFIT_TESTS=full (as .ci/run sets it) every test runs, and every
# help page's examples and every vignette are run too (each counts as one
# test: passed when it runs without error), so that what users copy from
# the documentation keeps working. A filter runs the matching test files
# only. Plots go to a null device: no Rplots.pdf is written.
#
# --sanitize builds the package with AddressSanitizer and
# UndefinedBehaviorSanitizer (tools/sanitizer.mk) from a copy of the
# sources in .sanitizer/ (so that its objects never mix with the normal
# ones), installs it into .sanitizer/lib and runs the tests in an R process
# with the ASan runtime preloaded. Every sanitizer report counts as a failed
# test, and so does a test process that dies. The fuzz test runs
# MLMFIT_FUZZ_CASES cases (200 unless set) under the sanitizers.
args <- commandArgs(trailingOnly = TRUE)
sanitize <- "--sanitize" %in% args
installed <- match("--installed", args, nomatch = 0L)
installed_lib <- if (installed > 0L) args[[installed + 1L]] else NULL
no_docs <- "--no-docs" %in% args
positional <- args[!args %in% c("--sanitize", "--installed", "--no-docs", installed_lib)]
filter <- if (length(positional) > 0L) positional[[1L]] else NULL
root <- normalizePath(".")
r_bin <- file.path(R.home("bin"), "R")

finish <- function(passed, failed) {
  cat(sprintf("%d passed, %d failed\n", passed, failed))
  quit(status = if (failed > 0L) 1L else 0L)
}

install_into <- function(source, lib, env = character()) {
  dir.create(lib, showWarnings = FALSE, recursive = TRUE)
  log <- tempfile()
  # Compile on both cores of the project machine unless told otherwise.
  if (!nzchar(Sys.getenv("MAKEFLAGS"))) env <- c(env, "MAKEFLAGS=-j2")
  status <- system2(r_bin, c("CMD", "INSTALL", "--no-test-load", "--no-docs", "--no-multiarch",
                             paste0("--library=", shQuote(lib)), shQuote(source)),
                    stdout = log, stderr = log, env = env)
  if (status != 0L) {
    writeLines(readLines(log))
    finish(0L, 1L)
  }
}

run_suite <- function(lib) {
  .libPaths(c(lib, .libPaths()))
  options(device = function(...) grDevices::pdf(file = NULL))
  suppressPackageStartupMessages(library(mlmfit, lib.loc = lib))
  library(testthat)
  results <- testthat::test_dir(file.path(root, "tests", "testthat"), filter = filter, package = "mlmfit",
                                load_package = "installed", stop_on_failure = FALSE,
                                reporter = testthat::ProgressReporter$new(show_praise = FALSE))
  df <- as.data.frame(results)
  failed <- sum(df$failed) + sum(df$error)
  passed <- sum(df$nb) - sum(df$failed) - sum(df$skipped)
  if (is.null(filter) && !no_docs && identical(Sys.getenv("MLMFIT_TESTS"), "full")) {
    docs <- run_documentation()
    passed <- passed + docs[["passed"]]
    failed <- failed + docs[["failed"]]
  }
  finish(passed, failed)
}

# One check per help page (its examples) and per vignette (rendered to
# HTML in a temporary directory): an error fails it.
run_documentation <- function() {
  passed <- 0L
  failed <- 0L
  record <- function(what, ok, message = "") {
    cat(sprintf("%s %s%s\n", if (ok) "ok  " else "FAIL", what, message))
    if (ok) passed <<- passed + 1L else failed <<- failed + 1L
  }
  cat("\n== examples of the help pages ==\n")
  out <- tempfile("examples")
  dir.create(out)
  for (rd in list.files(file.path(root, "man"), pattern = "[.]Rd$", full.names = TRUE)) {
    code <- file.path(out, sub("[.]Rd$", ".R", basename(rd)))
    tools::Rd2ex(rd, code)
    if (!file.exists(code)) next
    err <- tryCatch({
      env <- new.env(parent = globalenv())
      suppressMessages(suppressWarnings(utils::capture.output(sys.source(code, envir = env))))
      NULL
    }, error = function(e) conditionMessage(e))
    grDevices::graphics.off()
    record(paste("example", basename(rd)), is.null(err), if (is.null(err)) "" else paste(":", err))
  }
  cat("\n== vignettes ==\n")
  for (v in list.files(file.path(root, "vignettes"), pattern = "[.]Rmd$", full.names = TRUE)) {
    dir <- tempfile("vignette")
    dir.create(dir)
    file.copy(v, dir)
    err <- tryCatch({
      suppressMessages(utils::capture.output(
        rmarkdown::render(file.path(dir, basename(v)), output_dir = dir, intermediates_dir = dir,
                          envir = new.env(parent = globalenv()), quiet = TRUE)))
      NULL
    }, error = function(e) conditionMessage(e))
    record(paste("vignette", basename(v)), is.null(err), if (is.null(err)) "" else paste(":", err))
  }
  c(passed = passed, failed = failed)
}

# Copy the package sources into dir, only the files that changed (a copy
# is newer than the objects built from the old one, so make rebuilds just
# what changed), and remove files the sources no longer have.
sync_sources <- function(dir) {
  not_built <- function(f) grep("\\.(o|so|dll)$", f, value = TRUE, invert = TRUE)
  files <- c("DESCRIPTION", "NAMESPACE",
             list.files("R", full.names = TRUE), list.files("data", full.names = TRUE),
             list.files("inst", recursive = TRUE, full.names = TRUE, all.files = TRUE),
             not_built(list.files("src", recursive = TRUE, full.names = TRUE)))
  old <- not_built(list.files(dir, recursive = TRUE, all.files = TRUE))
  unlink(file.path(dir, setdiff(old, files)))
  for (f in files) {
    target <- file.path(dir, f)
    if (file.exists(target) && identical(unname(tools::md5sum(f)), unname(tools::md5sum(target)))) next
    dir.create(dirname(target), showWarnings = FALSE, recursive = TRUE)
    file.copy(f, target, overwrite = TRUE)
  }
}

# Sanitizer reports (ASan errors, UBSan runtime errors) in the log files
# and in the output of the test process (UBSan may write to stderr).
sanitizer_report_pattern <- "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer"
sanitizer_reports <- function(dir, output) {
  n <- length(grep(sanitizer_report_pattern, output))
  for (f in list.files(dir, full.names = TRUE)) {
    lines <- readLines(f, warn = FALSE)
    hits <- grep(sanitizer_report_pattern, lines)
    if (length(hits) > 0L) {
      cat("\n== sanitizer report in", basename(f), "==\n")
      writeLines(utils::head(lines, 60L))
    }
    n <- n + length(hits)
  }
  n
}

if (!is.null(installed_lib)) run_suite(installed_lib)

if (!sanitize) {
  lib <- file.path(root, ".test-lib")
  install_into(root, lib)
  run_suite(lib)
}

# --sanitize
# the compiler (without a compiler cache such as ccache in front of it)
cxx_words <- strsplit(trimws(system2(r_bin, c("CMD", "config", "CXX17"), stdout = TRUE)), " +")[[1L]]
cxx <- setdiff(cxx_words, c("ccache", "sccache"))[1L]
libasan <- system2(cxx, "-print-file-name=libasan.so", stdout = TRUE)
if (!file.exists(libasan)) {
  cat("The ASan runtime (libasan.so) of", cxx, "was not found: install gcc's libasan.\n")
  finish(0L, 1L)
}
san <- file.path(root, ".sanitizer")
san_src <- file.path(san, "mlmfit")
san_lib <- file.path(san, "lib")
sync_sources(san_src)
install_into(san_src, san_lib, env = paste0("R_MAKEVARS_USER=", shQuote(file.path(root, "tools", "sanitizer.mk"))))
log_dir <- file.path(san, "logs")
unlink(log_dir, recursive = TRUE)
dir.create(log_dir)
fuzz_cases <- Sys.getenv("MLMFIT_FUZZ_CASES", "200")
env <- paste0(c("LD_PRELOAD=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "MLMFIT_FUZZ_CASES="),
              shQuote(c(libasan, paste0("detect_leaks=0:log_path=", file.path(log_dir, "asan")),
                        paste0("print_stacktrace=1:log_path=", file.path(log_dir, "ubsan")), fuzz_cases)))
out <- tempfile()
status <- system2(r_bin, c("--vanilla", "--no-echo", "-f", shQuote(file.path(root, "tools", "run-tests.R")),
                           "--args", "--installed", shQuote(san_lib), "--no-docs", if (!is.null(filter)) shQuote(filter)),
                  env = env, stdout = out, stderr = out)
lines <- readLines(out, warn = FALSE)
writeLines(lines)
result <- regmatches(lines, regexec("^([0-9]+) passed, ([0-9]+) failed$", lines))
result <- Filter(length, result)
reports <- sanitizer_reports(log_dir, lines)
if (length(result) == 0L) {
  cat("The test process under the sanitizers ended without a result (status ", status, ").\n", sep = "")
  finish(0L, 1L + reports)
}
last <- result[[length(result)]]
cat(sprintf("sanitizers: %d report%s\n", reports, if (reports == 1L) "" else "s"))
finish(as.integer(last[[2L]]), as.integer(last[[3L]]) + reports)
