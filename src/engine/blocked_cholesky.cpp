#include "blocked_cholesky.h"

#include <cmath>
#include <algorithm>
#include <functional>
#include <stdexcept>

#include "dense_kernels.h"
#include "small_dense.h"

namespace mlm {

BlockedCholesky::BlockedCholesky(const CrossProducts& xp, const std::vector<CovTemplate>& templates)
    : xp_(xp), tpl_(templates) {
  if (tpl_.size() != xp.sec_levels.size() + 1)
    throw std::invalid_argument("one covariance template per grouping factor is needed");
  for (std::size_t f = 0; f < tpl_.size(); ++f)
    if (tpl_[f].q != (f == 0 ? xp.q1 : xp.sec_q[f - 1]))
      throw std::invalid_argument("a covariance template does not match its grouping factor");
  T_.resize(tpl_.size());
  for (std::size_t f = 0; f < tpl_.size(); ++f) T_[f].setZero(tpl_[f].q, tpl_[f].q);
  const int P = xp.p + 1;
  L1_.resize(xp.q1, xp.k1 * xp.q1);
  LX1_.resize(P, xp.k1 * xp.q1);
  if (xp.m > 0) set_up_secondary();
  int qmax = xp.q1;
  for (int q : xp.sec_q) qmax = std::max(qmax, q);
  work_.resize(static_cast<std::size_t>(4) * std::max(qmax, P) * std::max(qmax, P));
  all_scalar_ = xp.q1 == 1;
  for (int q : xp.sec_q) all_scalar_ = all_scalar_ && q == 1;
}

void fill_relative_factors(const std::vector<CovTemplate>& tpl, const Eigen::VectorXd& theta,
                           std::vector<Eigen::MatrixXd>& T) {
  for (std::size_t f = 0; f < tpl.size(); ++f) {
    const int q = tpl[f].q;
    for (int c = 0; c < q; ++c)
      for (int r = 0; r < q; ++r) {
        const int k = tpl[f].theta_index[r + c * q];
        T[f](r, c) = (k >= 0 && r >= c) ? theta[k] : 0.0;
      }
  }
}

void BlockedCholesky::fill_templates(const Eigen::VectorXd& theta) {
  fill_relative_factors(tpl_, theta, T_);
  if (all_scalar_) {
    sec_scale_.resize(xp_.n_sec);
    for (Index s = 0; s < xp_.n_sec; ++s) sec_scale_[s] = T_[1 + xp_.sec_fac[s]](0, 0);
  }
}

// The pattern of S block by block, in a fixed order: the diagonal block of
// each secondary level, the blocks between secondary factors that share
// observations, and the fill L_R1 L_R1' from levels that share a primary
// level. f(row0, qr, col0, qc, diagonal) receives coordinates and sizes.
template <class F>
void BlockedCholesky::for_each_schur_block(F&& f) const {
  const CrossProducts& xp = xp_;
  for (Index s = 0; s < xp.n_sec; ++s) f(xp.sec_start[s], xp.q_of(s), xp.sec_start[s], xp.q_of(s), true);
  for (std::size_t e = 0; e < xp.rr_row.size(); ++e)
    f(xp.sec_start[xp.rr_row[e]], xp.q_of(xp.rr_row[e]), xp.sec_start[xp.rr_col[e]], xp.q_of(xp.rr_col[e]), false);
  for (Index j = 0; j < xp.k1; ++j)
    for (Index a = xp.r1_ptr[j]; a < xp.r1_ptr[j + 1]; ++a)
      for (Index b = xp.r1_ptr[j]; b < a; ++b) {
        const Index ra = xp.r1_row[a], rb = xp.r1_row[b];
        f(xp.sec_start[ra], xp.q_of(ra), xp.sec_start[rb], xp.q_of(rb), false);
      }
}

// The pattern is analysed once. A dense S needs no stored positions
// (column * m + row); a sparse one keeps the position of every scattered
// entry: diagonal blocks by level, the others in the order
// assemble_schur_with() visits them.
void BlockedCholesky::set_up_secondary() {
  const CrossProducts& xp = xp_;
  sec_.set_pattern(xp.m, [this](const std::function<void(Index, Index)>& entry) {
    for_each_schur_block([&](Index r0, int qr, Index c0, int qc, bool diag) {
      for (int b = 0; b < qc; ++b)
        for (int a = diag ? b : 0; a < qr; ++a) entry(r0 + a, c0 + b);
    });
  });
  if (!sec_.dense()) {
    diag_pos_off_.assign(xp.n_sec, 0);
    Index s = 0;
    for_each_schur_block([&](Index r0, int qr, Index c0, int qc, bool diag) {
      std::vector<Index>& out = diag ? diag_pos_ : block_pos_;
      if (diag) diag_pos_off_[s++] = static_cast<Index>(diag_pos_.size());
      for (int b = 0; b < qc; ++b)
        for (int a = 0; a < qr; ++a) out.push_back(diag && a < b ? -1 : sec_.position(r0 + a, c0 + b));
    });
  }
  LR1_.assign(xp.r1_vals.size(), 0.0);
  W_.resize(xp.p + 1, xp.m);
  Y_.resize(xp.m, xp.p + 1);
  choose_fill_method();
}

// Costs in nanoseconds, measured roughly: a multiply-add of the gathered
// fill (an indexed read and a cached write) ~1 ns; one of a dense rank
// update ~0.1 ns (register-blocked, vectorised). The dense method also
// needs L_R1 as a dense matrix: at most four times the memory of its
// blocks (or 8 MB).
void BlockedCholesky::choose_fill_method() {
  const CrossProducts& xp = xp_;
  fill_ = FillMethod::scatter;
  if (!sec_.dense()) return;
  const double q1 = xp.q1, m = static_cast<double>(xp.m);
  double pair_madds = 0.0;
  for (Index j = 0; j < xp.k1; ++j) {
    double q_sum = 0.0, q_sq = 0.0;
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const double q = xp.q_of(xp.r1_row[e]);
      q_sum += q;
      q_sq += q * q;
    }
    pair_madds += 0.5 * (q_sum * q_sum + q_sq) * q1;
  }
  const double dense_cols = static_cast<double>(xp.k1) * q1;
  const double dense_madds = 0.5 * m * m * dense_cols;
  const double dense_doubles = m * dense_cols;
  const bool dense_fits = dense_doubles <= std::max(4.0 * static_cast<double>(xp.r1_vals.size()), 1e6);
  if (dense_fits && 0.1 * dense_madds < 1.0 * pair_madds) {
    fill_ = FillMethod::dense;
    Gd_ = std::make_shared<AlignedMatrix>();
    Gd_->set_zero(xp.m, xp.k1 * xp.q1);
    return;
  }
  fill_ = FillMethod::gather;
  const Index n_sec = xp.n_sec;
  by_sec_ptr_.assign(n_sec + 1, 0);
  for (Index e = 0; e < static_cast<Index>(xp.r1_row.size()); ++e) ++by_sec_ptr_[xp.r1_row[e] + 1];
  for (Index s = 0; s < n_sec; ++s) by_sec_ptr_[s + 1] += by_sec_ptr_[s];
  by_sec_entry_.resize(xp.r1_row.size());
  by_sec_level_.resize(xp.r1_row.size());
  std::vector<Index> next(by_sec_ptr_.begin(), by_sec_ptr_.end() - 1);
  for (Index j = 0; j < xp.k1; ++j)
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index k = next[xp.r1_row[e]]++;
      by_sec_entry_[k] = e;
      by_sec_level_[k] = j;
    }
}

