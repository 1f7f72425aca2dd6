#include "pirls.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "cross_product_scatter.h"
#include "start_values.h"


namespace mlm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// The largest Newton step (of a mode) after which PIRLS takes a chord step.
constexpr double kChordStep = 1e-3;
// Converged modes whose Newton step leaves more than this multiple of the
// tolerance in the residual of the mode equation take that step (see
// Pirls::mode_residual): at most 27 on the fits of bench/glmm-speed.R,
// 1e3-1e6 with Poisson counts around e^15.
constexpr double kModeResidualRatio = 100.0;

// Neumaier's compensated sum: deviances of 1e6 observations are summed
// without the rounding noise that would swamp finite-difference gradients.
struct CompensatedSum {
  double sum = 0.0, c = 0.0;
  void add(double x) {
    const double t = sum + x;
    if (std::fabs(sum) >= std::fabs(x))
      c += (sum - t) + x;
    else
      c += (x - t) + sum;
    sum = t;
  }
  double value() const { return sum + c; }
};

// The rounding noise of a sum of deviance residuals: each is a difference
// of terms of size about pw (1 + |y|)(1 + |eta|) (y log y and y eta for
// Poisson counts, eta for binomial ones), rounded independently, so the
// sum's error is about eps times the root sum of their squares (times 4
// for the several roundings in each).
struct RoundingNoise {
  double sum_sq = 0.0;
  void add(double scale) { sum_sq += scale * scale; }
  double value() const { return 4.0 * std::numeric_limits<double>::epsilon() * std::sqrt(sum_sq); }
};

// XX (its lower triangle) += B'B over the first len rows of B, with the
// P columns of B known at compile time: each row's P values are read once
// and multiply into the P (P + 1) / 2 sums, two rows at a time in one
// vector of two (GCC's and Clang's vector extension). A general matrix
// product (Eigen's rank update) spent as long packing this tall, thin
// block as multiplying it.
typedef double Double2 __attribute__((vector_size(16)));

template <int P>
void add_gram_lower_fixed(Eigen::MatrixXd& XX, const Eigen::MatrixXd& B, Index len) {
  constexpr int N = P * (P + 1) / 2;
  const Index ld = B.rows();
  const double* b = B.data();
  Double2 acc[N];
  for (int k = 0; k < N; ++k) acc[k] = Double2{0.0, 0.0};
  Index i = 0;
  for (; i + 2 <= len; i += 2) {
    Double2 r[P];
#pragma GCC unroll 8
    for (int c = 0; c < P; ++c) std::memcpy(&r[c], b + c * ld + i, sizeof(Double2));
    int k = 0;
#pragma GCC unroll 8
    for (int a = 0; a < P; ++a)
#pragma GCC unroll 8
      for (int c = a; c < P; ++c, ++k) acc[k] += r[a] * r[c];
  }
  double tail[N] = {};
  for (; i < len; ++i) {
    int k = 0;
    for (int a = 0; a < P; ++a)
      for (int c = a; c < P; ++c, ++k) tail[k] += b[a * ld + i] * b[c * ld + i];
  }
  int k = 0;
  for (int a = 0; a < P; ++a)
    for (int c = a; c < P; ++c, ++k) XX(c, a) += (acc[k][0] + acc[k][1]) + tail[k];
}

void add_gram_lower(Eigen::MatrixXd& XX, const Eigen::MatrixXd& B, Index len) {
  switch (B.cols()) {
    case 1: return add_gram_lower_fixed<1>(XX, B, len);
    case 2: return add_gram_lower_fixed<2>(XX, B, len);
    case 3: return add_gram_lower_fixed<3>(XX, B, len);
    case 4: return add_gram_lower_fixed<4>(XX, B, len);
    case 5: return add_gram_lower_fixed<5>(XX, B, len);
    case 6: return add_gram_lower_fixed<6>(XX, B, len);
    default: XX.selfadjointView<Eigen::Lower>().rankUpdate(B.topRows(len).transpose());
  }
}

}  // namespace

// The scratch arrays of one chunk of a pass.
struct Pirls::PassScratch {
  std::vector<double> eta, zb, dev, sw, wres;
  ChunkSums sums;  // of the chunk's deviance residuals (chunk_terms())
  explicit PassScratch(Index n) : eta(n), zb(n), dev(n), sw(n), wres(n) {}
};

// What a pass sums over all observations.
struct Pirls::PassSums {
  CompensatedSum dev;
  RoundingNoise noise;
};

// The modes a Newton step proposes, and the deviance there.
struct Pirls::Candidate {
  std::vector<Eigen::MatrixXd> u, b;
  Eigen::VectorXd beta;
  double dev = kInf, pdev = kInf;
  Candidate(std::size_t factors, const Eigen::VectorXd& beta0) : u(factors), b(factors), beta(beta0) {}
};

Pirls::Pirls(const ModelData& data, const GlmFamily& family, const std::vector<CovTemplate>& templates, bool joint,
             const Pirls* same_data)
    : d_(data), rows_(same_data ? same_data->rows_ : nullptr), fam_(family), tpl_(templates), joint_(joint) {
  std::shared_ptr<OrderedRows> made;
  if (!rows_ && d_.blocks.size() >= 2) rows_ = made = order_rows();
  if (rows_) d_ = rows_->view(data);
  // The sparsity pattern of the cross-products depends on the design only:
  // form it once (unit weights), then refill the values in every pass.
  ModelData pattern = d_;
  pattern.intercept_col = -1;
  pattern.weights = nullptr;
  pattern.offset = nullptr;
  if (!joint_) pattern.p = 0;
  xp_ = build_cross_products(pattern);
  theta_units_ = theta_scales(xp_, tpl_);
  const int p = joint_ ? d_.p : 0;
  if (joint_) {
    centre_fixed_effects();
    set_ridge();
    find_ones_column();
  }
  sys_.reset(new BlockedCholesky(xp_, tpl_));
  if (same_data) sys_->share_fill_scratch(*same_data->sys_);
  nf_ = static_cast<int>(d_.blocks.size()) - 1;
  std::vector<int> sec_q;
  Index lev = 0, coord = 0, doff = 0;
  for (int f = 0; f < nf_; ++f) {
    const FactorBlock& F = d_.blocks[f + 1];
    first_level_.push_back(lev);
    first_coord_.push_back(coord);
    diag_off_.push_back(doff);
    sec_q.push_back(F.q);
    lev += F.n_levels;
    coord += F.n_levels * F.q;
    doff += F.n_levels * F.q * F.q;
  }
  layout_ = ScatterLayout(d_.blocks[0].q, sec_q, p);
  if (made) find_secondary_positions(*made);
  if (rows_) {
    r1_pos_ = rows_->r1_pos.data();
    rr_pos_ = rows_->rr_pos.data();
  }
  T_.resize(tpl_.size());
  u_.resize(tpl_.size());
  for (std::size_t f = 0; f < tpl_.size(); ++f) {
    T_[f].setZero(tpl_[f].q, tpl_[f].q);
    u_[f].setZero(tpl_[f].q, d_.blocks[f].n_levels);
  }
  beta_.setZero(d_.p);
  if (!joint_) {
    eta_fixed_.setZero(d_.n);
    obs_w_ = std::make_shared<std::vector<double>>(d_.n);
    obs_z_ = std::make_shared<std::vector<double>>(d_.n);
  }
  chunk_.resize(joint_ ? 1024 : 4096, p + 1);
}

