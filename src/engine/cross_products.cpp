#include "cross_products.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <utility>

#include "cross_product_scatter.h"

namespace mlm {

void CrossProducts::finalize() {
  const int nf = static_cast<int>(sec_levels.size());
  n_sec = 0;
  for (Index k : sec_levels) n_sec += k;
  sec_fac.assign(n_sec, 0);
  sec_start.assign(n_sec, 0);
  rr_diag_off.assign(n_sec, 0);
  Index level = 0, coord = 0, doff = 0;
  for (int f = 0; f < nf; ++f) {
    const int q = sec_q[f];
    for (Index l = 0; l < sec_levels[f]; ++l, ++level) {
      sec_fac[level] = f;
      sec_start[level] = coord;
      rr_diag_off[level] = doff;
      coord += q;
      doff += static_cast<Index>(q) * q;
    }
  }
  m = coord;
  rr_off.assign(rr_row.size(), 0);
  Index off = 0;
  for (std::size_t e = 0; e < rr_row.size(); ++e) {
    rr_off[e] = off;
    off += static_cast<Index>(q_of(rr_row[e])) * q_of(rr_col[e]);
  }
  r1_off.assign(r1_row.size(), 0);
  off = 0;
  for (std::size_t e = 0; e < r1_row.size(); ++e) {
    r1_off[e] = off;
    off += static_cast<Index>(q_of(r1_row[e])) * q1;
  }
}

std::string CrossProducts::inconsistency() const {
  const Index P = static_cast<Index>(p) + 1;
  if (p < 0 || q1 < 1 || k1 < 1) return "sizes";
  if (D1.rows() != q1 || D1.cols() != k1 * q1) return "D1";
  if (C1.rows() != P || C1.cols() != k1 * q1) return "C1";
  if (XX.rows() != P || XX.cols() != P) return "XX";
  if (intercept_col < -1 || intercept_col >= p) return "intercept_col";
  if (center.size() != 0 && (center.size() != P || intercept_col < 0)) return "center";
  if (sec_levels.size() != sec_q.size()) return "secondary factors";
  std::vector<Index> level_end;  // cumulative levels, to find the q of a level
  Index levels = 0, coords = 0, diag = 0;
  for (std::size_t f = 0; f < sec_q.size(); ++f) {
    if (sec_levels[f] < 1 || sec_q[f] < 1) return "secondary factors";
    levels += sec_levels[f];
    coords += sec_levels[f] * sec_q[f];
    diag += sec_levels[f] * sec_q[f] * sec_q[f];
    level_end.push_back(levels);
  }
  auto q_at = [&](Index s) {
    return sec_q[std::upper_bound(level_end.begin(), level_end.end(), s) - level_end.begin()];
  };
  if (static_cast<Index>(rr_diag.size()) != diag) return "rr_diag";
  if (CR.rows() != P || CR.cols() != coords) return "CR";
  if (static_cast<Index>(r1_ptr.size()) != k1 + 1 || r1_ptr[0] != 0) return "r1_ptr";
  for (Index j = 0; j < k1; ++j)
    if (r1_ptr[j + 1] < r1_ptr[j]) return "r1_ptr";
  if (r1_ptr[k1] != static_cast<Index>(r1_row.size())) return "r1_ptr";
  Index size = 0;
  for (Index s : r1_row) {
    if (s < 0 || s >= levels) return "r1_row";
    size += static_cast<Index>(q_at(s)) * q1;
  }
  if (static_cast<Index>(r1_vals.size()) != size) return "r1_vals";
  if (rr_row.size() != rr_col.size()) return "rr_row";
  size = 0;
  for (std::size_t e = 0; e < rr_row.size(); ++e) {
    if (rr_row[e] < 0 || rr_row[e] >= levels || rr_col[e] < 0 || rr_col[e] >= levels) return "rr_row";
    size += static_cast<Index>(q_at(rr_row[e])) * q_at(rr_col[e]);
  }
  if (static_cast<Index>(rr_vals.size()) != size) return "rr_vals";
  return std::string();
}

namespace {

// Sparse block storage keyed by a pair of level numbers; blocks are created
// on first use and summed into afterwards. offset_of() returns offsets, not
// pointers: a new block may move the values. Every observation looks up
// its blocks here, so the key -> block table is an open-addressing table
// (linear probing, at most half full) in one flat array: a look-up costs
// about one cache miss, where a node-based std::unordered_map cost several
// (a third of a 1e7-row crossed fit).
struct BlockStore {
  static constexpr std::uint64_t kEmpty = ~std::uint64_t(0);  // no key: levels are below 2^32 - 1
  struct Slot {
    std::uint64_t key;
    Index offset;  // of the block's values in vals
  };
  std::vector<Slot> table = std::vector<Slot>(1024, Slot{kEmpty, 0});
  int shift = 64 - 10;  // hash bits: log2(table.size())
  std::vector<Index> row, col;
  std::vector<Index> off;
  std::vector<double> vals;

