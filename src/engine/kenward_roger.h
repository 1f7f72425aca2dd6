// The ingredients of the Kenward-Roger (1997) adjustment for a linear mixed
// model whose marginal covariance is linear in its variance parameters,
//   Sigma = sum_r gamma_r G_r,
// gamma = (every variance and covariance of every random-effect term, then
// the residual variance), G_r = Z E_r Z' for a random-effect parameter and
// W^{-1} for the residual. With Phi = (X' Sigma^{-1} X)^{-1}:
//   P_r      = -X' Sigma^{-1} G_r Sigma^{-1} X
//   Q_rs     =  X' Sigma^{-1} G_r Sigma^{-1} G_s Sigma^{-1} X
//   K_rs     =  tr(Sigma^{-1} G_r Sigma^{-1} G_s)
// are computed component by component (random_effect_components.h) from
// Z'WZ, Z'WX and X'WX with Sigma^{-1} = sigma^{-2} (W - W Z C Z' W),
// C = Lambda (Lambda' Z'WZ Lambda + I)^{-1} Lambda': nothing n x n is formed.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "model_data.h"

namespace mlm {

// One random-effect variance parameter: entry (a, b), a >= b, of the
// covariance matrix of block `block` (columns of the block).
struct CovParameter {
  int block = 0;
  int a = 0, b = 0;
};

struct KenwardRogerTerms {
  std::vector<Eigen::MatrixXd> P;  // n_gamma
  std::vector<Eigen::MatrixXd> Q;  // n_gamma x n_gamma, Q[r + s * n_gamma]
  Eigen::MatrixXd K;               // n_gamma x n_gamma
  Eigen::Index largest_component = 0;
};

// T: relative covariance factor of each block at the estimates; sigma2: the
// residual variance. The residual is the last of the n_gamma = params + 1
// parameters. Throws std::length_error when a component has more than
// max_component coordinates.
KenwardRogerTerms kenward_roger_terms(const ModelData& data, const std::vector<Eigen::MatrixXd>& T, double sigma2,
                                      const std::vector<CovParameter>& params, Eigen::Index max_component);

}  // namespace mlm