// With several factors, a pass adds each row into blocks spread over
// memory in no order the data follow (its primary level's, and those of
// its pairs of levels); cache misses there cost more than the arithmetic.
// Rows in the order of their primary level, then of their secondary
// levels (stable counting sorts, last key first), visit those blocks in
// the order they are stored. Only sums change order; start values come
// in and the linear predictor goes out in the data's order. The order is
// kept in 4 bytes a row; data of 2^32 rows or more keep their own order.
std::shared_ptr<OrderedRows> Pirls::order_rows() const {
  auto rows = std::make_shared<OrderedRows>();
  const Index n = d_.n;
  if (n == 0 || n > static_cast<Index>(UINT32_MAX)) return rows;
  std::vector<std::uint32_t>& order = rows->order;
  order.resize(n);
  for (Index i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
  std::vector<Index> next;
  std::vector<std::uint32_t> sorted(n);
  for (std::size_t f = d_.blocks.size(); f-- > 0;) {
    const FactorBlock& F = d_.blocks[f];
    next.assign(F.n_levels + 1, 0);
    for (Index i = 0; i < n; ++i) ++next[F.codes[i] - F.code_base + 1];
    for (Index l = 0; l < F.n_levels; ++l) next[l + 1] += next[l];
    for (Index k = 0; k < n; ++k) {
      const std::uint32_t i = order[k];
      sorted[next[F.codes[i] - F.code_base]++] = i;
    }
    order.swap(sorted);
  }
  sorted = std::vector<std::uint32_t>();
  auto gather = [&](const double* src, std::vector<double>& out, Index cols) {
    if (!src) return;
    out.resize(static_cast<std::size_t>(n) * cols);
    for (Index c = 0; c < cols; ++c)
      for (Index k = 0; k < n; ++k) out[c * n + k] = src[c * n + order[k]];
  };
  gather(d_.X, rows->X, d_.p);
  gather(d_.y, rows->y, 1);
  gather(d_.weights, rows->weights, 1);
  gather(d_.offset, rows->offset, 1);
  rows->codes.resize(d_.blocks.size());
  for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
    const FactorBlock& F = d_.blocks[f];
    rows->codes[f].resize(n);
    for (Index k = 0; k < n; ++k) rows->codes[f][k] = F.codes[order[k]];
    for (const double* col : F.cols) {
      if (!col) continue;
      rows->cols.emplace_back();
      gather(col, rows->cols.back(), 1);
    }
  }
  return rows;
}

ModelData OrderedRows::view(const ModelData& data) const {
  ModelData d = data;
  if (order.empty()) return d;
  auto copy_of = [](const double* src, const std::vector<double>& copy) { return src ? copy.data() : nullptr; };
  d.X = copy_of(data.X, X);
  d.y = copy_of(data.y, y);
  d.weights = copy_of(data.weights, weights);
  d.offset = copy_of(data.offset, offset);
  std::size_t c = 0;
  for (std::size_t f = 0; f < d.blocks.size(); ++f) {
    d.blocks[f].codes = codes[f].data();
    for (const double*& col : d.blocks[f].cols)
      if (col) col = cols[c++].data();
  }
  return d;
}

// Centring X by constants is an exact reparametrisation that keeps X'WX
// well conditioned (joint mode, X with an intercept).
void Pirls::centre_fixed_effects() {
  if (d_.intercept_col < 0) return;
  const int p = d_.p;
  xp_.center = Eigen::VectorXd::Zero(p + 1);
  for (int c = 0; c < p; ++c) {
    if (c == d_.intercept_col) continue;
    const double* x = d_.X + static_cast<Index>(c) * d_.n;
    double s = 0.0;
    for (Index i = 0; i < d_.n; ++i) s += x[i];
    xp_.center[c] = s / static_cast<double>(d_.n);
  }
  xp_.intercept_col = d_.intercept_col;
}

// The intercept's column of X holds ones (in every model from a formula):
// a pass then adds its coefficient without reading the column, one of the
// few columns a pass streams from memory. Its centre is 0, so its
// weighted column is sqrt(w) itself. The same arithmetic, bit for bit.
void Pirls::find_ones_column() {
  const int ic = d_.intercept_col;
  if (ic < 0 || (xp_.center.size() > 0 && xp_.center[ic] != 0.0)) return;
  const double* x = d_.X + static_cast<Index>(ic) * d_.n;
  for (Index i = 0; i < d_.n; ++i)
    if (x[i] != 1.0) return;
  ones_col_ = ic;
}

// A ridge far below the arithmetic's noise in any fit whose estimates
// exist keeps X'WX positive definite when weights vanish (estimates
// drifting to infinity under separation), so that such fits end with a
// diagnosis rather than a failed factorisation. Relative to each column's
// sum of squares: the same on any scale of the predictors.
void Pirls::set_ridge() {
  const int p = d_.p;
  ridge_.resize(p);
  for (int c = 0; c < p; ++c) {
    const double* x = d_.X + static_cast<Index>(c) * d_.n;
    const double mu = xp_.center.size() > 0 ? xp_.center[c] : 0.0;
    double ss = 0.0;
    for (Index i = 0; i < d_.n; ++i) ss += (x[i] - mu) * (x[i] - mu);
    ridge_[c] = ss > 0.0 ? 1e-12 * ss : 1e-12;
  }
}

// Where each observation's contributions to the off-diagonal blocks of
// Z'WZ live in the fixed pattern (found once by binary search).
void Pirls::find_secondary_positions(OrderedRows& rows) const {
  if (nf_ <= 0) return;
  const Index n = d_.n;
  const int npairs = nf_ * (nf_ - 1) / 2;
  std::vector<Index>& r1_pos = rows.r1_pos;
  std::vector<Index>& rr_pos = rows.rr_pos;
  r1_pos.assign(static_cast<std::size_t>(n) * nf_, 0);
  rr_pos.assign(static_cast<std::size_t>(n) * npairs, 0);
  const FactorBlock& F1 = d_.blocks[0];
  std::vector<Index> lev(nf_);
  for (Index obs = 0; obs < n; ++obs) {
    const Index j = F1.codes[obs] - F1.code_base;
    for (int f = 0; f < nf_; ++f) {
      const FactorBlock& F = d_.blocks[f + 1];
      lev[f] = first_level_[f] + (F.codes[obs] - F.code_base);
      auto first = xp_.r1_row.begin() + xp_.r1_ptr[j];
      auto last = xp_.r1_row.begin() + xp_.r1_ptr[j + 1];
      auto it = std::lower_bound(first, last, lev[f]);
      r1_pos[obs * nf_ + f] = xp_.r1_off[it - xp_.r1_row.begin()];
      for (int g = 0; g < f; ++g) {
        // rr entries are ordered by (col, row); this block is (row lev[f], col lev[g]).
        Index lo = 0, hi = static_cast<Index>(xp_.rr_row.size());
        while (lo < hi) {
          const Index mid = (lo + hi) / 2;
          const bool less = xp_.rr_col[mid] != lev[g] ? xp_.rr_col[mid] < lev[g] : xp_.rr_row[mid] < lev[f];
          if (less)
            lo = mid + 1;
          else
            hi = mid;
        }
        rr_pos[obs * npairs + secondary_pair_index(f, g)] = xp_.rr_off[lo];
      }
    }
  }
}