void BlockedCholesky::share_fill_scratch(const BlockedCholesky& other) {
  if (fill_ != FillMethod::dense || other.fill_ != FillMethod::dense || Gd_ == other.Gd_) return;
  if (xp_.m != other.xp_.m || xp_.k1 != other.xp_.k1 || xp_.q1 != other.xp_.q1 || xp_.r1_ptr != other.xp_.r1_ptr ||
      xp_.r1_row != other.xp_.r1_row)
    return;
  Gd_ = other.Gd_;  // the same pattern: the entries outside it stay zero in both
}

double BlockedCholesky::flops_per_factor() const {
  const double q1 = xp_.q1, P = xp_.p + 1.0, m = static_cast<double>(xp_.m);
  double flops = static_cast<double>(xp_.k1) * (2.0 * q1 * q1 * q1 + 2.0 * P * q1 * q1 + P * P * q1);
  double pairs = 0.0;
  for (Index j = 0; j < xp_.k1; ++j) {
    const double r = static_cast<double>(xp_.r1_ptr[j + 1] - xp_.r1_ptr[j]);
    pairs += r * (r + 1.0) / 2.0;
  }
  flops += pairs * 2.0 * q1;
  if (xp_.m > 0) flops += sec_.dense() ? m * m * m / 3.0 + m * m * P : 20.0 * m * P;
  return flops;
}

// How many fills set_fill_key() keeps: with every term scalar and a dense
// S filled by gathering, up to three (the primary T of a central
// difference and its two neighbours) in at most 32 MB.
int BlockedCholesky::fill_cache_slots() const {
  if (!all_scalar_ || xp_.m == 0 || !sec_.dense() || fill_ != FillMethod::gather) return 0;
  const double bytes = 8.0 * static_cast<double>(xp_.m) * static_cast<double>(xp_.m);
  return static_cast<int>(std::min(3.0, std::floor(32e6 / bytes)));
}

namespace {

// log of a product of many positive factors, such as the diagonal of a
// Cholesky factor of I + a positive semi-definite matrix (all >= 1): one
// log per 1e200 of growth instead of one per factor (a log costs about as
// much as the rest of a 2 x 2 level's factorisation).
class LogOfProduct {
 public:
  void add(double d) {
    if (!(d < 1e100 && d > 1e-100)) {  // the product stays within 1e-300 .. 1e300
      sum_ += std::log(d);
      return;
    }
    product_ *= d;
    if (!(product_ < 1e200 && product_ > 1e-200)) {
      sum_ += std::log(product_);
      product_ = 1.0;
    }
  }
  double value() const { return sum_ + std::log(product_); }

 private:
  double product_ = 1.0, sum_ = 0.0;
};

}  // namespace

template <int Q>
bool BlockedCholesky::factor_primary(Eigen::MatrixXd& XXs) {
  const CrossProducts& xp = xp_;
  const int q1 = Q > 0 ? Q : xp.q1;
  const int P = xp.p + 1;
  const double* T1 = T_[0].data();
  double fixed_tmp[Q > 0 ? Q * Q : 1];
  double* tmp = Q > 0 ? fixed_tmp : work_.data();
  // L_X1 L_X1' summed apart from XX: its terms are positive semi-definite,
  // so the sum loses nothing to cancellation before the one subtraction.
  Eigen::MatrixXd fill = Eigen::MatrixXd::Zero(P, P);
  double* F = fill.data();
  LogOfProduct det;
  for (Index j = 0; j < xp.k1; ++j) {
    double* L = L1_.data() + j * q1 * q1;
    const double* D = xp.D1.data() + j * q1 * q1;
    small::mult_lower_right(D, q1, q1, T1, tmp);
    small::mult_lower_transpose_left(T1, q1, tmp, q1, L);
    for (int a = 0; a < q1; ++a) L[a + a * q1] += 1.0;
    if (!small::cholesky_lower(L, q1)) return false;
    for (int a = 0; a < q1; ++a) det.add(L[a + a * q1]);
    double* LX = LX1_.data() + j * q1 * P;
    small::mult_lower_right(xp.C1.data() + j * q1 * P, P, q1, T1, LX);
    small::solve_right_lower_transpose(LX, P, q1, L);
    for (int c = 0; c < P; ++c)
      for (int r = c; r < P; ++r) {
        double v = 0.0;
        for (int k = 0; k < q1; ++k) v += LX[r + k * P] * LX[c + k * P];
        F[r + c * P] += v;
      }
  }
  ld_L2_ = 2.0 * det.value();
  XXs = xp.XX;
  XXs.triangularView<Eigen::Lower>() -= fill;
  return true;
}

