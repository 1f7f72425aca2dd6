// The baseline build of the dense kernels and the run-time choice between
// it and the AVX2/FMA build (dense_kernels_avx2.cpp).
#include "dense_kernels.h"

#include <Eigen/Dense>
#include <cstdlib>

namespace mlm {

namespace dense_baseline {
#include "dense_kernels_impl.h"
}  // namespace dense_baseline

// MLMFIT_NO_AVX2 set (to anything) in the environment forces the baseline
// kernels, to compare the two builds.
bool cpu_allows_avx2() {
  if (std::getenv("MLMFIT_NO_AVX2") != nullptr) return false;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

namespace dense {

bool uses_avx2() {
  static const bool avx2 = dense_avx2::compiled() && cpu_allows_avx2();
  return avx2;
}

bool cholesky_lower(double* A, Index n) {
  return uses_avx2() ? dense_avx2::cholesky_lower(A, n) : dense_baseline::cholesky_lower(A, n);
}
void inverse_from_cholesky(double* A, Index n) {
  uses_avx2() ? dense_avx2::inverse_from_cholesky(A, n) : dense_baseline::inverse_from_cholesky(A, n);
}
void subtract_gram(double* C, Index n, const double* G, Index k) {
  uses_avx2() ? dense_avx2::subtract_gram(C, n, G, k) : dense_baseline::subtract_gram(C, n, G, k);
}
void multiply(const double* S, Index n, const double* B, Index k, double* out) {
  uses_avx2() ? dense_avx2::multiply(S, n, B, k, out) : dense_baseline::multiply(S, n, B, k, out);
}

}  // namespace dense
}  // namespace mlm
