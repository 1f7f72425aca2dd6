# Builds data/nurseturnover.rda: a simulated stand-in for the London nurses
# turnover survey of the multilevel lecture notes (seed 002): 1389 nurses in
# 18 hospitals, whether each plans to leave her or his job within three
# years. The survey's data are not public (../shared/data/PROVENANCE.md),
# so the design is simulated with the notes' glmer estimates as the truth
# (simulate_nurseturnover(), in tests/testthat/helper-nurseturnover.R so
# that the tests can draw other samples from it).
# Run from the package root: Rscript data-raw/nurseturnover.R
source("tests/testthat/helper-nurseturnover.R")
nurseturnover <- simulate_nurseturnover(seed = 1)
stopifnot(nrow(nurseturnover) == 1389L, nlevels(nurseturnover$HOSPITAL) == 18L,
          sum(nurseturnover$age > 18) == 1385L)
save(nurseturnover, file = "data/nurseturnover.rda", compress = "xz")
str(nurseturnover)
table(nurseturnover$leave)
