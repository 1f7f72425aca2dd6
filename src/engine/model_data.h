// What the engine is told about a linear mixed model: pointers into the
// caller's memory (no copies of per-observation data) and the structure of
// every grouping factor. Pure C++; the glue fills it from R objects.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace mlm {

using Index = std::ptrdiff_t;  // 64-bit sizes: n may exceed 2^31 elements in X

// The relative covariance factor T of one grouping factor (q x q, lower
// triangular): theta_index[r + c * q] is the position in theta of T(r, c),
// or -1 for an entry fixed at zero. lme4 terms on the same factor are merged
// into one template that is block diagonal over those terms.
struct CovTemplate {
  int q = 0;
  std::vector<int> theta_index;
};

// One grouping factor with the columns of all random-effect terms on it.
struct FactorBlock {
  Index n_levels = 0;
  int q = 0;
  const int* codes = nullptr;  // level of each observation, counted from code_base
  int code_base = 0;
  std::vector<const double*> cols;  // q columns of length n; nullptr is a column of ones
  CovTemplate cov;
};

struct ModelData {
  Index n = 0;
  int p = 0;                       // fixed-effect columns
  const double* X = nullptr;       // n x p, column-major
  const double* y = nullptr;       // response
  const double* offset = nullptr;  // nullptr: no offset
  const double* weights = nullptr; // prior weights; nullptr: all one
  int intercept_col = -1;          // a constant column of X, or -1 (enables centring)
  std::vector<FactorBlock> blocks; // ordered by number of levels, most first
  std::function<void()> check_interrupt;  // may throw to abandon the work
};

}  // namespace mlm