void Pirls::set_start_eta(const Eigen::VectorXd& eta) {
  start_eta_ = eta;
  if (rows_ && !rows_->order.empty() && eta.size() == d_.n)
    for (Index k = 0; k < d_.n; ++k) start_eta_[k] = eta[rows_->order[k]];
  has_modes_ = false;
  xp_at_modes_ = false;
}

void Pirls::set_beta(const Eigen::VectorXd& beta) {
  beta_ = beta;
  xp_at_modes_ = false;
  if (!joint_) {
    const Index n = d_.n;
    for (Index i = 0; i < n; ++i) eta_fixed_[i] = d_.offset ? d_.offset[i] : 0.0;
    for (int c = 0; c < d_.p; ++c) {
      const double* x = d_.X + static_cast<Index>(c) * n;
      const double bc = beta[c];
      if (bc == 0.0) continue;
      for (Index i = 0; i < n; ++i) eta_fixed_[i] += x[i] * bc;
    }
  }
}

void Pirls::set_u(const std::vector<Eigen::MatrixXd>& u) {
  u_ = u;
  has_modes_ = true;
  xp_at_modes_ = false;
}

void Pirls::set_theta(const Eigen::VectorXd& theta) {
  fill_relative_factors(tpl_, theta, T_);
  xp_at_modes_ = false;  // b = Lambda u has changed
}

void Pirls::set_start_state(std::shared_ptr<const PirlsPassState> state) { start_state_ = std::move(state); }

std::shared_ptr<const PirlsPassState> Pirls::pass_state() const {
  if (!last_run_ok_ || !xp_at_modes_) return nullptr;
  auto s = std::make_shared<PirlsPassState>();
  s->b = b();
  s->beta = beta_;
  s->xp_beta = xp_beta_;
  s->dev_noise = dev_noise_;
  s->dev = last_dev_;
  s->D1 = xp_.D1;
  s->C1 = xp_.C1;
  s->XX = xp_.XX;
  s->CR = xp_.CR;
  s->rr_diag = xp_.rr_diag;
  s->rr_vals = xp_.rr_vals;
  s->r1_vals = xp_.r1_vals;
  s->w = obs_w_;
  s->z = obs_z_;
  s->weights_key = weights_key_;
  return s;
}

// The start state in place of the first pass of a run at the theta of T_:
// the modes u = Lambda^{-1} b of its linear predictor and its sums. False
// (nothing changed) where it does not apply. predicted: u alone at another
// beta, the sums those of the linearisation at the state's linear
// predictor (predict_from_state), whose deviance is not known.
bool Pirls::restore_start_state(double& dev, bool& predicted) {
  predicted = false;
  const PirlsPassState* s = start_state_.get();
  if (!s || s->b.size() != u_.size() || s->XX.rows() != xp_.XX.rows() || s->D1.size() != xp_.D1.size()) return false;
  if (!joint_ && s->beta != beta_) {
    predicted = s->beta.size() == beta_.size() && s->w && s->w->size() == static_cast<std::size_t>(d_.n) && s->z &&
                s->z->size() == static_cast<std::size_t>(d_.n);
    if (!predicted) return false;
  }
  for (std::size_t f = 0; f < T_.size(); ++f)
    for (Index a = 0; a < T_[f].rows(); ++a)
      if (!(T_[f](a, a) != 0.0) || !std::isfinite(T_[f](a, a))) return false;
  xp_.D1 = s->D1;
  xp_.C1 = s->C1;
  xp_.XX = s->XX;
  xp_.CR = s->CR;
  xp_.rr_diag = s->rr_diag;
  xp_.rr_vals = s->rr_vals;
  xp_.r1_vals = s->r1_vals;
  weights_key_ = s->weights_key;
  if (predicted && !predict_from_state(*s)) {
    predicted = false;
    return false;
  }
  for (std::size_t f = 0; f < T_.size(); ++f) u_[f] = T_[f].triangularView<Eigen::Lower>().solve(s->b[f]);
  if (joint_) beta_ = s->beta;
  xp_beta_ = s->xp_beta;
  dev_noise_ = s->dev_noise;
  has_modes_ = true;
  xp_at_modes_ = !predicted;
  if (!predicted) dev = last_dev_ = s->dev;
  return true;
}

// u alone, beta moved from the state's: the working response of the
// state's linear predictor, less the change X (beta - beta_state) of the
// fixed part, gives the Newton step of the linearisation there (the
// implicit-function step: u at its mode to first order in the change of
// beta), in one pass over X and the stored weights, without the
// exponentials and logarithms of a full pass. Only the working-response
// column of the sums changes. False (the sums partly changed: the caller
// makes a full pass) where the change of the linear predictor reaches a
// unit, beyond where a linearisation is worth a step.
bool Pirls::predict_from_state(const PirlsPassState& s) {
  const Index n = d_.n;
  const Eigen::VectorXd dbeta = beta_ - s.beta;
  const FactorBlock& F1 = d_.blocks[0];
  const int q1 = F1.q;
  const std::vector<double>& sw = *s.w;
  const std::vector<double>& sz = *s.z;
  CompensatedSum zz;
  constexpr Index chunk = 4096;
  std::vector<double> t(chunk);
  for (Index start = 0; start < n; start += chunk) {
    const Index len = std::min(chunk, n - start);
    std::fill(t.begin(), t.begin() + len, 0.0);
    for (int c = 0; c < d_.p; ++c) {
      const double* x = d_.X + static_cast<Index>(c) * n + start;
      const double bc = dbeta[c];
      if (bc == 0.0) continue;
      for (Index i = 0; i < len; ++i) t[i] += x[i] * bc;
    }
    double big = 0.0, zz_chunk = 0.0;
    for (Index i = 0; i < len; ++i) {
      big = std::max(big, std::fabs(t[i]));
      const double r = sz[start + i] - t[i];
      zz_chunk += sw[start + i] * r * r;
    }
    if (!(big < 1.0)) return false;
    zz.add(zz_chunk);
    for (Index i = 0; i < len; ++i) {
      const Index obs = start + i;
      const double wt = sw[obs] * t[i];
      double* C = xp_.C1.data() + (F1.codes[obs] - F1.code_base) * q1;
      for (int a = 0; a < q1; ++a) C[a] -= wt * (F1.cols[a] ? F1.cols[a][obs] : 1.0);
      for (int f = 0; f < nf_; ++f) {
        const FactorBlock& F = d_.blocks[f + 1];
        double* CR = xp_.CR.data() + first_coord_[f] + (F.codes[obs] - F.code_base) * F.q;
        for (int a = 0; a < F.q; ++a) CR[a] -= wt * (F.cols[a] ? F.cols[a][obs] : 1.0);
      }
    }
  }
  xp_.XX(0, 0) = zz.value() + 1.0;  // see pass_joint
  return true;
}

std::vector<Eigen::MatrixXd> Pirls::b() const {
  std::vector<Eigen::MatrixXd> out(u_.size());
  for (std::size_t f = 0; f < u_.size(); ++f) out[f] = T_[f] * u_[f];
  return out;
}

