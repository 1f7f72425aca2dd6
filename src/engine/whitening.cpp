#include "whitening.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace mlm {

namespace {

// Distinct gaps up to a relative tolerance (times read from data: 0.1 + 0.2
// and 0.3 are one gap).
bool same_gap(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)); }

// Sorted unique (a, b) pairs and the position of any pair among them.
struct PairIndex {
  std::vector<std::pair<Index, Index>> keys;
  void finish() {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  }
  Index find(Index a, Index b) const {
    return std::lower_bound(keys.begin(), keys.end(), std::make_pair(a, b)) - keys.begin();
  }
};

}  // namespace

WhitenedCrossProducts::WhitenedCrossProducts(const ModelData& data, const ResidualSpec& spec, WhiteningMethod method,
                                             double max_class_bytes)
    : d_(data), spec_(spec) {
  if (spec.n_groups() < 1 || static_cast<Index>(spec.order.size()) != data.n || spec.group_start.back() != data.n)
    throw std::invalid_argument("the residual groups must cover every observation once");
  set_up_layout();
  set_up_gaps();
  if (method != WhiteningMethod::pass && classes_available()) {
    enumerate_classes();
    const double bytes = 8.0 * static_cast<double>(classes_.size()) * static_cast<double>(n_values_);
    if (method == WhiteningMethod::classes || (classes_.size() <= 64 && bytes <= max_class_bytes)) {
      build_classes();
    } else {
      classes_.clear();
      class_index_.clear();
    }
  }
  if (n_classes_ == 0) values_.setZero(n_values_);
}

void WhitenedCrossProducts::set_up_layout() {
  xp_.n = d_.n;
  xp_.p = d_.p;
  xp_.intercept_col = d_.intercept_col;
  set_up_centring();
  set_up_group_levels();
  set_up_level_pairs();
  set_up_values();
}

// Centring (an exact reparametrisation; see cross_products.h), by the
// weighted means of the unwhitened columns.
void WhitenedCrossProducts::set_up_centring() {
  if (d_.intercept_col < 0) {
    center_ = Eigen::VectorXd::Zero(d_.p + 1);
    return;
  }
  center_ = centring_means(d_);
  xp_.center = center_;
}

// The factors' sizes and the levels of each residual group; every
// observation of the group must share them.
void WhitenedCrossProducts::set_up_group_levels() {
  const ModelData& d = d_;
  const FactorBlock& F1 = d.blocks[0];
  xp_.k1 = F1.n_levels;
  xp_.q1 = F1.q;
  nf_ = static_cast<int>(d.blocks.size()) - 1;
  std::vector<Index> first_level(nf_ + 1, 0);
  Index n_sec = 0;
  for (int f = 1; f <= nf_; ++f) {
    const FactorBlock& F = d.blocks[f];
    xp_.sec_levels.push_back(F.n_levels);
    xp_.sec_q.push_back(F.q);
    first_level[f] = n_sec;
    n_sec += F.n_levels;
  }
  layout_ = ScatterLayout(F1.q, xp_.sec_q, d.p);
  n_pairs_ = layout_.n_pairs();
  const Index G = spec_.n_groups();
  lev1_.resize(G);
  sec_.resize(static_cast<std::size_t>(G) * nf_);
  for (Index g = 0; g < G; ++g) {
    const Index i0 = spec_.order[spec_.group_start[g]];
    lev1_[g] = F1.codes[i0] - F1.code_base;
    for (int f = 1; f <= nf_; ++f) {
      const FactorBlock& F = d.blocks[f];
      sec_[g * nf_ + f - 1] = first_level[f] + F.codes[i0] - F.code_base;
    }
    for (Index k = spec_.group_start[g] + 1; k < spec_.group_start[g + 1]; ++k) {
      const Index i = spec_.order[k];
      bool same = F1.codes[i] == F1.codes[i0];
      for (int f = 1; f <= nf_; ++f) same = same && d.blocks[f].codes[i] == d.blocks[f].codes[i0];
      if (!same) throw std::invalid_argument("a residual group spans several levels of a grouping factor");
    }
  }
}

