#include "laplace_gradient.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mlm {

namespace {

bool canonical_link(const GlmFamily& fam) {
  return (fam.dist == Dist::binomial && fam.link == Link::logit) || (fam.dist == Dist::poisson && fam.link == Link::log);
}

}  // namespace

bool laplace_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  if (!canonical_link(fam) || d.blocks.size() != 1 || n_theta < 1) return false;
  const CovTemplate& tpl = d.blocks[0].cov;
  const int q = d.blocks[0].q;
  if (q < 1 || tpl.q != q || static_cast<int>(tpl.theta_index.size()) != q * q) return false;
  // every entry of theta somewhere in the lower triangle of T
  std::vector<bool> seen(static_cast<std::size_t>(n_theta), false);
  for (int c = 0; c < q; ++c)
    for (int r = c; r < q; ++r) {
      const int k = tpl.theta_index[r + c * q];
      if (k >= n_theta) return false;
      if (k >= 0) seen[k] = true;
    }
  return std::all_of(seen.begin(), seen.end(), [](bool b) { return b; });
}

namespace {

// The fixed part of the linear predictor, offset + X beta, of the rows
// start .. start + len - 1.
void fixed_eta(const ModelData& d, const Eigen::VectorXd& beta, Index start, Index len, double* eta) {
  for (Index i = 0; i < len; ++i) eta[i] = d.offset ? d.offset[start + i] : 0.0;
  for (Index c = 0; c < beta.size(); ++c) {
    const double* x = d.X + c * d.n + start;
    const double bc = beta[c];
    for (Index i = 0; i < len; ++i) eta[i] += bc * x[i];
  }
}

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

namespace {

// laplace_gradient() with q = Q fixed at compile time (0: any). Per level
// j the sums over its observations (z its q random-effect columns, x the
// fixed-effect row): A = sum w z z', R = sum s z, C = sum w z x',
// Z3 = sum w' z (x) z (x) z and Z2X = sum w' z (x) z (x) x, side by side;
// then with M = T'AT + I, K = T M^{-1} T' (so h_i = z_i'K z_i),
// V = sum w' h z = K : Z3 and VX = sum w' h x = K : Z2X, for each position
// (r, c) of theta_k in T (E_k = e_r e_c'):
//   d/dtheta_k += R_r u_c + 2 (M^{-1} T'A)_cr + V_r u_c + V'T du,
//   du = -M^{-1} (R_r e_c / 2 + u_c T'A e_r)   (the mode's equation),
// and d/dbeta += VX - C'K V (du/dbeta = -M^{-1} T'C), plus X's overall.
template <int Q>
bool one_factor_gradient(const ModelData& d, const GlmFamily& fam, const Eigen::VectorXd& theta,
                         const Eigen::VectorXd& beta, const Eigen::MatrixXd& u, Eigen::VectorXd& gradient) {
  using Mat = Eigen::Matrix<double, Q == 0 ? Eigen::Dynamic : Q, Q == 0 ? Eigen::Dynamic : Q>;
  using Vec = Eigen::Matrix<double, Q == 0 ? Eigen::Dynamic : Q, 1>;
  const FactorBlock& F = d.blocks[0];
  const Index n = d.n, k = F.n_levels;
  const int q = Q > 0 ? Q : F.q, p = d.p, qq = q * q;
  std::vector<CovTemplate> tpl{F.cov};
  std::vector<Eigen::MatrixXd> Tf{Eigen::MatrixXd::Zero(q, q)};
  fill_relative_factors(tpl, theta, Tf);
  const Mat T = Tf[0];
  const Index oA = 0, oR = qq, oC = oR + q, oZ3 = oC + static_cast<Index>(q) * p, oZ2X = oZ3 + qq * q;
  const Index width = oZ2X + static_cast<Index>(qq) * p;
  std::vector<double> acc(static_cast<std::size_t>(k * width), 0.0);
  Eigen::VectorXd Xs = Eigen::VectorXd::Zero(p);
  constexpr Index kChunk = 2048;
  std::vector<double> eta(kChunk), s(kChunk), w(kChunk), wp(kChunk);
  std::vector<double> zb(static_cast<std::size_t>(q) * kChunk);  // z of each observation, q at a time
  const Eigen::MatrixXd TU = T * u;  // b = T u per level (q x k)
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    const int* codes = F.codes + start;
    fixed_eta(d, beta, start, len, eta.data());
    for (int a = 0; a < q; ++a) {
      const double* col = F.cols[a] ? F.cols[a] + start : nullptr;
      for (Index i = 0; i < len; ++i) {
        const double z = col ? col[i] : 1.0;
        zb[i * q + a] = z;
        eta[i] += z * TU(a, codes[i] - F.code_base);
      }
    }
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
      const double* z = zb.data() + i * q;
      double* a = acc.data() + (codes[i] - F.code_base) * width;
      for (int r2 = 0; r2 < q; ++r2) {
        const double wz = w[i] * z[r2], wpz = wp[i] * z[r2];
        a[oR + r2] += s[i] * z[r2];
        for (int r1 = 0; r1 < q; ++r1) {
          a[oA + r1 + r2 * q] += wz * z[r1];
          const double wpzz = wpz * z[r1];
          for (int r3 = 0; r3 < q; ++r3) a[oZ3 + r1 + r2 * q + r3 * qq] += wpzz * z[r3];
          for (int c = 0; c < p; ++c) a[oZ2X + r1 + r2 * q + c * qq] += wpzz * d.X[static_cast<Index>(c) * n + start + i];
        }
        for (int c = 0; c < p; ++c) a[oC + r2 + c * q] += wz * d.X[static_cast<Index>(c) * n + start + i];
      }
    }
  }
  const int nt = static_cast<int>(theta.size());
  Eigen::VectorXd g = Eigen::VectorXd::Zero(nt + p);
  g.tail(p) = Xs;
  const Mat I = Mat::Identity(q, q);
  Vec V(q), uj(q), du(q);
  for (Index j = 0; j < k; ++j) {
    const double* a = acc.data() + j * width;
    const Eigen::Map<const Mat> A(a + oA, q, q);
    const Eigen::Map<const Vec> R(a + oR, q);
    const Eigen::Map<const Eigen::MatrixXd> C(a + oC, q, p);
    const Eigen::Map<const Eigen::MatrixXd> Z2X(a + oZ2X, qq, p);
    uj = u.col(j);
    const Mat TA = T.transpose() * A;
    const Eigen::LLT<Mat> llt(TA * T + I);
    if (llt.info() != Eigen::Success) return false;
    const Mat Minv = llt.solve(I);
    const Mat K = T * Minv * T.transpose();
    for (int c = 0; c < q; ++c) {
      double v = 0.0;
      for (int r2 = 0; r2 < q; ++r2)
        for (int r1 = 0; r1 < q; ++r1) v += K(r1, r2) * a[oZ3 + r1 + r2 * q + c * qq];
      V[c] = v;
    }
    const Mat MTA = Minv * TA;
    const Vec TV = T.transpose() * V;
    for (int c = 0; c < q; ++c)
      for (int r = c; r < q; ++r) {
        const int t = F.cov.theta_index[r + c * q];
        if (t < 0) continue;
        du = -Minv * (TA.col(r) * uj[c]);
        du -= 0.5 * R[r] * Minv.col(c);
        g[t] += R[r] * uj[c] + 2.0 * MTA(c, r) + V[r] * uj[c] + TV.dot(du);
      }
    const Eigen::Map<const Eigen::VectorXd> Kv(K.data(), qq);
    g.tail(p) += Z2X.transpose() * Kv - C.transpose() * (K * V);
  }
  gradient = g;
  return gradient.allFinite();
}

}  // namespace

