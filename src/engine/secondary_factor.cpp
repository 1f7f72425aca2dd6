#include "secondary_factor.h"

#include "dense_kernels.h"

#include <Eigen/Sparse>
#include <Eigen/SparseCholesky>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace mlm {

namespace {
// Dense storage is used when S is small or fills in: a blocked dense
// Cholesky is then several times faster than a sparse one.
constexpr Index kAlwaysDense = 200;
constexpr Index kNeverDense = 4000;
constexpr double kDenseFill = 0.25;
// Eigen's sparse matrices and its LDL' store positions as int: refuse a
// structure whose pattern, ordering workspace or factor would not fit.
constexpr Index kIntLimit = std::numeric_limits<int>::max();

[[noreturn]] void refuse_size(const char* what, double count) {
  throw std::length_error(std::string("the random-effects structure is too large: ") + what + " would have " +
                          std::to_string(static_cast<long long>(count)) + " entries, more than the " +
                          std::to_string(kIntLimit) + " a sparse factorisation with 32-bit indices can hold");
}

using PatternMatrix = Eigen::SparseMatrix<double, Eigen::ColMajor, int>;

// The number of entries of the LDL' factor of S (lower pattern) in the
// fill-reducing order that Eigen's SimplicialLDLT uses, counted in 64 bits
// by the same elimination-tree walk, before Eigen counts it in int.
void check_factor_size(const PatternMatrix& S) {
  const int m = static_cast<int>(S.rows());
  PatternMatrix full;
  full = S.selfadjointView<Eigen::Lower>();
  Eigen::PermutationMatrix<Eigen::Dynamic, Eigen::Dynamic, int> pinv, perm;
  Eigen::AMDOrdering<int> amd;
  amd(full, pinv);
  perm = pinv.inverse();
  PatternMatrix ap(m, m);
  ap.selfadjointView<Eigen::Upper>() = S.selfadjointView<Eigen::Lower>().twistedBy(perm);
  std::vector<int> parent(m, -1), tag(m, 0);
  double count = static_cast<double>(m);
  for (int k = 0; k < m; ++k) {
    tag[k] = k;
    for (PatternMatrix::InnerIterator it(ap, k); it; ++it) {
      for (int i = static_cast<int>(it.index()); i < k && tag[i] != k; i = parent[i]) {
        if (parent[i] == -1) parent[i] = k;
        count += 1.0;
        tag[i] = k;
      }
    }
  }
  if (count >= kIntLimit) refuse_size("the Cholesky factor of the Schur complement", count);
}

}  // namespace

struct SecondaryFactor::Sparse {
  using SpMat = Eigen::SparseMatrix<double, Eigen::ColMajor, int>;
  SpMat S;  // lower-triangular pattern of S
  Eigen::SimplicialLDLT<SpMat, Eigen::Lower, Eigen::AMDOrdering<int>> ldlt;
  Eigen::VectorXd inv_sqrt_d;
  std::vector<int> perm;           // natural coordinate -> factor coordinate
  std::vector<double> inv_lower;   // S^{-1} on the strict-lower pattern of L
  std::vector<double> inv_diag;

  // Position of (row, col), row > col, in column col of L's pattern; -1 if absent.
  Index l_position(Index row, Index col) const {
    const SpMat& L = ldlt.matrixL().nestedExpression();
    const int* begin = L.innerIndexPtr() + L.outerIndexPtr()[col];
    const int* end = L.innerIndexPtr() + L.outerIndexPtr()[col + 1];
    const int* it = std::lower_bound(begin, end, static_cast<int>(row));
    if (it == end || *it != row) return -1;
    return static_cast<Index>(it - L.innerIndexPtr());
  }
  double inverse_permuted(Index i, Index k) const {
    if (i == k) return inv_diag[i];
    const Index pos = i > k ? l_position(i, k) : l_position(k, i);
    return pos < 0 ? 0.0 : inv_lower[pos];
  }
};

SecondaryFactor::SecondaryFactor() = default;
SecondaryFactor::~SecondaryFactor() = default;

