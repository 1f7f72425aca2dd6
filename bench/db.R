# Fits to database tables: time of lmm() on a table against one scan of the
# same table by the same database (SELECT SUM(y)), and the peak memory of
# the R process during the fit (it must not grow with the rows). Times are
# wall-clock and CPU: the CPU time of the R process plus, for PostgreSQL,
# that of the server's processes (its parallel workers included), read
# from /proc; on a shared machine the CPU times are the ones to compare.
#
#   Rscript bench/db.R --quick            # 1e5 and 1e6 rows, SQLite and PostgreSQL (a few minutes)
#   Rscript bench/db.R                    # 1e7 and 1e8 rows on PostgreSQL, 1e7 on SQLite (hours; a quiet machine)
#   Rscript bench/db.R --sizes=1e7 --backends=PostgreSQL
#   R_LIBS=<duckdb's library> Rscript bench/db.R --sizes=1e6,1e7 --backends=DuckDB
#
# Models: `y ~ x + (x | g)` with n/1000 groups up to 100,000 (the nested
# case), and `y ~ x + (1 | a) + (1 | b)` with 1,000 x 100 crossed levels.
# Tables are generated inside the database (R never holds the rows); each
# fit runs in a fresh R process whose peak resident memory (VmHWM) is
# read before and after the fit. PostgreSQL: a throw-away server from
# tools/postgres.sh (started here unless MLMFIT_PG_PORT is set), with
# work_mem = 256MB for the session so that the per-group aggregation stays
# in memory. Writes bench/db-results.md. Needs mlmfit installed (it uses
# .test-lib when that exists), RSQLite and RPostgreSQL; check the disk
# (`df -h /work`) before 1e8 rows: about 8 GB in PostgreSQL. Appends a
# dated section to bench/db-results.md.

source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1L])), "db-common.R"))

# --- one case in this process: the fit, the scan floor, memory ---------------
if ("--case" %in% args) {
  i <- match("--case", args)
  backend <- args[i + 1L]
  model <- args[i + 2L]
  table <- args[i + 3L]
  dir <- args[i + 4L]
  suppressPackageStartupMessages({
    library(mlmfit)
    library(DBI)
  })
  con <- connect(backend, file.path(dir, "bench.sqlite"))
  tb <- suppressWarnings(dplyr::tbl(con, table))
  # wall-clock seconds, CPU seconds of R and of the database server
  timed <- function(expr) {
    db0 <- if (backend == "PostgreSQL") pg_cpu_seconds() else 0
    t0 <- proc.time()
    force(expr)
    t1 <- proc.time() - t0
    c(wall = t1[["elapsed"]], r = t1[["user.self"]] + t1[["sys.self"]],
      db = if (backend == "PostgreSQL") pg_cpu_seconds() - db0 else 0)
  }
  scan <- function() timed(DBI::dbGetQuery(con, paste("SELECT SUM(y) AS s FROM", table)))
  scans <- list(scan(), scan())
  f <- switch(model, nested = y ~ x + (x | g), crossed = y ~ x + (1 | a) + (1 | b))
  mem0 <- vmhwm_mb()
  t_fit <- timed(fit <- suppressMessages(lmm(f, data = tb)))
  mem1 <- vmhwm_mb()
  scans[[3L]] <- scan()
  t_scan <- apply(do.call(rbind, scans), 2L, stats::median)
  q <- mlmfit:::spec_db(fit)$queries
  cat(sprintf("RESULT\t%s\t%s\t%.0f\t%d\t%.3f\t%.3f\t%.1f\t%d\t%.3f\t%.10g\t%.3f\t%.3f\t%.3f\n", backend, model,
              nobs(fit), as.integer(max(ngrps(fit))), t_fit[["wall"]], t_scan[["wall"]], mem1 - mem0, nrow(q),
              sum(q$seconds), deviance(fit), t_fit[["r"]], t_fit[["db"]], t_scan[["r"]] + t_scan[["db"]]))
  DBI::dbDisconnect(con)
  quit(save = "no")
}