// The residual of the mode equation that a Newton step to cand_u
// removes, M (cand_u - u) with M = Lambda'Z'WZ Lambda + I, to the
// precision of M's diagonal: its largest entry. Where the data pin the
// modes down (large counts or binomial sizes, many observations per level)
// M is large, and a step far inside the tolerance of the modes can leave a
// residual that the Laplace gradient, which relies on the mode equation,
// turns into an error the size of its differences.
double Pirls::mode_residual(const std::vector<Eigen::MatrixXd>& cand_u) const {
  double res = 0.0;
  for (std::size_t f = 0; f < u_.size(); ++f) {
    const int q = static_cast<int>(u_[f].rows());
    const Eigen::MatrixXd& T = T_[f];
    for (Index l = 0; l < u_[f].cols(); ++l) {
      const double* D = f == 0 ? xp_.D1.data() + l * q * q : xp_.rr_diag.data() + diag_off_[f - 1] + l * q * q;
      for (int a = 0; a < q; ++a) {
        double m = 1.0;  // (T' D T)(a, a) + 1, T lower triangular
        for (int r = a; r < q; ++r)
          for (int c = a; c < q; ++c) m += T(r, a) * T(c, a) * D[r + c * q];
        res = std::max(res, m * std::fabs(cand_u[f](a, l) - u_[f](a, l)));
      }
    }
  }
  return res;
}

double Pirls::ussq(const std::vector<Eigen::MatrixXd>& u) const {
  double s = 0.0;
  for (const auto& m : u) s += m.squaredNorm();
  return s;
}

// One pass: the sum of deviance residuals at the candidate (or at the
// starting linear predictors), and the cross-products of the next Newton
// step: sqrt(w) [Z, X - centre, z] with working weights w and working
// response z (Z b plus the working residual: offset and X beta are left
// out, so that the solution for beta is its increment). +Inf when the
// linear predictor leaves the domain of the link.
double Pirls::pass(const std::vector<Eigen::MatrixXd>& b, const Eigen::VectorXd& beta, bool from_start) {
  static std::atomic<unsigned long> last_key{0};  // keys unique across PIRLS objects
  weights_key_ = ++last_key;
  sys_->set_fill_key(0);
  if (fam_.dist == Dist::binomial && fam_.link == Link::logit) {
    const LogitKernel k{fam_};
    return joint_ ? pass_joint(k, b, beta, from_start) : pass_u(k, b, from_start);
  }
  if (fam_.dist == Dist::poisson && fam_.link == Link::log) {
    const PoissonLogKernel k{fam_};
    return joint_ ? pass_joint(k, b, beta, from_start) : pass_u(k, b, from_start);
  }
  const GenericKernel k{fam_};
  return joint_ ? pass_joint(k, b, beta, from_start) : pass_u(k, b, from_start);
}

void Pirls::clear_cross_products() {
  xp_.D1.setZero();
  xp_.C1.setZero();
  xp_.XX.setZero();
  std::fill(xp_.rr_diag.begin(), xp_.rr_diag.end(), 0.0);
  std::fill(xp_.rr_vals.begin(), xp_.rr_vals.end(), 0.0);
  std::fill(xp_.r1_vals.begin(), xp_.r1_vals.end(), 0.0);
  if (xp_.CR.size() > 0) xp_.CR.setZero();
}

// Before a pass writes the working weights and responses: new arrays
// where a pass state holds the last ones (instead of a copy in the state).
void Pirls::unshare_linearisation() {
  if (obs_w_.use_count() > 1) obs_w_ = std::make_shared<std::vector<double>>(d_.n);
  if (obs_z_.use_count() > 1) obs_z_ = std::make_shared<std::vector<double>>(d_.n);
}

// Z b for the observations start .. start + len - 1, column by column.
void Pirls::random_part(Index start, Index len, const std::vector<Eigen::MatrixXd>& b, double* zb) const {
  std::fill(zb, zb + len, 0.0);
  for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
    const FactorBlock& F = d_.blocks[f];
    const Eigen::MatrixXd& bf = b[f];
    const int* codes = F.codes + start;
    for (int a = 0; a < F.q; ++a) {
      const double* col = F.cols[a] ? F.cols[a] + start : nullptr;
      for (Index i = 0; i < len; ++i) {
        const double v = bf(a, codes[i] - F.code_base);
        zb[i] += col ? col[i] * v : v;
      }
    }
  }
}

// The deviance residuals of a chunk and their rounding noise into the
// sums; false if not finite. The chunk's own sums come with its terms
// (chunk_terms(), glm_family.h): the deviance in its one row order, the
// noise in four running sums (one sum chains every addition to the last,
// four let the processor overlap them). Some fits lie on the edge between
// two optima and follow the rounding of the deviance (tools/glmm-designs.R,
// seed 9179: four sums for the deviance too ended 0.06 above glmmTMB's
// optimum).
bool Pirls::chunk_deviance(const PassScratch& s, PassSums& sums) const {
  const double dev = s.sums.dev;
  if (!std::isfinite(dev)) return false;
  sums.dev.add(dev);
  sums.noise.sum_sq += (s.sums.sq[0] + s.sums.sq[1]) + (s.sums.sq[2] + s.sums.sq[3]);
  return true;
}

// The deviance residuals of a chunk into the sums, and sqrt(w) with the
// weighted working response (column p of B); false if not finite.
bool Pirls::chunk_sums(Index start, Index len, const PassScratch& s, Eigen::MatrixXd& B, int p, PassSums& sums) const {
  if (!chunk_deviance(s, sums)) return false;
  for (Index i = 0; i < len; ++i) B(i, p) = s.sw[i] * (s.zb[i] + s.wres[i]);
  return true;
}

// Every block of a chunk of sqrt(w)-weighted rows [Z, B] through the one
// accumulator of the engine (cross_product_scatter.h), [X z]'[X z] apart.
void Pirls::scatter_chunk(Index start, Index len, const std::vector<double>& sw, const Eigen::MatrixXd& B) {
  if (layout_.Q() == nf_ + 1) return scatter_chunk_scalar_terms(start, len, sw, B);
  const int P = static_cast<int>(B.cols());
  const FactorBlock& F1 = d_.blocks[0];
  const int q1 = F1.q;
  ScatterTargets t(layout_);
  std::vector<double> row(layout_.dim());
  for (Index i = 0; i < len; ++i) {
    const Index obs = start + i;
    for (int f = 0; f <= nf_; ++f) {
      const FactorBlock& F = d_.blocks[f];
      for (int a = 0; a < F.q; ++a) row[layout_.offset(f) + a] = sw[i] * (F.cols[a] ? F.cols[a][obs] : 1.0);
    }
    for (int c = 0; c < P; ++c) row[layout_.Q() + c] = B(i, c);
    const Index j = F1.codes[obs] - F1.code_base;
    t.D1 = xp_.D1.data() + j * q1 * q1;
    t.C1 = xp_.C1.data() + j * q1 * P;
    for (int f = 0; f < nf_; ++f) {
      const FactorBlock& F = d_.blocks[f + 1];
      const Index l = F.codes[obs] - F.code_base;
      t.D[f] = xp_.rr_diag.data() + diag_off_[f] + l * F.q * F.q;
      t.CR[f] = xp_.CR.data() + (first_coord_[f] + l * F.q) * P;
      t.R1[f] = xp_.r1_vals.data() + r1_pos_[obs * nf_ + f];
    }
    for (int k = 0; k < layout_.n_pairs(); ++k) t.RR[k] = xp_.rr_vals.data() + rr_pos_[obs * layout_.n_pairs() + k];
    scatter_row(layout_, row.data(), t);
  }
}