void SecondaryFactor::set_pattern(Index m, const EntryVisitor& for_each_entry) {
  m_ = m;
  using SpMat = Sparse::SpMat;
  sp_.reset();
  holds_factor_ = false;
  dense_ = m <= kAlwaysDense;
  std::vector<Eigen::Triplet<double, int>> trip;
  if (!dense_ && m <= kNeverDense) {
    // Count distinct entries on a bitmap first: S that is already full
    // enough goes dense without a symbolic analysis.
    std::vector<bool> seen(static_cast<std::size_t>(m) * (m + 1) / 2, false);
    Index count = 0;
    for_each_entry([&](Index r, Index c) {
      const std::size_t k = static_cast<std::size_t>(c) * (2 * m - c + 1) / 2 + (r - c);
      if (!seen[k]) {
        seen[k] = true;
        ++count;
      }
    });
    for (Index i = 0; i < m; ++i) {
      const std::size_t k = static_cast<std::size_t>(i) * (2 * m - i + 1) / 2;
      if (!seen[k]) ++count;
    }
    const double full = 0.5 * static_cast<double>(m) * static_cast<double>(m + 1);
    dense_ = count >= kDenseFill * full;
    if (!dense_) {
      trip.reserve(count);
      for (Index c = 0; c < m; ++c)
        for (Index r = c; r < m; ++r)
          if (r == c || seen[static_cast<std::size_t>(c) * (2 * m - c + 1) / 2 + (r - c)])
            trip.emplace_back(static_cast<int>(r), static_cast<int>(c), 1.0);
    }
  } else if (!dense_) {
    if (m >= kIntLimit) refuse_size("the Schur complement of the secondary factors", static_cast<double>(m));
    for (Index i = 0; i < m; ++i) trip.emplace_back(static_cast<int>(i), static_cast<int>(i), 1.0);
    for_each_entry([&](Index r, Index c) {
      if (static_cast<Index>(trip.size()) >= kIntLimit)
        refuse_size("the Schur complement of the secondary factors", static_cast<double>(trip.size()));
      trip.emplace_back(static_cast<int>(r), static_cast<int>(c), 1.0);
    });
  }
  if (!dense_) {
    sp_.reset(new Sparse());
    sp_->S.resize(static_cast<int>(m), static_cast<int>(m));
    sp_->S.setFromTriplets(trip.begin(), trip.end());
    sp_->S.makeCompressed();
    trip.clear();
    trip.shrink_to_fit();
    // The symmetric copy with elbow room that the AMD ordering works on
    // (nnz + nnz / 5 + 2 m entries) and the factor must fit in int too.
    const double full_nnz = 2.0 * static_cast<double>(sp_->S.nonZeros()) - static_cast<double>(m);
    if (full_nnz * 1.2 + 2.0 * static_cast<double>(m) >= kIntLimit)
      refuse_size("the ordering workspace of the Schur complement", full_nnz * 1.2 + 2.0 * static_cast<double>(m));
    if (m > 65535) check_factor_size(sp_->S);
    sp_->ldlt.analyzePattern(sp_->S);
    const double fill = static_cast<double>(sp_->ldlt.matrixL().nestedExpression().nonZeros() + m);
    const double full = 0.5 * static_cast<double>(m) * static_cast<double>(m + 1);
    if (m <= kNeverDense && fill >= kDenseFill * full) {
      dense_ = true;
      sp_.reset();
    }
  }
  if (dense_) {
    S_.set_zero(m, m);
  } else {
    const auto& idx = sp_->ldlt.permutationP().indices();
    sp_->perm.assign(idx.data(), idx.data() + m);
  }
}

Index SecondaryFactor::position(Index row, Index col) const {
  if (dense_) return col * m_ + row;
  const Sparse::SpMat& S = sp_->S;
  const int* begin = S.innerIndexPtr() + S.outerIndexPtr()[col];
  const int* end = S.innerIndexPtr() + S.outerIndexPtr()[col + 1];
  const int* it = std::lower_bound(begin, end, static_cast<int>(row));
  if (it == end || *it != row) return -1;
  return static_cast<Index>(it - S.innerIndexPtr());
}