// Cross-product entries between secondary and primary levels, and between
// levels of different secondary factors, ordered as build_cross_products
// orders them (by column, then row), and the entries each group touches.
void WhitenedCrossProducts::set_up_level_pairs() {
  const Index G = spec_.n_groups();
  PairIndex r1, rr;
  for (Index g = 0; g < G; ++g)
    for (int f = 0; f < nf_; ++f) {
      r1.keys.emplace_back(lev1_[g], sec_[g * nf_ + f]);
      for (int h = 0; h < f; ++h) rr.keys.emplace_back(sec_[g * nf_ + h], sec_[g * nf_ + f]);
    }
  r1.finish();
  rr.finish();
  xp_.r1_ptr.assign(xp_.k1 + 1, 0);
  for (const auto& k : r1.keys) {
    xp_.r1_row.push_back(k.second);
    ++xp_.r1_ptr[k.first + 1];
  }
  for (Index j = 0; j < xp_.k1; ++j) xp_.r1_ptr[j + 1] += xp_.r1_ptr[j];
  for (const auto& k : rr.keys) {
    xp_.rr_col.push_back(k.first);
    xp_.rr_row.push_back(k.second);
  }
  xp_.finalize();
  r1e_.resize(static_cast<std::size_t>(G) * nf_);
  rre_.resize(static_cast<std::size_t>(G) * n_pairs_);
  for (Index g = 0; g < G; ++g) {
    int pair = 0;
    for (int f = 0; f < nf_; ++f) {
      r1e_[g * nf_ + f] = r1.find(lev1_[g], sec_[g * nf_ + f]);
      for (int h = 0; h < f; ++h) rre_[g * n_pairs_ + pair++] = rr.find(sec_[g * nf_ + h], sec_[g * nf_ + f]);
    }
  }
}

// The blocks of xp_ sized, and the flat layout of all values: segments
// padded to whole chunks, so that each chunk of a class lies in one array
// of xp_ and an evaluation writes the sums straight there.
void WhitenedCrossProducts::set_up_values() {
  const int P = xp_.p + 1;
  const Index k1q1 = xp_.k1 * xp_.q1;
  Index rrd = 0, rrv = 0, r1v = 0;
  for (Index s = 0; s < xp_.n_sec; ++s) rrd += static_cast<Index>(xp_.q_of(s)) * xp_.q_of(s);
  for (std::size_t e = 0; e < xp_.rr_row.size(); ++e)
    rrv += static_cast<Index>(xp_.q_of(xp_.rr_row[e])) * xp_.q_of(xp_.rr_col[e]);
  for (std::size_t e = 0; e < xp_.r1_row.size(); ++e) r1v += static_cast<Index>(xp_.q_of(xp_.r1_row[e])) * xp_.q1;
  xp_.D1.resize(xp_.q1, k1q1);
  xp_.C1.resize(P, k1q1);
  xp_.XX.resize(P, P);
  xp_.rr_diag.assign(rrd, 0.0);
  xp_.rr_vals.assign(rrv, 0.0);
  xp_.r1_vals.assign(r1v, 0.0);
  xp_.CR.resize(P, xp_.m);
  auto pad = [](Index m) { return (m + kChunk - 1) / kChunk * kChunk; };
  off_C1_ = pad(xp_.D1.size());
  off_XX_ = off_C1_ + pad(xp_.C1.size());
  off_rrd_ = off_XX_ + pad(xp_.XX.size());
  off_rrv_ = off_rrd_ + pad(rrd);
  off_r1_ = off_rrv_ + pad(rrv);
  off_CR_ = off_r1_ + pad(r1v);
  n_values_ = off_CR_ + pad(xp_.CR.size());
  const std::pair<Index, std::pair<double*, Index>> segments[] = {
      {0, {xp_.D1.data(), static_cast<Index>(xp_.D1.size())}},
      {off_C1_, {xp_.C1.data(), static_cast<Index>(xp_.C1.size())}},
      {off_XX_, {xp_.XX.data(), static_cast<Index>(xp_.XX.size())}},
      {off_rrd_, {xp_.rr_diag.data(), rrd}},
      {off_rrv_, {xp_.rr_vals.data(), rrv}},
      {off_r1_, {xp_.r1_vals.data(), r1v}},
      {off_CR_, {xp_.CR.data(), static_cast<Index>(xp_.CR.size())}}};
  chunk_dest_.assign(n_values_ / kChunk, nullptr);
  chunk_len_.assign(n_values_ / kChunk, 0);
  for (const auto& seg : segments) {
    const Index first = seg.first / kChunk, size = seg.second.second;
    for (Index k = 0; k * kChunk < size; ++k) {
      chunk_dest_[first + k] = seg.second.first + k * kChunk;
      chunk_len_[first + k] = static_cast<int>(std::min(kChunk, size - k * kChunk));
    }
  }
}

