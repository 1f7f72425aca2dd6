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

namespace {

// Do the templates of the blocks hold T lower triangular (the places above
// the diagonal are not read), each entry of theta (n_theta of them) in at
// least one place?
bool templates_cover_theta(const ModelData& d, int n_theta) {
  if (n_theta < 1) return false;
  std::vector<bool> seen(static_cast<std::size_t>(n_theta), false);
  for (const FactorBlock& F : d.blocks) {
    const CovTemplate& tpl = F.cov;
    const int q = F.q;
    if (q < 1 || tpl.q != q || static_cast<int>(tpl.theta_index.size()) != q * q) return false;
    for (int c = 0; c < q; ++c)
      for (int r = c; r < q; ++r) {
        const int k = tpl.theta_index[r + c * q];
        if (k >= n_theta) return false;
        if (k >= 0) seen[k] = true;
      }
  }
  return std::all_of(seen.begin(), seen.end(), [](bool b) { return b; });
}

}  // namespace

bool laplace_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  return canonical_link(fam) && d.blocks.size() == 1 && templates_cover_theta(d, n_theta);
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
                         const Eigen::VectorXd& beta, const Eigen::MatrixXd& u, Eigen::VectorXd& gradient,
                         Eigen::VectorXd* half_score) {
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
  if (half_score) {
    half_score->resize(k * q);
    for (Index j = 0; j < k; ++j)
      for (int r = 0; r < q; ++r) (*half_score)[j * q + r] = 0.5 * acc[j * width + oR + r];
  }
  gradient = g;
  return gradient.allFinite();
}

}  // namespace

bool laplace_gradient(const ModelData& d, const GlmFamily& fam, const Eigen::VectorXd& theta,
                      const Eigen::VectorXd& beta, const Eigen::MatrixXd& u, Eigen::VectorXd& gradient,
                      Eigen::VectorXd* half_score) {
  switch (d.blocks[0].q) {
    case 1: return one_factor_gradient<1>(d, fam, theta, beta, u, gradient, half_score);
    case 2: return one_factor_gradient<2>(d, fam, theta, beta, u, gradient, half_score);
    case 3: return one_factor_gradient<3>(d, fam, theta, beta, u, gradient, half_score);
    default: return one_factor_gradient<0>(d, fam, theta, beta, u, gradient, half_score);
  }
}

bool several_terms_laplace_gradient_applies(const ModelData& d, const GlmFamily& fam, int n_theta) {
  return canonical_link(fam) && d.blocks.size() >= 2 && templates_cover_theta(d, n_theta);
}

bool TermLayout::set_up(const ModelData& d, const CrossProducts& xp, const Eigen::VectorXd& theta) {
  nb = static_cast<int>(d.blocks.size());
  n_theta = theta.size();
  if (xp.k1 != d.blocks[0].n_levels || xp.q1 != d.blocks[0].q || static_cast<int>(xp.sec_levels.size()) != nb - 1)
    return false;
  q.resize(nb);
  off.resize(nb);
  sec_first.assign(nb, 0);
  std::vector<CovTemplate> tpl;
  Index s = 0;
  for (int f = 0; f < nb; ++f) {
    const FactorBlock& F = d.blocks[f];
    if (f > 0) {
      if (xp.sec_levels[f - 1] != F.n_levels || xp.sec_q[f - 1] != F.q) return false;
      sec_first[f] = s;
      s += F.n_levels;
    }
    q[f] = F.q;
    off[f] = width_q;
    width_q += F.q;
    tpl.push_back(F.cov);
    for (int c = 0; c < F.q; ++c)
      for (int r = c; r < F.q; ++r) {
        const int t = F.cov.theta_index[r + c * F.q];
        if (t >= 0) places.push_back({f, r, c, t});
      }
  }
  T.resize(nb);
  for (int f = 0; f < nb; ++f) T[f] = Eigen::MatrixXd::Zero(q[f], q[f]);
  fill_relative_factors(tpl, theta, T);
  return true;
}