// Every term scalar (crossed or nested intercepts, the commonest designs
// with several factors): each block of scatter_row is one entry, written
// directly rather than through its general loops, block by block over the
// chunk. The rows come ordered by primary level (order_rows()): a run of
// rows of one level sums its primary entries in a register (adding row
// after row into memory would chain each row to the last through a load
// and a store), and the blocks with the secondary levels are visited in
// storage order.
void Pirls::scatter_chunk_scalar_terms(Index start, Index len, const std::vector<double>& sw,
                                       const Eigen::MatrixXd& B) {
  const int P = static_cast<int>(B.cols());
  const Index ld = B.rows();
  const int npairs = layout_.n_pairs();
  const FactorBlock& F1 = d_.blocks[0];
  scalar_z_.resize(static_cast<std::size_t>(nf_ + 1) * len);
  auto z_of = [&](int f) { return scalar_z_.data() + static_cast<std::size_t>(f) * len; };
  for (int f = 0; f <= nf_; ++f) {
    const double* col = d_.blocks[f].cols[0] ? d_.blocks[f].cols[0] + start : nullptr;
    double* z = z_of(f);
    for (Index i = 0; i < len; ++i) z[i] = col ? sw[i] * col[i] : sw[i];
  }
  const double* z1 = z_of(0);
  const int* codes1 = F1.codes + start;
  for (Index i0 = 0; i0 < len;) {
    const int code = codes1[i0];
    Index i1 = i0 + 1;
    while (i1 < len && codes1[i1] == code) ++i1;
    const Index j = code - F1.code_base;
    double d = 0.0;
    for (Index i = i0; i < i1; ++i) d += z1[i] * z1[i];
    xp_.D1.data()[j] += d;
    for (int c = 0; c < P; ++c) {
      const double* Bc = B.data() + c * ld;
      double v = 0.0;
      for (Index i = i0; i < i1; ++i) v += z1[i] * Bc[i];
      xp_.C1.data()[j * P + c] += v;
    }
    i0 = i1;
  }
  for (int f = 0; f < nf_; ++f) {
    const FactorBlock& F = d_.blocks[f + 1];
    const int* codes = F.codes + start;
    const double* zf = z_of(f + 1);
    const int base = F.code_base;
    double* diag = xp_.rr_diag.data() + diag_off_[f];
    for (Index i = 0; i < len; ++i) diag[codes[i] - base] += zf[i] * zf[i];
    double* CR = xp_.CR.data() + first_coord_[f] * P;
    for (int c = 0; c < P; ++c) {
      const double* Bc = B.data() + c * ld;
      for (Index i = 0; i < len; ++i) CR[static_cast<Index>(codes[i] - base) * P + c] += zf[i] * Bc[i];
    }
    double* r1 = xp_.r1_vals.data();
    const Index* pos = r1_pos_ + start * nf_ + f;
    for (Index i = 0; i < len; ++i) r1[pos[i * nf_]] += zf[i] * z1[i];
    for (int h = 0; h < f; ++h) {
      const double* zh = z_of(h + 1);
      const Index* rpos = rr_pos_ + start * npairs + secondary_pair_index(f, h);
      for (Index i = 0; i < len; ++i) xp_.rr_vals[rpos[i * npairs]] += zf[i] * zh[i];
    }
  }
}

// One scalar term, the commonest model: Z'WZ and [X z]'WZ. With the P
// columns of [X z] known at compile time, row by row: a level's entries
// of D and C lie together (C holds a level's P entries side by side), so
// each row touches one place in memory, once. Otherwise column by column,
// reading the chunk in memory order.
namespace {
template <int P>
void scatter_scalar_rows(Index len, const double* sw, const double* zc, const int* codes, int cb, const double* B,
                         Index ld, double* D, double* C) {
  for (Index i = 0; i < len; ++i) {
    const Index j = codes[i] - cb;
    const double zs = sw[i] * (zc ? zc[i] : 1.0);
    D[j] += zs * zs;
    double* Cj = C + j * P;
#pragma GCC unroll 8
    for (int c = 0; c < P; ++c) Cj[c] += zs * B[c * ld + i];
  }
}
}  // namespace

void Pirls::scatter_chunk_scalar(Index start, Index len, std::vector<double>& sw, const Eigen::MatrixXd& B) {
  const FactorBlock& F1 = d_.blocks[0];
  const int P = static_cast<int>(B.cols());
  const Index ld = B.rows();
  const double* zc = F1.cols[0] ? F1.cols[0] + start : nullptr;
  const int* codes = F1.codes + start;
  const int cb = F1.code_base;
  double* D = xp_.D1.data();
  double* C = xp_.C1.data();
  switch (P) {
    case 2: return scatter_scalar_rows<2>(len, sw.data(), zc, codes, cb, B.data(), ld, D, C);
    case 3: return scatter_scalar_rows<3>(len, sw.data(), zc, codes, cb, B.data(), ld, D, C);
    case 4: return scatter_scalar_rows<4>(len, sw.data(), zc, codes, cb, B.data(), ld, D, C);
    case 5: return scatter_scalar_rows<5>(len, sw.data(), zc, codes, cb, B.data(), ld, D, C);
    case 6: return scatter_scalar_rows<6>(len, sw.data(), zc, codes, cb, B.data(), ld, D, C);
    default: break;
  }
  for (Index i = 0; i < len; ++i) {
    const double zs = sw[i] * (zc ? zc[i] : 1.0);
    sw[i] = zs;
    D[codes[i] - cb] += zs * zs;
  }
  for (int c = 0; c < P; ++c) {
    const double* bc = B.data() + static_cast<Index>(c) * ld;
    for (Index i = 0; i < len; ++i) C[(codes[i] - cb) * P + c] += sw[i] * bc[i];
  }
}