bool BlockedCholesky::factor(const Eigen::VectorXd& theta) {
  const CrossProducts& xp = xp_;
  factored_ = false;
  fill_templates(theta);
  const int P = xp.p + 1;
  const int q1 = xp.q1;
  const double* T1 = T_[0].data();
  const unsigned long key = fill_key_;
  fill_key_ = 0;
  const int slots = key != 0 ? fill_cache_slots() : 0;
  const bool use_cache = slots > 0;
  std::size_t slot = 0;
  while (slot < fill_cache_.size() && !(fill_cache_[slot].key == key && fill_cache_[slot].t1 == T1[0])) ++slot;
  const bool cache_hit = use_cache && slot < fill_cache_.size();
  if (use_cache) {  // the slot used goes first; a new fill replaces the least recently used
    if (!cache_hit && fill_cache_.size() < static_cast<std::size_t>(slots)) fill_cache_.emplace_back();
    if (!cache_hit) slot = fill_cache_.size() - 1;
    std::rotate(fill_cache_.begin(), fill_cache_.begin() + slot, fill_cache_.begin() + slot + 1);
  }
  double* tmp = work_.data();

  // Primary factor: one small Cholesky per level, and the fixed-effect rows.
  Eigen::MatrixXd XXs;
  bool primary_ok;
  switch (q1) {
    case 1: primary_ok = factor_primary<1>(XXs); break;
    case 2: primary_ok = factor_primary<2>(XXs); break;
    case 3: primary_ok = factor_primary<3>(XXs); break;
    default: primary_ok = factor_primary<0>(XXs);
  }
  if (!primary_ok) return false;

  if (xp.m > 0) {
    // L_R1 = T_f' A_R1 T1 L1^{-T}, block by block, with M = T1 L1^{-T}
    // formed once per primary level (no division per entry).
    double* M = work_.data() + work_.size() - q1 * q1;  // clear of tmp (q x q1 at most qmax^2)
    for (Index j = 0; j < xp.k1; ++j) {
      std::copy(T1, T1 + q1 * q1, M);
      small::solve_right_lower_transpose(M, q1, q1, L1_.data() + j * q1 * q1);
      const Index e0 = xp.r1_ptr[j], e1 = xp.r1_ptr[j + 1];
      if (all_scalar_) {
        const double c = M[0];
        if (use_cache && !cache_hit) {  // unscaled for the cache first
          for (Index e = e0; e < e1; ++e) LR1_[e] = xp.r1_vals[e] * c;
          continue;
        }
        for (Index e = e0; e < e1; ++e) LR1_[e] = xp.r1_vals[e] * c * sec_scale_[xp.r1_row[e]];
        continue;
      }
      for (Index e = e0; e < e1; ++e) {
        const Index s = xp.r1_row[e];
        const int q = xp.q_of(s);
        const double* A = xp.r1_vals.data() + xp.r1_off[e];
        for (int c = 0; c < q1; ++c)
          for (int r = 0; r < q; ++r) {
            double v = 0.0;
            for (int k = 0; k < q1; ++k) v += A[r + k * q] * M[k + c * q1];
            tmp[r + c * q] = v;
          }
        small::mult_lower_transpose_left(T_[1 + xp.sec_fac[s]].data(), q, tmp, q1, LR1_.data() + xp.r1_off[e]);
      }
    }
    if (fill_ == FillMethod::dense) lay_out_LR1(0, xp.k1, *Gd_);
    if (use_cache && !cache_hit) {
      CachedFill& c = fill_cache_.front();
      c.F.set_zero(xp.m, xp.m);
      subtract_fill_dense(c.F.data());
      c.key = key;
      c.t1 = T1[0];
      for (std::size_t e = 0; e < LR1_.size(); ++e) LR1_[e] *= sec_scale_[xp.r1_row[e]];
    }
    if (use_cache) {
      assemble_schur(false);
      add_cached_fill(fill_cache_.front().F);
    } else {
      assemble_schur();
    }
    double ld_S = 0.0;
    if (!sec_.factor(ld_S)) return false;
    ld_L2_ += ld_S;

    // Fixed-effect rows of the secondary block: (C_R Lambda_R - L_X1 L_R1') H^{-T}.
    for (Index s = 0; s < xp.n_sec; ++s) {
      const int q = xp.q_of(s);
      small::mult_lower_right(xp.CR.data() + xp.sec_start[s] * P, P, q, T_[1 + xp.sec_fac[s]].data(),
                              W_.data() + xp.sec_start[s] * P);
    }
    for (Index j = 0; j < xp.k1; ++j) {
      const double* LX = LX1_.data() + j * q1 * P;
      for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
        const Index s = xp.r1_row[e];
        small::sub_mult_transpose(LX, P, q1, LR1_.data() + xp.r1_off[e], xp.q_of(s),
                                  W_.data() + xp.sec_start[s] * P, P);
      }
    }
    Y_ = W_.transpose();
    sec_.half_solve(Y_);
    XXs.selfadjointView<Eigen::Lower>().rankUpdate(Y_.transpose(), -1.0);
  }

  Eigen::LLT<Eigen::MatrixXd> llt(XXs);
  if (llt.info() != Eigen::Success) return false;
  LXX_ = llt.matrixL();
  ld_RX2_ = 0.0;
  for (int i = 0; i < xp.p; ++i) {
    if (!(LXX_(i, i) > 0.0)) return false;
    ld_RX2_ += 2.0 * std::log(LXX_(i, i));
  }
  pwrss_ = LXX_(xp.p, xp.p) * LXX_(xp.p, xp.p);
  factored_ = std::isfinite(ld_L2_) && std::isfinite(ld_RX2_) && pwrss_ > 0.0;
  return factored_;
}

