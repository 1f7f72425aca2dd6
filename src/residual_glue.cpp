// Entry points for linear mixed models with a residual covariance structure
// (correlation and variance functions): the fit, evaluations and deviances
// at given (theta, psi). Each takes the model spec, whose residual structure
// glue_convert.cpp turns into the engine's ResidualSpec.
#include <RcppEigen.h>

#include <stdexcept>

#include "engine/lmm_fit.h"
#include "engine/residual_structure.h"
#include "engine/structured_fit.h"
#include "engine/whitening.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericMatrix;
using Rcpp::NumericVector;

namespace {

// The rows of params: theta, then psi (all residual parameters).
void check_params(const mlm_glue::SpecModel& m, const mlm::ResidualSpec& spec, const NumericMatrix& params) {
  if (params.nrow() != m.theta_start.size() + spec.n_parameters())
    Rcpp::stop("internal: params needs one row per parameter of theta and psi (outside theta)");
}

}  // namespace

// One call per fit with a residual structure: the optimisation over theta
// and the free residual parameters, the solution at the optimum, the fitted
// values and the whitened cross-products there (and, for a variance
// covariate of fitted values, the covariate of the last fit). theta_start
// and psi_start: NULL for the spec's starts.
// [[Rcpp::export(rng = false)]]
List lmm_structured_fit_cpp(const List& spec, SEXP theta_start, SEXP psi_start, bool reml, const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::ResidualSpec rs = mlm_glue::residual_from_spec(spec, m.data.n, true);
  mlm::StructuredOptions opt;
  opt.lmm = mlm_glue::lmm_options_from(control, reml);
  opt.method = mlm_glue::whitening_method(spec);
  Eigen::VectorXd theta0 = m.theta_start;
  if (!Rf_isNull(theta_start)) theta0 = Rcpp::as<Eigen::VectorXd>(theta_start);
  mlm_glue::check_theta(m, theta0);
  Eigen::VectorXd psi0 = mlm_glue::residual_start(spec);
  if (!Rf_isNull(psi_start)) psi0 = Rcpp::as<Eigen::VectorXd>(psi_start);
  if (psi0.size() != rs.n_parameters()) Rcpp::stop("internal: psi needs one value per residual parameter");
  mlm::StructuredResult res;
  try {
    res = mlm::fit_lmm_structured(m.data, rs, m.templates, theta0, m.theta_lower, psi0, mlm_glue::residual_free(spec),
                                  opt);
  } catch (const std::invalid_argument& e) {
    Rcpp::stop("internal: %s", e.what());
  }
  List out = mlm_glue::lmm_result_to_r(res.fit);
  out["psi"] = Rcpp::wrap(res.psi);
  out["log_det_R"] = res.log_det_R;
  out["correlation_at_limit"] = res.correlation_at_limit;
  out["whitening"] = List::create(Named("classes") = res.classes, Named("n_classes") = res.n_classes,
                                  Named("storage") = res.class_storage);
  if (std::isfinite(res.fit.at.deviance)) {
    out["fitted"] = mlm_glue::fitted_values(m, res.fit.at);
    out["xp"] = mlm_glue::cross_products_to_r(res.xp);
  }
  if (rs.covariate_from_fitted) {
    out["covariate"] = Rcpp::wrap(res.covariate);
    out["covariate_updates"] = res.covariate_updates;
  }
  return out;
}

// Everything at (theta, psi): deviance, beta, vcov, sigma, b, conditional
// variances, log |R|, the fitted values and the whitened cross-products.
// [[Rcpp::export(rng = false)]]
List lmm_structured_evaluate_cpp(const List& spec, const NumericVector& theta, const NumericVector& psi, bool reml,
                                 bool cond_var) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::ResidualSpec rs = mlm_glue::residual_from_spec(spec, m.data.n);
  const Eigen::VectorXd th = Rcpp::as<Eigen::VectorXd>(theta), ps = Rcpp::as<Eigen::VectorXd>(psi);
  mlm_glue::check_theta(m, th);
  if (ps.size() != rs.n_parameters()) Rcpp::stop("internal: psi needs one value per residual parameter");
  mlm::WhitenedCrossProducts white(m.data, rs, mlm_glue::whitening_method(spec));
  const mlm::LmmEvaluation ev = mlm::evaluate_lmm_structured(white, m.templates, th, ps, reml, cond_var);
  List out = mlm_glue::evaluation_to_r(ev);
  out["theta"] = theta;
  out["psi"] = psi;
  if (std::isfinite(ev.deviance)) {
    out["log_det_R"] = white.log_det();
    out["fitted"] = mlm_glue::fitted_values(m, ev);
    out["xp"] = mlm_glue::cross_products_to_r(white.xp());
  }
  return out;
}

// The deviance at each column of params = (theta, psi) (profiles,
// derivatives for inference). Columns outside the parameter space give Inf.
// [[Rcpp::export(rng = false)]]
NumericVector lmm_structured_deviance_cpp(const List& spec, const NumericMatrix& params, bool reml) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::ResidualSpec rs = mlm_glue::residual_from_spec(spec, m.data.n);
  check_params(m, rs, params);
  mlm::StructuredDeviance dev(m.data, rs, m.templates, reml, mlm_glue::whitening_method(spec), 1e9);
  const Eigen::Index n_theta = m.theta_start.size(), n_psi = rs.n_parameters();
  NumericVector out(params.ncol());
  for (int k = 0; k < params.ncol(); ++k) {
    const Eigen::Map<const Eigen::VectorXd> col(&params(0, k), params.nrow());
    out[k] = dev(col.head(n_theta), col.tail(n_psi));
  }
  return out;
}

// At each column of params = (theta, psi), with one set-up of the whitening
// for all columns (Satterthwaite's derivatives, profiles): rows deviance,
// ld_L2, ld_RX2, pwrss, sigma, log |R| and, with with_vcov, the covariance
// of beta (column-major). Columns outside the parameter space have deviance
// Inf and NaN elsewhere.
// [[Rcpp::export(rng = false)]]
NumericMatrix lmm_structured_terms_cpp(const List& spec, const NumericMatrix& params, bool reml, bool with_vcov) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::ResidualSpec rs = mlm_glue::residual_from_spec(spec, m.data.n);
  check_params(m, rs, params);
  mlm::WhitenedCrossProducts white(m.data, rs, mlm_glue::whitening_method(spec));
  const Eigen::Index n_theta = m.theta_start.size(), n_psi = rs.n_parameters();
  const int p = m.data.p;
  const int rows = 6 + (with_vcov ? p * p : 0);
  NumericMatrix out(rows, params.ncol());
  for (int k = 0; k < params.ncol(); ++k) {
    if ((k & 15) == 15) Rcpp::checkUserInterrupt();
    const Eigen::Map<const Eigen::VectorXd> col(&params(0, k), params.nrow());
    const mlm::LmmEvaluation ev =
        mlm::evaluate_lmm_structured(white, m.templates, col.head(n_theta), col.tail(n_psi), reml, false);
    if (!std::isfinite(ev.deviance)) {
      out(0, k) = R_PosInf;
      for (int r = 1; r < rows; ++r) out(r, k) = R_NaN;
      continue;
    }
    out(0, k) = ev.deviance;
    out(1, k) = ev.ld_L2;
    out(2, k) = ev.ld_RX2;
    out(3, k) = ev.pwrss;
    out(4, k) = ev.sigma;
    out(5, k) = white.log_det();
    if (with_vcov)
      for (int i = 0; i < p * p; ++i) out(6 + i, k) = ev.vcov.data()[i];
  }
  return out;
}