namespace {

// A chunk of observations seen through the factors: per observation and
// factor its level and first coordinate in M, per observation its
// columns z and a = T'z (width_q each, factor after factor), and the fixed
// part of eta plus z'T u.
struct TermRows {
  static constexpr Index kChunk = 1024;
  std::vector<Index> level, coord;
  std::vector<double> z, a, eta;
  explicit TermRows(const TermLayout& L)
      : level(L.nb * kChunk), coord(L.nb * kChunk), z(L.width_q * kChunk), a(L.width_q * kChunk), eta(kChunk) {}
  void load(const ModelData& d, const CrossProducts& xp, const TermLayout& L, const Eigen::VectorXd& beta,
            const std::vector<Eigen::MatrixXd>& u, Index start, Index len) {
    fixed_eta(d, beta, start, len, eta.data());
    for (int f = 0; f < L.nb; ++f) {
      const FactorBlock& F = d.blocks[f];
      const int q = L.q[f], o = L.off[f];
      const Eigen::MatrixXd& T = L.T[f];
      const double* uf = u[f].data();
      for (Index i = 0; i < len; ++i) {
        const Index l = F.codes[start + i] - F.code_base;
        level[i * L.nb + f] = l;
        coord[i * L.nb + f] = L.coordinate(xp, f, l);
        double* zi = z.data() + i * L.width_q + o;
        double* ai = a.data() + i * L.width_q + o;
        for (int r = 0; r < q; ++r) zi[r] = F.cols[r] ? F.cols[r][start + i] : 1.0;
        for (int c = 0; c < q; ++c) {
          double v = 0.0;
          for (int r = c; r < q; ++r) v += T(r, c) * zi[r];
          ai[c] = v;
          eta[i] += v * uf[c + l * q];
        }
      }
    }
  }
};

}  // namespace

bool scalar_terms_with_own_theta(const ModelData& d) {
  std::vector<int> taken;
  for (const FactorBlock& F : d.blocks) {
    if (F.q != 1 || F.cov.theta_index.size() != 1) return false;
    const int t = F.cov.theta_index[0];
    if (t < 0 || std::find(taken.begin(), taken.end(), t) != taken.end()) return false;
    taken.push_back(t);
  }
  return true;
}

bool SeveralTermsLaplaceGradient::find_pairs(const CrossProducts& xp) {
  const Index n = d_.n;
  const FactorBlock& P = d_.blocks[0];
  if (xp.r1_vals.size() > UINT32_MAX) return false;
  pair_offset_.resize(static_cast<std::size_t>(n * (d_.blocks.size() - 1)));
  Index first = 0;  // the factor's first secondary level
  for (std::size_t f = 1; f < d_.blocks.size(); ++f) {
    const FactorBlock& F = d_.blocks[f];
    std::uint32_t* out = pair_offset_.data() + (f - 1) * n;
    for (Index i = 0; i < n; ++i) {
      const Index j = P.codes[i] - P.code_base, s = first + (F.codes[i] - F.code_base);
      const auto b = xp.r1_row.begin() + xp.r1_ptr[j], e = xp.r1_row.begin() + xp.r1_ptr[j + 1];
      const auto it = std::lower_bound(b, e, s);
      if (it == e || *it != s) return false;
      out[i] = static_cast<std::uint32_t>(xp.r1_off[it - xp.r1_row.begin()]);
    }
    first += F.n_levels;
  }
  return true;
}