namespace {

// Where the entries of S live: dense storage computes them, sparse storage
// looks them up (diagonal blocks by level and offset k = a + b q, the other
// blocks in visiting order).
struct DensePositions {
  Index m;
  Index diag(Index, Index row, Index col, int) const { return col * m + row; }
  Index next(Index row, Index col) { return col * m + row; }
};
struct StoredPositions {
  const Index* diag_pos;
  const Index* diag_off;
  const Index* cursor;
  Index diag(Index s, Index, Index, int k) const { return diag_pos[diag_off[s] + k]; }
  Index next(Index, Index) { return *cursor++; }
};

}  // namespace

// S = Lambda_R' A_RR Lambda_R + I - L_R1 L_R1' scattered into the fixed pattern.
void BlockedCholesky::assemble_schur(bool with_fill) {
  if (sec_.dense()) {
    DensePositions pos{xp_.m};
    assemble_schur_with(pos, with_fill);
  } else {
    StoredPositions pos{diag_pos_.data(), diag_pos_off_.data(), block_pos_.data()};
    assemble_schur_with(pos, with_fill);
  }
}

template <class Positions>
void BlockedCholesky::assemble_schur_with(Positions& pos, bool with_fill) {
  const CrossProducts& xp = xp_;
  sec_.zero();
  double* S = sec_.values();
  double* tmp = work_.data();
  double* tmp2 = work_.data() + work_.size() / 2;
  // The order of for_each_schur_block(): diagonal blocks, blocks between
  // secondary factors, then the fill from each primary level.
  for (Index s = 0; s < xp.n_sec; ++s) {
    const int q = xp.q_of(s);
    const Index s0 = xp.sec_start[s];
    const double* T = T_[1 + xp.sec_fac[s]].data();
    small::mult_lower_right(xp.rr_diag.data() + xp.rr_diag_off[s], q, q, T, tmp);
    small::mult_lower_transpose_left(T, q, tmp, q, tmp2);
    for (int b = 0; b < q; ++b)
      for (int a = b; a < q; ++a) S[pos.diag(s, s0 + a, s0 + b, a + b * q)] += tmp2[a + b * q] + (a == b ? 1.0 : 0.0);
  }
  for (std::size_t e = 0; e < xp.rr_row.size(); ++e) {
    const Index r = xp.rr_row[e], c = xp.rr_col[e];
    const int qr = xp.q_of(r), qc = xp.q_of(c);
    small::mult_lower_right(xp.rr_vals.data() + xp.rr_off[e], qr, qc, T_[1 + xp.sec_fac[c]].data(), tmp);
    small::mult_lower_transpose_left(T_[1 + xp.sec_fac[r]].data(), qr, tmp, qc, tmp2);
    for (int b = 0; b < qc; ++b)
      for (int a = 0; a < qr; ++a) S[pos.next(xp.sec_start[r] + a, xp.sec_start[c] + b)] += tmp2[a + b * qr];
  }
  if (fill_ != FillMethod::scatter) {
    if (with_fill) subtract_fill_dense(S);
    return;
  }
  const int q1 = xp.q1;
  for (Index j = 0; j < xp.k1; ++j) {
    for (Index a = xp.r1_ptr[j]; a < xp.r1_ptr[j + 1]; ++a) {
      const Index ra = xp.r1_row[a];
      const int qa = xp.q_of(ra);
      const Index a0 = xp.sec_start[ra];
      const double* Ga = LR1_.data() + xp.r1_off[a];
      for (int c = 0; c < qa; ++c)
        for (int r = c; r < qa; ++r) {
          double v = 0.0;
          for (int k = 0; k < q1; ++k) v += Ga[r + k * qa] * Ga[c + k * qa];
          S[pos.diag(ra, a0 + r, a0 + c, r + c * qa)] -= v;
        }
      for (Index b = xp.r1_ptr[j]; b < a; ++b) {
        const Index rb = xp.r1_row[b];
        const int qb = xp.q_of(rb);
        const Index b0 = xp.sec_start[rb];
        const double* Gb = LR1_.data() + xp.r1_off[b];
        for (int c = 0; c < qb; ++c)
          for (int r = 0; r < qa; ++r) {
            double v = 0.0;
            for (int k = 0; k < q1; ++k) v += Ga[r + k * qa] * Gb[c + k * qb];
            S[pos.next(a0 + r, b0 + c)] -= v;
          }
      }
    }
  }
}

