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
  return canonical_link(fam) && n_theta == 1 && d.blocks.size() == 1 && d.blocks[0].q == 1 &&
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
    for (Index i = 0; i < len; ++i) eta[i] = d.offset ? d.offset[start + i] : 0.0;
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      const double bc = beta[c];
      for (Index i = 0; i < len; ++i) eta[i] += bc * x[i];
    }
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
