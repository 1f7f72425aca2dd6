#include "laplace_gradient.h"

#include <algorithm>
#include <vector>

namespace mlm {

bool laplace_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  const bool canonical =
      (fam.dist == Dist::binomial && fam.link == Link::logit) || (fam.dist == Dist::poisson && fam.link == Link::log);
  return canonical && n_theta == 1 && d.blocks.size() == 1 && d.blocks[0].q == 1 &&
         d.blocks[0].cov.theta_index.size() == 1 && d.blocks[0].cov.theta_index[0] == 0;
}

bool laplace_gradient(const ModelData& d, const GlmFamily& fam, double theta, const Eigen::VectorXd& beta,
                      const Eigen::MatrixXd& u, Eigen::VectorXd& gradient) {
  const FactorBlock& F = d.blocks[0];
  const Index n = d.n, k = F.n_levels;
  const int p = d.p;
  const bool logit = fam.link == Link::logit;
  // Per level j (sums over its observations, z the random-effect column,
  // s = d dev_i / d eta_i, w the working weight, w' = dw / d eta):
  // S1 = sum w z^2 (M_jj = 1 + theta^2 S1), S2 = sum w' z^3, R = sum s z,
  // P = sum x w' z^2, Q = sum x w z; and X's over all observations.
  std::vector<double> S1(k, 0.0), S2(k, 0.0), R(k, 0.0);
  Eigen::MatrixXd P = Eigen::MatrixXd::Zero(p, k), Q = Eigen::MatrixXd::Zero(p, k);
  Eigen::VectorXd Xs = Eigen::VectorXd::Zero(p);
  constexpr Index kChunk = 2048;
  std::vector<double> eta(kChunk), s(kChunk), wz(kChunk), wpz2(kChunk);
  std::vector<Index> level(kChunk);
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    for (Index i = 0; i < len; ++i) eta[i] = d.offset ? d.offset[start + i] : 0.0;
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      const double bc = beta[c];
      for (Index i = 0; i < len; ++i) eta[i] += bc * x[i];
    }
    const double* zcol = F.cols[0] ? F.cols[0] + start : nullptr;
    for (Index i = 0; i < len; ++i) {
      const Index j = F.codes[start + i] - F.code_base;
      level[i] = j;
      const double z = zcol ? zcol[i] : 1.0;
      eta[i] += z * theta * u(0, j);
      const MeanAt m = fam.mean(eta[i]);
      if (!m.valid) return false;
      const double pw = d.weights ? d.weights[start + i] : 1.0;
      const double w = pw * m.mu_eta;  // canonical: mu_eta is the variance
      const double wp = logit ? w * (m.cmu - m.mu) : w;
      s[i] = -2.0 * pw * (d.y[start + i] - m.mu);
      wz[i] = w * z;
      wpz2[i] = wp * z * z;
      S1[j] += w * z * z;
      S2[j] += wp * z * z * z;
      R[j] += s[i] * z;
    }
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      double xs = 0.0;
      for (Index i = 0; i < len; ++i) {
        xs += x[i] * s[i];
        P(c, level[i]) += x[i] * wpz2[i];
        Q(c, level[i]) += x[i] * wz[i];
      }
      Xs[c] += xs;
    }
  }
  gradient.setZero(1 + p);
  Eigen::VectorXd g_beta = Xs;
  double g_theta = 0.0;
  const double t2 = theta * theta;
  for (Index j = 0; j < k; ++j) {
    const double M = 1.0 + t2 * S1[j];
    const double uj = u(0, j);
    // du_j/dtheta and du_j/dbeta = -theta Q_j / M from the mode's equation
    // theta sum(s z) + 2 u_j = 0, whose derivative in u_j is 2M.
    const double du = -(0.5 * R[j] + theta * S1[j] * uj) / M;
    const double lev = t2 * S2[j] / M;  // sum over the level of w' z h_i / z
    g_theta += uj * R[j] + 2.0 * theta * S1[j] / M + (uj + theta * du) * lev;
    g_beta += (t2 / M) * P.col(j) - (lev * t2 / M) * Q.col(j);
  }
  gradient[0] = g_theta;
  gradient.tail(p) = g_beta;
  return gradient.allFinite();
}

}  // namespace mlm