bool laplace_gradient(const ModelData& d, const GlmFamily& fam, const Eigen::VectorXd& theta,
                      const Eigen::VectorXd& beta, const Eigen::MatrixXd& u, Eigen::VectorXd& gradient) {
  switch (d.blocks[0].q) {
    case 1: return one_factor_gradient<1>(d, fam, theta, beta, u, gradient);
    case 2: return one_factor_gradient<2>(d, fam, theta, beta, u, gradient);
    case 3: return one_factor_gradient<3>(d, fam, theta, beta, u, gradient);
    default: return one_factor_gradient<0>(d, fam, theta, beta, u, gradient);
  }
}

bool laplace_gradient_scalar_terms_apply(const ModelData& d, const GlmFamily& fam, int n_theta) {
  if (!canonical_link(fam) || d.blocks.size() < 2 || n_theta != static_cast<int>(d.blocks.size())) return false;
  std::vector<bool> seen(static_cast<std::size_t>(n_theta), false);
  for (const FactorBlock& F : d.blocks) {
    if (F.q != 1 || F.cov.theta_index.size() != 1) return false;
    const int k = F.cov.theta_index[0];
    if (k < 0 || k >= n_theta || seen[k]) return false;
    seen[k] = true;
  }
  return true;
}

namespace {

// A block of observations seen through the terms: each one's Z coordinate
// (first[t] + level), its column value z and e = z u at its level, term by
// term (term t at t * kChunk).
struct TermRows {
  static constexpr Index kChunk = 2048;
  std::vector<Index> coord;
  std::vector<double> z, e;
  explicit TermRows(int terms) : coord(terms * kChunk), z(terms * kChunk), e(terms * kChunk) {}
  void load(const ModelData& d, const std::vector<Index>& first, const std::vector<double>& u, Index start,
            Index len) {
    for (std::size_t t = 0; t < d.blocks.size(); ++t) {
      const FactorBlock& F = d.blocks[t];
      const int* codes = F.codes + start;
      const double* col = F.cols[0] ? F.cols[0] + start : nullptr;
      Index* c = coord.data() + t * kChunk;
      double* zt = z.data() + t * kChunk;
      double* et = e.data() + t * kChunk;
      for (Index i = 0; i < len; ++i) {
        c[i] = first[t] + (codes[i] - F.code_base);
        zt[i] = col ? col[i] : 1.0;
        et[i] = zt[i] * u[c[i]];
      }
    }
  }
};

}  // namespace

