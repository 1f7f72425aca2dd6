# Builds the package's website with pkgdown (home page, reference with the
# examples run, articles from the vignettes, news) into docs/, or into the
# directory given as the first argument.
#
# Usage (from the root of a clone):
#   Rscript tools/build-site.R [destination] [--installed LIB]
#
# The package is installed into the worktree's .test-lib (as the test
# command does, reusing compiled objects) and the site is built from that
# installation; with --installed, from the mlmfit already installed in LIB
# (the website test uses the installation under test). Help pages or vignettes that _pkgdown.yml does not list yet
# are added under "Other", so that a new page never breaks the build.
args <- commandArgs(trailingOnly = TRUE)
root <- normalizePath(".")
installed <- match("--installed", args, nomatch = 0L)
lib <- if (installed > 0L) args[[installed + 1L]] else file.path(root, ".test-lib")
positional <- if (installed > 0L) args[-c(installed, installed + 1L)] else args
destination <- if (length(positional) > 0L) positional[[1L]] else file.path(root, "docs")

if (installed == 0L) {
  dir.create(lib, showWarnings = FALSE)
  log <- tempfile()
  env <- if (nzchar(Sys.getenv("MAKEFLAGS"))) character() else "MAKEFLAGS=-j2"
  status <- system2(file.path(R.home("bin"), "R"),
                    c("CMD", "INSTALL", "--no-test-load", "--no-multiarch", paste0("--library=", shQuote(lib)),
                      shQuote(root)),
                    stdout = log, stderr = log, env = env)
  if (status != 0L) {
    writeLines(readLines(log))
    stop("Installing mlmfit failed.", call. = FALSE)
  }
}
.libPaths(c(lib, .libPaths()))

pkg <- pkgdown::as_pkgdown(root)
config <- pkg$meta
# a topic is listed when its name or one of its aliases is
listed_topics <- unlist(lapply(config$reference, `[[`, "contents"))
public <- !pkg$topics$internal
is_listed <- mapply(function(name, aliases) any(c(name, aliases) %in% listed_topics),
                    pkg$topics$name[public], pkg$topics$alias[public])
reference <- config$reference
unlisted <- pkg$topics$name[public][!is_listed]
if (length(unlisted) > 0L) reference <- c(reference, list(list(title = "Other", contents = as.list(unlisted))))
articles <- config$articles
unlisted <- setdiff(pkg$vignettes$name, unlist(lapply(articles, `[[`, "contents")))
if (length(unlisted) > 0L) articles <- c(articles, list(list(title = "Other", contents = as.list(unlisted))))

pkgdown::build_site(root, install = FALSE, new_process = FALSE, preview = FALSE,
                    override = list(destination = destination, reference = reference, articles = articles))
