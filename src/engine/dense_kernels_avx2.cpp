// The dense kernels built with AVX2 and FMA (src/Makevars compiles this
// file with -mavx2 -mfma, and without them, defining MLM_NO_AVX2, where
// the compiler cannot). Only called when the CPU supports both (see
// dense_kernels.cpp).
//
// Eigen's templates compiled here differ from the same templates compiled
// elsewhere in the package; under one name the linker would keep one copy
// of each for all callers (an ODR violation that could run AVX2 code on a
// CPU without it). So this unit renames Eigen's namespace: every Eigen
// entity instantiated here has a name of its own. Standard headers come
// first, so that none of them is compiled under the renaming.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <limits>
#include <new>
#include <type_traits>
#include <vector>

#include "dense_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && !defined(MLM_NO_AVX2)
#define Eigen mlm_eigen_avx2
#include <Eigen/Dense>

namespace mlm {
namespace dense_avx2 {
bool compiled() { return true; }
#include "dense_kernels_impl.h"
}  // namespace dense_avx2
}  // namespace mlm
#undef Eigen

#else

namespace mlm {
namespace dense_avx2 {
bool compiled() { return false; }
bool cholesky_lower(double*, Index) { std::abort(); }
void inverse_from_cholesky(double*, Index) { std::abort(); }
void subtract_gram(double*, Index, const double*, Index) { std::abort(); }
void multiply(const double*, Index, const double*, Index, double*) { std::abort(); }
}  // namespace dense_avx2
}  // namespace mlm

#endif
