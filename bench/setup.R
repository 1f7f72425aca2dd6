# Set-up of the benchmark's peers that the machine does not have, into
# bench/.peers/ (kept out of git and the build); nothing system-wide changes.
#  * lib/: the current lme4 from CRAN (2.x) and the newer packages it needs
#    (Rcpp, RcppEigen, reformulas, Rdpack, rbibutils). The Debian lme4
#    1.1-31 stays in the system library; bench/run.R loads the CRAN one in a
#    worker process whose library path starts here.
#  * openblas/: Debian's OpenBLAS (libopenblas0-pthread) unpacked, not
#    installed, so the machine's default BLAS (alternatives) is untouched;
#    bench/run.R selects it per process with LD_LIBRARY_PATH.
# Usage, from the package root: Rscript bench/setup.R   (about 10 minutes, once)
# Needs: R >= 4.2, a compiler, network access to CRAN and Debian's archive.
bench_dir <- dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))
peers <- file.path(bench_dir, ".peers")
lib <- file.path(peers, "lib")
dir.create(lib, recursive = TRUE, showWarnings = FALSE)
repos <- c(CRAN = "https://cloud.r-project.org")

# lme4 from CRAN with every package of its dependency tree whose installed
# version is older than a constraint in that tree (or missing).
avail <- utils::available.packages(repos = repos)
if (!"lme4" %in% rownames(avail)) stop("CRAN offers no lme4 for this R version")
base_pkgs <- rownames(utils::installed.packages(priority = "base"))
need <- character()
todo <- "lme4"
seen <- character()
while (length(todo)) {
  p <- todo[[1]]; todo <- todo[-1]
  if (p %in% seen) next
  seen <- c(seen, p)
  fields <- avail[p, c("Depends", "Imports", "LinkingTo")]
  deps <- unlist(lapply(fields[!is.na(fields)], function(f) trimws(strsplit(gsub("\n", " ", f), ",")[[1]])))
  for (d in deps) {
    name <- sub("[ (].*", "", d)
    if (name %in% c("R", base_pkgs)) next
    min_v <- if (grepl(">=", d)) trimws(sub(".*>=\\s*([^)]*)\\).*", "\\1", d)) else NA
    have <- tryCatch(utils::packageVersion(name, lib.loc = c(lib, .libPaths())), error = function(e) NULL)
    too_old <- is.null(have) || (!is.na(min_v) && have < package_version(min_v))
    if (too_old) {
      if (!name %in% rownames(avail)) stop(sprintf("%s %s is needed by %s and CRAN has none for this R", name, min_v, p))
      need <- union(need, name)
    }
    todo <- c(todo, intersect(name, rownames(avail)))
  }
}
need <- union(setdiff(need, "lme4"), "lme4")  # lme4 last
have_lme4 <- tryCatch(utils::packageVersion("lme4", lib.loc = lib), error = function(e) NULL)
if (!is.null(have_lme4) && have_lme4 >= avail["lme4", "Version"]) {
  message("lme4 ", have_lme4, " already in ", lib)
} else {
  message("installing into ", lib, ": ", paste(need, collapse = ", "))
  .libPaths(c(lib, .libPaths()))
  utils::install.packages(need, lib = lib, repos = repos, dependencies = FALSE, Ncpus = 2L)
  v <- utils::packageVersion("lme4", lib.loc = lib)
  message("lme4 ", v, " installed in ", lib)
}

# OpenBLAS, unpacked from Debian's package.
ob <- file.path(peers, "openblas")
ob_lib <- file.path(ob, "usr/lib/x86_64-linux-gnu/openblas-pthread")
if (!file.exists(file.path(ob_lib, "libblas.so.3"))) {
  dir.create(ob, showWarnings = FALSE)
  owd <- setwd(ob)
  status <- system("apt-get download libopenblas0-pthread")
  deb <- list.files(".", pattern = "^libopenblas0-pthread.*\\.deb$")
  if (status != 0L || length(deb) == 0L) stop("apt-get download libopenblas0-pthread failed (run apt-get update first?)")
  system2("dpkg", c("-x", deb[[1]], "."))
  unlink(deb)
  setwd(owd)
}
if (!file.exists(file.path(ob_lib, "libblas.so.3"))) stop("no libblas.so.3 in ", ob_lib)
message("OpenBLAS in ", normalizePath(ob_lib))