namespace {

// A block of observations seen through the terms: each one's Z coordinate
// (first[t] + level), its column value z and e = z u at its level, term by
// term (term t at t * kChunk).
struct ScalarRows {
  static constexpr Index kChunk = 2048;
  std::vector<Index> coord;
  std::vector<double> z, e;
  explicit ScalarRows(int terms) : coord(terms * kChunk), z(terms * kChunk), e(terms * kChunk) {}
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

// Two scalar terms: per pair of levels (primary, secondary) the sums over
// its observations of w' times the monomials of their columns (z_p, z_s)
// that pass 2 multiplies by h_i and deta_i, which depend on the pair and
// the columns only (h_i quadratic in them, deta_i linear, x_i apart):
//   cubic a = 0..3:  w' z_p^(3-a) z_s^a,   by x a = 0..2:  w' z_p^(2-a) z_s^a x_k.
// Where neither term has a column every monomial is 1 (1 + p sums a pair).
struct PairMoments {
  bool ones;
  int p, width;
  std::vector<double> sums;
  PairMoments(const ModelData& d, Index pairs)
      : ones(!d.blocks[0].cols[0] && !d.blocks[1].cols[0]),
        p(d.p),
        width(ones ? 1 + d.p : 4 + 3 * d.p),
        sums(static_cast<std::size_t>(pairs * width), 0.0) {}
  int cubic(int a) const { return ones ? 0 : a; }
  int by_x(int a, int k) const { return ones ? 1 + k : 4 + a * p + k; }
  // Observation row of the chunk at start (X column-major, n rows).
  void add(std::uint32_t pair, double wp, double zp, double zs, const double* X, Index n, Index row) {
    double* m = sums.data() + static_cast<std::size_t>(pair) * width;
    if (ones) {
      m[0] += wp;
      for (int k = 0; k < p; ++k) m[1 + k] += wp * X[k * n + row];
      return;
    }
    const double c[3] = {wp * zp * zp, wp * zp * zs, wp * zs * zs};
    m[0] += c[0] * zp;
    m[1] += c[0] * zs;
    m[2] += c[1] * zs;
    m[3] += c[2] * zs;
    for (int a = 0; a < 3; ++a)
      for (int k = 0; k < p; ++k) m[4 + a * p + k] += c[a] * X[k * n + row];
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
// selected inverse) the sums with h_i. With two terms pass 1 also sums
// PairMoments, and a sweep over the pairs of levels replaces pass 2. The
// trace by the identity Lambda'A Lambda = M - I (Lambda diagonal) rather
// than observation by observation as vector_terms() does.
bool SeveralTermsLaplaceGradient::scalar_terms(const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                                               const std::vector<Eigen::MatrixXd>& u, BlockedCholesky& M,
                                               Eigen::VectorXd& gradient) {
  const ModelData& d = d_;
  const GlmFamily& fam = fam_;
  const CrossProducts& xp = M.cross_products();
  const int nb = static_cast<int>(d.blocks.size()), p = d.p;
  const Index n = d.n;
  std::vector<Index> first(nb, 0);
  Index nz = xp.k1;
  for (int t = 1; t < nb; ++t) {
    first[t] = nz;
    nz += d.blocks[t].n_levels;
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
  constexpr Index kChunk = ScalarRows::kChunk;
  std::vector<double> rhs(static_cast<std::size_t>(nz * width), 0.0), Zs(nz, 0.0);
  Eigen::VectorXd g = Eigen::VectorXd::Zero(width);
  std::vector<double> eta(kChunk), s(kChunk), w(kChunk), wp(kChunk);
  ScalarRows rows(nb);
  PairMoments moments(d, one_pass_ ? static_cast<Index>(xp.r1_vals.size()) : 0);
  // The linear predictor and s, w, w' of a chunk (rows loaded).
  auto observation_chunk = [&](Index start, Index len) {
    fixed_eta(d, beta, start, len, eta.data());
    for (int t = 0; t < nb; ++t) {
      const double* et = rows.e.data() + t * kChunk;
      for (Index i = 0; i < len; ++i) eta[i] += th[t] * et[i];
    }
    return observation_terms(fam, eta.data(), d.y + start, d.weights ? d.weights + start : nullptr, len, s.data(),
                             w.data(), wp.data());
  };
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    rows.load(d, first, us, start, len);
    if (!observation_chunk(start, len)) return false;
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
      if (one_pass_)
        moments.add(pair_offset_[start + i], wp[i], rows.z[i], rows.z[kChunk + i], d.X, n, start + i);
    }
  }
  for (int t = 0; t < nb; ++t)
    for (Index l = 0; l < d.blocks[t].n_levels; ++l) rhs[(first[t] + l) * width + t] += 0.5 * Zs[first[t] + l];
  const Eigen::MatrixXd R =
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(rhs.data(), nz, width);
  // du, row-major like rhs: pass 2 reads a coordinate's row at once.
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> du = -M.solve_M(R);
  std::vector<double> diag, pair;  // the diagonal of M^{-1} in Z coordinates; its pair blocks
  M.selected_inverse(diag, pair);
  diag.resize(nz);
  for (Index s2 = 0; s2 < xp.n_sec; ++s2) diag[xp.k1 + s2] = M.secondary_inverse(s2, 0, s2, 0);
  for (int t = 0; t < nb; ++t) {
    if (th[t] == 0.0) continue;  // Lambda A E_t vanishes there
    double sum = 0.0;
    for (Index l = 0; l < d.blocks[t].n_levels; ++l) sum += 1.0 - diag[first[t] + l];
    g[t] += 2.0 * sum / th[t];
  }
  // M^{-1} between the coordinates of two secondary terms of an observation.
  auto secondary_pair = [&](Index c1, Index c2) { return M.secondary_inverse(c1 - xp.k1, 0, c2 - xp.k1, 0); };

  // Two terms, the sums of pass 2 pair by pair: h = z_p^2 H_0 + z_p z_s H_1
  // + z_s^2 H_2, and for every parameter t u_t + deta/dt = z_p L_p + z_s L_s
  // (+ x for a fixed effect).
  for (Index j = 0; one_pass_ && j < xp.k1; ++j)
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index off = xp.r1_off[e], cs = first[1] + xp.r1_row[e];
      const double* m = moments.sums.data() + off * moments.width;
      const double H[3] = {th[0] * th[0] * diag[j], 2.0 * th[0] * th[1] * pair[off], th[1] * th[1] * diag[cs]};
      const double* dp = du.data() + j * width;
      const double* ds = du.data() + cs * width;
      for (int k = 0; k < width; ++k) {
        const double Lp = th[0] * dp[k] + (k == 0 ? us[j] : 0.0), Ls = th[1] * ds[k] + (k == 1 ? us[cs] : 0.0);
        double sum = 0.0;
        for (int a = 0; a < 3; ++a) {
          sum += H[a] * (Lp * m[moments.cubic(a)] + Ls * m[moments.cubic(a + 1)]);
          if (k >= nb) sum += H[a] * m[moments.by_x(a, k - nb)];
        }
        g[k] += sum;
      }
    }

