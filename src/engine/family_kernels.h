// The per-observation work of a PIRLS pass for the two commonest models,
// binomial-logit and Poisson-log, over a block of observations: the
// exponential, the logarithm and the arithmetic a vector of observations
// at a time (vector_math_impl.h). Compiled twice, for the baseline instruction
// set and with AVX2 (family_kernels_avx2.cpp), chosen at run time by the
// CPU; the two builds give the same bits.
#pragma once

namespace mlm {

#define MLM_FAMILY_KERNEL_DECLARATIONS                                                                              \
  long logit(const double* eta, const double* y, const double* pw, long len, double* dev, double* w, double* wres, \
             bool& proportions, double& dev_sum, double* sq);                                                     \
  long poisson_log(const double* eta, const double* y, const double* pw, long len, double* dev, double* w,        \
                   double* wres, double& dev_sum, double* sq);                                                    \
  void exp_values(const double* x, double* out, long n);                                                          \
  void log_values(const double* x, double* out, long n);

namespace family_kernels {
// Binomial-logit: for each observation i < len with |eta_i| <= 30 (R's
// clamping), its deviance residual for y_i in {0, 1} (proportions lack
// y log y + (1 - y) log(1 - y); `proportions` says whether there are any),
// working weight pw mu_eta and working residual (y - mu) / mu_eta, with
// prior weights pw (nullptr: all 1); and the block's sums (glm_family.h,
// ChunkSums): dev_sum and the four sums of squared rounding scales sq.
// Returns the number of eta beyond +-30 or NaN, whose terms the caller
// computes (and then the sum of the deviance residuals).
// Poisson-log: the same for eta in [-36, 700] (beyond, R clamps mu at
// DBL_EPSILON), returning the number outside or NaN.
// exp_values / log_values: out[i] = exp(x[i]) / log(x[i]), within one unit
// in the last place (for exp, x >= -708: no subnormal results).
MLM_FAMILY_KERNEL_DECLARATIONS
// True when the AVX2 build is in use.
bool uses_avx2();
}  // namespace family_kernels

// The builds, one namespace per instruction set (see family_kernels.cpp).
namespace family_kernels_baseline {
MLM_FAMILY_KERNEL_DECLARATIONS
}
namespace family_kernels_avx2 {
bool compiled();  // false where the compiler could not build the AVX2 unit
MLM_FAMILY_KERNEL_DECLARATIONS
}
#undef MLM_FAMILY_KERNEL_DECLARATIONS

}  // namespace mlm