# --- the driver: tables, cases, results --------------------------------------
quick <- "--quick" %in% args
sizes <- as.numeric(arg_value("sizes", if (quick) c("1e5", "1e6") else c("1e7", "1e8")))
backends <- arg_value("backends", c("SQLite", "PostgreSQL"))
dir <- tempfile("mlmfit-bench-db")
dir.create(dir)
started_pg <- FALSE
if ("PostgreSQL" %in% backends && !nzchar(Sys.getenv("MLMFIT_PG_PORT"))) {
  out <- system2("sh", c(file.path(root, "tools", "postgres.sh"), "start"), stdout = TRUE)
  for (kv in strsplit(sub("^export ", "", out), " ")[[1L]]) {
    p <- strsplit(kv, "=")[[1L]]
    do.call(Sys.setenv, stats::setNames(list(p[2L]), p[1L]))
  }
  started_pg <- TRUE
}
# the server started here is stopped (its tables removed) however the run
# ends (on.exit() does nothing at a script's top level)
clean_up <- function() {
  if (started_pg) system2("sh", c(file.path(root, "tools", "postgres.sh"), "stop"))
  unlink(dir, recursive = TRUE)
}

# Tables made by the database itself: normal draws by Box-Muller from its
# uniform random numbers; random intercepts and slopes per group joined in.
make_tables <- function(con, backend, n) {
  k <- min(1e5, n / 1000)
  fmt <- function(v) format(v, scientific = FALSE)
  unif <- if (backend == "SQLite") "((random() / 9223372036854775808.0 + 1.0) / 2.0 * 0.999999 + 0.0000005)" else
    "(random() * 0.999999 + 0.0000005)"
  ln <- if (backend == "SQLite") "LOG" else "LN"
  # integer division: DuckDB's / divides exactly, its // as the others' /
  div <- if (backend == "DuckDB") " // " else " / "
  normal <- paste0("(SQRT(-2.0 * ", ln, "(", unif, ")) * COS(6.283185307179586 * ", unif, "))")
  rows <- function(m) if (backend == "SQLite") {
    paste0("(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ", fmt(m), ") SELECT i FROM s)")
  } else if (backend == "DuckDB") {
    paste0("(SELECT i FROM generate_series(1, ", fmt(m), ") AS t(i))")
  } else {
    paste0("(SELECT generate_series(1, ", fmt(m), ") AS i)")
  }
  for (t in c("grp", "nested", "crossed")) DBI::dbExecute(con, paste("DROP TABLE IF EXISTS", t))
  DBI::dbExecute(con, paste0("CREATE TABLE grp AS SELECT i AS g, 2.0 * ", normal, " AS u0, 0.5 * ", normal,
                             " AS u1, ", normal, " AS ua FROM ", rows(max(k, 1000)), " r"))
  DBI::dbExecute(con, paste0(
    "CREATE TABLE nested AS SELECT r.id, r.g, r.x, 1.0 + 0.5 * r.x + r.e + grp.u0 + grp.u1 * r.x AS y FROM ",
    "(SELECT i AS id, (i % ", fmt(k), ") + 1 AS g, ", normal, " AS x, ", normal, " AS e FROM ", rows(n), " s) r ",
    "JOIN grp ON grp.g = r.g"))
  DBI::dbExecute(con, paste0(
    "CREATE TABLE crossed AS SELECT r.id, r.a, r.b, r.x, 2.0 + 0.3 * r.x + r.e + ga.ua + 0.5 * gb.u1 AS y FROM ",
    "(SELECT i AS id, (i % 1000) + 1 AS a, ((i", div, "1000) % 100) + 1 AS b, ", normal, " AS x, ", normal, " AS e FROM ",
    rows(n), " s) r JOIN grp ga ON ga.g = r.a JOIN grp gb ON gb.g = r.b"))
  DBI::dbExecute(con, "DROP TABLE grp")
  if (backend == "PostgreSQL") DBI::dbExecute(con, "VACUUM ANALYZE")
}

