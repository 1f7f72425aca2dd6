# Copies the tables of bench/results.md into README.md between the markers
# <!-- bench:start --> and <!-- bench:end -->, so the README shows the last
# benchmark run as it was written. Usage: Rscript tools/readme-bench.R
results <- readLines("bench/results.md")
readme <- readLines("README.md")
start <- grep("<!-- bench:start -->", readme, fixed = TRUE)
end <- grep("<!-- bench:end -->", readme, fixed = TRUE)
if (length(start) != 1L || length(end) != 1L || end < start) stop("README.md needs one pair of bench markers")
body <- results[-1L]  # without the "# Benchmark" title
body <- sub("^## ", "#### ", body)
writeLines(c(readme[seq_len(start)], body, readme[end:length(readme)]), "README.md")
