#include "stage1_gradient.h"

#include <vector>

namespace mlm {

namespace {

// Every term a random intercept or a single slope (q = 1): such fits keep
// scalar_stage1_gradient(), whose rounding they had before q x q terms
// were covered (glmm-designs case 9179 is sensitive to it).
bool all_scalar_terms(const ModelData& d) {
  for (const auto& b : d.blocks)
    if (b.q != 1) return false;
  return true;
}

// X'WZ (p x Z coordinates) from the cross-products, X centred as there.
Eigen::MatrixXd fixed_by_random(const CrossProducts& xp) {
  const Index n1 = xp.k1 * xp.q1;
  Eigen::MatrixXd XWZ(xp.p, n1 + xp.m);
  XWZ.leftCols(n1) = xp.C1.topRows(xp.p);
  XWZ.rightCols(xp.m) = xp.CR.topRows(xp.p);
  return XWZ;
}

}  // namespace

LaplacePartials laplace_partials(const ModelData& d, const GlmFamily& fam, SeveralTermsLaplaceGradient& several) {
  if (d.blocks.size() > 1) return std::ref(several);
  return [&d, &fam](const Eigen::VectorXd& theta, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& u,
                    BlockedCholesky&, Eigen::VectorXd& g, Eigen::VectorXd* half_score) {
    return laplace_gradient(d, fam, theta, beta, u[0], g, half_score);
  };
}

bool stage1_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  if (d.blocks.size() > 1) return several_terms_laplace_gradient_applies(d, fam, n_theta);
  return laplace_gradient_applies(d, fam, n_theta);
}

namespace {

// Scalar terms: Lambda diagonal, E_t'Z's / 2 = -E_t u / theta_t at the
// modes (the mode's equation), no data beyond the Laplace gradient's.
bool scalar_stage1_gradient(const ModelData& d, const Eigen::VectorXd& theta, Pirls& joint,
                            const LaplacePartials& partials, Eigen::VectorXd& gradient) {
  BlockedCholesky& sys = joint.system();
  const CrossProducts& xp = sys.cross_products();
  const int nb = static_cast<int>(d.blocks.size()), p = d.p;
  if (!sys.holds_factor() || xp.p != p || xp.k1 != d.blocks[0].n_levels ||
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
  const Eigen::MatrixXd XWZ = fixed_by_random(xp);
  const Eigen::MatrixXd du = -sys.solve_M(R);
  Eigen::MatrixXd dbeta = -sys.unscaled_vcov() * (XWZ * U + C.transpose() * du);
  uncentre_rows(xp, dbeta);
  // The partial derivatives at fixed beta (the selected inverse overwrites the factor).
  Eigen::VectorXd g;
  if (!partials(theta, joint.beta(), u, sys, g, nullptr) || g.size() != theta.size() + p) return false;
  const Eigen::VectorXd total = dbeta.transpose() * g.tail(p);
  gradient = g.head(theta.size());
  for (int t = 0; t < nb; ++t) gradient[d.blocks[t].cov.theta_index[0]] += total[t];
  return gradient.allFinite();
}

// Any q x q blocks (Lambda block diagonal, T_f on each level of factor f,
// possibly singular): per place k of theta (T_f(r, c) = theta_t, E_k =
// e_r e_c' on each level of f) the columns V_k = E_k u and
//   r_k = Lambda'A V_k + E_k'Z's / 2,
// Z's / 2 from the Laplace gradient's first pass (the mode's equation
// Lambda'Z's / 2 = -u does not give it where T is singular). Then with
// G = M^{-1} C (before the selected inverse overwrites M's factor)
//   dbeta^_k = -(X'WX - C'M^{-1}C)^{-1} (X'WZ V_k - G'r_k),
// summed over the places of each theta_t.
bool vector_stage1_gradient(const ModelData& d, const Eigen::VectorXd& theta, Pirls& joint,
                            const LaplacePartials& partials, Eigen::VectorXd& gradient) {
  BlockedCholesky& sys = joint.system();
  const CrossProducts& xp = sys.cross_products();
  const std::vector<Eigen::MatrixXd>& u = joint.u();
  const int p = d.p;
  TermLayout L;
  if (!sys.holds_factor() || xp.p != p || static_cast<int>(u.size()) != static_cast<int>(d.blocks.size()) ||
      !L.set_up(d, xp, theta))
    return false;
  const int nb = L.nb, np = static_cast<int>(L.places.size());
  const Index nz = xp.k1 * xp.q1 + xp.m;
  // Per factor: the first coordinate of each level.
  std::vector<std::vector<Index>> first(static_cast<std::size_t>(nb));
  for (int f = 0; f < nb; ++f) {
    if (u[f].rows() != L.q[f] || u[f].cols() != d.blocks[f].n_levels) return false;
    first[f].resize(static_cast<std::size_t>(d.blocks[f].n_levels));
    for (Index l = 0; l < d.blocks[f].n_levels; ++l) first[f][l] = L.coordinate(xp, f, l);
  }
  // Lambda'Y for the rows of Y in Z coordinates: T_f' on each level's q rows.
  auto times_Lambda_t = [&](Eigen::MatrixXd& Y) {
    for (int f = 0; f < nb; ++f)
      for (Index c : first[f]) Y.middleRows(c, L.q[f]) = L.T[f].transpose() * Y.middleRows(c, L.q[f]);
  };
  Eigen::MatrixXd V = Eigen::MatrixXd::Zero(nz, np);
  for (int k = 0; k < np; ++k) {
    const TermLayout::Place& P = L.places[k];
    for (Index l = 0; l < d.blocks[P.f].n_levels; ++l) V(first[P.f][l] + P.r, k) = u[P.f](P.c, l);
  }
  const Eigen::MatrixXd XWZ = fixed_by_random(xp);
  Eigen::MatrixXd C = XWZ.transpose();
  times_Lambda_t(C);
  const Eigen::MatrixXd G = sys.solve_M(C);
  const Eigen::MatrixXd S_inv = sys.unscaled_vcov();
  Eigen::MatrixXd R = sys.apply_AZZ(V);
  times_Lambda_t(R);
  // The partial derivatives at fixed beta and Z's / 2 (the selected inverse overwrites the factor).
  Eigen::VectorXd g, half_score;
  if (!partials(theta, joint.beta(), u, sys, g, &half_score) || g.size() != theta.size() + p ||
      half_score.size() != nz)
    return false;
  for (int k = 0; k < np; ++k) {
    const TermLayout::Place& P = L.places[k];
    for (Index c : first[P.f]) R(c + P.c, k) += half_score[c + P.r];
  }
  Eigen::MatrixXd dbeta = -S_inv * (XWZ * V - G.transpose() * R);
  uncentre_rows(xp, dbeta);
  const Eigen::VectorXd total = dbeta.transpose() * g.tail(p);
  gradient = g.head(theta.size());
  for (int k = 0; k < np; ++k) gradient[L.places[k].t] += total[k];
  return gradient.allFinite();
}

}  // namespace

bool stage1_gradient(const ModelData& d, const Eigen::VectorXd& theta, Pirls& joint, const LaplacePartials& partials,
                     Eigen::VectorXd& gradient) {
  return all_scalar_terms(d) ? scalar_stage1_gradient(d, theta, joint, partials, gradient)
                             : vector_stage1_gradient(d, theta, joint, partials, gradient);
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
