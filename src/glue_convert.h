// Conversions between R objects and engine structures, shared by the glue
// files and defined in glue_convert.cpp. Only glue code includes this header.
//
// The R side hands the engine its model spec (R/spec.R, class
// "mlmfit_spec"): a list whose metadata (fixed$intercept_col, re$blocks with
// q, n_levels and theta_index, theta$start and theta$lower, family,
// residual$engine) and rows (rows$X, y, weights, offset, groups, z) are read
// here, once, with every index the engine will follow checked, so that a
// malformed spec is an R error and never a read out of bounds. The engine
// gets pointers into R's memory: no copy of the data is made.
#pragma once

#include <RcppEigen.h>

#include <vector>

#include "engine/cross_products.h"
#include "engine/glm_family.h"
#include "engine/glmm_fit.h"
#include "engine/lmm_fit.h"
#include "engine/model_data.h"
#include "engine/residual_structure.h"
#include "engine/whitening.h"

namespace mlm_glue {

// The model of a spec as the engine reads it. Without rows (a spec whose
// data stay in a database, or calls that work on stored cross-products)
// `data` is empty and only the templates and theta are set.
struct SpecModel {
  mlm::ModelData data;
  std::vector<mlm::CovTemplate> templates;
  Eigen::VectorXd theta_start, theta_lower;
  bool has_rows = false;
};

// Which rows a call reads: all it does needs them (required), it reports
// fitted values when they are at hand (optional), or it works on stored
// cross-products alone (none).
enum class Rows { required, optional, none };
SpecModel model_from_spec(const Rcpp::List& spec, Rows rows = Rows::required);
// theta has one value per parameter of the spec's template.
void check_theta(const SpecModel& m, const Eigen::VectorXd& theta);
mlm::GlmFamily family_from_spec(const Rcpp::List& spec);
// The residual structure of the spec (it reads the rows: residual groups,
// times, strata and covariates). for_fit: a covariate of fitted values is
// iterated by the fit (elsewhere the covariate of the last fit is used).
mlm::ResidualSpec residual_from_spec(const Rcpp::List& spec, mlm::Index n, bool for_fit = false);
mlm::WhiteningMethod whitening_method(const Rcpp::List& spec);
Eigen::VectorXd residual_start(const Rcpp::List& spec);
std::vector<bool> residual_free(const Rcpp::List& spec);

// A double vector (optional: NULL gives an empty vector).
Eigen::VectorXd vector_or_empty(SEXP x);

// Stored cross-products (the fit's xp), checked against the spec's blocks.
Rcpp::List cross_products_to_r(const mlm::CrossProducts& xp);
mlm::CrossProducts cross_products_from_r(const Rcpp::List& r, const SpecModel& m);

mlm::LmmOptions lmm_options_from(const Rcpp::List& control, bool reml);
mlm::GlmmOptions glmm_options_from(const Rcpp::List& control, int n_agq);

Rcpp::List evaluation_to_r(const mlm::LmmEvaluation& ev);
Rcpp::List lmm_result_to_r(const mlm::LmmResult& res);
Rcpp::List glmm_result_to_r(const mlm::GlmmResult& res, const SpecModel& m, const mlm::GlmFamily& fam,
                            int n_agq);
// offset + X beta + Z b for the rows of the spec (fitted values).
Rcpp::NumericVector fitted_values(const SpecModel& m, const mlm::LmmEvaluation& ev);
// T of each block at theta (q x q, lower triangular).
std::vector<Eigen::MatrixXd> relative_factors(const SpecModel& m, const Eigen::VectorXd& theta);

}  // namespace mlm_glue
