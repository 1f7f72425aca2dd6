# What the database benchmarks (bench/db.R, bench/db-pirls.R) share: the
# package root and its .test-lib, their command-line options, the CPU time
# of the PostgreSQL server, and a connection to the benchmark's database.
# Sourced by them; not a script of its own.

args <- commandArgs(trailingOnly = TRUE)
root <- normalizePath(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1L])), ".."))
if (dir.exists(file.path(root, ".test-lib"))) .libPaths(c(file.path(root, ".test-lib"), .libPaths()))
arg_value <- function(name, default) {
  hit <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(hit)) strsplit(sub(paste0("^--", name, "="), "", hit[1L]), ",")[[1L]] else default
}

# CPU seconds used so far by the PostgreSQL server of MLMFIT_PG_DIR: its
# live processes, and the exited ones (parallel workers) through the
# postmaster's counts of its reaped children.
pg_cpu_seconds <- function() {
  pm <- as.integer(readLines(file.path(Sys.getenv("MLMFIT_PG_DIR"), "data", "postmaster.pid"), n = 1L))
  stat <- function(pid) {
    line <- tryCatch(suppressWarnings(readLines(sprintf("/proc/%d/stat", pid), warn = FALSE)), error = function(e) NULL)
    if (!length(line)) return(NULL)
    suppressWarnings(as.numeric(strsplit(sub("^.*\\) ", "", line), " ")[[1L]]))  # fields 3 (state) on
  }
  own <- stat(pm)
  total <- sum(own[12:15])  # utime, stime, cutime, cstime
  for (d in list.files("/proc")) {
    pid <- suppressWarnings(as.integer(d))
    if (is.na(pid) || pid == pm) next
    s <- stat(pid)
    if (length(s) >= 13L && identical(s[2L], as.numeric(pm))) total <- total + s[12L] + s[13L]
  }
  total / 100  # clock ticks
}

vmhwm_mb <- function() {
  line <- grep("^VmHWM", readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line)) / 1024
}

# SQLite: the database file sqlite_file; DuckDB: a file beside it;
# PostgreSQL: the server of MLMFIT_PG_PORT.
connect <- function(backend, sqlite_file) {
  if (backend == "SQLite") return(DBI::dbConnect(RSQLite::SQLite(), sqlite_file))
  if (backend == "DuckDB") {
    return(DBI::dbConnect(duckdb::duckdb(sub("\\.sqlite$", ".duckdb", sqlite_file), shared_home = FALSE)))
  }
  con <- DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = "localhost", port = as.integer(Sys.getenv("MLMFIT_PG_PORT")),
                        user = "postgres", dbname = "postgres")
  DBI::dbExecute(con, "SET work_mem = '256MB'")
  con
}
