// The floor of a fit: one pass over what a fit must read, X, y and each
// grouping factor's codes and Z columns, once. Compiled by bench/suite.R
// with Rcpp::sourceCpp(); not part of the package.
#include <Rcpp.h>

// [[Rcpp::export]]
double data_pass(const Rcpp::NumericMatrix& X, const Rcpp::NumericVector& y, const Rcpp::List& codes,
                 const Rcpp::List& cols) {
  const R_xlen_t n = y.size();
  const double* x = X.begin();
  const int p = X.ncol();
  // One sweep over rows: the accumulators depend on every value read, so
  // nothing can be skipped, and each array is read once in order.
  double acc = 0.0;
  std::vector<const int*> cp;
  for (R_xlen_t f = 0; f < codes.size(); ++f) cp.push_back(INTEGER(codes[f]));
  std::vector<const double*> zp;
  for (R_xlen_t c = 0; c < cols.size(); ++c) zp.push_back(REAL(cols[c]));
  const double* yp = y.begin();
  for (R_xlen_t i = 0; i < n; ++i) {
    double s = yp[i];
    for (int c = 0; c < p; ++c) s += x[i + c * n];
    for (const int* g : cp) s += g[i];
    for (const double* z : zp) s += z[i];
    acc += s;
  }
  return acc;
}
