#!/bin/sh
# One command from a fresh clone: the dependencies, then the package built
# as a source tarball with its vignettes (R CMD build) and installed from
# that tarball, as a user installing a released version gets it (so that
# vignette(package = "mlmfit") and browseVignettes("mlmfit") list the
# lessons), then a demo fit. R CMD INSTALL puts the package into R's first
# library (set R_LIBS to choose another).
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
sh tools/install-deps.sh
build=$(mktemp -d)
log="$build/install.log"
export MAKEFLAGS="${MAKEFLAGS:--j2}"
echo "mlmfit: building the source package with its vignettes (R CMD build)"
(cd "$build" && R CMD build --no-manual "$root") >"$log" 2>&1 || { cat "$log"; exit 1; }
echo "mlmfit: installing $(basename "$build"/mlmfit_*.tar.gz)"
R CMD INSTALL --no-test-load "$build"/mlmfit_*.tar.gz >>"$log" 2>&1 || { cat "$log"; exit 1; }
rm -rf "$build"
Rscript tools/demo.R
