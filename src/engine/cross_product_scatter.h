// The one accumulator of per-observation values into the blocks of
// [Z X y]' W [Z X y] (cross_products.h). An observation (or a residual
// group, whitened together) has one row of coordinates
//   [z of the primary factor, z of each secondary factor, x, y]
// (weighted by the caller) and touches one level of each grouping factor;
// its outer product r r' (or a symmetric matrix G over the same
// coordinates) is added into the blocks of those levels: the diagonal block
// and the [X y] rows of each level, the blocks between its secondary levels
// and its primary level, and between pairs of its secondary levels, and
// [X y]'[X y]. build_cross_products (data in memory), WhitenedCrossProducts
// (whitened residual groups) and PIRLS (working weights) all scatter
// through it; each finds the blocks in its own storage (ScatterTargets).
#pragma once

#include <vector>

namespace mlm {

// The coordinates of a row: the columns of each grouping factor (primary
// first), then the p + 1 columns of [X y].
class ScatterLayout {
 public:
  ScatterLayout() = default;
  ScatterLayout(int q1, const std::vector<int>& sec_q, int p) : q_(1, q1), offset_(1, 0), P_(p + 1) {
    int o = q1;
    for (int q : sec_q) {
      q_.push_back(q);
      offset_.push_back(o);
      o += q;
    }
    Q_ = o;
  }
  int n_secondary() const { return static_cast<int>(q_.size()) - 1; }
  int q(int f) const { return q_[f]; }            // f = 0: the primary factor
  int offset(int f) const { return offset_[f]; }  // first coordinate of factor f
  int Q() const { return Q_; }                    // coordinates of Z
  int P() const { return P_; }                    // coordinates of [X y]
  int dim() const { return Q_ + P_; }
  int n_pairs() const { return n_secondary() * (n_secondary() - 1) / 2; }

 private:
  std::vector<int> q_, offset_;
  int Q_ = 0, P_ = 0;
};

// The position of the pair of secondary factors f > h among all pairs
// (ordered by f, then h): where its block pointer and its per-observation
// offset are stored.
inline int secondary_pair_index(int f, int h) { return f * (f - 1) / 2 + h; }

// Where one observation's blocks are: a pointer to the first entry of each,
// in the storage of CrossProducts (column-major blocks; a level's rows of
// [X y]'Z stored with entry (a, c) at a * P + c).
struct ScatterTargets {
  double* D1 = nullptr;     // q1 x q1: Z1'Z1 of the primary level
  double* C1 = nullptr;     // [X y]'Z1 of the primary level
  double* XX = nullptr;     // P x P; nullptr where [X y]'[X y] is formed elsewhere
  std::vector<double*> D;   // per secondary factor: q x q diagonal block of its level
  std::vector<double*> CR;  // per secondary factor: [X y]'Z of its level
  std::vector<double*> R1;  // per secondary factor: q x q1 block with the primary level
  std::vector<double*> RR;  // per pair of secondary factors f > h (secondary_pair_index): q_f x q_h

  explicit ScatterTargets(const ScatterLayout& L)
      : D(L.n_secondary()), CR(L.n_secondary()), R1(L.n_secondary()), RR(L.n_pairs()) {}
};

namespace scatter_detail {

// Add the dim x dim symmetric matrix with entries at(r, c) into the
// targets (at is read for r, c of the blocks only).
template <class Entry>
inline void scatter(const ScatterLayout& L, const Entry& at, const ScatterTargets& t) {
  const int q1 = L.q(0), Q = L.Q(), P = L.P();
  for (int b = 0; b < q1; ++b)
    for (int a = 0; a < q1; ++a) t.D1[a + b * q1] += at(a, b);
  for (int a = 0; a < q1; ++a)
    for (int c = 0; c < P; ++c) t.C1[a * P + c] += at(Q + c, a);
  if (t.XX)
    for (int b = 0; b < P; ++b)
      for (int a = 0; a < P; ++a) t.XX[a + b * P] += at(Q + a, Q + b);
  int pair = 0;
  for (int f = 0; f < L.n_secondary(); ++f) {
    const int q = L.q(f + 1), zo = L.offset(f + 1);
    double* D = t.D[f];
    for (int b = 0; b < q; ++b)
      for (int a = 0; a < q; ++a) D[a + b * q] += at(zo + a, zo + b);
    double* CR = t.CR[f];
    for (int a = 0; a < q; ++a)
      for (int c = 0; c < P; ++c) CR[a * P + c] += at(Q + c, zo + a);
    double* R1 = t.R1[f];
    for (int b = 0; b < q1; ++b)
      for (int a = 0; a < q; ++a) R1[a + b * q] += at(zo + a, b);
    for (int h = 0; h < f; ++h) {
      const int qh = L.q(h + 1), zh = L.offset(h + 1);
      double* RR = t.RR[pair++];
      for (int b = 0; b < qh; ++b)
        for (int a = 0; a < q; ++a) RR[a + b * q] += at(zo + a, zh + b);
    }
  }
}

}  // namespace scatter_detail

// Add r r' for one row r (length L.dim()).
inline void scatter_row(const ScatterLayout& L, const double* r, const ScatterTargets& t) {
  scatter_detail::scatter(L, [r](int a, int b) { return r[a] * r[b]; }, t);
}

// Add a symmetric matrix G (L.dim() x L.dim(), column-major, both triangles).
inline void scatter_matrix(const ScatterLayout& L, const double* G, const ScatterTargets& t) {
  const int D = L.dim();
  scatter_detail::scatter(L, [G, D](int a, int b) { return G[a + b * D]; }, t);
}

}  // namespace mlm