void WhitenedCrossProducts::set_up_gaps() {
  const ResidualSpec& s = spec_;
  const Index n = d_.n, G = s.n_groups();
  if (d_.weights)
    for (Index i = 0; i < n; ++i) sum_log_weights_ += std::log(d_.weights[i]);
  if (s.variance == VarianceKind::ident) {
    stratum_count_.assign(s.n_strata, 0);
    for (Index i = 0; i < n; ++i) ++stratum_count_[s.stratum[i]];
  } else if (s.variance == VarianceKind::power) {
    for (Index i = 0; i < n; ++i) sum_log_abs_cov_ += std::log(std::fabs(s.covariate[i]));
  } else if (s.variance == VarianceKind::exponential) {
    for (Index i = 0; i < n; ++i) sum_cov_ += s.covariate[i];
  }
  if (s.correlation == CorrelationKind::comp_symm) {
    size_count_.assign(s.max_group_size() + 1, 0);
    for (Index g = 0; g < G; ++g) ++size_count_[s.group_start[g + 1] - s.group_start[g]];
  }
  if (s.correlation != CorrelationKind::ar1 && s.correlation != CorrelationKind::car1) return;
  auto time_at = [&](Index k, Index start) {
    return s.time ? s.time[s.order[k]] : static_cast<double>(k - start);
  };
  std::vector<double> gaps;
  for (Index g = 0; g < G; ++g)
    for (Index k = s.group_start[g] + 1; k < s.group_start[g + 1]; ++k)
      gaps.push_back(time_at(k, s.group_start[g]) - time_at(k - 1, s.group_start[g]));
  std::sort(gaps.begin(), gaps.end());
  for (double v : gaps)
    if (gap_value_.empty() || !same_gap(v, gap_value_.back())) gap_value_.push_back(v);
  if (!gap_value_.empty() && !(gap_value_.front() > 0.0))
    throw std::invalid_argument("times must increase strictly within a residual group");
  gap_count_.assign(gap_value_.size(), 0);
  gap_class_.assign(n, -1);
  for (Index g = 0; g < G; ++g)
    for (Index k = s.group_start[g] + 1; k < s.group_start[g + 1]; ++k) {
      const double v = time_at(k, s.group_start[g]) - time_at(k - 1, s.group_start[g]);
      auto it = std::lower_bound(gap_value_.begin(), gap_value_.end(), v);
      if (it == gap_value_.end() || (it != gap_value_.begin() && std::fabs(*(it - 1) - v) < std::fabs(*it - v))) --it;
      const int c = static_cast<int>(it - gap_value_.begin());
      gap_class_[k] = c;
      ++gap_count_[c];
    }
}

bool WhitenedCrossProducts::classes_available() const {
  return spec_.variance == VarianceKind::none || spec_.variance == VarianceKind::ident;
}

int WhitenedCrossProducts::stratum_of(Index i) const {
  return spec_.variance == VarianceKind::ident ? spec_.stratum[i] : 0;
}

int WhitenedCrossProducts::class_of(ClassKind kind, int a, int s, int t) {
  const std::array<int, 4> key{static_cast<int>(kind), a, s, t};
  auto it = class_index_.find(key);
  if (it != class_index_.end()) return it->second;
  const int c = static_cast<int>(classes_.size());
  classes_.push_back({kind, a, s, t});
  class_index_.emplace(key, c);
  return c;
}