// S -= L_R1 L_R1' into the lower triangle of a dense S. Gathered: for each
// column block (secondary level b), every primary level j that meets b adds
// G_a G_b' for its entries a at or after b (so a >= b, the lower triangle);
// the target is one column block of S, which stays in cache.
void BlockedCholesky::subtract_fill_dense(double* S) {
  const CrossProducts& xp = xp_;
  const Index m = xp.m;
  if (fill_ == FillMethod::dense) {
    dense::subtract_gram(S, m, Gd_->data(), Gd_->cols());
    return;
  }
  const int q1 = xp.q1;
  if (all_scalar_) {  // one coordinate per level and per entry: no block offsets
    const Index* row = xp.r1_row.data();
    const double* G = LR1_.data();
    for (Index sb = 0; sb < xp.n_sec; ++sb) {
      double* Scol = S + sb * m;
      for (Index k = by_sec_ptr_[sb]; k < by_sec_ptr_[sb + 1]; ++k) {
        const Index eb = by_sec_entry_[k], end = xp.r1_ptr[by_sec_level_[k] + 1];
        const double g = G[eb];
        for (Index ea = eb; ea < end; ++ea) Scol[row[ea]] -= G[ea] * g;
      }
    }
    return;
  }
  for (Index sb = 0; sb < xp.n_sec; ++sb) {
    const int qb = xp.q_of(sb);
    double* Scol = S + xp.sec_start[sb] * m;
    for (Index k = by_sec_ptr_[sb]; k < by_sec_ptr_[sb + 1]; ++k) {
      const Index eb = by_sec_entry_[k], end = xp.r1_ptr[by_sec_level_[k] + 1];
      const double* Gb = LR1_.data() + xp.r1_off[eb];
      if (q1 == 1 && qb == 1) {
        const double g = Gb[0];
        for (Index ea = eb; ea < end; ++ea) {
          const Index sa = xp.r1_row[ea];
          const int qa = xp.q_of(sa);
          const double* Ga = LR1_.data() + xp.r1_off[ea];
          double* out = Scol + xp.sec_start[sa];
          for (int r = 0; r < qa; ++r) out[r] -= Ga[r] * g;
        }
        continue;
      }
      for (Index ea = eb; ea < end; ++ea) {
        const Index sa = xp.r1_row[ea];
        const int qa = xp.q_of(sa);
        const double* Ga = LR1_.data() + xp.r1_off[ea];
        double* out = Scol + xp.sec_start[sa];
        for (int c = 0; c < qb; ++c)
          for (int r = 0; r < qa; ++r) {
            double v = 0.0;
            for (int l = 0; l < q1; ++l) v += Ga[r + l * qa] * Gb[c + l * qb];
            out[r + c * m] -= v;
          }
      }
    }
  }
}

// S += T_R (-F) T_R from the cache (lower triangle; T_R diagonal).
void BlockedCholesky::add_cached_fill(const AlignedMatrix& cached) {
  const Index m = xp_.m;
  double* S = sec_.values();
  const double* F = cached.data();
  const double* t = sec_scale_.data();
  for (Index b = 0; b < m; ++b)
    for (Index a = b; a < m; ++a) S[a + b * m] += t[a] * t[b] * F[a + b * m];
}

// Columns j0 q1 .. j1 q1 - 1 of L_R1 (primary levels j0 .. j1 - 1) into
// the columns from 0 of the dense m-row G, from their blocks in LR1_; the
// entries outside the pattern are left as they are (zero).
void BlockedCholesky::lay_out_LR1(Index j0, Index j1, AlignedMatrix& G) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  for (Index j = j0; j < j1; ++j)
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index s = xp.r1_row[e];
      const int q = xp.q_of(s);
      const double* B = LR1_.data() + xp.r1_off[e];
      for (int k = 0; k < q1; ++k)
        for (int r = 0; r < q; ++r) G(xp.sec_start[s] + r, (j - j0) * q1 + k) = B[r + k * q];
    }
}

// Q_e = sum over entries e' of the same primary level of S^{-1}(e, e') G_e',
// for all entries at once from a dense S^{-1} (both triangles stored):
// one dense product (dense method), or gathered by column block of S^{-1}.
void BlockedCholesky::compute_all_q() const {
  const CrossProducts& xp = xp_;
  const Index m = xp.m;
  const int q1 = xp.q1;
  q_all_.assign(xp.r1_vals.size(), 0.0);
  const AlignedMatrix& Sinv = sec_.dense_matrix();
  if (fill_ == FillMethod::dense) {
    // S^{-1} L_R1' by blocks of 256 primary levels, each block of L_R1
    // laid out dense from LR1_: two blocks in memory rather than two
    // matrices as large as a dense L_R1. Each column is the same sum in the
    // same order as in one product: the blocks start at multiples of 256
    // q1 columns, where the kernel's column tiles start, and none is a
    // single column (a matrix-vector product sums in another order) or
    // small enough for Eigen's coefficient-wise product (m >= 16).
    const Index levels_per_block = m >= 16 ? 256 : xp.k1;
    const Index max_cols = std::min(xp.k1, levels_per_block + 1) * q1;
    AlignedMatrix Gb, Qd;
    Gb.set_zero(m, max_cols);
    Qd.set_zero(m, max_cols);
    for (Index j0 = 0, j1 = 0; j0 < xp.k1; j0 = j1) {
      j1 = std::min(xp.k1, j0 + levels_per_block);
      if ((xp.k1 - j1) * q1 == 1) j1 = xp.k1;
      if (j0 > 0) Gb.set_zero();
      lay_out_LR1(j0, j1, Gb);
      dense::multiply(Sinv.data(), m, Gb.data(), (j1 - j0) * q1, Qd.data());
      for (Index j = j0; j < j1; ++j)
        for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
          const Index s = xp.r1_row[e];
          const int q = xp.q_of(s);
          double* Q = q_all_.data() + xp.r1_off[e];
          for (int k = 0; k < q1; ++k)
            for (int r = 0; r < q; ++r) Q[r + k * q] = Qd(xp.sec_start[s] + r, (j - j0) * q1 + k);
        }
    }
  } else if (all_scalar_) {
    const Index* row = xp.r1_row.data();
    const double* G = LR1_.data();
    double* Q = q_all_.data();
    for (Index sb = 0; sb < xp.n_sec; ++sb) {
      const double* Zcol = Sinv.data() + sb * m;
      for (Index k = by_sec_ptr_[sb]; k < by_sec_ptr_[sb + 1]; ++k) {
        const Index eb = by_sec_entry_[k], j = by_sec_level_[k];
        const double g = G[eb];
        for (Index ea = xp.r1_ptr[j]; ea < xp.r1_ptr[j + 1]; ++ea) Q[ea] += Zcol[row[ea]] * g;
      }
    }
  } else {
    for (Index sb = 0; sb < xp.n_sec; ++sb) {
      const int qb = xp.q_of(sb);
      const double* Zcol = Sinv.data() + xp.sec_start[sb] * m;
      for (Index k = by_sec_ptr_[sb]; k < by_sec_ptr_[sb + 1]; ++k) {
        const Index eb = by_sec_entry_[k], j = by_sec_level_[k];
        const double* Gb = LR1_.data() + xp.r1_off[eb];
        // every entry a of the primary level j: Q_a += Sinv(a, b) G_b
        for (Index ea = xp.r1_ptr[j]; ea < xp.r1_ptr[j + 1]; ++ea) {
          const Index sa = xp.r1_row[ea];
          const int qa = xp.q_of(sa);
          double* Qa = q_all_.data() + xp.r1_off[ea];
          const double* z = Zcol + xp.sec_start[sa];
          for (int l = 0; l < q1; ++l)
            for (int c = 0; c < qb; ++c) {
              const double g = Gb[c + l * qb];
              for (int r = 0; r < qa; ++r) Qa[r + l * qa] += z[r + c * m] * g;
            }
        }
      }
    }
  }
  q_generation_ = sec_.inverse_generation();
}

