// Leverages of a linear mixed model: the diagonal of the hat matrix that
// maps y to the conditional fitted values X beta + Z b (as lme4's
// hatvalues()). With C = Lambda (Lambda'Z'WZ Lambda + I)^{-1} Lambda' and
// U = (X'WX - X'WZ C Z'WX)^{-1},
//   h_i = w_i (z_i' C z_i + r_i' U r_i),   r_i = x_i - X'WZ C z_i,
// computed component by component (random_effect_components.h).
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "model_data.h"

namespace mlm {

Eigen::VectorXd leverages(const ModelData& data, const std::vector<Eigen::MatrixXd>& T);

}  // namespace mlm