// The patterns that occur, from strata, gaps and group sizes alone.
void WhitenedCrossProducts::enumerate_classes() {
  const ResidualSpec& s = spec_;
  const bool strata = s.variance == VarianceKind::ident;
  const bool chain = s.correlation == CorrelationKind::ar1 || s.correlation == CorrelationKind::car1;
  const bool cs = s.correlation == CorrelationKind::comp_symm;
  for (int k = 0; k < (strata ? s.n_strata : 1); ++k) class_of(ClassKind::row, 0, k, 0);
  std::vector<char> present(strata ? s.n_strata : 1);
  for (Index g = 0; g < s.n_groups(); ++g) {
    std::fill(present.begin(), present.end(), 0);
    for (Index k = s.group_start[g]; k < s.group_start[g + 1]; ++k) {
      const int sb = stratum_of(s.order[k]);
      present[sb] = 1;
      if (!chain || k == s.group_start[g]) continue;
      const int sa = stratum_of(s.order[k - 1]), c = gap_class_[k];
      if (!strata) {
        class_of(ClassKind::diff, c, 0, 0);
        class_of(ClassKind::end, c, 0, 0);
      } else {
        class_of(ClassKind::end, c, sa, 0);
        class_of(ClassKind::end, c, sb, 0);
        class_of(ClassKind::cross, c, std::min(sa, sb), std::max(sa, sb));
      }
    }
    if (cs) {
      const int m = static_cast<int>(s.group_start[g + 1] - s.group_start[g]);
      for (int a = 0; a < static_cast<int>(present.size()); ++a)
        for (int b = a; b < static_cast<int>(present.size()); ++b)
          if (present[a] && present[b]) class_of(ClassKind::sum, m, a, b);
    }
  }
}

void WhitenedCrossProducts::row(Index i, double* m) const {
  const ModelData& d = d_;
  const double sw = d.weights ? std::sqrt(d.weights[i]) : 1.0;
  for (int f = 0; f <= nf_; ++f) {
    const FactorBlock& F = d.blocks[f];
    for (int a = 0; a < F.q; ++a) m[layout_.offset(f) + a] = F.cols[a] ? sw * F.cols[a][i] : sw;
  }
  const int Q = layout_.Q();
  for (int c = 0; c < d.p; ++c) m[Q + c] = sw * (d.X[static_cast<Index>(c) * d.n + i] - center_[c]);
  m[Q + d.p] = sw * (d.y[i] - (d.offset ? d.offset[i] : 0.0) - center_[d.p]);
}

void WhitenedCrossProducts::scatter(const double* G, Index g, double* v, ScatterTargets& t) const {
  const int P = layout_.P(), q1 = xp_.q1;
  t.D1 = v + lev1_[g] * q1 * q1;
  t.C1 = v + off_C1_ + lev1_[g] * q1 * P;
  t.XX = v + off_XX_;
  for (int f = 0; f < nf_; ++f) {
    const Index s = sec_[g * nf_ + f];
    t.D[f] = v + off_rrd_ + xp_.rr_diag_off[s];
    t.CR[f] = v + off_CR_ + xp_.sec_start[s] * P;
    t.R1[f] = v + off_r1_ + xp_.r1_off[r1e_[g * nf_ + f]];
  }
  for (int k = 0; k < n_pairs_; ++k) t.RR[k] = v + off_rrv_ + xp_.rr_off[rre_[g * n_pairs_ + k]];
  scatter_matrix(layout_, G, t);
}

void WhitenedCrossProducts::unpack(const double* v) {
  // std::copy rather than memcpy: an empty block has a null data pointer.
  std::copy(v, v + xp_.D1.size(), xp_.D1.data());
  std::copy(v + off_C1_, v + off_C1_ + xp_.C1.size(), xp_.C1.data());
  std::copy(v + off_XX_, v + off_XX_ + xp_.XX.size(), xp_.XX.data());
  std::copy(v + off_rrd_, v + off_rrd_ + xp_.rr_diag.size(), xp_.rr_diag.begin());
  std::copy(v + off_rrv_, v + off_rrv_ + xp_.rr_vals.size(), xp_.rr_vals.begin());
  std::copy(v + off_r1_, v + off_r1_ + xp_.r1_vals.size(), xp_.r1_vals.begin());
  std::copy(v + off_CR_, v + off_CR_ + xp_.CR.size(), xp_.CR.data());
}

namespace {

// G += w a b' (all of it; dim is small).
inline void add_outer(double* G, int dim, double w, const double* a, const double* b) {
  for (int c = 0; c < dim; ++c) {
    const double wb = w * b[c];
    double* col = G + c * dim;
    for (int r = 0; r < dim; ++r) col[r] += a[r] * wb;
  }
}

}  // namespace

