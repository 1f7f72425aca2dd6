// The baseline build of the family kernels and the run-time choice between
// it and the AVX2 build (family_kernels_avx2.cpp).
#include "family_kernels.h"

#include "dense_kernels.h"

namespace mlm {

namespace family_kernels_baseline {
#define MLM_VECTOR_BYTES 16
#include "vector_math_impl.h"
#include "family_kernels_impl.h"
}  // namespace family_kernels_baseline

namespace family_kernels {

bool uses_avx2() {
  static const bool avx2 = family_kernels_avx2::compiled() && cpu_allows_avx2();
  return avx2;
}

long logit(const double* eta, const double* y, const double* pw, long len, double* dev, double* w, double* wres,
           bool& proportions, double& dev_sum, double* sq) {
  return uses_avx2() ? family_kernels_avx2::logit(eta, y, pw, len, dev, w, wres, proportions, dev_sum, sq)
                     : family_kernels_baseline::logit(eta, y, pw, len, dev, w, wres, proportions, dev_sum, sq);
}
long poisson_log(const double* eta, const double* y, const double* pw, long len, double* dev, double* w,
                 double* wres, double& dev_sum, double* sq) {
  return uses_avx2() ? family_kernels_avx2::poisson_log(eta, y, pw, len, dev, w, wres, dev_sum, sq)
                     : family_kernels_baseline::poisson_log(eta, y, pw, len, dev, w, wres, dev_sum, sq);
}
void exp_values(const double* x, double* out, long n) {
  uses_avx2() ? family_kernels_avx2::exp_values(x, out, n) : family_kernels_baseline::exp_values(x, out, n);
}
void log_values(const double* x, double* out, long n) {
  uses_avx2() ? family_kernels_avx2::log_values(x, out, n) : family_kernels_baseline::log_values(x, out, n);
}

}  // namespace family_kernels
}  // namespace mlm
