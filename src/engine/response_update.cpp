#include "response_update.h"

#include <cmath>
#include <vector>

namespace mlm {

void update_response(CrossProducts& xp, const ModelData& d) {
  const Index n = d.n;
  const int p = d.p;
  const bool centring = xp.center.size() > 0;

  // sqrt(w) (y - offset - mean), the last column of the matrix B of
  // build_cross_products().
  std::vector<double> r(n);
  double mean_y = 0.0;
  if (centring) {
    double sw = 0.0, s = 0.0;
    for (Index i = 0; i < n; ++i) {
      const double w = d.weights ? d.weights[i] : 1.0;
      sw += w;
      s += w * (d.y[i] - (d.offset ? d.offset[i] : 0.0));
    }
    mean_y = s / sw;
    xp.center[p] = mean_y;
  }
  for (Index i = 0; i < n; ++i) {
    const double s = d.weights ? std::sqrt(d.weights[i]) : 1.0;
    r[i] = s * (d.y[i] - (d.offset ? d.offset[i] : 0.0) - mean_y);
  }

  // XX: [X y]'W y with X centred as before.
  double yy = 0.0;
  for (Index i = 0; i < n; ++i) yy += r[i] * r[i];
  xp.XX(p, p) = yy;
  for (int c = 0; c < p; ++c) {
    const double* x = d.X + static_cast<Index>(c) * n;
    const double mu = centring ? xp.center[c] : 0.0;
    double s = 0.0;
    if (d.weights) {
      for (Index i = 0; i < n; ++i) s += std::sqrt(d.weights[i]) * (x[i] - mu) * r[i];
    } else {
      for (Index i = 0; i < n; ++i) s += (x[i] - mu) * r[i];
    }
    xp.XX(p, c) = s;
    xp.XX(c, p) = s;
  }

  // y'W Z for the primary factor and the secondary factors.
  const FactorBlock& F1 = d.blocks[0];
  const int q1 = F1.q;
  const int P = p + 1;
  for (Index k = 0; k < xp.k1 * q1; ++k) xp.C1(p, k) = 0.0;
  for (Index k = 0; k < xp.m; ++k) xp.CR(p, k) = 0.0;
  std::vector<Index> first_coord(d.blocks.size(), 0);
  for (std::size_t f = 2; f < d.blocks.size(); ++f)
    first_coord[f] = first_coord[f - 1] + d.blocks[f - 1].n_levels * d.blocks[f - 1].q;
  for (Index i = 0; i < n; ++i) {
    const double s = d.weights ? std::sqrt(d.weights[i]) : 1.0;
    const double ri = r[i] * s;
    const Index j = F1.codes[i] - F1.code_base;
    double* C = xp.C1.data() + j * q1 * P + p;
    for (int a = 0; a < q1; ++a) C[a * P] += ri * (F1.cols[a] ? F1.cols[a][i] : 1.0);
    for (std::size_t f = 1; f < d.blocks.size(); ++f) {
      const FactorBlock& F = d.blocks[f];
      const Index l = F.codes[i] - F.code_base;
      double* CR = xp.CR.data() + (first_coord[f] + l * F.q) * P + p;
      for (int a = 0; a < F.q; ++a) CR[a * P] += ri * (F.cols[a] ? F.cols[a][i] : 1.0);
    }
    if (d.check_interrupt && (i & 0xfffff) == 0xfffff) d.check_interrupt();
  }
}

}  // namespace mlm