void WhitenedCrossProducts::build_classes() {
  const ResidualSpec& s = spec_;
  const bool strata = s.variance == VarianceKind::ident;
  const bool chain = s.correlation == CorrelationKind::ar1 || s.correlation == CorrelationKind::car1;
  const bool cs = s.correlation == CorrelationKind::comp_symm;
  n_classes_ = static_cast<int>(classes_.size());
  Eigen::MatrixXd dense = Eigen::MatrixXd::Zero(n_values_, n_classes_);
  const int S = strata ? s.n_strata : 1;

  const int D = layout_.dim();
  const std::size_t DD = static_cast<std::size_t>(D) * D;
  std::vector<double> G(DD * n_classes_, 0.0);
  ScatterTargets targets(layout_);
  std::vector<char> touched(n_classes_, 0);
  std::vector<double> cur(D), prev(D), diff(D), u(static_cast<std::size_t>(D) * S);
  std::vector<char> present(S);
  auto add = [&](int c, double w, const double* a, const double* b) {
    add_outer(G.data() + DD * c, D, w, a, b);
    touched[c] = 1;
  };
  for (Index g = 0; g < s.n_groups(); ++g) {
    std::fill(u.begin(), u.end(), 0.0);
    std::fill(present.begin(), present.end(), 0);
    int sa = 0;
    for (Index k = s.group_start[g]; k < s.group_start[g + 1]; ++k) {
      const Index i = s.order[k];
      const int sb = stratum_of(i);
      row(i, cur.data());
      add(class_index_.at({static_cast<int>(ClassKind::row), 0, sb, 0}), 1.0, cur.data(), cur.data());
      if (chain && k > s.group_start[g]) {
        const int c = gap_class_[k];
        if (!strata) {
          for (int r = 0; r < D; ++r) diff[r] = prev[r] - cur[r];
          add(class_index_.at({static_cast<int>(ClassKind::diff), c, 0, 0}), 1.0, diff.data(), diff.data());
          const int e = class_index_.at({static_cast<int>(ClassKind::end), c, 0, 0});
          add(e, 1.0, prev.data(), prev.data());
          add(e, 1.0, cur.data(), cur.data());
        } else {
          add(class_index_.at({static_cast<int>(ClassKind::end), c, sa, 0}), 1.0, prev.data(), prev.data());
          add(class_index_.at({static_cast<int>(ClassKind::end), c, sb, 0}), 1.0, cur.data(), cur.data());
          const int x = class_index_.at({static_cast<int>(ClassKind::cross), c, std::min(sa, sb), std::max(sa, sb)});
          add(x, 1.0, prev.data(), cur.data());
          add(x, 1.0, cur.data(), prev.data());
        }
      }
      if (cs) {
        present[sb] = 1;
        for (int r = 0; r < D; ++r) u[static_cast<std::size_t>(sb) * D + r] += cur[r];
      }
      sa = sb;
      std::swap(cur, prev);
    }
    if (cs) {
      const int m = static_cast<int>(s.group_start[g + 1] - s.group_start[g]);
      for (int a = 0; a < S; ++a)
        for (int b = a; b < S; ++b) {
          if (!present[a] || !present[b]) continue;
          const int c = class_index_.at({static_cast<int>(ClassKind::sum), m, a, b});
          const double* ua = u.data() + static_cast<std::size_t>(a) * D;
          const double* ub = u.data() + static_cast<std::size_t>(b) * D;
          add(c, 1.0, ua, ub);
          if (a != b) add(c, 1.0, ub, ua);
        }
    }
    for (int c = 0; c < n_classes_; ++c) {
      if (!touched[c]) continue;
      scatter(G.data() + DD * c, g, dense.col(c).data(), targets);
      std::fill(G.begin() + DD * c, G.begin() + DD * (c + 1), 0.0);
      touched[c] = 0;
    }
    if (d_.check_interrupt && (g & 65535) == 65535) d_.check_interrupt();
  }

  class_values_.assign(n_classes_, ChunkedValues());
  const Index n_chunks = (n_values_ + kChunk - 1) / kChunk;
  for (int c = 0; c < n_classes_; ++c) {
    const double* col = dense.col(c).data();
    ChunkedValues& cv = class_values_[c];
    for (Index k = 0; k < n_chunks; ++k) {
      const Index begin = k * kChunk, end = std::min(begin + kChunk, n_values_);
      if (std::all_of(col + begin, col + end, [](double x) { return x == 0.0; })) continue;
      cv.chunks.push_back(k);
      cv.data.insert(cv.data.end(), col + begin, col + end);
      cv.data.resize(cv.chunks.size() * kChunk, 0.0);
    }
  }
}

