// The Cholesky factor of the secondary Schur complement
//   S = Lambda_R' Z_R' W Z_R Lambda_R + I - L_R1 L_R1'.
// Nested designs keep S block diagonal and crossed designs fill it in; the
// pattern is fixed by the design, so it is analysed once. A sparse LDL'
// (fill-reducing order, symbolic analysis done once) serves sparse S, and a
// dense LLT serves S that fills in.
#pragma once

#include <Eigen/Dense>
#include <memory>
#include <vector>

#include "model_data.h"

namespace mlm {

class SecondaryFactor {
 public:
  SecondaryFactor();
  ~SecondaryFactor();
  SecondaryFactor(const SecondaryFactor&) = delete;
  SecondaryFactor& operator=(const SecondaryFactor&) = delete;

  // Fix the lower-triangular pattern of S (coordinate pairs, row >= col) and
  // choose dense or sparse storage. Positions of entries are then found
  // with position().
  void set_pattern(Index m, const std::vector<Index>& rows, const std::vector<Index>& cols);
  Index position(Index row, Index col) const;  // row >= col; -1 if absent
  bool dense() const { return dense_; }
  Index size() const { return m_; }

  double* values();  // the entries of S to fill before factor()
  void zero();
  // Factor S. Returns false when it is not positive definite.
  bool factor(double& log_det);

  // B (m x r) := H^{-1} B where H H' = S: then B'B = B0' S^{-1} B0.
  void half_solve(Eigen::MatrixXd& B) const;
  // v := H^{-T} v.
  void half_solve_transpose(Eigen::VectorXd& v) const;

  // Entries of S^{-1} on the pattern of S (selected inversion); call after
  // factor(), then read with inverse_entry(row, col).
  void compute_selected_inverse();
  double inverse_entry(Index row, Index col) const;

 private:
  struct Sparse;
  bool dense_ = true;
  Index m_ = 0;
  Eigen::MatrixXd S_;       // dense storage (lower triangle)
  Eigen::MatrixXd L_;       // dense factor
  Eigen::MatrixXd inverse_; // dense S^{-1}
  std::unique_ptr<Sparse> sp_;
};

}  // namespace mlm
