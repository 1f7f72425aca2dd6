# GLMMs fitted by PIRLS in the database (the table does not compress): the
# passes over the table, the CPU time of the fit (R and the database), and
# the CPU time of one pass and of one scan of the table (SELECT SUM(y)).
#
#   Rscript bench/db-pirls.R                                  # 1e5 rows, 1,000 groups, SQLite and PostgreSQL
#   Rscript bench/db-pirls.R --rows=1e5 --groups=1000 --backends=PostgreSQL --families=binomial --reps=3
#
# Models: binomial `y ~ x + (1 | g)` and Poisson `k ~ x + (1 | g)` with a
# continuous x; options(mlmfit.db_compress_max_rows = 100) forces PIRLS.
# CPU time: the R process's own, plus for PostgreSQL the server's
# (pg_cpu_seconds() of bench/db-common.R, read after the connection closed).
# PostgreSQL: a throw-away server from tools/postgres.sh whose
# MLMFIT_PG_PORT and MLMFIT_PG_DIR are set. Needs mlmfit installed (.test-lib
# when it exists), RSQLite and RPostgreSQL.

source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1L])), "db-common.R"))

rows <- as.numeric(arg_value("rows", "1e5"))
groups <- as.numeric(arg_value("groups", "1000"))
backends <- arg_value("backends", c("SQLite", "PostgreSQL"))
families <- arg_value("families", c("binomial", "poisson"))
reps <- as.integer(arg_value("reps", "1"))

suppressPackageStartupMessages({
  library(mlmfit)
  library(DBI)
})

# CPU seconds of expr run on a fresh connection (R's and the server's).
with_cpu <- function(backend, file, expr_of_con) {
  pg0 <- if (backend == "PostgreSQL") pg_cpu_seconds() else 0
  t0 <- proc.time()
  con <- connect(backend, file)
  value <- expr_of_con(con)
  DBI::dbDisconnect(con)
  if (backend == "PostgreSQL") Sys.sleep(0.3)  # the backend exits and is reaped
  t1 <- proc.time()
  pg1 <- if (backend == "PostgreSQL") pg_cpu_seconds() else 0
  list(value = value, cpu = (t1[["user.self"]] - t0[["user.self"]]) + (t1[["sys.self"]] - t0[["sys.self"]]) + (pg1 - pg0))
}

set.seed(1)
g <- sample(seq_len(groups), rows, TRUE)
x <- rnorm(rows)
u <- rnorm(groups, 0, 0.8)
d <- data.frame(g = g, x = x, y = rbinom(rows, 1, plogis(-0.2 + 0.8 * x + u[g])),
                k = rpois(rows, exp(0.3 + 0.4 * x + u[g] / 2)))
file <- tempfile(fileext = ".sqlite")
for (backend in backends) {
  con <- connect(backend, file)
  DBI::dbWriteTable(con, "pirls_bench", d, overwrite = TRUE)
  if (backend == "PostgreSQL") DBI::dbExecute(con, "ANALYZE pirls_bench")
  DBI::dbDisconnect(con)
}
options(mlmfit.db_compress_max_rows = 100)
out <- NULL
for (backend in backends) for (family in families) {
  f <- if (family == "binomial") y ~ x + (1 | g) else k ~ x + (1 | g)
  fam <- get(family)
  mem <- glmm(f, data = d, family = fam)
  scan <- median(vapply(seq_len(5), function(i) with_cpu(backend, file, function(con) {
    for (j in 1:10) DBI::dbGetQuery(con, "SELECT SUM(x) AS s FROM pirls_bench")
  })$cpu / 10, 0))
  for (r in seq_len(reps)) {
    res <- with_cpu(backend, file, function(con) {
      suppressMessages(glmm(f, data = dplyr::tbl(con, "pirls_bench"), family = fam))
    })
    fit <- res$value
    passes <- mlmfit:::fit_optinfo(fit)$pirls_passes
    rel_ll <- abs(as.numeric(logLik(fit)) - as.numeric(logLik(mem))) / abs(as.numeric(logLik(mem)))
    rel_fe <- max(abs(fixef(fit) - fixef(mem))) / max(abs(fixef(mem)))
    out <- rbind(out, data.frame(backend = backend, family = family, rows = rows, groups = groups, rep = r,
                                 passes = passes, fit_cpu = res$cpu, per_pass_ms = 1000 * res$cpu / passes,
                                 scan_ms = 1000 * scan, pass_scans = res$cpu / passes / scan, rel_loglik = rel_ll,
                                 rel_fixef = rel_fe))
    print(out[nrow(out), ], row.names = FALSE)
  }
}
unlink(file)
cat("\nmedians:\n")
print(aggregate(cbind(passes, fit_cpu, per_pass_ms, scan_ms, pass_scans, rel_loglik, rel_fixef) ~ backend + family,
                data = out, FUN = median), row.names = FALSE)