// With A = Z'WZ, Lambda = diag(theta_t on term t's coordinates), E_t its
// derivative in theta_t and s, w, w' as above:
//   d/dtheta_t = s'Z E_t u + tr(M^{-1} dM/dtheta_t)|_W + sum_i w'_i h_i deta_i/dtheta_t,
//   tr(...) = 2 tr(M^{-1} Lambda A E_t) = (2 / theta_t) sum over t's coordinates of (1 - M^{-1}_jj),
//   deta/dtheta_t = Z E_t u + Z Lambda du_t,  du_t = -M^{-1} (E_t Z's / 2 + Lambda'Z'W Z E_t u),
//   d/dbeta = X's + sum_i w'_i h_i (x_i + (Z Lambda du_beta)_i),  du_beta = -M^{-1} Lambda'Z'WX.
// Pass 1 forms the right-hand sides, pass 2 (after the solve and the
// selected inverse) the sums with h_i.
bool ScalarTermsLaplaceGradient::find_pairs(const CrossProducts& xp, const std::vector<Index>& first) {
  const Index n = d_.n;
  const FactorBlock& P = d_.blocks[0];
  pair_offset_.resize(static_cast<std::size_t>(n * (d_.blocks.size() - 1)));
  for (std::size_t t = 1; t < d_.blocks.size(); ++t) {
    const FactorBlock& F = d_.blocks[t];
    Index* out = pair_offset_.data() + (t - 1) * n;
    for (Index i = 0; i < n; ++i) {
      const Index j = P.codes[i] - P.code_base, s = first[t] - xp.k1 + (F.codes[i] - F.code_base);
      const auto b = xp.r1_row.begin() + xp.r1_ptr[j], e = xp.r1_row.begin() + xp.r1_ptr[j + 1];
      const auto it = std::lower_bound(b, e, s);
      if (it == e || *it != s) return false;
      out[i] = xp.r1_off[it - xp.r1_row.begin()];
    }
  }
  return true;
}

