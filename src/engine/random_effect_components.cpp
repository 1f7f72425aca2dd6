#include "random_effect_components.h"

#include <numeric>

namespace mlm {

namespace {

struct UnionFind {
  std::vector<Index> parent;
  explicit UnionFind(Index n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  Index find(Index x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }
  void join(Index a, Index b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

}  // namespace

ReComponents find_components(const ModelData& d) {
  const int nb = static_cast<int>(d.blocks.size());
  std::vector<Index> offset(nb + 1, 0);
  for (int f = 0; f < nb; ++f) offset[f + 1] = offset[f] + d.blocks[f].n_levels;
  UnionFind uf(offset[nb]);
  for (Index i = 0; i < d.n; ++i) {
    const Index l0 = d.blocks[0].codes[i] - d.blocks[0].code_base;
    for (int f = 1; f < nb; ++f) uf.join(l0, offset[f] + d.blocks[f].codes[i] - d.blocks[f].code_base);
  }
  ReComponents rc;
  rc.comp.resize(nb);
  rc.start.resize(nb);
  std::vector<int> id(offset[nb], -1);
  for (int f = 0; f < nb; ++f) {
    const Index k = d.blocks[f].n_levels;
    rc.comp[f].assign(k, -1);
    rc.start[f].assign(k, 0);
    for (Index l = 0; l < k; ++l) {
      const Index root = uf.find(offset[f] + l);
      if (id[root] < 0) {
        id[root] = rc.n_components++;
        rc.size.push_back(0);
        rc.members.emplace_back();
      }
      const int c = id[root];
      rc.comp[f][l] = c;
      rc.start[f][l] = rc.size[c];
      rc.size[c] += d.blocks[f].q;
      rc.members[c].emplace_back(f, l);
    }
  }
  return rc;
}

int component_row(const ModelData& d, const ReComponents& rc, Index i, std::vector<Index>& idx,
                  std::vector<double>& z) {
  idx.clear();
  z.clear();
  for (std::size_t f = 0; f < d.blocks.size(); ++f) {
    const FactorBlock& F = d.blocks[f];
    const Index l = F.codes[i] - F.code_base;
    for (int a = 0; a < F.q; ++a) {
      idx.push_back(rc.start[f][l] + a);
      z.push_back(F.cols[a] ? F.cols[a][i] : 1.0);
    }
  }
  return rc.comp[0][d.blocks[0].codes[i] - d.blocks[0].code_base];
}

ComponentGram component_gram(const ModelData& d, const ReComponents& rc) {
  const int p = d.p;
  ComponentGram g;
  g.A.resize(rc.n_components);
  g.B.resize(rc.n_components);
  for (int c = 0; c < rc.n_components; ++c) {
    g.A[c].setZero(rc.size[c], rc.size[c]);
    g.B[c].setZero(rc.size[c], p);
  }
  g.F.setZero(p, p);
  std::vector<Index> idx;
  std::vector<double> z, x(p);
  for (Index i = 0; i < d.n; ++i) {
    const double w = d.weights ? d.weights[i] : 1.0;
    const int c = component_row(d, rc, i, idx, z);
    for (int k = 0; k < p; ++k) x[k] = d.X[static_cast<Index>(k) * d.n + i];
    Eigen::MatrixXd& A = g.A[c];
    Eigen::MatrixXd& B = g.B[c];
    const std::size_t m = idx.size();
    for (std::size_t a = 0; a < m; ++a) {
      const double wz = w * z[a];
      for (std::size_t b = 0; b < m; ++b) A(idx[a], idx[b]) += wz * z[b];
      for (int k = 0; k < p; ++k) B(idx[a], k) += wz * x[k];
    }
    for (int k = 0; k < p; ++k)
      for (int l = 0; l <= k; ++l) g.F(k, l) += w * x[k] * x[l];
    if (d.check_interrupt && (i & 0xfffff) == 0xfffff) d.check_interrupt();
  }
  g.F.triangularView<Eigen::StrictlyUpper>() = g.F.transpose();
  return g;
}

Eigen::MatrixXd component_c(const Eigen::MatrixXd& A, const ReComponents& rc, int c,
                            const std::vector<Eigen::MatrixXd>& T) {
  const Index Q = rc.size[c];
  Eigen::MatrixXd Lam = Eigen::MatrixXd::Zero(Q, Q);
  for (const auto& mem : rc.members[c]) {
    const int f = mem.first;
    const Index s = rc.start[f][mem.second];
    const Eigen::Index q = T[f].rows();
    Lam.block(s, s, q, q) = T[f];
  }
  Eigen::MatrixXd M = Lam.transpose() * A * Lam;
  M.diagonal().array() += 1.0;
  Eigen::LLT<Eigen::MatrixXd> llt(M);
  Eigen::MatrixXd LamT = Lam.transpose();
  return Lam * llt.solve(LamT);
}

}  // namespace mlm
