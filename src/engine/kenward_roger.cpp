#include "kenward_roger.h"

#include <stdexcept>
#include <string>

#include "random_effect_components.h"

namespace mlm {

namespace {

// The coordinates where E_r (the derivative of the covariance of one
// component's random effects with respect to parameter r) is non-zero:
// E_r x has (E_r x)[rows[k]] = x[partner[k]].
struct Selector {
  std::vector<Eigen::Index> rows, partner;
};

Selector selector_for(const CovParameter& par, const ReComponents& rc, int c) {
  Selector s;
  for (const auto& mem : rc.members[c]) {
    if (mem.first != par.block) continue;
    const Eigen::Index base = rc.start[mem.first][mem.second];
    const Eigen::Index u = base + par.a, v = base + par.b;
    s.rows.push_back(u);
    s.partner.push_back(v);
    if (u != v) {
      s.rows.push_back(v);
      s.partner.push_back(u);
    }
  }
  return s;
}

}  // namespace

KenwardRogerTerms kenward_roger_terms(const ModelData& d, const std::vector<Eigen::MatrixXd>& T, double sigma2,
                                      const std::vector<CovParameter>& params, Eigen::Index max_component) {
  const ReComponents rc = find_components(d);
  for (int c = 0; c < rc.n_components; ++c) {
    if (rc.size[c] > max_component)
      throw std::length_error("a group of linked random effects has " + std::to_string(rc.size[c]) +
                              " coordinates, more than the limit of " + std::to_string(max_component));
  }
  const ComponentGram g = component_gram(d, rc);
  const int p = d.p;
  const int nr = static_cast<int>(params.size());
  const int ng = nr + 1;
  const double s2 = sigma2, s4 = sigma2 * sigma2, s6 = s4 * sigma2;

  KenwardRogerTerms out;
  out.P.assign(ng, Eigen::MatrixXd::Zero(p, p));
  out.Q.assign(static_cast<std::size_t>(ng) * ng, Eigen::MatrixXd::Zero(p, p));
  out.K = Eigen::MatrixXd::Zero(ng, ng);
  Eigen::MatrixXd BCB = Eigen::MatrixXd::Zero(p, p), BCACB = BCB, BCACACB = BCB;
  double trCA = 0.0, trCACA = 0.0;

  for (int c = 0; c < rc.n_components; ++c) {
    out.largest_component = std::max(out.largest_component, static_cast<Eigen::Index>(rc.size[c]));
    const Eigen::MatrixXd& A = g.A[c];
    const Eigen::MatrixXd& B = g.B[c];
    const Eigen::MatrixXd C = component_c(A, rc, c, T);
    const Eigen::MatrixXd CA = C * A;
    const Eigen::MatrixXd CB = C * B;
    const Eigen::MatrixXd ACB = A * CB;
    // K = I - AC; Z'Sigma^{-1}Z = KA / s2, Z'Sigma^{-1}X = KB / s2 and the
    // versions with Sigma^{-1} W^{-1} Sigma^{-1}: K K A / s4, K K B / s4.
    const Eigen::MatrixXd MZZ = (A - A * CA) / s2;
    const Eigen::MatrixXd MZX = (B - ACB) / s2;
    const Eigen::MatrixXd NZZ = (MZZ - A * (C * MZZ)) / s2;
    const Eigen::MatrixXd NZX = (MZX - A * (C * MZX)) / s2;
    BCB.noalias() += B.transpose() * CB;
    BCACB.noalias() += CB.transpose() * ACB;
    BCACACB.noalias() += ACB.transpose() * (C * ACB);
    trCA += CA.trace();
    trCACA += (CA.array() * CA.transpose().array()).sum();

    std::vector<Selector> sel(nr);
    bool any = false;
    for (int r = 0; r < nr; ++r) {
      sel[r] = selector_for(params[r], rc, c);
      any = any || !sel[r].rows.empty();
    }
    if (!any) continue;
    // V_r = E_r MZX (rows listed by the selector), W_s = MZZ E_s MZX.
    std::vector<Eigen::MatrixXd> Wm(nr);
    for (int s = 0; s < nr; ++s) {
      Wm[s] = Eigen::MatrixXd::Zero(rc.size[c], p);
      for (std::size_t k = 0; k < sel[s].rows.size(); ++k)
        Wm[s].noalias() += MZZ.col(sel[s].rows[k]) * MZX.row(sel[s].partner[k]);
    }
    for (int r = 0; r < nr; ++r) {
      const Selector& sr = sel[r];
      for (std::size_t k = 0; k < sr.rows.size(); ++k) {
        const auto vrow = MZX.row(sr.partner[k]);
        out.P[r].noalias() -= vrow.transpose() * MZX.row(sr.rows[k]);
        for (int s = 0; s < nr; ++s) out.Q[r + s * ng].noalias() += vrow.transpose() * Wm[s].row(sr.rows[k]);
        out.Q[r + nr * ng].noalias() += vrow.transpose() * NZX.row(sr.rows[k]);
        out.K(r, nr) += NZZ(sr.partner[k], sr.rows[k]);
      }
      for (int s = 0; s <= r; ++s) {
        const Selector& ss = sel[s];
        double t = 0.0;
        for (std::size_t i = 0; i < sr.rows.size(); ++i)
          for (std::size_t j = 0; j < ss.rows.size(); ++j)
            t += MZZ(sr.partner[i], ss.rows[j]) * MZZ(ss.partner[j], sr.rows[i]);
        out.K(r, s) += t;
      }
    }
  }
  for (int r = 0; r < nr; ++r) {
    for (int s = 0; s < r; ++s) out.K(s, r) = out.K(r, s);
    out.K(nr, r) = out.K(r, nr);
    out.Q[nr + r * ng] = out.Q[r + nr * ng].transpose();
  }
  const Eigen::MatrixXd& F = g.F;
  out.P[nr] = -(F - 2.0 * BCB + BCACB) / s4;
  out.Q[nr + nr * ng] = (F - 3.0 * BCB + 3.0 * BCACB - BCACACB) / s6;
  out.K(nr, nr) = (static_cast<double>(d.n) - 2.0 * trCA + trCACA) / s4;
  return out;
}

}  // namespace mlm