  static std::uint64_t key_of(Index r, Index c) {
    return (static_cast<std::uint64_t>(c) << 32) | static_cast<std::uint64_t>(r);
  }
  // Fibonacci hashing: the high bits of key times 2^64 / golden ratio.
  std::size_t home(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift);
  }

  // Fetch the slot of block (r, c) into the cache ahead of offset_of().
  void prefetch(Index r, Index c) const { __builtin_prefetch(table.data() + home(key_of(r, c))); }

  Index offset_of(Index r, Index c, int size) {
    const std::uint64_t key = key_of(r, c);
    const std::size_t mask = table.size() - 1;
    for (std::size_t h = home(key);; h = (h + 1) & mask) {
      Slot& s = table[h];
      if (s.key == key) return s.offset;
      if (s.key == kEmpty) break;
    }
    const Index o = static_cast<Index>(vals.size());
    row.push_back(r);
    col.push_back(c);
    off.push_back(o);
    vals.resize(vals.size() + size, 0.0);
    if (2 * row.size() > table.size()) {
      grow();
    } else {
      insert(key, o);
    }
    return o;
  }

  // Entries ordered by (col, row), values copied in that order.
  void sorted(std::vector<Index>& rows, std::vector<Index>& cols, std::vector<double>& v) const {
    std::vector<std::pair<std::uint64_t, Index>> ord(row.size());
    for (std::size_t e = 0; e < ord.size(); ++e) ord[e] = {key_of(row[e], col[e]), static_cast<Index>(e)};
    std::sort(ord.begin(), ord.end());
    rows.resize(ord.size());
    cols.resize(ord.size());
    v.clear();
    v.reserve(vals.size());
    for (std::size_t k = 0; k < ord.size(); ++k) {
      const std::size_t e = static_cast<std::size_t>(ord[k].second);
      rows[k] = row[e];
      cols[k] = col[e];
      const Index end = (e + 1 < off.size()) ? off[e + 1] : static_cast<Index>(vals.size());
      v.insert(v.end(), vals.begin() + off[e], vals.begin() + end);
    }
  }

