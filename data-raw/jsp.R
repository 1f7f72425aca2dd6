# Builds data/jsp.rda from the Junior School Project file in ../shared/data
# (see ../shared/data/PROVENANCE.md for its source and checks).
# Run from the package root: Rscript data-raw/jsp.R
jsp <- utils::read.csv("../shared/data/jsp.csv")
stopifnot(nrow(jsp) == 3236L, length(unique(jsp$id)) == 1192L,
          nrow(unique(jsp[c("school", "class")])) == 94L)
for (v in c("school", "class", "raven", "id", "english", "math", "year")) jsp[[v]] <- as.integer(jsp[[v]])
# The codebook's codings, as labelled factors (boy = 1, girl = 0; father's
# social class 1-9 in the codebook's order).
jsp$gender <- factor(jsp$gender, levels = c(0L, 1L), labels = c("girl", "boy"))
jsp$social <- factor(jsp$social, levels = 1:9,
                     labels = c("I", "II", "III non-manual", "III manual", "IV", "V",
                                "long-term unemployed", "not currently employed", "father absent"))
jsp <- jsp[c("school", "class", "id", "gender", "social", "raven", "english", "math", "year")]
rownames(jsp) <- NULL
save(jsp, file = "data/jsp.rda", compress = "xz")
