#include "laplace_gradient.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mlm {

bool laplace_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  const bool canonical =
      (fam.dist == Dist::binomial && fam.link == Link::logit) || (fam.dist == Dist::poisson && fam.link == Link::log);
  return canonical && n_theta == 1 && d.blocks.size() == 1 && d.blocks[0].q == 1 &&
         d.blocks[0].cov.theta_index.size() == 1 && d.blocks[0].cov.theta_index[0] == 0;
}

namespace {

// Per observation of a block: s = d dev_i / d eta_i, the working weight w
// and its derivative w' = dw / d eta (canonical links: w = pw mu_eta).
// Binomial-logit in branch-free loops (as PIRLS's kernels), the rest and
// linear predictors beyond R's clamping at |eta| = 30 one at a time.
bool observation_terms(const GlmFamily& fam, const double* eta, const double* y, const double* pw, Index len,
                       double* s, double* w, double* wp) {
  if (fam.link == Link::logit) {
    for (Index i = 0; i < len; ++i) w[i] = std::exp(-std::fabs(eta[i]));
    double clamped = 0.0;
    for (Index i = 0; i < len; ++i) {
      const double et = eta[i], e = w[i], wt = pw ? pw[i] : 1.0;
      clamped += std::fabs(et) <= 30.0 ? 0.0 : 1.0;  // NaN too
      const double big = 1.0 / (1.0 + e), small = e * big;
      const double mu = et >= 0.0 ? big : small, cmu = et >= 0.0 ? small : big;
      s[i] = -2.0 * wt * (y[i] - mu);
      w[i] = wt * big * small;
      wp[i] = w[i] * (cmu - mu);
    }
    if (clamped == 0.0) return true;
  }
  for (Index i = 0; i < len; ++i) {
    const MeanAt m = fam.mean(eta[i]);
    if (!m.valid) return false;
    const double wt = pw ? pw[i] : 1.0;
    s[i] = -2.0 * wt * (y[i] - m.mu);
    w[i] = wt * m.mu_eta;
    wp[i] = fam.link == Link::logit ? w[i] * (m.cmu - m.mu) : w[i];
  }
  return true;
}

}  // namespace

bool laplace_gradient(const ModelData& d, const GlmFamily& fam, double theta, const Eigen::VectorXd& beta,
                      const Eigen::MatrixXd& u, Eigen::VectorXd& gradient) {
  const FactorBlock& F = d.blocks[0];
  const Index n = d.n, k = F.n_levels;
  const int p = d.p;
  // Per level j (sums over its observations, z the random-effect column):
  // S1 = sum w z^2 (M_jj = 1 + theta^2 S1), S2 = sum w' z^3, R = sum s z,
  // P = sum x w' z^2, Q = sum x w z, side by side; and X's over all
  // observations.
  const Index width = 3 + 2 * static_cast<Index>(p);
  std::vector<double> acc(static_cast<std::size_t>(k * width), 0.0);
  Eigen::VectorXd Xs = Eigen::VectorXd::Zero(p);
  constexpr Index kChunk = 2048;
  std::vector<double> eta(kChunk), s(kChunk), w(kChunk), wp(kChunk);
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    for (Index i = 0; i < len; ++i) eta[i] = d.offset ? d.offset[start + i] : 0.0;
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      const double bc = beta[c];
      for (Index i = 0; i < len; ++i) eta[i] += bc * x[i];
    }
    const int* codes = F.codes + start;
    const double* zcol = F.cols[0] ? F.cols[0] + start : nullptr;
    for (Index i = 0; i < len; ++i) eta[i] += (zcol ? zcol[i] : 1.0) * theta * u(0, codes[i] - F.code_base);
    if (!observation_terms(fam, eta.data(), d.y + start, d.weights ? d.weights + start : nullptr, len, s.data(),
                           w.data(), wp.data()))
      return false;
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      double xs = 0.0;
      for (Index i = 0; i < len; ++i) xs += x[i] * s[i];
      Xs[c] += xs;
    }
    for (Index i = 0; i < len; ++i) {
      const double z = zcol ? zcol[i] : 1.0;
      const double wz = w[i] * z, wpz2 = wp[i] * z * z;
      double* a = acc.data() + (codes[i] - F.code_base) * width;
      a[0] += wz * z;
      a[1] += wpz2 * z;
      a[2] += s[i] * z;
      for (int c = 0; c < p; ++c) {
        const double x = d.X[static_cast<Index>(c) * n + start + i];
        a[3 + c] += x * wpz2;
        a[3 + p + c] += x * wz;
      }
    }
  }
  gradient.setZero(1 + p);
  Eigen::VectorXd g_beta = Xs;
  double g_theta = 0.0;
  const double t2 = theta * theta;
  for (Index j = 0; j < k; ++j) {
    const double* a = acc.data() + j * width;
    const double S1 = a[0], S2 = a[1], R = a[2];
    const Eigen::Map<const Eigen::VectorXd> P(a + 3, p), Q(a + 3 + p, p);
    const double M = 1.0 + t2 * S1;
    const double uj = u(0, j);
    // du_j/dtheta, and du_j/dbeta = -theta Q / M, from the mode's equation
    // theta sum(s z) + 2 u_j = 0, whose derivative in u_j is 2M.
    const double du = -(0.5 * R + theta * S1 * uj) / M;
    const double lev = t2 * S2 / M;  // sum over the level of w' z h_i, h_i = theta^2 z^2 / M
    g_theta += uj * R + 2.0 * theta * S1 / M + (uj + theta * du) * lev;
    g_beta += (t2 / M) * P - (lev * t2 / M) * Q;
  }
  gradient[0] = g_theta;
  gradient.tail(p) = g_beta;
  return gradient.allFinite();
}

}  // namespace mlm