Eigen::MatrixXd BlockedCholesky::back_substitute(const Eigen::MatrixXd& rhs1, const Eigen::MatrixXd& rhsR) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const Eigen::Index r = rhs1.cols();
  const Index n1 = xp.k1 * q1;
  Eigen::MatrixXd out(n1 + xp.m, r);
  if (xp.m > 0) {
    for (Eigen::Index c = 0; c < r; ++c) {
      Eigen::VectorXd v = rhsR.col(c);
      sec_.half_solve_transpose(v);
      out.col(c).tail(xp.m) = v;
    }
  }
  // One pass over the blocks of L_R1 for all right-hand sides (the blocks
  // are what is large); each column's sums in the same order as alone.
  std::vector<double> v(static_cast<std::size_t>(q1) * r);
  for (Index j = 0; j < xp.k1; ++j) {
    for (Eigen::Index c = 0; c < r; ++c)
      for (int a = 0; a < q1; ++a) v[a + c * q1] = rhs1(j * q1 + a, c);
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index s = xp.r1_row[e];
      const int q = xp.q_of(s);
      const Index zs = n1 + xp.sec_start[s];
      const double* G = LR1_.data() + xp.r1_off[e];
      for (Eigen::Index c = 0; c < r; ++c) {
        const double* o = out.col(c).data() + zs;
        double* vc = v.data() + c * q1;
        for (int a = 0; a < q1; ++a)
          for (int k = 0; k < q; ++k) vc[a] -= G[k + a * q] * o[k];
      }
    }
    for (Eigen::Index c = 0; c < r; ++c) {
      double* vc = v.data() + c * q1;
      small::solve_lower_transpose(L1_.data() + j * q1 * q1, q1, vc);
      for (int a = 0; a < q1; ++a) out(j * q1 + a, c) = vc[a];
    }
  }
  return out;
}

Solution BlockedCholesky::solve() const {
  const CrossProducts& xp = xp_;
  const int p = xp.p, q1 = xp.q1;
  Solution sol;
  const Eigen::MatrixXd R = LXX_.topLeftCorner(p, p);
  sol.beta = R.transpose().triangularView<Eigen::Upper>().solve(LXX_.row(p).head(p).transpose());
  const Eigen::MatrixXd rhs1 = LX1_.row(p).transpose() - LX1_.topRows(p).transpose() * sol.beta;
  Eigen::MatrixXd rhsR(xp.m, 1);
  if (xp.m > 0) rhsR.col(0) = Y_.col(p) - Y_.leftCols(p) * sol.beta;
  const Eigen::VectorXd u = back_substitute(rhs1, rhsR).col(0);

  const std::size_t nf = tpl_.size();
  sol.u.resize(nf);
  sol.b.resize(nf);
  sol.u[0] = Eigen::Map<const Eigen::MatrixXd>(u.data(), q1, xp.k1);
  Index s = 0;
  const Index n1 = xp.k1 * q1;
  for (std::size_t f = 1; f < nf; ++f) {
    sol.u[f].resize(xp.sec_q[f - 1], xp.sec_levels[f - 1]);
    for (Index l = 0; l < xp.sec_levels[f - 1]; ++l, ++s)
      sol.u[f].col(l) = u.segment(n1 + xp.sec_start[s], xp.sec_q[f - 1]);
  }
  for (std::size_t f = 0; f < nf; ++f) sol.b[f] = T_[f] * sol.u[f];
  return sol;
}

