# The teaching datasets of ../shared/data are shipped as package data.
nels88_data <- function() {
  e <- new.env()
  utils::data("nels88", package = "mlmfit", envir = e)
  e$nels88
}
