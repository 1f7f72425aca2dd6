#!/bin/sh
# One command from a fresh clone: dependencies, the package, a demo fit.
set -e
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
MAKEFLAGS="${MAKEFLAGS:--j2}" R CMD INSTALL --no-test-load . >/tmp/mlmfit-install.log 2>&1 || { cat /tmp/mlmfit-install.log; exit 1; }
Rscript tools/demo.R