 private:
  void insert(std::uint64_t key, Index offset) {
    const std::size_t mask = table.size() - 1;
    std::size_t h = home(key);
    while (table[h].key != kEmpty) h = (h + 1) & mask;
    table[h] = Slot{key, offset};
  }
  // Twice the slots, every block entered again (row and col hold the keys).
  void grow() {
    table.assign(2 * table.size(), Slot{kEmpty, 0});
    --shift;
    for (std::size_t b = 0; b < row.size(); ++b) insert(key_of(row[b], col[b]), off[b]);
  }
};

// The log of the product of the weights, and the centring.
void set_centring(const ModelData& d, CrossProducts& xp) {
  double sum_log_w = 0.0;
  if (d.weights)
    for (Index i = 0; i < d.n; ++i) sum_log_w += std::log(d.weights[i]);
  xp.sum_log_weights = sum_log_w;
  xp.center = centring_means(d);
}

// The sizes of every block, zero-filled; the blocks between levels come
// from the pass (only those that occur).
void size_blocks(const ModelData& d, CrossProducts& xp) {
  const int P = d.p + 1;
  const FactorBlock& F1 = d.blocks[0];
  xp.k1 = F1.n_levels;
  xp.q1 = F1.q;
  xp.D1 = Eigen::MatrixXd::Zero(xp.q1, xp.k1 * xp.q1);
  xp.C1 = Eigen::MatrixXd::Zero(P, xp.k1 * xp.q1);
  xp.XX = Eigen::MatrixXd::Zero(P, P);
  Index n_sec = 0, m = 0, diag = 0;
  for (std::size_t f = 1; f < d.blocks.size(); ++f) {
    const FactorBlock& F = d.blocks[f];
    xp.sec_levels.push_back(F.n_levels);
    xp.sec_q.push_back(F.q);
    n_sec += F.n_levels;
    m += F.n_levels * F.q;
    diag += F.n_levels * F.q * F.q;
  }
  // Blocks between levels are keyed by two 32-bit level numbers.
  if (n_sec >= (Index(1) << 32) || xp.k1 >= (Index(1) << 32))
    throw std::length_error("the random-effects structure is too large: more than 2^32 levels of grouping factors");
  xp.rr_diag.assign(diag, 0.0);
  xp.CR = Eigen::MatrixXd::Zero(P, m);
}

// One pass over the observations, by chunks: [X y]'W[X y] by a rank update
// of the chunk, every other block through the scatter of each weighted row.
void accumulate(const ModelData& d, CrossProducts& xp, BlockStore& r1, BlockStore& rr) {
  const Index n = d.n;
  const int p = d.p, P = p + 1, q1 = xp.q1;
  const int nf = static_cast<int>(d.blocks.size()) - 1;
  const ScatterLayout L(q1, xp.sec_q, p);
  ScatterTargets t(L);
  std::vector<Index> first_level(nf, 0), first_coord(nf, 0), diag_off(nf, 0);
  for (int f = 1; f < nf; ++f) {
    const FactorBlock& F = d.blocks[f];
    first_level[f] = first_level[f - 1] + F.n_levels;
    first_coord[f] = first_coord[f - 1] + F.n_levels * F.q;
    diag_off[f] = diag_off[f - 1] + F.n_levels * F.q * F.q;
  }
  const Eigen::VectorXd center = xp.center.size() ? xp.center : Eigen::VectorXd::Zero(P);
  const int n_pairs = L.n_pairs();
  std::vector<double> row(L.dim());

  const Index chunk = 2048;
  Eigen::MatrixXd B(chunk, P);  // sqrt(w) [x - mean, y - offset - mean]
  Eigen::VectorXd sw(chunk);
  // The blocks of each observation of the chunk, found first: the blocks
  // between levels are spread over memory too large for the caches, and
  // with their offsets known the values of later observations are fetched
  // while earlier ones are added (the adds otherwise wait on each miss).
  std::vector<Index> prim(chunk), lev(chunk * nf), r1_at(chunk * nf), rr_at(chunk * n_pairs);
  constexpr Index ahead = 8;  // observations fetched ahead
  for (Index start = 0; start < n; start += chunk) {
    const Index len = std::min(chunk, n - start);
    for (Index i = 0; i < len; ++i) sw[i] = d.weights ? std::sqrt(d.weights[start + i]) : 1.0;
    for (int c = 0; c < p; ++c) {
      const double* x = d.X + static_cast<Index>(c) * n + start;
      for (Index i = 0; i < len; ++i) B(i, c) = sw[i] * (x[i] - center[c]);
    }
    for (Index i = 0; i < len; ++i) {
      const double yi = d.y[start + i] - (d.offset ? d.offset[start + i] : 0.0);
      B(i, p) = sw[i] * (yi - center[p]);
    }
    xp.XX.selfadjointView<Eigen::Lower>().rankUpdate(B.topRows(len).transpose());

    auto level = [&](int f, Index obs) {
      const FactorBlock& F = d.blocks[f + 1];
      return first_level[f] + F.codes[obs] - F.code_base;
    };
    for (Index i = 0; i < len; ++i) {
      const Index obs = start + i;
      if (i + ahead < len) {
        const Index o = obs + ahead;
        const Index jo = d.blocks[0].codes[o] - d.blocks[0].code_base;
        for (int f = 0; f < nf; ++f) {
          r1.prefetch(level(f, o), jo);
          for (int g = 0; g < f; ++g) rr.prefetch(level(f, o), level(g, o));
        }
      }
      const Index j = d.blocks[0].codes[obs] - d.blocks[0].code_base;
      prim[i] = j;
      Index* lv = lev.data() + i * nf;
      for (int f = 0; f < nf; ++f) {
        const FactorBlock& F = d.blocks[f + 1];
        lv[f] = level(f, obs);
        r1_at[i * nf + f] = r1.offset_of(lv[f], j, F.q * q1);
        for (int g = 0; g < f; ++g)
          rr_at[i * n_pairs + secondary_pair_index(f, g)] = rr.offset_of(lv[f], lv[g], F.q * d.blocks[g + 1].q);
      }
    }
    // No block is created from here to the end of the chunk: the stores'
    // values stay where they are.
    for (Index i = 0; i < len; ++i) {
      if (i + ahead < len) {
        for (int f = 0; f < nf; ++f) __builtin_prefetch(r1.vals.data() + r1_at[(i + ahead) * nf + f], 1);
        for (int k = 0; k < n_pairs; ++k) __builtin_prefetch(rr.vals.data() + rr_at[(i + ahead) * n_pairs + k], 1);
      }
      const Index obs = start + i;
      const double s = sw[i];
      for (int f = 0; f <= nf; ++f) {
        const FactorBlock& F = d.blocks[f];
        for (int a = 0; a < F.q; ++a) row[L.offset(f) + a] = s * (F.cols[a] ? F.cols[a][obs] : 1.0);
      }
      for (int c = 0; c < P; ++c) row[L.Q() + c] = B(i, c);
      const Index j = prim[i];
      t.D1 = xp.D1.data() + j * q1 * q1;
      t.C1 = xp.C1.data() + j * q1 * P;
      for (int f = 0; f < nf; ++f) {
        const int q = d.blocks[f + 1].q;
        const Index l = lev[i * nf + f] - first_level[f];
        t.D[f] = xp.rr_diag.data() + diag_off[f] + l * q * q;
        t.CR[f] = xp.CR.data() + (first_coord[f] + l * q) * P;
        t.R1[f] = r1.vals.data() + r1_at[i * nf + f];
      }
      for (int k = 0; k < n_pairs; ++k) t.RR[k] = rr.vals.data() + rr_at[i * n_pairs + k];
      scatter_row(L, row.data(), t);
    }
    if (d.check_interrupt && (start / chunk) % 256 == 255) d.check_interrupt();
  }
  xp.XX.triangularView<Eigen::StrictlyUpper>() = xp.XX.transpose();
}

}  // namespace

