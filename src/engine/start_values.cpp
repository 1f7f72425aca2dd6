#include "start_values.h"

#include <algorithm>
#include <cmath>

namespace mlm {

Eigen::VectorXd theta_scales(const CrossProducts& xp, const std::vector<CovTemplate>& tpl) {
  Index n_theta = 0;
  for (const CovTemplate& t : tpl)
    for (int k : t.theta_index) n_theta = std::max<Index>(n_theta, k + 1);
  Eigen::VectorXd scale = Eigen::VectorXd::Ones(n_theta);
  const double n = static_cast<double>(xp.n);
  if (!(n > 0.0)) return scale;
  Index first = 0;  // first secondary level of the current factor
  for (std::size_t f = 0; f < tpl.size(); ++f) {
    const int q = tpl[f].q;
    const Index levels = f == 0 ? xp.k1 : xp.sec_levels[f - 1];
    for (int r = 0; r < q; ++r) {
      // sum over levels of z_r' W z_r: the diagonal of the level blocks.
      double ss = 0.0;
      for (Index l = 0; l < levels; ++l) {
        const double* D = f == 0 ? xp.D1.data() + l * q * q : xp.rr_diag.data() + xp.rr_diag_off[first + l];
        ss += D[r + r * q];
      }
      const double rms = std::sqrt(ss / n);
      if (!(rms > 0.0) || !std::isfinite(rms) || !std::isfinite(1.0 / rms)) continue;
      for (int c = 0; c <= r; ++c) {
        const int k = tpl[f].theta_index[r + c * q];
        if (k >= 0) scale[k] = 1.0 / rms;
      }
    }
    if (f > 0) first += levels;
  }
  return scale;
}

Eigen::VectorXd moment_start(const CrossProducts& xp, const std::vector<CovTemplate>& tpl,
                             const Eigen::VectorXd& fallback, const Eigen::VectorXd& scale) {
  Eigen::VectorXd theta = fallback;
  const int p = xp.p;
  const double n = static_cast<double>(xp.n);
  Eigen::VectorXd beta = Eigen::VectorXd::Zero(p);
  double rss = xp.XX(p, p);
  if (p > 0) {
    Eigen::LDLT<Eigen::MatrixXd> ldlt(xp.XX.topLeftCorner(p, p));
    if (ldlt.info() != Eigen::Success) return theta;
    beta = ldlt.solve(xp.XX.col(p).head(p));
    rss -= xp.XX.col(p).head(p).dot(beta);
  }
  if (!(rss > 0.0) || n <= p) return theta;
  const double sigma2 = rss / (n - p);

  // One column of one factor: sum over levels of (z'r)^2 / z'z against its
  // expectation sigma_b^2 * sum z'z + levels * sigma^2.
  auto estimate = [&](const Eigen::MatrixXd& C, Index col0, Index stride, Index levels,
                      const double* D, Index dstride, int q, int a) {
    double ss = 0.0, szz = 0.0;
    Index used = 0;
    for (Index l = 0; l < levels; ++l) {
      const Index col = col0 + l * stride + a;
      const double zz = D[l * dstride + a + a * q];
      if (!(zz > 0.0)) continue;
      const double zr = C(p, col) - C.col(col).head(p).dot(beta);
      ss += zr * zr / zz;
      szz += zz;
      ++used;
    }
    if (used < 2 || !(szz > 0.0)) return -1.0;
    const double sb2 = (ss - used * sigma2) / szz;
    return std::sqrt(std::max(sb2, 0.0) / sigma2);
  };

  for (std::size_t f = 0; f < tpl.size(); ++f) {
    const int q = tpl[f].q;
    for (int a = 0; a < q; ++a) {
      const int k = tpl[f].theta_index[a + a * q];
      if (k < 0) continue;
      double est;
      if (f == 0) {
        est = estimate(xp.C1, 0, q, xp.k1, xp.D1.data(), static_cast<Index>(q) * q, q, a);
      } else {
        Index first = 0;
        for (std::size_t g = 1; g < f; ++g) first += xp.sec_levels[g - 1];
        est = estimate(xp.CR, xp.sec_start[first], q, xp.sec_levels[f - 1], xp.rr_diag.data() + xp.rr_diag_off[first],
                       static_cast<Index>(q) * q, q, a);
      }
      if (est >= 0.0 && std::isfinite(est)) theta[k] = std::min(std::max(est / scale[k], 0.1), 100.0) * scale[k];
    }
  }
  return theta;
}

}  // namespace mlm
