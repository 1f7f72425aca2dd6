// The pieces of the deviance at one theta, for work that needs the deviance
// as a function of theta and sigma separately (Bates et al. 2015, eq. 34):
//   d(theta, sigma) = log|L|^2 + pwrss / sigma^2 + n log(2 pi sigma^2) - sum log w
// (plus log|R_X|^2 - p log(2 pi sigma^2) for REML), and the covariance of
// beta per unit of sigma^2: derivatives of these give Satterthwaite's
// degrees of freedom, and profiles over variance components use them.
#pragma once

#include <Eigen/Dense>

#include "lmm_fit.h"

namespace mlm {

struct DevianceTerms {
  bool ok = false;  // false where the system is not positive definite
  double ld_L2 = 0.0, ld_RX2 = 0.0, pwrss = 0.0;
  Eigen::MatrixXd unscaled_vcov;  // (X'V^{-1}X)^{-1} / sigma^2, original parametrisation
};

DevianceTerms deviance_terms(ProfiledDeviance& dev, const CrossProducts& xp, const Eigen::VectorXd& theta,
                             bool with_vcov);

}  // namespace mlm