CrossProducts build_cross_products(const ModelData& d) {
  CrossProducts xp;
  xp.n = d.n;
  xp.p = d.p;
  xp.intercept_col = d.intercept_col;
  set_centring(d, xp);
  size_blocks(d, xp);
  BlockStore r1, rr;
  accumulate(d, xp, r1, rr);
  std::vector<Index> r1_col;
  r1.sorted(xp.r1_row, r1_col, xp.r1_vals);
  xp.r1_ptr.assign(xp.k1 + 1, 0);
  for (Index c : r1_col) ++xp.r1_ptr[c + 1];
  for (Index j = 0; j < xp.k1; ++j) xp.r1_ptr[j + 1] += xp.r1_ptr[j];
  rr.sorted(xp.rr_row, xp.rr_col, xp.rr_vals);
  xp.finalize();
  return xp;
}

Eigen::VectorXd centring_means(const ModelData& d) {
  if (d.intercept_col < 0) return Eigen::VectorXd();
  const Index n = d.n;
  const int p = d.p;
  double sum_w = 0.0;
  for (Index i = 0; i < n; ++i) sum_w += d.weights ? d.weights[i] : 1.0;
  Eigen::VectorXd center = Eigen::VectorXd::Zero(p + 1);
  for (int c = 0; c <= p; ++c) {
    if (c == d.intercept_col) continue;
    double s = 0.0;
    for (Index i = 0; i < n; ++i) {
      const double v = c < p ? d.X[static_cast<Index>(c) * n + i] : d.y[i] - (d.offset ? d.offset[i] : 0.0);
      s += (d.weights ? d.weights[i] : 1.0) * v;
    }
    center[c] = s / sum_w;
  }
  return center;
}

void uncentre(const CrossProducts& xp, Eigen::VectorXd& beta, double intercept_shift) {
  if (xp.center.size() == 0) return;
  const int ic = xp.intercept_col;
  double shift = intercept_shift;
  for (int c = 0; c < xp.p; ++c)
    if (c != ic) shift -= xp.center[c] * beta[c];
  beta[ic] += shift;
}

void uncentre_rows(const CrossProducts& xp, Eigen::MatrixXd& rows) {
  if (xp.center.size() == 0) return;
  const int ic = xp.intercept_col;
  for (int c = 0; c < xp.p; ++c)
    if (c != ic) rows.row(ic) -= xp.center[c] * rows.row(c);
}

Eigen::MatrixXd uncentre_vcov(const CrossProducts& xp, const Eigen::MatrixXd& V) {
  if (xp.center.size() == 0) return V;
  const int p = xp.p, ic = xp.intercept_col;
  Eigen::MatrixXd M = Eigen::MatrixXd::Identity(p, p);
  for (int c = 0; c < p; ++c)
    if (c != ic) M(ic, c) = -xp.center[c];
  return M * V * M.transpose();
}

}  // namespace mlm
