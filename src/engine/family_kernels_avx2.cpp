// The family kernels built with AVX2 (src/Makevars compiles this file with
// -mavx2 and without contracting into fused multiply-adds, and without
// -mavx2, defining MLM_NO_AVX2, where the compiler cannot). Only called
// when the CPU supports AVX2 (see family_kernels.cpp).
#include "family_kernels.h"

#include <cstdlib>

namespace mlm {
namespace family_kernels_avx2 {

#if defined(__AVX2__) && !defined(MLM_NO_AVX2)
bool compiled() { return true; }
#define MLM_VECTOR_BYTES 32
#include "vector_math_impl.h"
#include "family_kernels_impl.h"
#else
bool compiled() { return false; }
long logit(const double*, const double*, const double*, long, double*, double*, double*, bool&, double&, double*) {
  std::abort();
}
long poisson_log(const double*, const double*, const double*, long, double*, double*, double*, double&, double*) {
  std::abort();
}
void exp_values(const double*, double*, long) { std::abort(); }
void log_values(const double*, double*, long) { std::abort(); }
#endif

}  // namespace family_kernels_avx2
}  // namespace mlm