// The pass for beta and u together.
template <class Kernel>
double Pirls::pass_joint(const Kernel& kernel, const std::vector<Eigen::MatrixXd>& b, const Eigen::VectorXd& beta,
                         bool from_start) {
  const Index n = d_.n;
  const int p = d_.p;
  clear_cross_products();
  if (from_start)
    xp_beta_.setZero(p);
  else
    xp_beta_ = beta;
  const bool centred = xp_.center.size() > 0;
  const bool scalar = d_.blocks[0].q == 1 && nf_ == 0;
  const Index chunk = chunk_.rows();
  PassScratch s(chunk);
  PassSums sums;
  for (Index start = 0; start < n; start += chunk) {
    const Index len = std::min(chunk, n - start);
    // eta = offset + X beta + Z b, with Z b kept apart (the working
    // response); from the start, all of eta but the offset counts as Z b.
    if (from_start) {
      for (Index i = 0; i < len; ++i) {
        s.eta[i] = start_eta_[start + i];
        s.zb[i] = s.eta[i] - (d_.offset ? d_.offset[start + i] : 0.0);
      }
    } else {
      random_part(start, len, b, s.zb.data());
      for (Index i = 0; i < len; ++i) s.eta[i] = (d_.offset ? d_.offset[start + i] : 0.0) + s.zb[i];
      for (int c = 0; c < p; ++c) {
        const double bc = beta[c];
        if (c == ones_col_) {
          for (Index i = 0; i < len; ++i) s.eta[i] += bc;
          continue;
        }
        const double* x = d_.X + static_cast<Index>(c) * n + start;
        for (Index i = 0; i < len; ++i) s.eta[i] += x[i] * bc;
      }
    }
    if (!chunk_terms(kernel, s.eta.data(), d_.y + start, d_.weights ? d_.weights + start : nullptr, len, s.dev.data(),
                     s.sw.data(), s.wres.data(), s.sums))
      return kInf;
    for (Index i = 0; i < len; ++i) s.sw[i] = std::sqrt(s.sw[i]);  // the working weights' roots
    if (!chunk_sums(start, len, s, chunk_, p, sums)) return kInf;
    for (int c = 0; c < p; ++c) {
      if (c == ones_col_) {  // not centred
        for (Index i = 0; i < len; ++i) chunk_(i, c) = s.sw[i];
        continue;
      }
      const double* x = d_.X + static_cast<Index>(c) * n + start;
      const double mu = centred ? xp_.center[c] : 0.0;
      for (Index i = 0; i < len; ++i) chunk_(i, c) = s.sw[i] * (x[i] - mu);
    }
    add_gram_lower(xp_.XX, chunk_, len);
    if (scalar)
      scatter_chunk_scalar(start, len, s.sw, chunk_);
    else
      scatter_chunk(start, len, s.sw, chunk_);
    if (d_.check_interrupt && (start / chunk) % 512 == 511) d_.check_interrupt();
  }
  xp_.XX.triangularView<Eigen::StrictlyUpper>() = xp_.XX.transpose();
  // The last diagonal entry only sets the penalised residual sum of
  // squares, which PIRLS does not use; keeping it away from zero keeps
  // the factorisation defined when the working response fits exactly.
  xp_.XX(p, p) += 1.0;
  for (int c = 0; c < p; ++c) xp_.XX(c, c) += ridge_[c];
  dev_noise_ = sums.noise.value();
  return sums.dev.value();
}

// The pass for u alone (beta fixed): the cross-products need only Z'WZ,
// Z'W z and z'W z. A single scalar random-effect term gets a loop of its
// own, with the weights themselves (no square roots).
template <class Kernel>
double Pirls::pass_u(const Kernel& kernel, const std::vector<Eigen::MatrixXd>& b, bool from_start) {
  const Index n = d_.n;
  clear_cross_products();
  const bool scalar = d_.blocks[0].q == 1 && nf_ == 0;
  const double* ef = eta_fixed_.data();
  const Index chunk = chunk_.rows();
  unshare_linearisation();
  std::vector<double>& obs_w = *obs_w_;
  std::vector<double>& obs_z = *obs_z_;
  PassScratch s(chunk);
  PassSums sums;
  CompensatedSum yy;
  for (Index start = 0; start < n; start += chunk) {
    const Index len = std::min(chunk, n - start);
    if (from_start) {
      for (Index i = 0; i < len; ++i) s.zb[i] = start_eta_[start + i] - ef[start + i];
    } else if (scalar) {
      const FactorBlock& F1 = d_.blocks[0];
      const double* col = F1.cols[0];
      const double* b1 = b[0].data();
      for (Index i = 0; i < len; ++i)
        s.zb[i] = (col ? col[start + i] : 1.0) * b1[F1.codes[start + i] - F1.code_base];
    } else {
      random_part(start, len, b, s.zb.data());
    }
    for (Index i = 0; i < len; ++i) s.eta[i] = ef[start + i] + s.zb[i];
    if (!chunk_terms(kernel, s.eta.data(), d_.y + start, d_.weights ? d_.weights + start : nullptr, len, s.dev.data(),
                     s.sw.data(), s.wres.data(), s.sums))
      return kInf;
    double yy_chunk = 0.0;
    if (scalar) {
      if (!scalar_u_sums(start, len, s, sums, yy_chunk)) return kInf;
    } else {
      for (Index i = 0; i < len; ++i) {
        obs_w[start + i] = s.sw[i];
        obs_z[start + i] = s.zb[i] + s.wres[i];
      }
      for (Index i = 0; i < len; ++i) s.sw[i] = std::sqrt(s.sw[i]);
      if (!chunk_sums(start, len, s, chunk_, 0, sums)) return kInf;
      for (Index i = 0; i < len; ++i) yy_chunk += chunk_(i, 0) * chunk_(i, 0);
      scatter_chunk(start, len, s.sw, chunk_);
    }
    yy.add(yy_chunk);
    if (d_.check_interrupt && (start / chunk) % 128 == 127) d_.check_interrupt();
  }
  xp_.XX(0, 0) = yy.value() + 1.0;  // see pass_joint
  dev_noise_ = sums.noise.value();
  return sums.dev.value();
}

// One scalar term, u alone: D += w z^2, C += w z (Z b + working residual).
bool Pirls::scalar_u_sums(Index start, Index len, const PassScratch& s, PassSums& sums, double& yy) {
  const FactorBlock& F1 = d_.blocks[0];
  const double* col = F1.cols[0];
  const int* codes = F1.codes;
  const int base = F1.code_base;
  double* D = xp_.D1.data();
  double* C = xp_.C1.data();
  if (!chunk_deviance(s, sums)) return false;
  double* w_out = obs_w_->data() + start;
  double* z_out = obs_z_->data() + start;
  double wzz[2] = {};
  Index k = 0;
  for (; k + 2 <= len; k += 2)  // two running sums (see chunk_deviance)
    for (int l = 0; l < 2; ++l) {
      const double w = s.sw[k + l];
      const double yt = s.zb[k + l] + s.wres[k + l];
      w_out[k + l] = w;
      z_out[k + l] = yt;
      wzz[l] += w * yt * yt;
    }
  for (; k < len; ++k) {
    const double w = s.sw[k];
    const double yt = s.zb[k] + s.wres[k];
    w_out[k] = w;
    z_out[k] = yt;
    wzz[0] += w * yt * yt;
  }
  yy += wzz[0] + wzz[1];
  for (k = 0; k < len; ++k) {
    const Index i = start + k;
    const Index j = codes[i] - base;
    const double z = col ? col[i] : 1.0;
    const double wz = w_out[k] * z;
    D[j] += wz * z;
    C[j] += wz * z_out[k];
  }
  return true;
}

PirlsResult Pirls::factor_here(const Eigen::VectorXd& theta) {
  set_theta(theta);
  PirlsResult res;
  res.dev = pass(b(), beta_, false);
  res.passes = 1;
  res.ussq = ussq(u_);
  xp_at_modes_ = true;
  last_dev_ = res.dev;
  if (!std::isfinite(res.dev)) {
    res.message = "the linear predictor is outside the domain of the link function";
    return res;
  }
  if (!sys_->factor(theta)) {
    res.message = "the penalised least-squares system is not positive definite";
    return res;
  }
  res.ldL2 = sys_->log_det_L();
  res.ldRX2 = joint_ ? sys_->log_det_RX() : 0.0;
  res.ok = true;
  return res;
}

