// Conversions between R objects and engine structures, shared by the glue
// files (defined in lmm_glue.cpp). Only glue code includes this header.
#pragma once

#include <RcppEigen.h>

#include <limits>
#include <vector>

#include "engine/cross_products.h"
#include "engine/lmm_fit.h"
#include "engine/model_data.h"

namespace mlm_glue {

// n_theta: the length of theta that the templates index (checked).
std::vector<mlm::CovTemplate> templates_from(const Rcpp::List& blocks,
                                             R_xlen_t n_theta = std::numeric_limits<R_xlen_t>::max());
void check_theta(const Rcpp::NumericVector& theta0, const Rcpp::NumericVector& lower);
void check_templates_match(const mlm::CrossProducts& xp, const std::vector<mlm::CovTemplate>& tpl);
mlm::ModelData model_data_from(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, int intercept_col,
                               const Rcpp::List& blocks);
Rcpp::List cross_products_to_r(const mlm::CrossProducts& xp);
mlm::CrossProducts cross_products_from_r(const Rcpp::List& r);
mlm::LmmOptions options_from(const Rcpp::List& control, bool reml);
Rcpp::List result_to_r(const mlm::LmmResult& res);

}  // namespace mlm_glue