double* SecondaryFactor::values() { return dense_ ? S_.data() : sp_->S.valuePtr(); }

void SecondaryFactor::zero() {
  if (dense_)
    S_.set_zero();
  else
    std::fill(sp_->S.valuePtr(), sp_->S.valuePtr() + sp_->S.nonZeros(), 0.0);
}

bool SecondaryFactor::factor(double& log_det) {
  log_det = 0.0;
  holds_factor_ = false;
  if (dense_) {
    if (!dense::cholesky_lower(S_.data(), m_)) return false;
    for (Index i = 0; i < m_; ++i) log_det += 2.0 * std::log(S_(i, i));
    holds_factor_ = std::isfinite(log_det);
    return holds_factor_;
  }
  sp_->ldlt.factorize(sp_->S);
  if (sp_->ldlt.info() != Eigen::Success) return false;
  const Eigen::VectorXd& D = sp_->ldlt.vectorD();
  sp_->inv_sqrt_d.resize(m_);
  for (Index i = 0; i < m_; ++i) {
    if (!(D[i] > 0.0)) return false;
    log_det += std::log(D[i]);
    sp_->inv_sqrt_d[i] = 1.0 / std::sqrt(D[i]);
  }
  holds_factor_ = true;
  return true;
}

void SecondaryFactor::half_solve(Eigen::MatrixXd& B) const {
  if (dense_) {
    S_.map().triangularView<Eigen::Lower>().solveInPlace(B);
    return;
  }
  B = sp_->ldlt.permutationP() * B;
  sp_->ldlt.matrixL().solveInPlace(B);
  B = sp_->inv_sqrt_d.asDiagonal() * B;
}

void SecondaryFactor::half_solve_transpose(Eigen::VectorXd& v) const {
  if (dense_) {
    S_.map().transpose().triangularView<Eigen::Upper>().solveInPlace(v);
    return;
  }
  v = sp_->inv_sqrt_d.asDiagonal() * v;
  sp_->ldlt.matrixU().solveInPlace(v);
  v = sp_->ldlt.permutationPinv() * v;
}

void SecondaryFactor::compute_selected_inverse() {
  if (dense_) {
    // All of S^{-1} (both triangles, so that a column is contiguous).
    dense::inverse_from_cholesky(S_.data(), m_);
    holds_factor_ = false;
    ++inverse_generation_;
    return;
  }
  // Takahashi's recurrences on L D L': entries of the inverse on the
  // pattern of L, from the last column back to the first.
  const Sparse::SpMat& L = sp_->ldlt.matrixL().nestedExpression();
  const int* Lp = L.outerIndexPtr();
  const int* Li = L.innerIndexPtr();
  const double* Lx = L.valuePtr();
  const Eigen::VectorXd& D = sp_->ldlt.vectorD();
  sp_->inv_lower.assign(L.nonZeros(), 0.0);
  sp_->inv_diag.assign(m_, 0.0);
  for (Index j = m_ - 1; j >= 0; --j) {
    for (int a = Lp[j]; a < Lp[j + 1]; ++a) {
      const Index i = Li[a];
      double s = 0.0;
      for (int b = Lp[j]; b < Lp[j + 1]; ++b) s += Lx[b] * sp_->inverse_permuted(i, Li[b]);
      sp_->inv_lower[a] = -s;
    }
    double s = 0.0;
    for (int a = Lp[j]; a < Lp[j + 1]; ++a) s += Lx[a] * sp_->inv_lower[a];
    sp_->inv_diag[j] = 1.0 / D[j] - s;
  }
  ++inverse_generation_;
}

double SecondaryFactor::inverse_entry(Index row, Index col) const {
  if (dense_) return S_(row, col);
  return sp_->inverse_permuted(sp_->perm[row], sp_->perm[col]);
}

}  // namespace mlm
