// The Cholesky factor of the secondary Schur complement
//   S = Lambda_R' Z_R' W Z_R Lambda_R + I - L_R1 L_R1'.
// Nested designs keep S block diagonal and crossed designs fill it in; the
// pattern is fixed by the design, so it is analysed once. A sparse LDL'
// (fill-reducing order, symbolic analysis done once) serves sparse S, and a
// dense LLT serves S that fills in.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <memory>
#include <vector>

#include "aligned_matrix.h"
#include "model_data.h"

namespace mlm {

class SecondaryFactor {
 public:
  SecondaryFactor();
  ~SecondaryFactor();
  SecondaryFactor(const SecondaryFactor&) = delete;
  SecondaryFactor& operator=(const SecondaryFactor&) = delete;

  // Fix the lower-triangular pattern of S and choose dense or sparse
  // storage. for_each_entry(emit) must call emit(row, col), row >= col, for
  // every entry (repeats allowed); it may be called more than once.
  // Positions of entries are then found with position().
  using EntryVisitor = std::function<void(const std::function<void(Index, Index)>&)>;
  void set_pattern(Index m, const EntryVisitor& for_each_entry);
  Index position(Index row, Index col) const;  // row >= col; -1 if absent
  bool dense() const { return dense_; }
  Index size() const { return m_; }

  double* values();  // the entries of S to fill before factor()
  void zero();
  // Factor S. Returns false when it is not positive definite.
  bool factor(double& log_det);
  // False once compute_selected_inverse() has overwritten a dense factor.
  bool holds_factor() const { return holds_factor_; }

  // B (m x r) := H^{-1} B where H H' = S: then B'B = B0' S^{-1} B0.
  void half_solve(Eigen::MatrixXd& B) const;
  // v := H^{-T} v.
  void half_solve_transpose(Eigen::VectorXd& v) const;

  // Entries of S^{-1} on the pattern of S (selected inversion); call after
  // factor(), then read with inverse_entry(row, col). A dense factor is
  // inverted in place: solves need a new factor() afterwards.
  void compute_selected_inverse();
  double inverse_entry(Index row, Index col) const;
  // Counts selected inverses, so that results derived from one can tell
  // whether they are current.
  long inverse_generation() const { return inverse_generation_; }
  // Dense storage (column-major m x m): S before factor(), after a selected
  // inverse all of S^{-1} (both triangles).
  const AlignedMatrix& dense_matrix() const { return S_; }

 private:
  struct Sparse;
  bool dense_ = true;
  Index m_ = 0;
  bool holds_factor_ = false;
  long inverse_generation_ = 0;
  AlignedMatrix S_;  // dense storage (lower triangle): S, its factor, or its inverse
  std::unique_ptr<Sparse> sp_;
};

}  // namespace mlm