// xp_ = sum_c coef[c] * class c, chunk by chunk: each class's chunks are
// read once and each value of xp_ written once.
void WhitenedCrossProducts::combine_classes(const Eigen::VectorXd& coef) {
  std::vector<std::size_t> next(n_classes_, 0);
  double acc[kChunk];
  const Index n_chunks = static_cast<Index>(chunk_dest_.size());
  for (Index k = 0; k < n_chunks; ++k) {
    double* dst = chunk_dest_[k];
    if (!dst) continue;
    std::fill(acc, acc + kChunk, 0.0);
    for (int c = 0; c < n_classes_; ++c) {
      const ChunkedValues& cv = class_values_[c];
      const std::size_t i = next[c];
      if (i == cv.chunks.size() || cv.chunks[i] != k) continue;
      const double w = coef[c];
      const double* src = cv.data.data() + i * kChunk;
      for (Index r = 0; r < kChunk; ++r) acc[r] += w * src[r];
      next[c] = i + 1;
    }
    std::copy(acc, acc + chunk_len_[k], dst);
  }
}

double WhitenedCrossProducts::class_storage() const {
  double stored = 0.0;
  for (const ChunkedValues& cv : class_values_) stored += static_cast<double>(cv.data.size());
  return n_values_ > 0 ? stored / static_cast<double>(n_values_) : 0.0;
}

double WhitenedCrossProducts::class_coefficient(const PatternClass& c) const {
  const double phi = par_.phi;
  const bool strata = spec_.variance == VarianceKind::ident;
  const double ds = strata ? par_.delta[c.s] : 1.0, dt = strata ? par_.delta[c.t] : 1.0;
  switch (c.kind) {
    case ClassKind::row:
      return (spec_.correlation == CorrelationKind::comp_symm ? 1.0 / (1.0 - phi) : 1.0) / (ds * ds);
    case ClassKind::diff: {
      // The precision of a chain with correlation rho between neighbours a
      // and b adds (rho^2 (aa' + bb') - rho (ab' + ba')) / (1 - rho^2) per
      // pair to the unit diagonal. Without strata it is written as
      // rho / (1 - rho^2) (a - b)(a - b)' - rho / (1 + rho) (aa' + bb'),
      // which does not cancel as rho approaches 1.
      const double rho = par_.lag_correlation(gap_value_[c.a]);
      return rho / ((1.0 - rho) * (1.0 + rho));
    }
    case ClassKind::end: {
      const double rho = par_.lag_correlation(gap_value_[c.a]);
      if (!strata) return -rho / (1.0 + rho);
      return rho * rho / ((1.0 - rho) * (1.0 + rho) * ds * ds);
    }
    case ClassKind::cross: {
      const double rho = par_.lag_correlation(gap_value_[c.a]);
      return -rho / ((1.0 - rho) * (1.0 + rho) * ds * dt);
    }
    case ClassKind::sum: {
      // (1 - rho)^{-1} (I - rho / (1 + (m - 1) rho) 11') for a group of size m.
      const double m = static_cast<double>(c.a);
      return -phi / ((1.0 - phi) * (1.0 + (m - 1.0) * phi) * ds * dt);
    }
  }
  return 0.0;
}

