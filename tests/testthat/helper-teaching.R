# Datasets of the teaching lessons, loaded from the installed package.
teaching_dataset <- function(name) {
  e <- new.env()
  utils::data(list = name, package = "mlmfit", envir = e)
  e[[name]]
}

teaching_hsb82 <- function() {
  e <- new.env()
  utils::data("Hsb82", package = "mlmRev", envir = e)
  e$Hsb82
}
