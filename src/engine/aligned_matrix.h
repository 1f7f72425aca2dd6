// A column-major matrix of doubles whose storage starts on a 64-byte
// boundary, for the matrices the dense kernels (dense_kernels.h) work on.
// Vectorised code treats the first elements of a column differently
// depending on its address; malloc's alignment of a block varies from one
// allocation to the next (16 bytes or a page), and with it the rounding of
// a result. A fixed alignment keeps fits bitwise the same from run to run.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model_data.h"

namespace mlm {

class AlignedMatrix {
 public:
  // rows x cols of zeros (storage reused when the size is unchanged).
  void set_zero(Index rows, Index cols) {
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    if (n + kPad != store_.size()) {
      store_.assign(n + kPad, 0.0);
      const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(store_.data());
      offset_ = ((64 - address % 64) % 64) / sizeof(double);  // store_ is at least 8-byte aligned
    } else {
      std::fill(store_.begin(), store_.end(), 0.0);
    }
    rows_ = rows;
    cols_ = cols;
  }
  void set_zero() { set_zero(rows_, cols_); }
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  double* data() { return store_.data() + offset_; }
  const double* data() const { return store_.data() + offset_; }
  double& operator()(Index r, Index c) { return data()[r + c * rows_]; }
  double operator()(Index r, Index c) const { return data()[r + c * rows_]; }
  Eigen::Map<Eigen::MatrixXd> map() { return Eigen::Map<Eigen::MatrixXd>(data(), rows_, cols_); }
  Eigen::Map<const Eigen::MatrixXd> map() const { return Eigen::Map<const Eigen::MatrixXd>(data(), rows_, cols_); }

 private:
  static constexpr std::size_t kPad = 64 / sizeof(double);  // room to move the start to a 64-byte boundary
  std::vector<double> store_;
  std::size_t offset_ = 0;
  Index rows_ = 0, cols_ = 0;
};

}  // namespace mlm