  // Pass 2: v_i = w'_i h_i times deta_i/dt for every parameter t (w'
  // computed again: the pass streams the data).
  std::vector<double> deta(width);
  for (Index start = 0; !one_pass_ && start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    rows.load(d, first, us, start, len);
    if (!observation_chunk(start, len)) return false;
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
      const double v = wp[i] * h;
      for (int t = 0; t < nb; ++t) g[t] += v * (rows.e[t * kChunk + i] + deta[t]);
      for (int k = 0; k < p; ++k) g[nb + k] += v * (d.X[static_cast<Index>(k) * n + start + i] + deta[nb + k]);
    }
  }
  gradient.setZero(nb + p);
  for (int t = 0; t < nb; ++t) gradient[d.blocks[t].cov.theta_index[0]] = g[t];
  gradient.tail(p) = g.tail(p);
  return gradient.allFinite();
}

// The checks both cases share, then the case.
bool SeveralTermsLaplaceGradient::operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                                             const std::vector<Eigen::MatrixXd>& u, BlockedCholesky& M,
                                             Eigen::VectorXd& gradient, Eigen::VectorXd* half_score) {
  if (half_score) half_score->resize(0);
  const CrossProducts& xp = M.cross_products();
  TermLayout L;
  if (!M.holds_factor() || static_cast<int>(u.size()) != static_cast<int>(d_.blocks.size()) ||
      !L.set_up(d_, xp, theta))
    return false;
  for (int f = 0; f < L.nb; ++f)
    if (u[f].rows() != L.q[f] || u[f].cols() != d_.blocks[f].n_levels) return false;
  if (pair_offset_.empty() && !find_pairs(xp)) {
    pair_offset_.clear();
    return false;
  }
  return scalar_ ? scalar_terms(theta, beta, u, M, gradient) : vector_terms(L, beta, u, M, gradient, half_score);
}

