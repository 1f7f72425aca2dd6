// Test-only entries for the family kernels of a PIRLS pass
// (src/engine/family_kernels.*; tests/testthat/test-family-kernels.R). Not
// used by the package's R code.
#include <Rcpp.h>

#include <algorithm>
#include <string>

#include "engine/dense_kernels.h"
#include "engine/family_kernels.h"
#include "engine/glm_family.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

namespace {

// The terms of each observation as a pass computes them (chunk_terms with
// the pass's kernel for the family), in blocks of `block` observations,
// with each block's sums (glm_family.h, ChunkSums).
template <class Kernel>
List pass_terms(const Kernel& k, const NumericVector& eta, const NumericVector& y, const NumericVector& pw, long block) {
  const long n = eta.size();
  NumericVector dev(n), w(n), wres(n);
  const double* p = pw.size() > 0 ? pw.begin() : nullptr;
  const long blocks = (n + block - 1) / block;
  NumericVector dev_sums(blocks);
  Rcpp::NumericMatrix sq(4, blocks);
  bool valid = true;
  for (long s = 0; s < n && valid; s += block) {
    const long len = std::min(block, n - s);
    mlm::ChunkSums sums;
    valid = mlm::chunk_terms(k, eta.begin() + s, y.begin() + s, p ? p + s : nullptr, len, dev.begin() + s,
                             w.begin() + s, wres.begin() + s, sums);
    dev_sums[s / block] = sums.dev;
    for (int l = 0; l < 4; ++l) sq(l, s / block) = sums.sq[l];
  }
  return List::create(Named("dev") = dev, Named("w") = w, Named("wres") = wres, Named("dev_sums") = dev_sums,
                      Named("sq") = sq, Named("valid") = valid);
}

}  // namespace

// The deviance residuals, working weights and working residuals of a
// pass: "logit" and "poisson" through their family kernels, "generic_logit"
// and "generic_poisson" one observation at a time through the family's
// general formulas. pw of length 0: no prior weights.
// [[Rcpp::export(rng = false)]]
List family_pass_terms_cpp(const NumericVector& eta, const NumericVector& y, const NumericVector& pw,
                           const std::string& kernel, int block) {
  mlm::GlmFamily fam;
  const bool logit = kernel == "logit" || kernel == "generic_logit";
  fam.dist = logit ? mlm::Dist::binomial : mlm::Dist::poisson;
  fam.link = logit ? mlm::Link::logit : mlm::Link::log;
  if (kernel == "logit") return pass_terms(mlm::LogitKernel{fam}, eta, y, pw, block);
  if (kernel == "poisson") return pass_terms(mlm::PoissonLogKernel{fam}, eta, y, pw, block);
  if (kernel == "generic_logit" || kernel == "generic_poisson")
    return pass_terms(mlm::GenericKernel{fam}, eta, y, pw, block);
  Rcpp::stop("unknown kernel");
}

// exp(x), log(x) and the logit and Poisson terms at (eta = x, y) from the
// baseline build and, where the CPU and the compiler allow, the AVX2 build.
// [[Rcpp::export(rng = false)]]
List family_kernel_builds_cpp(const NumericVector& x, const NumericVector& y) {
  const long n = x.size();
  auto run = [&](auto exp_values, auto log_values, auto logit, auto poisson_log) {
    NumericVector e(n), l(n), ld(n), lw(n), lr(n), pd(n), pwt(n), pr(n);
    exp_values(x.begin(), e.begin(), n);
    log_values(x.begin(), l.begin(), n);
    bool proportions = false;
    NumericVector sums(10);  // logit's deviance and 4 noise sums, then Poisson's
    logit(x.begin(), y.begin(), nullptr, n, ld.begin(), lw.begin(), lr.begin(), proportions, sums[0], &sums[1]);
    poisson_log(x.begin(), y.begin(), nullptr, n, pd.begin(), pwt.begin(), pr.begin(), sums[5], &sums[6]);
    return List::create(Named("exp") = e, Named("log") = l, Named("logit_dev") = ld, Named("logit_w") = lw,
                        Named("logit_wres") = lr, Named("poisson_dev") = pd, Named("poisson_w") = pwt,
                        Named("poisson_wres") = pr, Named("sums") = sums);
  };
  namespace base = mlm::family_kernels_baseline;
  namespace avx2 = mlm::family_kernels_avx2;
  const List baseline = run(base::exp_values, base::log_values, base::logit, base::poisson_log);
  const bool has_avx2 = avx2::compiled() && mlm::cpu_allows_avx2();
  SEXP with_avx2 = R_NilValue;
  if (has_avx2) with_avx2 = run(avx2::exp_values, avx2::log_values, avx2::logit, avx2::poisson_log);
  return List::create(Named("baseline") = baseline, Named("avx2") = with_avx2,
                      Named("in_use") = mlm::family_kernels::uses_avx2() ? "avx2" : "baseline");
}
