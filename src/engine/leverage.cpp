#include "leverage.h"

#include "random_effect_components.h"

namespace mlm {

Eigen::VectorXd leverages(const ModelData& d, const std::vector<Eigen::MatrixXd>& T) {
  const ReComponents rc = find_components(d);
  const ComponentGram g = component_gram(d, rc);
  const int p = d.p;
  std::vector<Eigen::MatrixXd> C(rc.n_components), CB(rc.n_components);
  Eigen::MatrixXd S = g.F;
  for (int c = 0; c < rc.n_components; ++c) {
    C[c] = component_c(g.A[c], rc, c, T);
    CB[c] = C[c] * g.B[c];
    S.noalias() -= g.B[c].transpose() * CB[c];
  }
  const Eigen::LLT<Eigen::MatrixXd> U(S);
  Eigen::VectorXd h(d.n);
  std::vector<Index> idx;
  std::vector<double> z;
  Eigen::VectorXd r(p);
  for (Index i = 0; i < d.n; ++i) {
    const double w = d.weights ? d.weights[i] : 1.0;
    const int c = component_row(d, rc, i, idx, z);
    double zcz = 0.0;
    for (std::size_t a = 0; a < idx.size(); ++a)
      for (std::size_t b = 0; b < idx.size(); ++b) zcz += z[a] * C[c](idx[a], idx[b]) * z[b];
    for (int k = 0; k < p; ++k) {
      double s = d.X[static_cast<Index>(k) * d.n + i];
      for (std::size_t a = 0; a < idx.size(); ++a) s -= CB[c](idx[a], k) * z[a];
      r[k] = s;
    }
    const double rur = p > 0 ? r.dot(U.solve(r)) : 0.0;
    h[i] = w * (zcz + rur);
    if (d.check_interrupt && (i & 0xfffff) == 0xfffff) d.check_interrupt();
  }
  return h;
}

}  // namespace mlm
