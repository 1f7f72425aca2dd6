# Datasets of the teaching lessons, loaded from the installed package.
mlmfit_data <- function(name) {
  e <- new.env()
  utils::data(list = name, package = "mlmfit", envir = e)
  e[[name]]
}

hsb82_data <- function() {
  e <- new.env()
  utils::data("Hsb82", package = "mlmRev", envir = e)
  e$Hsb82
}
