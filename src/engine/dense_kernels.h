// The dense kernels of the blocked Cholesky: factor, inverse and products
// of the dense Schur complement S and of a dense L_R1. They are compiled
// twice, for the baseline instruction set and with AVX2 and FMA
// (dense_kernels_avx2.cpp), and chosen at run time by what the CPU
// supports: a package cannot assume the build machine's instruction set.
// Column-major storage throughout; n x n matrices have leading dimension n.
#pragma once

#include "model_data.h"

namespace mlm {

// True when the CPU runs AVX2 and FMA and MLMFIT_NO_AVX2 is not set in the
// environment (it forces every kernel's baseline build, to compare them).
bool cpu_allows_avx2();

namespace dense {

// A := its lower Cholesky factor (lower triangle read and written).
// Returns false when A is not positive definite.
bool cholesky_lower(double* A, Index n);
// A holding a lower Cholesky factor L := (L L')^{-1}, both triangles.
void inverse_from_cholesky(double* A, Index n);
// Lower triangle of C (n x n) -= G G', G n x k.
void subtract_gram(double* C, Index n, const double* G, Index k);
// out (n x k) = S B, S n x n (both triangles), B n x k.
void multiply(const double* S, Index n, const double* B, Index k, double* out);

// True when the AVX2/FMA build of the kernels is in use.
bool uses_avx2();

}  // namespace dense

// The same kernels, one namespace per instruction set (see dense_kernels.cpp).
#define MLM_DENSE_KERNEL_DECLARATIONS                                       \
  bool cholesky_lower(double* A, Index n);                                  \
  void inverse_from_cholesky(double* A, Index n);                           \
  void subtract_gram(double* C, Index n, const double* G, Index k);        \
  void multiply(const double* S, Index n, const double* B, Index k, double* out);
namespace dense_baseline {
MLM_DENSE_KERNEL_DECLARATIONS
}
namespace dense_avx2 {
bool compiled();  // false where the compiler could not build the AVX2 unit
MLM_DENSE_KERNEL_DECLARATIONS
}
#undef MLM_DENSE_KERNEL_DECLARATIONS

}  // namespace mlm