results <- list()
tryCatch(for (backend in backends) {
  for (n in sizes) {
    if (backend == "SQLite" && n > 1e7) next
    con <- connect(backend, file.path(dir, "bench.sqlite"))
    t_make <- system.time(make_tables(con, backend, n))[["elapsed"]]
    DBI::dbDisconnect(con)
    cat(sprintf("%s, %g rows: tables made in %.1f s\n", backend, n, t_make))
    for (model in c("nested", "crossed")) {
      out <- system2(file.path(R.home("bin"), "Rscript"),
                     c(shQuote(file.path(root, "bench", "db.R")), "--case", backend, model, model, shQuote(dir)),
                     stdout = TRUE, stderr = TRUE, env = c(paste0("MLMFIT_PG_PORT=", Sys.getenv("MLMFIT_PG_PORT")),
                                                           paste0("MLMFIT_PG_DIR=", Sys.getenv("MLMFIT_PG_DIR"))))
      line <- grep("^RESULT", out, value = TRUE)
      if (!length(line)) {
        writeLines(c(out, paste("exit status:", if (is.null(attr(out, "status"))) 0 else attr(out, "status"))))
        stop("the case ", backend, " ", model, " ", n, " failed")
      }
      f <- strsplit(line, "\t")[[1L]][-1L]
      res <- data.frame(backend = f[1L], model = f[2L], n = as.numeric(f[3L]), groups = as.numeric(f[4L]),
                        fit = as.numeric(f[5L]), scan = as.numeric(f[6L]), mem = as.numeric(f[7L]),
                        queries = as.numeric(f[8L]), query_time = as.numeric(f[9L]), deviance = as.numeric(f[10L]),
                        fit_r_cpu = as.numeric(f[11L]), fit_db_cpu = as.numeric(f[12L]), scan_cpu = as.numeric(f[13L]))
      print(res)
      results[[length(results) + 1L]] <- res
    }
  }
}, finally = clean_up())
tab <- do.call(rbind, results)
secs <- function(x) ifelse(x < 1, sprintf("%.0f ms", 1000 * x), sprintf("%.2f s", x))
cpu_ratio <- (tab$fit_r_cpu + tab$fit_db_cpu) / tab$scan_cpu
lines <- c(
  "",
  paste0("## ", format(Sys.Date()), ": `Rscript bench/db.R", if (length(args)) paste0(" ", paste(args, collapse = " ")), "`"),
  "",
  paste0("Machine: ", sub("model name\t: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)[1L]), ", ",
         parallel::detectCores(), " cores; ", R.version.string, "; SQLite ", RSQLite::rsqliteVersion()[["library"]],
         if ("DuckDB" %in% backends) paste0("; DuckDB ", packageVersion("duckdb")),
         if ("PostgreSQL" %in% backends) paste0("; PostgreSQL ", sub(".*PostgreSQL ([0-9.]+).*", "\\1",
                                                                 system2("sh", c("-c", shQuote("ls /usr/lib/postgresql")), stdout = TRUE)[1L]))),
  paste0("Load average at the end: ", paste(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1:3], collapse = " "), "."),
  "",
  "`fit` is the whole `lmm()` call on the table (queries and the engine); `scan` one `SELECT SUM(y)` over the same table",
  "by the same database (the floor: one pass over the rows; the median of three); wall-clock, then CPU seconds (of R",
  "and, for PostgreSQL, of the server's processes; SQLite and DuckDB run inside R). `R memory` the rise of the R process's peak",
  "resident memory during the fit (for SQLite and DuckDB it includes the database engine).",
  "",
  "| database | model | rows | groups | fit | scan | fit / scan | fit CPU (R + database) | scan CPU | CPU fit / scan | queries (time in the database) | R memory |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  sprintf("| %s | %s | %s | %s | %s | %s | %.1fx | %s (%s + %s) | %s | %.1fx | %d (%s) | %.0f MB |", tab$backend,
          ifelse(tab$model == "nested", "`y ~ x + (x \\| g)`", "`y ~ x + (1 \\| a) + (1 \\| b)`"),
          format(tab$n, big.mark = ",", scientific = FALSE), format(tab$groups, big.mark = ",", scientific = FALSE),
          secs(tab$fit), secs(tab$scan), tab$fit / tab$scan, secs(tab$fit_r_cpu + tab$fit_db_cpu), secs(tab$fit_r_cpu),
          secs(tab$fit_db_cpu), secs(tab$scan_cpu), cpu_ratio, tab$queries, secs(tab$query_time), tab$mem))
cat(lines, file = file.path(root, "bench", "db-results.md"), sep = "\n", append = TRUE)
writeLines(lines)
