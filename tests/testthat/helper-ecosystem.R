# Data and expectations of the tests of the ecosystem methods (bridge to
# lme4, insight/performance, car, effects, emmeans, lattice, model
# selection); their fits are shared through test_fit() (helper-fits.R).

# Counts with exposures: 30 groups of 8, a log-normal group effect.
poisson_offset_data <- function() {
  set.seed(214)
  d <- data.frame(g = factor(rep(seq_len(30), each = 8)), x = stats::rnorm(240),
                  exposure = stats::runif(240, 1, 10))
  u <- stats::rnorm(30, sd = 0.6)
  d$y <- stats::rpois(240, d$exposure * exp(0.4 + 0.3 * d$x + u[d$g]))
  d
}

# Numbers of two results (data frames, lists, vectors) compared as numbers.
expect_same_numbers <- function(object, expected, tolerance = 1e-4) {
  num <- function(x) {
    x <- unlist(lapply(unclass(as.list(x)), function(v) if (is.numeric(v)) as.vector(v)))
    unname(x)
  }
  testthat::expect_equal(num(object), num(expected), tolerance = tolerance)
}
