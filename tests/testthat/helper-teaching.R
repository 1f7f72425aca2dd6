# Datasets of the teaching lessons, loaded from the installed package.
teaching_dataset <- function(name) package_dataset(name, "mlmfit")

# A value reproduces a published figure when it rounds to the figure at
# the digits printed ("0.24": two decimals).
expect_printed <- function(value, printed) {
  digits <- mlmfit:::printed_decimals(printed)
  testthat::expect_equal(unname(round(value, digits)), round(as.numeric(printed), digits),
                         label = paste("value rounded to", digits, "decimals"))
}

teaching_hsb82 <- function() hsb82_data()
