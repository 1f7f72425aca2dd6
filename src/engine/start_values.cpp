#include "start_values.h"

#include <algorithm>
#include <cmath>

namespace mlm {

Eigen::VectorXd moment_start(const CrossProducts& xp, const std::vector<CovTemplate>& tpl,
                             const Eigen::VectorXd& fallback) {
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
      if (est >= 0.0 && std::isfinite(est)) theta[k] = std::min(std::max(est, 0.1), 100.0);
    }
  }
  return theta;
}

}  // namespace mlm
