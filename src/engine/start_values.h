// Starting values for theta from moment estimates on the cross-products.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "cross_products.h"
#include "model_data.h"

namespace mlm {

// For each diagonal entry of T: the variance of that random-effect column
// estimated by moments from the residuals of the ordinary least-squares fit,
// relative to the residual variance, as a standard-deviation ratio. Each
// column is treated alone (correlations and other factors ignored): a rough
// guess, but far closer to the optimum than theta = 1. Entries are kept in
// [0.1, 100] (never 0: for a scalar term theta = 0 is a stationary point of
// the deviance), measured in the units of `scale` (see theta_scales).
// Off-diagonal entries and failures keep `fallback`.
Eigen::VectorXd moment_start(const CrossProducts& xp, const std::vector<CovTemplate>& templates,
                             const Eigen::VectorXd& fallback, const Eigen::VectorXd& scale);

// The natural unit of each entry of theta. Row r of T multiplies random-effect
// column r, so an entry of that row is measured in 1 / (root mean square of
// column r). Optimising theta / scale makes the fit independent of the units
// of the predictors: a slope on 1e8 x follows the same path as one on x.
// Entries whose column is zero or not finite get unit 1.
Eigen::VectorXd theta_scales(const CrossProducts& xp, const std::vector<CovTemplate>& templates);

}  // namespace mlm