// H d = g, with H = L L' the matrix held and g the gradient of the
// penalised least-squares objective at u with the current cross-products:
// [Lambda' Z'W r - u; X'W r], r the working response less Z b. Forward
// through the block rows of L (primary, secondary, fixed effects), then
// back as in solve().
Solution BlockedCholesky::chord_solve(const std::vector<Eigen::MatrixXd>& u_modes) const {
  const CrossProducts& xp = xp_;
  const int p = xp.p, q1 = xp.q1;
  const Index n1 = xp.k1 * q1, m = xp.m;
  Solution at;
  at.u = u_modes;
  at.b.resize(u_modes.size());
  for (std::size_t f = 0; f < u_modes.size(); ++f) at.b[f] = T_[f] * u_modes[f];
  Eigen::VectorXd u, b;
  stack_modes(at, u, b);
  Eigen::VectorXd g = weighted_residual_on_Z(Eigen::VectorXd::Zero(p), b);
  for (Index j = 0; j < xp.k1; ++j) g.segment(j * q1, q1) = T_[0].transpose() * g.segment(j * q1, q1);
  for (Index s = 0; s < xp.n_sec; ++s) {
    const int q = xp.q_of(s);
    g.segment(z_coordinate(s), q) = T_[1 + xp.sec_fac[s]].transpose() * g.segment(z_coordinate(s), q);
  }
  g -= u;
  Eigen::VectorXd gX = xp.XX.row(p).head(p).transpose() - xp.C1.topRows(p) * b.head(n1);
  if (m > 0) gX -= xp.CR.topRows(p) * b.tail(m);

  Eigen::VectorXd w1 = g.head(n1);
  for (Index j = 0; j < xp.k1; ++j) small::solve_lower(L1_.data() + j * q1 * q1, q1, w1.data() + j * q1);
  Eigen::MatrixXd wR = g.tail(m);
  for (Index j = 0; j < xp.k1; ++j)
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index s = xp.r1_row[e];
      const int q = xp.q_of(s);
      const double* G = LR1_.data() + xp.r1_off[e];
      double* o = wR.data() + xp.sec_start[s];
      for (int k = 0; k < q1; ++k)
        for (int r = 0; r < q; ++r) o[r] -= G[r + k * q] * w1[j * q1 + k];
    }
  if (m > 0) sec_.half_solve(wR);
  Eigen::VectorXd wX = gX - LX1_.topRows(p) * w1;
  if (m > 0) wX -= Y_.leftCols(p).transpose() * wR.col(0);
  const Eigen::MatrixXd R = LXX_.topLeftCorner(p, p);
  R.triangularView<Eigen::Lower>().solveInPlace(wX);

  Solution sol;
  sol.beta = R.transpose().triangularView<Eigen::Upper>().solve(wX);
  const Eigen::MatrixXd rhs1 = w1 - LX1_.topRows(p).transpose() * sol.beta;
  Eigen::MatrixXd rhsR = wR;
  if (m > 0) rhsR -= Y_.leftCols(p) * sol.beta;
  const Eigen::VectorXd d = back_substitute(rhs1, rhsR).col(0);
  const std::size_t nf = tpl_.size();
  sol.u.resize(nf);
  sol.b.resize(nf);
  sol.u[0] = u_modes[0] + Eigen::Map<const Eigen::MatrixXd>(d.data(), q1, xp.k1);
  Index s = 0;
  for (std::size_t f = 1; f < nf; ++f) {
    sol.u[f] = u_modes[f];
    for (Index l = 0; l < xp.sec_levels[f - 1]; ++l, ++s)
      sol.u[f].col(l) += d.segment(n1 + xp.sec_start[s], xp.sec_q[f - 1]);
  }
  for (std::size_t f = 0; f < nf; ++f) sol.b[f] = T_[f] * sol.u[f];
  return sol;
}

// Forward through L_Z (primary blocks, the fill rows L_R1, the Schur
// factor), then back as in solve().
Eigen::MatrixXd BlockedCholesky::solve_M(const Eigen::MatrixXd& r) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const Index k1 = xp.k1, n1 = k1 * q1, m = xp.m;
  const Eigen::Index nr = r.cols();
  Eigen::MatrixXd w1 = r.topRows(n1);
  for (Index j = 0; j < k1; ++j)
    for (Eigen::Index c = 0; c < nr; ++c) small::solve_lower(L1_.data() + j * q1 * q1, q1, w1.col(c).data() + j * q1);
  Eigen::MatrixXd wR = r.bottomRows(m);
  for (Index j = 0; j < k1; ++j)
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index s = xp.r1_row[e];
      const int q = xp.q_of(s);
      const double* G = LR1_.data() + xp.r1_off[e];
      for (Eigen::Index c = 0; c < nr; ++c) {
        double* o = wR.col(c).data() + xp.sec_start[s];
        const double* w = w1.col(c).data() + j * q1;
        for (int k = 0; k < q1; ++k)
          for (int a = 0; a < q; ++a) o[a] -= G[a + k * q] * w[k];
      }
    }
  if (m > 0) sec_.half_solve(wR);
  return back_substitute(w1, wR);
}

void BlockedCholesky::selected_inverse(std::vector<double>& primary, std::vector<double>& pair) {
  const CrossProducts& xp = xp_;
  const Index qq = static_cast<Index>(xp.q1) * xp.q1;
  if (xp.m > 0) sec_.compute_selected_inverse();
  primary.assign(static_cast<std::size_t>(xp.k1 * qq), 0.0);
  pair.assign(xp.r1_vals.size(), 0.0);
  std::vector<double> Q, Mej;
  Eigen::MatrixXd Mjj;
  for (Index j = 0; j < xp.k1; ++j) {
    inverse_blocks_for_level(j, Q, Mjj, Mej);
    std::copy(Mjj.data(), Mjj.data() + qq, primary.begin() + j * qq);
    if (xp.r1_ptr[j] < xp.r1_ptr[j + 1]) std::copy(Mej.begin(), Mej.end(), pair.begin() + xp.r1_off[xp.r1_ptr[j]]);
  }
}