bool ScalarTermsLaplaceGradient::operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                                            const std::vector<Eigen::MatrixXd>& u, BlockedCholesky& M,
                                            Eigen::VectorXd& gradient) {
  const ModelData& d = d_;
  const GlmFamily& fam = fam_;
  const CrossProducts& xp = M.cross_products();
  const int nb = static_cast<int>(d.blocks.size()), p = d.p;
  const Index n = d.n;
  if (!M.all_scalar() || !M.holds_factor() || xp.k1 != d.blocks[0].n_levels ||
      static_cast<int>(xp.sec_levels.size()) != nb - 1 || static_cast<int>(u.size()) != nb)
    return false;
  std::vector<Index> first(nb, 0);
  Index nz = xp.k1;
  for (int t = 1; t < nb; ++t) {
    if (xp.sec_levels[t - 1] != d.blocks[t].n_levels) return false;
    first[t] = nz;
    nz += d.blocks[t].n_levels;
  }
  if (nz != xp.k1 + xp.m) return false;
  if (pair_offset_.empty() && !find_pairs(xp, first)) {
    pair_offset_.clear();
    return false;
  }
  std::vector<double> th(nb), us(nz);
  for (int t = 0; t < nb; ++t) {
    th[t] = theta[d.blocks[t].cov.theta_index[0]];
    if (u[t].size() != d.blocks[t].n_levels) return false;
    for (Index l = 0; l < d.blocks[t].n_levels; ++l) us[first[t] + l] = u[t](0, l);
  }

  // Pass 1: s'Z E_t u and X's into g; per coordinate (row-major, one
  // column per term, then per fixed effect) Lambda'Z'W Z E_t u and
  // Lambda'Z'WX, and Z's.
  const int width = nb + p;
  constexpr Index kChunk = TermRows::kChunk;
  std::vector<double> rhs(static_cast<std::size_t>(nz * width), 0.0), Zs(nz, 0.0), wp_all(n);
  Eigen::VectorXd g = Eigen::VectorXd::Zero(width);
  std::vector<double> eta(kChunk), s(kChunk), w(kChunk);
  TermRows rows(nb);
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    rows.load(d, first, us, start, len);
    fixed_eta(d, beta, start, len, eta.data());
    for (int t = 0; t < nb; ++t) {
      const double* et = rows.e.data() + t * kChunk;
      for (Index i = 0; i < len; ++i) eta[i] += th[t] * et[i];
    }
    if (!observation_terms(fam, eta.data(), d.y + start, d.weights ? d.weights + start : nullptr, len, s.data(),
                           w.data(), wp_all.data() + start))
      return false;
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      double xs = 0.0;
      for (Index i = 0; i < len; ++i) xs += x[i] * s[i];
      g[nb + c] += xs;
    }
    for (Index i = 0; i < len; ++i) {
      for (int t = 0; t < nb; ++t) {
        const Index c = rows.coord[t * kChunk + i];
        const double z = rows.z[t * kChunk + i];
        g[t] += s[i] * rows.e[t * kChunk + i];
        Zs[c] += s[i] * z;
        double* r = rhs.data() + c * width;
        const double tzw = th[t] * z * w[i];
        for (int t2 = 0; t2 < nb; ++t2) r[t2] += tzw * rows.e[t2 * kChunk + i];
        for (int k = 0; k < p; ++k) r[nb + k] += tzw * d.X[static_cast<Index>(k) * n + start + i];
      }
    }
  }
  for (int t = 0; t < nb; ++t)
    for (Index l = 0; l < d.blocks[t].n_levels; ++l) rhs[(first[t] + l) * width + t] += 0.5 * Zs[first[t] + l];
  const Eigen::MatrixXd R =
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(rhs.data(), nz, width);
  // du, row-major like rhs: pass 2 reads a coordinate's row at once.
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> du = -M.solve_M(R);
  std::vector<double> diag, pair;
  M.scalar_selected_inverse(diag, pair);
  for (int t = 0; t < nb; ++t) {
    if (th[t] == 0.0) continue;  // Lambda A E_t vanishes there
    double sum = 0.0;
    for (Index l = 0; l < d.blocks[t].n_levels; ++l) sum += 1.0 - diag[first[t] + l];
    g[t] += 2.0 * sum / th[t];
  }
  // M^{-1} between the coordinates of two secondary terms of an observation.
  auto secondary_pair = [&](Index c1, Index c2) { return M.secondary_inverse(c1 - xp.k1, c2 - xp.k1); };

  // Pass 2: v_i = w'_i h_i times deta_i/dt for every parameter t.
  std::vector<double> deta(width);
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    rows.load(d, first, us, start, len);
    for (Index i = 0; i < len; ++i) {
      double h = 0.0;
      std::fill(deta.begin(), deta.end(), 0.0);
      for (int t = 0; t < nb; ++t) {
        const Index c = rows.coord[t * kChunk + i];
        const double tz = th[t] * rows.z[t * kChunk + i];
        h += tz * tz * diag[c];
        for (int t2 = t + 1; t2 < nb; ++t2) {
          const double mi = t == 0 ? pair[pair_offset_[(t2 - 1) * n + start + i]]
                                   : secondary_pair(c, rows.coord[t2 * kChunk + i]);
          h += 2.0 * tz * th[t2] * rows.z[t2 * kChunk + i] * mi;
        }
        const double* dr = du.data() + c * width;
        for (int k = 0; k < width; ++k) deta[k] += tz * dr[k];
      }
      const double v = wp_all[start + i] * h;
      for (int t = 0; t < nb; ++t) g[t] += v * (rows.e[t * kChunk + i] + deta[t]);
      for (int k = 0; k < p; ++k) g[nb + k] += v * (d.X[static_cast<Index>(k) * n + start + i] + deta[nb + k]);
    }
  }
  gradient.setZero(nb + p);
  for (int t = 0; t < nb; ++t) gradient[d.blocks[t].cov.theta_index[0]] = g[t];
  gradient.tail(p) = g.tail(p);
  return gradient.allFinite();
}

}  // namespace mlm
