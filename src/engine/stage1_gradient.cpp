#include "stage1_gradient.h"

#include <vector>

namespace mlm {

namespace {

// Every term a random intercept or a single slope (q = 1): the
// correction below is written for scalar terms only.
bool all_scalar_terms(const ModelData& d) {
  for (const auto& b : d.blocks)
    if (b.q != 1) return false;
  return true;
}

}  // namespace

LaplacePartials laplace_partials(const ModelData& d, const GlmFamily& fam, SeveralTermsLaplaceGradient& several) {
  if (d.blocks.size() > 1) return std::ref(several);
  return [&d, &fam](const Eigen::VectorXd& theta, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& u,
                    BlockedCholesky&, Eigen::VectorXd& g) { return laplace_gradient(d, fam, theta, beta, u[0], g); };
}

bool stage1_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  if (!all_scalar_terms(d)) return false;
  if (d.blocks.size() > 1) return several_terms_laplace_gradient_applies(d, fam, n_theta);
  return laplace_gradient_applies(d, fam, n_theta);
}

bool stage1_gradient(const ModelData& d, const Eigen::VectorXd& theta, Pirls& joint, const LaplacePartials& partials,
                     Eigen::VectorXd& gradient) {
  BlockedCholesky& sys = joint.system();
  const CrossProducts& xp = sys.cross_products();
  const int nb = static_cast<int>(d.blocks.size()), p = d.p;
  if (!all_scalar_terms(d) || !sys.holds_factor() || xp.p != p || xp.k1 != d.blocks[0].n_levels ||
      static_cast<int>(xp.sec_levels.size()) != nb - 1)
    return false;
  const std::vector<Eigen::MatrixXd>& u = joint.u();
  const Index nz = xp.k1 + xp.m;
  // Per Z coordinate: its term; U(c, t) = u_c where c belongs to term t.
  std::vector<int> term(static_cast<std::size_t>(nz), 0);
  for (Index s = 0; s < xp.n_sec; ++s) term[xp.k1 + xp.sec_start[s]] = xp.sec_fac[s] + 1;
  Eigen::VectorXd th(nb);
  Eigen::MatrixXd U = Eigen::MatrixXd::Zero(nz, nb);
  Index c = 0;
  for (int t = 0; t < nb; ++t) {
    th[t] = theta[d.blocks[t].cov.theta_index[0]];
    if (u[t].size() != d.blocks[t].n_levels) return false;
    for (Index l = 0; l < d.blocks[t].n_levels; ++l, ++c) {
      if (term[c] != t) return false;
      U(c, t) = u[t](0, l);
    }
  }
  // r_t = Lambda'A E_t u - E_t u / theta_t; C = Lambda'Z'WX; X'WZ E_t u
  // (X centred as in the cross-products).
  Eigen::MatrixXd R = sys.apply_AZZ(U);
  Eigen::MatrixXd C(nz, p);
  for (Index k = 0; k < nz; ++k) {
    const double tk = th[term[k]];
    R.row(k) *= tk;
    if (th[term[k]] != 0.0) R(k, term[k]) -= U(k, term[k]) / tk;
    for (int j = 0; j < p; ++j) C(k, j) = tk * (k < xp.k1 ? xp.C1(j, k) : xp.CR(j, k - xp.k1));
  }
  Eigen::MatrixXd XWZ(p, nz);
  XWZ.leftCols(xp.k1) = xp.C1.topRows(p);
  XWZ.rightCols(xp.m) = xp.CR.topRows(p);
  const Eigen::MatrixXd du = -sys.solve_M(R);
  Eigen::MatrixXd dbeta = -sys.unscaled_vcov() * (XWZ * U + C.transpose() * du);
  if (xp.center.size() > 0) {
    // beta in the original parametrisation: the intercept absorbs the centres.
    const int ic = xp.intercept_col;
    for (int j = 0; j < p; ++j)
      if (j != ic) dbeta.row(ic) -= xp.center[j] * dbeta.row(j);
  }
  // The partial derivatives at fixed beta (the selected inverse overwrites the factor).
  Eigen::VectorXd g;
  if (!partials(theta, joint.beta(), u, sys, g) || g.size() != theta.size() + p) return false;
  const Eigen::VectorXd total = dbeta.transpose() * g.tail(p);
  gradient = g.head(theta.size());
  for (int t = 0; t < nb; ++t) gradient[d.blocks[t].cov.theta_index[0]] += total[t];
  return gradient.allFinite();
}

Eigen::VectorXd stage1_gradient_at(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                                   const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta,
                                   const PirlsControl& control) {
  Eigen::VectorXd g;
  if (!stage1_gradient_applies(d, fam, static_cast<int>(theta.size()))) return g;
  Pirls joint(d, fam, tpl, true);
  joint.set_start_eta(eta_start);
  SeveralTermsLaplaceGradient several(d, fam);
  if (!joint.run(theta, control).ok || !stage1_gradient(d, theta, joint, laplace_partials(d, fam, several), g))
    g.resize(0);
  return g;
}

}  // namespace mlm