// With A = Z'WZ, E_t = dLambda/dtheta_t (the places of theta_t in the T's,
// on every level of their factor), a_i = Lambda'z_i and s, w, w' as above:
//   d/dtheta_t = s'Z E_t u + 2 tr(M^{-1} Lambda'A E_t) + sum_i w'_i h_i deta_i/dtheta_t,
//   tr(M^{-1} Lambda'A E_t) = sum_i w_i (E_t'z_i)'M^{-1} a_i,   h_i = a_i'M^{-1} a_i,
//   deta/dtheta_t = Z E_t u + Z Lambda du_t,  du_t = -M^{-1} (E_t'Z's / 2 + Lambda'A E_t u),
//   d/dbeta = X's + sum_i w'_i h_i (x_i + (Z Lambda du_beta)_i),  du_beta = -M^{-1} Lambda'Z'WX.
// Every sum runs over the observation's coordinates of M only. Pass 1 forms
// the right-hand sides, pass 2 (after the solve and the selected inverse)
// the sums with M^{-1}; each pass streams the data by chunks of rows.
bool SeveralTermsLaplaceGradient::vector_terms(const TermLayout& L, const Eigen::VectorXd& beta,
                                               const std::vector<Eigen::MatrixXd>& u, BlockedCholesky& M,
                                               Eigen::VectorXd& gradient, Eigen::VectorXd* half_score) {
  const ModelData& d = d_;
  const GlmFamily& fam = fam_;
  const CrossProducts& xp = M.cross_products();
  const int nb = L.nb, wq = L.width_q, p = d.p, np = static_cast<int>(L.places.size());
  const int width = np + p;  // one column per place of theta, then per fixed effect
  const Index n = d.n, nz = xp.k1 * xp.q1 + xp.m;
  constexpr Index kChunk = TermRows::kChunk;
  TermRows rows(L);
  std::vector<double> s(kChunk), w(kChunk), wp(kChunk), dz(width);
  Eigen::VectorXd g = Eigen::VectorXd::Zero(width);  // per place, then per fixed effect
  // A chunk of rows and their observation terms s, w, w' (both passes).
  auto load_chunk = [&](Index start, Index len) {
    rows.load(d, xp, L, beta, u, start, len);
    return observation_terms(fam, rows.eta.data(), d.y + start, d.weights ? d.weights + start : nullptr, len,
                             s.data(), w.data(), wp.data());
  };

  // Pass 1: s'Z E u and X's into g; per coordinate of M (row-major) the
  // right-hand sides E'Z's / 2 + Lambda'A E u and Lambda'Z'WX.
  std::vector<double> rhs(static_cast<std::size_t>(nz * width), 0.0);
  if (half_score) half_score->setZero(nz);
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    if (!load_chunk(start, len)) return false;
    for (int k = 0; k < p; ++k) {
      const double* x = d.X + static_cast<Index>(k) * n + start;
      double xs = 0.0;
      for (Index i = 0; i < len; ++i) xs += x[i] * s[i];
      g[np + k] += xs;
    }
    for (Index i = 0; i < len; ++i) {
      const Index* lv = rows.level.data() + i * nb;
      const Index* co = rows.coord.data() + i * nb;
      const double* zi = rows.z.data() + i * wq;
      const double* ai = rows.a.data() + i * wq;
      // dz: z_i'E u per place (deta at fixed u), then x_i
      for (int k = 0; k < np; ++k) {
        const TermLayout::Place& P = L.places[k];
        dz[k] = zi[L.off[P.f] + P.r] * u[P.f](P.c, lv[P.f]);
        g[k] += s[i] * dz[k];
        rhs[(co[P.f] + P.c) * width + k] += 0.5 * s[i] * zi[L.off[P.f] + P.r];
      }
      for (int k = 0; k < p; ++k) dz[np + k] = d.X[static_cast<Index>(k) * n + start + i];
      for (int f = 0; f < nb; ++f)
        for (int r = 0; r < L.q[f]; ++r) {
          const double wa = w[i] * ai[L.off[f] + r];
          double* row = rhs.data() + (co[f] + r) * width;
          for (int k = 0; k < width; ++k) row[k] += wa * dz[k];
          if (half_score) (*half_score)[co[f] + r] += 0.5 * s[i] * zi[L.off[f] + r];
        }
    }
  }
  const Eigen::MatrixXd R =
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(rhs.data(), nz, width);
  std::vector<double>().swap(rhs);
  // du, row-major like rhs: pass 2 reads a coordinate's row at once.
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> du = -M.solve_M(R);
  std::vector<double> primary, pair;
  M.selected_inverse(primary, pair);

  // Pass 2: per observation M^{-1} at its coordinates (Mi, wq x wq), v =
  // M^{-1} a_i, h_i = a_i'v; the trace terms w_i (E'z_i)'v and w'_i h_i
  // deta_i/dt for every parameter t.
  const int q1 = xp.q1;
  std::vector<double> Mi(static_cast<std::size_t>(wq) * wq), v(wq);
  for (Index start = 0; start < n; start += kChunk) {
    const Index len = std::min(kChunk, n - start);
    if (!load_chunk(start, len)) return false;
    for (Index i = 0; i < len; ++i) {
      const Index* lv = rows.level.data() + i * nb;
      const Index* co = rows.coord.data() + i * nb;
      const double* zi = rows.z.data() + i * wq;
      const double* ai = rows.a.data() + i * wq;
      const double* Mjj = primary.data() + lv[0] * q1 * q1;
      for (int c = 0; c < q1; ++c)
        for (int r = 0; r < q1; ++r) Mi[r + c * wq] = Mjj[r + c * q1];
      for (int f = 1; f < nb; ++f) {
        const Index sf = L.sec_first[f] + lv[f];
        const double* Mf = pair.data() + pair_offset_[(f - 1) * n + start + i];
        const int qf = L.q[f], of = L.off[f];
        for (int c = 0; c < q1; ++c)
          for (int r = 0; r < qf; ++r) Mi[of + r + c * wq] = Mi[c + (of + r) * wq] = Mf[r + c * qf];
        for (int f2 = 1; f2 <= f; ++f2) {
          const Index s2 = L.sec_first[f2] + lv[f2];
          const int o2 = L.off[f2];
          for (int c = 0; c < L.q[f2]; ++c)
            for (int r = 0; r < qf; ++r)
              Mi[of + r + (o2 + c) * wq] = Mi[o2 + c + (of + r) * wq] = M.secondary_inverse(sf, r, s2, c);
        }
      }
      double h = 0.0;
      for (int r = 0; r < wq; ++r) {
        double vr = 0.0;
        for (int c = 0; c < wq; ++c) vr += Mi[r + c * wq] * ai[c];
        v[r] = vr;
        h += ai[r] * vr;
      }
      const double vh = wp[i] * h;
      for (int k = 0; k < np; ++k) {
        const TermLayout::Place& P = L.places[k];
        const double zr = zi[L.off[P.f] + P.r];
        dz[k] = zr * u[P.f](P.c, lv[P.f]);
        g[k] += 2.0 * w[i] * zr * v[L.off[P.f] + P.c];
      }
      for (int k = 0; k < p; ++k) dz[np + k] = d.X[static_cast<Index>(k) * n + start + i];
      for (int f = 0; f < nb; ++f)
        for (int r = 0; r < L.q[f]; ++r) {
          const double af = ai[L.off[f] + r];
          const double* dr = du.data() + (co[f] + r) * width;
          for (int k = 0; k < width; ++k) dz[k] += af * dr[k];
        }
      for (int k = 0; k < width; ++k) g[k] += vh * dz[k];
    }
  }
  gradient.setZero(L.n_theta + p);
  for (int k = 0; k < np; ++k) gradient[L.places[k].t] += g[k];
  gradient.tail(p) = g.tail(p);
  return gradient.allFinite();
}

}  // namespace mlm