void BlockedCholesky::inverse_blocks_for_level(Eigen::Index j, std::vector<double>& Q, Eigen::MatrixXd& Mjj,
                                               std::vector<double>& Mej) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const Index e0 = xp.r1_ptr[j], e1 = xp.r1_ptr[j + 1];
  const Index base = e0 < e1 ? xp.r1_off[e0] : 0;
  const Index len = e0 < e1 ? (e1 < static_cast<Index>(xp.r1_off.size()) ? xp.r1_off[e1] : static_cast<Index>(xp.r1_vals.size())) - base : 0;
  Mej.assign(len, 0.0);
  if (fill_ != FillMethod::scatter) {
    if (q_generation_ != sec_.inverse_generation()) compute_all_q();
    Q.assign(q_all_.begin() + base, q_all_.begin() + base + len);
  } else {
    Q.assign(len, 0.0);
  }
  for (Index a = e0; a < e1 && fill_ == FillMethod::scatter; ++a) {
    const Index sa = xp.r1_row[a];
    const int qa = xp.q_of(sa);
    double* Qa = Q.data() + xp.r1_off[a] - base;
    for (Index b = e0; b < e1; ++b) {
      const Index sb = xp.r1_row[b];
      const int qb = xp.q_of(sb);
      const double* Gb = LR1_.data() + xp.r1_off[b];
      for (int r = 0; r < qa; ++r)
        for (int c = 0; c < qb; ++c) {
          const double z = sec_.inverse_entry(xp.sec_start[sa] + r, xp.sec_start[sb] + c);
          if (z == 0.0) continue;
          for (int k = 0; k < q1; ++k) Qa[r + k * qa] += z * Gb[c + k * qb];
        }
    }
  }
  // C = I + sum_a G_a' Q_a, then M_jj = L^{-T} C L^{-1} and
  // M(a, j) = -Q_a L^{-1}: plain loops on scratch kept between levels, the
  // blocks being tiny (an allocation per level cost more than the sums).
  const int qq = q1 * q1;
  if (level_scratch_.size() < static_cast<std::size_t>(3 * qq)) level_scratch_.resize(3 * qq);
  double* C = level_scratch_.data();
  double* Li = C + qq;   // L^{-1}, lower triangular
  double* CLi = Li + qq;
  for (int l = 0; l < q1; ++l)
    for (int k = 0; k < q1; ++k) C[k + l * q1] = k == l ? 1.0 : 0.0;
  for (Index a = e0; a < e1; ++a) {
    const int qa = xp.q_of(xp.r1_row[a]);
    const double* Ga = LR1_.data() + xp.r1_off[a];
    const double* Qa = Q.data() + xp.r1_off[a] - base;
    for (int l = 0; l < q1; ++l)
      for (int k = 0; k < q1; ++k) {
        double v = 0.0;
        for (int r = 0; r < qa; ++r) v += Ga[r + k * qa] * Qa[r + l * qa];
        C[k + l * q1] += v;
      }
  }
  for (int c = 0; c < q1; ++c) {
    for (int r = 0; r < q1; ++r) Li[r + c * q1] = r == c ? 1.0 : 0.0;
    small::solve_lower(L1_.data() + j * qq, q1, Li + c * q1);
  }
  for (int c = 0; c < q1; ++c)
    for (int r = 0; r < q1; ++r) {
      double v = 0.0;
      for (int k = c; k < q1; ++k) v += C[r + k * q1] * Li[k + c * q1];
      CLi[r + c * q1] = v;
    }
  Mjj.resize(q1, q1);
  for (int c = 0; c < q1; ++c)
    for (int r = 0; r < q1; ++r) {
      double v = 0.0;
      for (int k = r; k < q1; ++k) v += Li[k + r * q1] * CLi[k + c * q1];
      Mjj(r, c) = v;
    }
  for (Index a = e0; a < e1; ++a) {
    const int qa = xp.q_of(xp.r1_row[a]);
    const double* Qa = Q.data() + xp.r1_off[a] - base;
    double* Ma = Mej.data() + xp.r1_off[a] - base;
    for (int c = 0; c < q1; ++c)
      for (int r = 0; r < qa; ++r) {
        double v = 0.0;
        for (int k = c; k < q1; ++k) v += Qa[r + k * qa] * Li[k + c * q1];  // L^{-1} is lower triangular
        Ma[r + c * qa] = -v;
      }
  }
}

Eigen::MatrixXd BlockedCholesky::unscaled_vcov() const {
  const int p = xp_.p;
  Eigen::MatrixXd Rinv = Eigen::MatrixXd::Identity(p, p);
  LXX_.topLeftCorner(p, p).triangularView<Eigen::Lower>().solveInPlace(Rinv);
  return Rinv.transpose() * Rinv;
}

std::vector<Eigen::MatrixXd> BlockedCholesky::unscaled_cond_var() {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const std::size_t nf = tpl_.size();
  std::vector<Eigen::MatrixXd> out(nf);
  if (xp.m > 0) sec_.compute_selected_inverse();

  // Primary level j: T (M^{-1})_jj T'.
  out[0].resize(q1, q1 * xp.k1);
  if (xp.m == 0) {
    // M_jj^{-1} = L_j^{-T} L_j^{-1}: T M_jj^{-1} T' = W'W with W = L_j^{-1} T'.
    std::vector<double> W(static_cast<std::size_t>(q1) * q1);
    for (Index j = 0; j < xp.k1; ++j) {
      for (int c = 0; c < q1; ++c) {
        for (int r = 0; r < q1; ++r) W[r + c * q1] = T_[0](c, r);
        small::solve_lower(L1_.data() + j * q1 * q1, q1, W.data() + c * q1);
      }
      for (int c = 0; c < q1; ++c)
        for (int r = 0; r < q1; ++r) {
          double v = 0.0;
          for (int k = 0; k < q1; ++k) v += W[k + r * q1] * W[k + c * q1];
          out[0](r, j * q1 + c) = v;
        }
    }
    return out;
  }
  Eigen::MatrixXd Mjj;
  std::vector<double> Q, Mej;
  for (Index j = 0; j < xp.k1; ++j) {
    inverse_blocks_for_level(j, Q, Mjj, Mej);
    out[0].block(0, j * q1, q1, q1) = T_[0] * Mjj * T_[0].transpose();
  }
  // Secondary level s: T S^{-1}_ss T'.
  Index s = 0;
  for (std::size_t f = 1; f < nf; ++f) {
    const int q = xp.sec_q[f - 1];
    out[f].resize(q, q * xp.sec_levels[f - 1]);
    Eigen::MatrixXd Z(q, q);
    for (Index l = 0; l < xp.sec_levels[f - 1]; ++l, ++s) {
      for (int c = 0; c < q; ++c)
        for (int r = 0; r < q; ++r) Z(r, c) = sec_.inverse_entry(xp.sec_start[s] + r, xp.sec_start[s] + c);
      out[f].block(0, l * q, q, q) = T_[f] * Z * T_[f].transpose();
    }
  }
  return out;
}

}  // namespace mlm
