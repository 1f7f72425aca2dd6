# Builds data/popular.rda from Hox's popular2 file in ../shared/data
# (see ../shared/data/PROVENANCE.md for its source and checks).
# Run from the package root: Rscript data-raw/popular.R
popular <- utils::read.csv("../shared/data/hox_popular2.csv")
stopifnot(nrow(popular) == 2000L, length(unique(popular$class)) == 100L)
# sex stays 0/1 as in the book, whose models use it as a dummy (and Csex).
for (v in c("pupil", "class", "extrav", "sex", "texp", "popteach")) {
  stopifnot(all(popular[[v]] == round(popular[[v]])))
  popular[[v]] <- as.integer(popular[[v]])
}
save(popular, file = "data/popular.rda", compress = "xz")