// The modes where the last factorisation was made, with its determinants.
PirlsResult Pirls::at_modes(PirlsResult res, double dev) const {
  res.ok = true;
  res.dev = dev;
  res.ussq = ussq(u_);
  res.ldL2 = sys_->log_det_L();
  res.ldRX2 = joint_ ? sys_->log_det_RX() : 0.0;
  return res;
}

// How far a change of beta moves the linear predictor, per unit of each
// column (joint mode), so that steps in beta are judged on the scale of
// the predictor they multiply.
Eigen::VectorXd Pirls::column_scales() const {
  Eigen::VectorXd col_scale(d_.p);
  for (int c = 0; c < d_.p; ++c) {
    const double* x = d_.X + static_cast<Index>(c) * d_.n;
    const double mu = xp_.center.size() > 0 ? xp_.center[c] : 0.0;
    double m = 0.0;
    for (Index i = 0; i < d_.n; i += std::max<Index>(1, d_.n / 4096)) m = std::max(m, std::fabs(x[i] - mu));
    col_scale[c] = std::max(m, 1e-8);
  }
  return col_scale;
}

// The Newton (Gauss-Newton) candidate from the current factorisation (a
// chord step: from the factorisation of the last iteration, with the
// gradient of this one), and the largest change of a mode it makes (of
// the linear predictor per unit of a column, for beta).
double Pirls::newton_candidate(std::vector<Eigen::MatrixXd>& cand_u, Eigen::VectorXd& cand_beta,
                               const Eigen::VectorXd& col_scale, bool chord) const {
  Solution sol = chord ? sys_->chord_solve(u_) : sys_->solve();
  double step = 0.0;
  for (std::size_t f = 0; f < u_.size(); ++f) {
    cand_u[f] = std::move(sol.u[f]);
    step = std::max(step, (cand_u[f] - u_[f]).cwiseAbs().maxCoeff());
  }
  if (joint_) {
    // The solution is the increment of beta (see pass_joint), centred.
    Eigen::VectorXd delta = sol.beta;
    uncentre(xp_, delta);
    cand_beta = xp_beta_ + delta;
    step = std::max(step, ((cand_beta - beta_).cwiseAbs().array() * col_scale.array()).sum());
  }
  return step;
}

// The penalised deviance may rise by rounding alone: by a relative 1e-11,
// or by the rounding noise of the sum of deviance residuals where that is
// larger (large counts, whose residuals are small differences of large terms).
double Pirls::pdev_slack(double pdev) const { return std::max(1e-11 * (1.0 + std::fabs(pdev)), dev_noise_); }

// PIRLS from the current modes; where that fails (modes left far away by
// an evaluation at a distant theta), again from the starting linear
// predictors (joint mode) or from u = 0 (u alone). A failed run leaves the
// modes of the last successful one, so that one bad evaluation does not
// spoil the next.
PirlsResult Pirls::run(const Eigen::VectorXd& theta, const PirlsControl& ctl) {
  PirlsResult res = iterate(theta, ctl, true);
  if (!res.ok && has_modes_) {
    if (joint_ && start_eta_.size() == d_.n) {
      has_modes_ = false;
    } else {
      for (auto& m : u_) m.setZero();
    }
    PirlsResult again = iterate(theta, ctl, false);
    again.passes += res.passes;
    res = again;
  }
  last_run_ok_ = res.ok;
  if (res.ok) {
    good_u_ = u_;
    if (joint_) good_beta_ = beta_;
  } else if (!good_u_.empty()) {
    u_ = good_u_;
    if (joint_) beta_ = good_beta_;
    has_modes_ = true;
    xp_at_modes_ = false;
  }
  return res;
}

// The candidate modes of a Newton step, halved towards the current modes
// until the penalised deviance does not rise beyond its rounding (from
// the start, with no modes to fall back on, the full step or nothing).
bool Pirls::halve_until_no_rise(Candidate& c, bool have_modes, double pdev_cur, int max_halvings, int& passes) {
  const std::size_t nfac = tpl_.size();
  for (int h = 0; h <= max_halvings; ++h) {
    for (std::size_t f = 0; f < nfac; ++f) c.b[f] = T_[f] * c.u[f];
    c.dev = pass(c.b, c.beta, false);
    ++passes;
    xp_at_modes_ = false;  // until the candidate is taken
    c.pdev = c.dev + ussq(c.u);
    if (std::isfinite(c.pdev) && (!have_modes || c.pdev <= pdev_cur + pdev_slack(pdev_cur))) return true;
    if (!have_modes) return false;
    for (std::size_t f = 0; f < nfac; ++f) c.u[f] = 0.5 * (c.u[f] + u_[f]);
    if (joint_) c.beta = 0.5 * (c.beta + beta_);
  }
  return false;
}

// The first step from the starting means left the domain of the link:
// restart from the intercept-only model (beta = link of the mean, u = 0)
// and let step halving keep the iterates inside. False when that is not
// possible either.
bool Pirls::restart_from_intercept(double& dev_cur, int& passes) {
  if (!joint_ || d_.intercept_col < 0) return false;
  beta_.setZero();
  beta_[d_.intercept_col] = fam_.eta_mean;
  for (auto& m : u_) m.setZero();
  dev_cur = pass(b(), beta_, false);
  ++passes;
  if (!std::isfinite(dev_cur)) return false;
  has_modes_ = true;
  xp_at_modes_ = true;
  last_dev_ = dev_cur;
  return true;
}

// Converged at the current modes: the factorisation there and its determinants.
PirlsResult Pirls::converged_here(PirlsResult res, const Eigen::VectorXd& theta, double dev) {
  if (!sys_->factor(theta)) {
    res.message = "the penalised least-squares system is not positive definite";
    return res;
  }
  return at_modes(res, dev);
}

