# Builds data/nels88.rda from the NELS:88 23-school file in ../shared/data
# (see ../shared/data/PROVENANCE.md for its source and checks).
# Run from the package root: Rscript data-raw/nels88.R
nels88 <- utils::read.csv("../shared/data/nels88_imm23.csv")
stopifnot(nrow(nels88) == 519L, length(unique(nels88$schid)) == 23L)
int_cols <- c("schid", "stuid", "homework", "white", "parented", "public", "ratio", "percmin",
              "math", "sex", "race", "sctype", "cstr", "scsize", "urban", "region")
for (v in int_cols) nels88[[v]] <- as.integer(nels88[[v]])
save(nels88, file = "data/nels88.rda", compress = "xz")
