# Builds data/nurses.rda from Hox's nurses file in ../shared/data
# (see ../shared/data/PROVENANCE.md for its source and checks).
# Run from the package root: Rscript data-raw/nurses.R
nurses <- utils::read.csv("../shared/data/hox_nurses.csv")
stopifnot(nrow(nurses) == 1000L, length(unique(nurses$hospital)) == 25L, length(unique(nurses$wardid)) == 100L)
# Codes stay numeric (0/1, 0/1/2) as in the book, whose models use them as
# dummies and centre them (Cexpcon, Chospsize).
for (v in c("hospital", "ward", "wardid", "nurse", "age", "gender", "experien", "stress",
            "wardtype", "hospsize", "expcon")) {
  stopifnot(all(nurses[[v]] == round(nurses[[v]])))
  nurses[[v]] <- as.integer(nurses[[v]])
}
save(nurses, file = "data/nurses.rda", compress = "xz")
