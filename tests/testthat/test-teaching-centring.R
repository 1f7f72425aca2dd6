test_that("group_mean() and center_within() reproduce Hsb82's meanses and cses", {
  skip_if_not_installed("mlmRev")
  hsb <- teaching_hsb82()
  expect_equal(group_mean(hsb$ses, hsb$school), hsb$meanses, tolerance = 1e-12)
  expect_equal(center_within(hsb$ses, hsb$school), hsb$cses, tolerance = 1e-12)
})

test_that("group_mean() matches nels88's meanses and handles missing values by hand", {
  nels88 <- teaching_dataset("nels88")
  expect_equal(group_mean(nels88$ses, nels88$schid), nels88$meanses, tolerance = 1e-6)
  x <- c(1, 2, NA, 10, 20, NA)
  g <- c("a", "a", "a", "b", "b", "c")
  expect_equal(group_mean(x, g), c(1.5, 1.5, 1.5, 15, 15, NA))
  expect_equal(center_within(x, g), c(-0.5, 0.5, NA, -5, 5, NA))
  expect_equal(group_mean(c(1, 2, 3), c(1, NA, 1)), c(2, NA, 2))
  expect_equal(center_grand(c(1, 2, NA, 5)), c(-5 / 3, -2 / 3, NA, 7 / 3))
  within <- center_within(nels88$math, nels88$schid)
  expect_equal(as.vector(tapply(within, nels88$schid, mean)), rep(0, 23), tolerance = 1e-10)
})

test_that("centring helpers refuse bad input with classed errors", {
  expect_error(group_mean(letters[1:3], 1:3), class = "mlmfit_error_argument")
  expect_error(group_mean(1:3, 1:2), class = "mlmfit_error_argument")
  expect_error(center_grand("a"), class = "mlmfit_error_argument")
})
