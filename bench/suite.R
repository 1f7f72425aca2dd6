# Timing of the suite under the BLAS this process was started with (see
# run.R, which starts it once per BLAS): mlmfit and its peers on the same
# data in one R process, runs alternating between the packages, medians.
# The current lme4 from CRAN cannot share a process with Debian's lme4: it
# runs in a worker process whose library path starts at bench/.peers/lib,
# timed inside the worker (the data are sent once per case, not timed).
# For mlmfit the floor is measured in the same process: one pass over the
# data a fit must read, the cost of one deviance evaluation (and gradient),
# and what the fit used (evaluations, passes).
# Usage: Rscript bench/suite.R <out.rds> <case,case,...|all> [--quick] [--peers=a,b] [--slow-limit=seconds]
args <- commandArgs(trailingOnly = TRUE)
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
source(file.path(bench_dir, "cases.R"))
out_file <- args[[1]]
opt <- function(name, default = NULL) {
  hit <- grep(paste0("^--", name, "(=|$)"), args, value = TRUE)
  if (length(hit) == 0L) return(default)
  val <- sub(paste0("^--", name, "=?"), "", hit[[1]])
  if (val == "") TRUE else val
}
quick <- isTRUE(opt("quick"))
only <- args[[2]]
cases <- if (only == "all") bench_cases else if (startsWith(only, "scaling:")) {
  list(scaling = scaling_case(as.numeric(sub("scaling:", "", only))))
} else bench_cases[strsplit(only, ",")[[1]]]
if (anyNA(names(cases))) stop("unknown case in ", only)
peers_wanted <- strsplit(opt("peers", "lme4,lme4_cran,glmmTMB,nlme"), ",")[[1]]
# A peer whose first fit of a case takes longer than this is not repeated
# (its median is that one fit): the full suite would otherwise take hours.
slow_limit <- as.numeric(opt("slow-limit", "60"))
# A peer fit still running after this many seconds is abandoned (at R's
# next interrupt check) and reported as slower than the limit.
peer_limit <- as.numeric(opt("peer-limit", "600"))
# --clock=cpu times user + system CPU seconds instead of elapsed ones (for
# a busy machine; run.R then keeps OpenBLAS to one thread); --max-reps caps
# the runs per case.
cpu_clock <- identical(opt("clock", "elapsed"), "cpu")
max_reps <- as.integer(opt("max-reps", "1000"))
seconds <- function(st) if (cpu_clock) st[["user.self"]] + st[["sys.self"]] else st[["elapsed"]]
peer_lib <- normalizePath(file.path(bench_dir, ".peers", "lib"), mustWork = FALSE)

suppressPackageStartupMessages({
  library(mlmfit)
  for (p in intersect(peers_wanted, c("lme4", "glmmTMB", "nlme"))) library(p, character.only = TRUE)
})
Rcpp::sourceCpp(file.path(bench_dir, "floor.cpp"), cacheDir = file.path(bench_dir, ".peers", "cpp-cache"))

# The worker for the current CRAN lme4.
worker <- NULL
if ("lme4_cran" %in% peers_wanted) {
  if (!dir.exists(file.path(peer_lib, "lme4"))) {
    message("no lme4 in ", peer_lib, " (run Rscript bench/setup.R): lme4_cran left out")
    peers_wanted <- setdiff(peers_wanted, "lme4_cran")
  } else {
    worker <- parallel::makePSOCKcluster(1L)
    parallel::clusterCall(worker, function(lib, cases_file) {
      .libPaths(c(lib, .libPaths()))
      suppressPackageStartupMessages(library(lme4))
      source(cases_file)
      invisible(TRUE)
    }, peer_lib, normalizePath(file.path(bench_dir, "cases.R")))
  }
}
worker_lme4 <- if (is.null(worker)) NA_character_ else
  parallel::clusterCall(worker, function() utils::packageDescription("lme4")$Version)[[1]]

`%||%` <- function(a, b) if (is.null(a)) b else a
quietly <- function(expr) suppressMessages(suppressWarnings(expr))