// Penalised iteratively reweighted least squares at theta: Newton
// (Gauss-Newton) steps from the current modes, each halved until the
// penalised deviance does not rise, until no mode moves by more than the
// tolerance, or until the steps are lost in the rounding of the deviance.
PirlsResult Pirls::iterate(const Eigen::VectorXd& theta, const PirlsControl& ctl, bool use_start_state) {
  set_theta(theta);
  PirlsResult res;
  const bool from_start = !has_modes_ && start_eta_.size() == d_.n;
  double dev_cur = 0.0;
  bool predicted = false;  // the first step from a linearisation: no deviance to compare it with
  if (from_start || !use_start_state || !restore_start_state(dev_cur, predicted)) {
    dev_cur = pass(b(), beta_, from_start);
    res.passes = 1;
    xp_at_modes_ = !from_start;
    last_dev_ = dev_cur;
  } else {
    // The weights of a stored state, which other runs start from too:
    // the first factorisation may reuse its fill.
    sys_->set_fill_key(weights_key_);
  }
  double pdev_cur = from_start || predicted ? kInf : dev_cur + ussq(u_);
  if (!from_start && !predicted && !std::isfinite(pdev_cur)) {
    res.message = "the penalised deviance is not finite at the starting values";
    return res;
  }
  bool have_modes = !from_start && !predicted;
  Candidate c(tpl_.size(), beta_);
  const Eigen::VectorXd col_scale = joint_ ? column_scales() : Eigen::VectorXd();
  // After a small Newton step the weights hardly change: the next step
  // reuses that factorisation with the new gradient (a chord step), whose
  // error is the step times the relative change of the weights, and saves
  // a factorisation (with crossed factors, the costliest part of an
  // iteration). The step after a chord step is a Newton step again, and
  // only a Newton step judges convergence. Only where a factorisation
  // costs more than a pass (a Schur complement of secondary factors): a
  // chord step leaves the final modes within the tolerance rather than far
  // inside it, and on a one-factor model with random slopes the optimiser
  // then took 258 evaluations instead of 189.
  const bool chord_steps = xp_.m > 0;
  bool chord = false;

  for (res.iterations = 0; res.iterations < ctl.max_iter; ++res.iterations) {
    if (!chord && !sys_->factor(theta)) {
      res.message = "the penalised least-squares system is not positive definite";
      return res;
    }
    const double step = newton_candidate(c.u, c.beta, col_scale, chord);
    const bool after_chord = chord;
    chord = chord_steps && !chord && step <= kChordStep;
    if (have_modes && step <= ctl.tol) {
      PirlsResult done = after_chord ? converged_here(res, theta, dev_cur) : at_modes(res, dev_cur);
      // Where M is large, the step computed here is what makes the modes
      // satisfy their equation: take it, without a pass. The deviance,
      // sums and factorisation stay those of the current modes (the step is
      // inside the tolerance): the minimum of the penalised deviance to
      // within the step's decrement (residual x step, below 1e-15 on
      // counts around e^15).
      if (done.ok && mode_residual(c.u) > kModeResidualRatio * ctl.tol) {
        u_ = c.u;
        if (joint_) beta_ = c.beta;
      }
      return done;
    }
    if (!halve_until_no_rise(c, have_modes, pdev_cur, ctl.max_halvings, res.passes)) {
      if (after_chord) {
        // The chord step did not pay: a Newton step from the current
        // modes, with their cross-products again.
        dev_cur = pass(b(), beta_, false);
        ++res.passes;
        xp_at_modes_ = true;
        last_dev_ = dev_cur;
        continue;
      }
      chord = false;
      if (predicted) {
        // The linearised step left the domain: from the state's modes
        // themselves, with a pass there.
        predicted = false;
        dev_cur = pass(b(), beta_, false);
        ++res.passes;
        xp_at_modes_ = true;
        last_dev_ = dev_cur;
        pdev_cur = dev_cur + ussq(u_);
        if (!std::isfinite(pdev_cur)) {
          res.message = "the penalised deviance is not finite at the starting values";
          return res;
        }
        have_modes = true;
        continue;
      }
      if (!have_modes && restart_from_intercept(dev_cur, res.passes)) {
        pdev_cur = dev_cur;
        have_modes = true;
        continue;
      }
      // A small step that no halving makes pay: its effect is lost in the
      // rounding of the deviance, and the modes are as accurate as the
      // arithmetic allows.
      if (have_modes && step <= 1e-6) return converged_here(res, theta, dev_cur);
      res.message = have_modes ? "step halving failed to reduce the penalised deviance"
                               : "the first step from the starting values leaves the domain of the link function";
      return res;
    }
    // A small step that changed the penalised deviance by no more than its
    // rounding noise: the modes are at the resolution of the arithmetic.
    // Far into the iterations with the penalised deviance no longer
    // changing: estimates drifting off to infinity (separation). Stop
    // there, as lme4 does.
    const double change = std::fabs(pdev_cur - c.pdev);
    const bool at_noise = have_modes && !after_chord && step <= 1e-6 && change <= pdev_slack(c.pdev);
    const bool stalled = res.iterations >= 30 && change <= 10.0 * pdev_slack(c.pdev);
    u_ = c.u;
    if (joint_) beta_ = c.beta;
    have_modes = true;
    has_modes_ = true;
    xp_at_modes_ = true;
    dev_cur = c.dev;
    last_dev_ = dev_cur;
    pdev_cur = c.pdev;
    if (at_noise || stalled) return converged_here(res, theta, dev_cur);
  }
  res.message = "PIRLS did not converge in " + std::to_string(ctl.max_iter) + " iterations";
  return res;
}

double Pirls::agq_deviance(const Eigen::VectorXd& z, const Eigen::VectorXd& w, double ldL2) {
  const FactorBlock& F = d_.blocks[0];
  const Index k = F.n_levels;
  const int K = static_cast<int>(z.size());
  const double t = T_[0](0, 0);
  Eigen::VectorXd sd(k), dev0 = Eigen::VectorXd::Zero(k);
  for (Index j = 0; j < k; ++j) sd[j] = 1.0 / std::sqrt(1.0 + t * t * xp_.D1(0, j));
  Eigen::MatrixXd devk = Eigen::MatrixXd::Zero(K, k);
  const Eigen::MatrixXd& u = u_[0];
  for (Index i = 0; i < d_.n; ++i) {
    const Index j = F.codes[i] - F.code_base;
    const double zc = F.cols[0] ? F.cols[0][i] : 1.0;
    const double eta0 = eta_fixed_[i] + zc * t * u(0, j);
    const double y = d_.y[i];
    const double pw = d_.weights ? d_.weights[i] : 1.0;
    const MeanAt m0 = fam_.mean(eta0);
    if (!m0.valid) return kInf;
    dev0[j] += fam_.dev_resid(y, m0, pw);
    for (int q = 0; q < K; ++q) {
      if (z[q] == 0.0) continue;
      const MeanAt m = fam_.mean(eta0 + zc * t * z[q] * sd[j]);
      if (!m.valid) return kInf;
      devk(q, j) += fam_.dev_resid(y, m, pw);
    }
  }
  double total = ldL2;
  for (Index j = 0; j < k; ++j) {
    const double devc0 = u(0, j) * u(0, j) + dev0[j];
    double mult = 0.0;
    for (int q = 0; q < K; ++q) {
      if (z[q] == 0.0) {
        mult += w[q];
      } else {
        const double uq = u(0, j) + z[q] * sd[j];
        mult += w[q] * std::exp(-0.5 * (uq * uq + devk(q, j) - devc0) + 0.5 * z[q] * z[q]);
      }
    }
    total += devc0 - 2.0 * std::log(mult);
  }
  return total;
}

Eigen::MatrixXd Pirls::unscaled_vcov() const { return uncentre_vcov(xp_, sys_->unscaled_vcov()); }

Eigen::VectorXd Pirls::linear_predictor() const {
  const Index n = d_.n;
  Eigen::VectorXd eta(n);
  for (Index i = 0; i < n; ++i) eta[i] = d_.offset ? d_.offset[i] : 0.0;
  for (int c = 0; c < d_.p; ++c) {
    const double* x = d_.X + static_cast<Index>(c) * n;
    const double bc = beta_[c];
    for (Index i = 0; i < n; ++i) eta[i] += x[i] * bc;
  }
  const std::vector<Eigen::MatrixXd> bf = b();
  for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
    const FactorBlock& F = d_.blocks[f];
    for (int a = 0; a < F.q; ++a) {
      const double* col = F.cols[a];
      for (Index i = 0; i < n; ++i) {
        const double v = bf[f](a, F.codes[i] - F.code_base);
        eta[i] += col ? col[i] * v : v;
      }
    }
  }
  if (!rows_ || rows_->order.empty()) return eta;
  Eigen::VectorXd out(n);
  for (Index k = 0; k < n; ++k) out[rows_->order[k]] = eta[k];
  return out;
}

}  // namespace mlm
