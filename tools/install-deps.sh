#!/bin/sh
# Installs what mlmfit needs to build, test and check, and to build its
# website (pkgdown), from Debian's prebuilt r-cran-* packages (seconds, not
# the minutes of CRAN source builds). With --browser, also Chromium, which
# the website test of the full tier opens the site in (.ci/run asks for it).
# Needs root (or sudo) on a Debian machine with R.
#
# Usage: sh tools/install-deps.sh [--browser]
set -e
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  r-base-dev r-cran-rcpp r-cran-rcppeigen r-cran-cli r-cran-nlme r-cran-matrix \
  r-cran-testthat r-cran-lme4 r-cran-mlmrev r-cran-mass \
  r-cran-knitr r-cran-rmarkdown pandoc \
  r-cran-ggplot2 r-cran-performance \
  r-cran-generics r-cran-lmertest r-cran-pbkrtest r-cran-broom.mixed r-cran-emmeans \
  r-cran-estimability r-cran-tibble r-cran-boot \
  r-cran-insight r-cran-parameters r-cran-car r-cran-effects r-cran-lattice r-cran-ggeffects r-cran-sjplot \
  r-cran-pkgdown r-cran-httpuv r-cran-processx r-cran-jsonlite r-cran-xml2 \
  r-cran-dbi r-cran-rsqlite r-cran-dbplyr r-cran-dplyr r-cran-rlang r-cran-withr \
  r-cran-rpostgresql postgresql \
  >/dev/null
if [ "${1:-}" = "--browser" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "mlmfit: dependencies installed"