# One timed run: elapsed seconds, criterion and the fit (or error).
run_once <- function(pkg, case, data, fit0 = NULL, nsim = NULL) {
  if (pkg == "lme4_cran") {
    return(parallel::clusterCall(worker, function(case_name, pkg, nsim, limit, cpu_clock) {
      seconds <- function(st) if (cpu_clock) st[["user.self"]] + st[["sys.self"]] else st[["elapsed"]]
      case <- bench_cases[[case_name]]
      data <- .GlobalEnv$.bench_data
      invisible(gc())
      setTimeLimit(elapsed = limit, transient = TRUE)
      on.exit(setTimeLimit(elapsed = Inf))
      t0 <- proc.time()[["elapsed"]]
      res <- tryCatch({
        if (identical(case$kind, "bootstrap")) {
          fit <- suppressMessages(suppressWarnings(fit_with(pkg, case, data)))
          t <- seconds(system.time(suppressMessages(suppressWarnings(bootstrap_with(pkg, fit, nsim)))))
          list(time = t, criterion = NA_real_)
        } else {
          batch <- if (is.null(case$batch)) 1L else case$batch
          t <- seconds(system.time(for (b in seq_len(batch)) fit <- suppressMessages(suppressWarnings(fit_with(pkg, case, data)))))
          list(time = t / batch, criterion = criterion(fit))
        }
      }, error = function(e) list(time = NA_real_, criterion = NA_real_, error = conditionMessage(e),
                                  timed_out = proc.time()[["elapsed"]] - t0 >= 0.99 * limit))
      res
    }, attr(case, "name"), "lme4_cran", nsim, peer_limit, cpu_clock)[[1]])
  }
  invisible(gc())
  if (pkg != "mlmfit") {
    setTimeLimit(elapsed = peer_limit, transient = TRUE)
    on.exit(setTimeLimit(elapsed = Inf))
  }
  t0 <- proc.time()[["elapsed"]]
  tryCatch({
    if (identical(case$kind, "bootstrap")) {
      t <- seconds(system.time(quietly(bootstrap_with(pkg, fit0, nsim))))
      list(time = t, criterion = NA_real_)
    } else {
      batch <- case$batch %||% 1L
      t <- seconds(system.time(for (b in seq_len(batch)) fit <- quietly(fit_with(pkg, case, data))))
      list(time = t / batch, criterion = criterion(fit), fit = fit)
    }
  }, error = function(e) list(time = NA_real_, criterion = NA_real_, error = conditionMessage(e),
                              timed_out = pkg != "mlmfit" && proc.time()[["elapsed"]] - t0 >= 0.99 * peer_limit))
}

median_time <- function(x) if (all(is.na(x))) NA_real_ else stats::median(x, na.rm = TRUE)

# Seconds per call of f(), repeated until the total is long enough for
# the clock (bench::hires_time when installed, else proc.time).
clock <- if (cpu_clock) function() sum(proc.time()[c("user.self", "sys.self")]) else
  if (requireNamespace("bench", quietly = TRUE)) function() as.numeric(bench::hires_time()) else
  function() proc.time()[["elapsed"]]
per_call <- function(f, min_time = 0.1) {
  n <- 1L
  repeat {
    t0 <- clock()
    for (i in seq_len(n)) f()
    t <- clock() - t0
    if (t >= min_time || n >= 1e6) return(t / n)
    n <- n * 4L
  }
}