void WhitenedCrossProducts::pass(double* v) const {
  const ResidualSpec& s = spec_;
  const int D = layout_.dim();
  ScatterTargets targets(layout_);
  const bool chain = s.correlation == CorrelationKind::ar1 || s.correlation == CorrelationKind::car1;
  const bool cs = s.correlation == CorrelationKind::comp_symm;
  std::fill(v, v + n_values_, 0.0);
  std::vector<double> rho(gap_value_.size()), inv_sd(gap_value_.size());
  for (std::size_t c = 0; c < gap_value_.size(); ++c) {
    rho[c] = par_.lag_correlation(gap_value_[c]);
    inv_sd[c] = 1.0 / std::sqrt((1.0 - rho[c]) * (1.0 + rho[c]));
  }
  std::vector<double> G(static_cast<std::size_t>(D) * D), cur(D), prev(D), e(D), u(D);
  for (Index g = 0; g < s.n_groups(); ++g) {
    std::fill(G.begin(), G.end(), 0.0);
    std::fill(u.begin(), u.end(), 0.0);
    for (Index k = s.group_start[g]; k < s.group_start[g + 1]; ++k) {
      const Index i = s.order[k];
      row(i, cur.data());
      const double scale = 1.0 / variance_multiplier(s, par_, i);
      for (int r = 0; r < D; ++r) cur[r] *= scale;
      const double* w = cur.data();
      if (chain && k > s.group_start[g]) {
        // Innovation of the chain: (cur - rho prev) / sqrt(1 - rho^2).
        const int c = gap_class_[k];
        for (int r = 0; r < D; ++r) e[r] = (cur[r] - rho[c] * prev[r]) * inv_sd[c];
        w = e.data();
      }
      for (int c = 0; c < D; ++c) {
        const double wc = w[c];
        double* col = G.data() + c * D;
        for (int r = c; r < D; ++r) col[r] += w[r] * wc;
      }
      if (cs)
        for (int r = 0; r < D; ++r) u[r] += cur[r];
      std::swap(cur, prev);
    }
    if (cs) {
      const double m = static_cast<double>(s.group_start[g + 1] - s.group_start[g]);
      const double phi = par_.phi;
      const double a = 1.0 / (1.0 - phi), b = phi / ((1.0 - phi) * (1.0 + (m - 1.0) * phi));
      for (int c = 0; c < D; ++c)
        for (int r = c; r < D; ++r) G[r + c * D] = a * G[r + c * D] - b * u[r] * u[c];
    }
    for (int c = 0; c < D; ++c)
      for (int r = c + 1; r < D; ++r) G[c + r * D] = G[r + c * D];
    scatter(G.data(), g, v, targets);
  }
}

double WhitenedCrossProducts::log_det_at() const {
  const ResidualSpec& s = spec_;
  double ld = -sum_log_weights_;
  switch (s.variance) {
    case VarianceKind::none: break;
    case VarianceKind::ident:
      for (int k = 0; k < s.n_strata; ++k) ld += 2.0 * static_cast<double>(stratum_count_[k]) * std::log(par_.delta[k]);
      break;
    case VarianceKind::power: ld += 2.0 * par_.delta[0] * sum_log_abs_cov_; break;
    case VarianceKind::exponential: ld += 2.0 * par_.delta[0] * sum_cov_; break;
    case VarianceKind::const_power:  // no sufficient statistic: a sum over the observations
      for (Index i = 0; i < d_.n; ++i) ld += 2.0 * std::log(variance_multiplier(s, par_, i));
      break;
  }
  if (s.correlation == CorrelationKind::ar1 || s.correlation == CorrelationKind::car1) {
    for (std::size_t c = 0; c < gap_value_.size(); ++c) {
      const double rho = par_.lag_correlation(gap_value_[c]);
      ld += static_cast<double>(gap_count_[c]) * std::log((1.0 - rho) * (1.0 + rho));
    }
  } else if (s.correlation == CorrelationKind::comp_symm) {
    for (std::size_t m = 1; m < size_count_.size(); ++m)
      if (size_count_[m] > 0) ld += static_cast<double>(size_count_[m]) * comp_symm_log_det(par_.phi, static_cast<Index>(m));
  }
  return ld;
}

bool WhitenedCrossProducts::update(const Eigen::VectorXd& psi) {
  if (!natural_parameters(spec_, psi, par_)) return false;
  const double ld = log_det_at();
  if (!std::isfinite(ld)) return false;
  if (n_classes_ > 0) {
    Eigen::VectorXd coef(n_classes_);
    for (int c = 0; c < n_classes_; ++c) coef[c] = class_coefficient(classes_[c]);
    if (!coef.allFinite()) return false;
    combine_classes(coef);
  } else {
    pass(values_.data());
    unpack(values_.data());
  }
  xp_.sum_log_weights = -ld;
  return true;
}

}  // namespace mlm
