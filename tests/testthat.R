library(testthat)
library(mlmfit)

test_check("mlmfit")