# The floor of an mlmfit fit, in this process: one pass over X, y and the
# codes and columns of Z; one deviance evaluation (the marginal cost of
# more evaluations in one engine call, without the call's set-up); the
# gradient's extra cost; what the fit used (optinfo).
floor_of <- function(fit, case) {
  ns <- asNamespace("mlmfit")
  spec <- ns$fit_spec(fit)
  rows <- spec$rows
  codes <- lapply(rows$groups, function(g) g)
  cols <- unlist(lapply(rows$z, function(zb) Filter(function(r) is.double(r) && length(r) > 1L, zb)), recursive = FALSE)
  X <- rows$X
  y <- as.double(rows$y)
  pass <- per_call(function() data_pass(X, y, codes, cols))
  th <- unname(fit$theta)
  grad <- passes <- NA_real_
  evals <- fit$optinfo$evals
  k <- 6L
  nearby <- function(p) matrix(p, length(p), k) * rep(1 + 0.001 * seq_len(k), each = length(p))
  if (inherits(fit, "mlmfit_glmm")) {
    per_eval <- per_call(function() ns$engine_evaluate_glmm(spec, th * 1.001, fit$beta, fit$eta, fit$nAGQ, fit$control))
    passes <- fit$optinfo$pirls_passes
  } else {
    xp <- if (inherits(fit, "mlmfit_lmm_structured")) NULL else ns$fit_xp(fit)
    params <- if (is.null(xp)) c(th, unname(ns$fit_psi(fit))) else th
    t1 <- per_call(function() ns$engine_deviance(spec, matrix(params, ncol = 1L), fit$REML, xp))
    tk <- per_call(function() ns$engine_deviance(spec, nearby(params), fit$REML, xp))
    per_eval <- max(tk - t1, 0) / (k - 1L)
    if (!is.null(xp)) {
      grad <- max(per_call(function() ns$engine_deviance(spec, matrix(th, ncol = 1L), fit$REML, xp, gradient = TRUE)) - t1, 0)
    }
  }
  list(pass = pass, eval = per_eval, gradient = grad, evals = evals, passes = passes)
}

results <- list()
for (name in names(cases)) {
  case <- cases[[name]]
  attr(case, "name") <- name
  message(format(Sys.time(), "%H:%M:%S "), "timing ", name)
  data <- case$data(quick)
  pkgs <- c("mlmfit", intersect(case$peers, peers_wanted))
  if (!is.null(worker) && "lme4_cran" %in% pkgs) {
    parallel::clusterCall(worker, function(d) { .GlobalEnv$.bench_data <- d; invisible(NULL) }, data)
  }
  nsim <- if (quick) 50L else case$nsim
  fit0 <- list()
  if (identical(case$kind, "bootstrap")) {
    for (p in setdiff(pkgs, "lme4_cran")) fit0[[p]] <- quietly(fit_with(p, case, data))
  }
  times <- setNames(vector("list", length(pkgs)), pkgs)
  crit <- setNames(rep(NA_real_, length(pkgs)), pkgs)
  errors <- list()
  fit_m <- NULL
  reps <- min(if (quick) min(case$reps, 2L) else case$reps, max_reps)
  for (r in seq_len(reps)) {
    order <- if (r %% 2L == 1L) pkgs else rev(pkgs)  # alternate who goes first
    for (pkg in order) {
      if (r > 1L && (is.na(times[[pkg]][1]) || times[[pkg]][1] > slow_limit)) next
      res <- run_once(pkg, case, data, fit0[[pkg]], nsim)
      times[[pkg]] <- c(times[[pkg]], res$time)
      if (!is.na(res$criterion)) crit[[pkg]] <- res$criterion
      if (!is.null(res$error)) errors[[pkg]] <- if (isTRUE(res$timed_out)) "time limit" else res$error
      if (pkg == "mlmfit" && !is.null(res$fit)) fit_m <- res$fit
    }
  }
  fl <- if (!is.null(fit_m)) tryCatch(floor_of(fit_m, case), error = function(e) list(error = conditionMessage(e))) else NULL
  results[[name]] <- list(label = case$label, n = nrow(data), times = times,
                          median = vapply(times, median_time, numeric(1)), runs = lengths(times),
                          criterion = crit, errors = errors, floor = fl)
  print(results[[name]][c("median", "runs", "criterion")])
  if (length(errors)) print(errors)
  rm(data, fit0, fit_m)
  invisible(gc())
}
if (!is.null(worker)) parallel::stopCluster(worker)
version_of <- function(p) utils::packageDescription(p)$Version
versions <- c(mlmfit = version_of("mlmfit"), lme4 = version_of("lme4"), lme4_cran = worker_lme4,
              glmmTMB = version_of("glmmTMB"), nlme = version_of("nlme"))
saveRDS(list(results = results, blas = extSoftVersion()[["BLAS"]], versions = versions, quick = quick,
             slow_limit = slow_limit, cpu_clock = cpu_clock), out_file)
message("wrote ", out_file)
