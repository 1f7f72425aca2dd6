// Glue for inference on fitted linear mixed models: deviance pieces at many
// theta (Satterthwaite, profiles), refits with new responses from stored
// cross-products (bootstrap, refit(), simulation), Kenward-Roger terms and
// leverages.
#include <RcppEigen.h>

#include <stdexcept>

#include "engine/deviance_terms.h"
#include "engine/kenward_roger.h"
#include "engine/leverage.h"
#include "engine/lmm_fit.h"
#include "engine/response_update.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericMatrix;
using Rcpp::NumericVector;

namespace {

std::vector<Eigen::MatrixXd> matrices_from(const List& x) {
  std::vector<Eigen::MatrixXd> out;
  for (R_xlen_t k = 0; k < x.size(); ++k) out.push_back(Rcpp::as<Eigen::MatrixXd>(x[k]));
  return out;
}

}  // namespace

// ld_L2, ld_RX2, pwrss (and the unscaled covariance of beta, p x p x m) at
// each column of thetas; ok = FALSE where the system is not positive definite.
// [[Rcpp::export(rng = false)]]
List lmm_deviance_terms_cpp(const List& xp_r, const List& blocks, const NumericMatrix& thetas, bool with_vcov) {
  mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r);
  mlm::ProfiledDeviance dev(xp, mlm_glue::templates_from(blocks), false);
  const int m = thetas.ncol(), p = xp.p;
  Rcpp::LogicalVector ok(m);
  NumericVector ld_L2(m), ld_RX2(m), pwrss(m);
  NumericVector vc(with_vcov ? static_cast<R_xlen_t>(p) * p * m : 0);
  for (int k = 0; k < m; ++k) {
    Eigen::Map<const Eigen::VectorXd> th(&thetas(0, k), thetas.nrow());
    mlm::DevianceTerms t = mlm::deviance_terms(dev, xp, th, with_vcov);
    ok[k] = t.ok;
    ld_L2[k] = t.ok ? t.ld_L2 : NA_REAL;
    ld_RX2[k] = t.ok ? t.ld_RX2 : NA_REAL;
    pwrss[k] = t.ok ? t.pwrss : NA_REAL;
    if (with_vcov)
      for (int j = 0; j < p * p; ++j) vc[static_cast<R_xlen_t>(k) * p * p + j] = t.ok ? t.unscaled_vcov.data()[j] : NA_REAL;
  }
  if (with_vcov) vc.attr("dim") = Rcpp::IntegerVector::create(p, p, m);
  return List::create(Named("ok") = ok, Named("ld_L2") = ld_L2, Named("ld_RX2") = ld_RX2, Named("pwrss") = pwrss,
                      Named("vcov") = vc);
}

// A full refit with a new response y: the y-parts of the stored
// cross-products are recomputed (one pass over y) and the optimiser starts
// at theta0. Returns what lmm_fit_cpp returns.
// [[Rcpp::export(rng = false)]]
List lmm_refit_response_cpp(const NumericMatrix& X, const NumericVector& y, SEXP weights, SEXP offset,
                            int intercept_col, const List& blocks, const List& xp_r, const NumericVector& theta0,
                            const NumericVector& lower, bool reml, const List& control) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r);
  mlm::update_response(xp, d);
  mlm::LmmOptions opt = mlm_glue::options_from(control, reml);
  opt.moment_start = false;  // start at theta0, the fit's estimate
  mlm::LmmResult res = mlm::fit_lmm(xp, mlm_glue::templates_from(blocks), Rcpp::as<Eigen::VectorXd>(theta0),
                                    Rcpp::as<Eigen::VectorXd>(lower), opt);
  List out = mlm_glue::result_to_r(res);
  if (std::isfinite(res.at.deviance)) {
    NumericVector fitted(d.n);
    mlm::linear_predictor(d, res.at.beta, res.at.b, fitted.begin());
    out["fitted"] = fitted;
  }
  out["xp"] = mlm_glue::cross_products_to_r(xp);
  return out;
}

// Refits for each column of Y (bootstrap): theta, beta, sigma and deviance
// of each, from the stored cross-products updated with that response.
// [[Rcpp::export(rng = false)]]
List lmm_refit_responses_cpp(const NumericMatrix& X, const NumericMatrix& Y, SEXP weights, SEXP offset,
                             int intercept_col, const List& blocks, const List& xp_r, const NumericVector& theta0,
                             const NumericVector& lower, bool reml, const List& control) {
  mlm::ModelData d = mlm_glue::model_data_from(X, R_NilValue, weights, offset, intercept_col, blocks);
  if (Y.nrow() != d.n) Rcpp::stop("internal: Y must have one row per observation");
  mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r);
  const std::vector<mlm::CovTemplate> tpl = mlm_glue::templates_from(blocks);
  mlm::LmmOptions opt = mlm_glue::options_from(control, reml);
  opt.moment_start = false;  // start at theta0, the fit's estimate
  opt.cond_var = false;
  // The finite-difference Newton polish after the quasi-Newton optimiser
  // costs more evaluations than the optimisation itself when it starts at
  // the original estimates; bootstrap refits can skip it (polish = false).
  if (control.containsElementNamed("polish") && !Rcpp::as<bool>(control["polish"])) opt.max_hessian_params = 0;
  const Eigen::VectorXd th0 = Rcpp::as<Eigen::VectorXd>(theta0);
  const Eigen::VectorXd lo = Rcpp::as<Eigen::VectorXd>(lower);
  const int m = Y.ncol();
  NumericMatrix theta(th0.size(), m), beta(d.p, m);
  NumericVector sigma(m), deviance(m);
  Rcpp::IntegerVector n_warnings(m);
  for (int k = 0; k < m; ++k) {
    d.y = &Y(0, k);
    mlm::update_response(xp, d);
    mlm::LmmResult res = mlm::fit_lmm(xp, tpl, th0, lo, opt);
    const bool ok = std::isfinite(res.at.deviance);
    for (Eigen::Index j = 0; j < th0.size(); ++j) theta(j, k) = ok ? res.theta[j] : NA_REAL;
    for (int j = 0; j < d.p; ++j) beta(j, k) = ok ? res.at.beta[j] : NA_REAL;
    sigma[k] = ok ? res.at.sigma : NA_REAL;
    deviance[k] = ok ? res.at.deviance : NA_REAL;
    n_warnings[k] = static_cast<int>(res.warnings.size());
    Rcpp::checkUserInterrupt();
  }
  return List::create(Named("theta") = theta, Named("beta") = beta, Named("sigma") = sigma,
                      Named("deviance") = deviance, Named("warnings") = n_warnings);
}

// P, Q and the trace matrix K of the Kenward-Roger adjustment. params: an
// integer matrix with rows block (1-based), a, b (1-based columns of the block).
// [[Rcpp::export(rng = false)]]
List kenward_roger_terms_cpp(const NumericMatrix& X, SEXP weights, const List& blocks, const List& T,
                             double sigma2, const Rcpp::IntegerMatrix& params, double max_component) {
  mlm::ModelData d = mlm_glue::model_data_from(X, R_NilValue, weights, R_NilValue, -1, blocks);
  std::vector<mlm::CovParameter> pars;
  for (int k = 0; k < params.ncol(); ++k) {
    mlm::CovParameter cp;
    cp.block = params(0, k) - 1;
    cp.a = params(1, k) - 1;
    cp.b = params(2, k) - 1;
    pars.push_back(cp);
  }
  mlm::KenwardRogerTerms kr;
  try {
    kr = mlm::kenward_roger_terms(d, matrices_from(T), sigma2, pars, static_cast<Eigen::Index>(max_component));
  } catch (const std::length_error& e) {
    return List::create(Named("error") = std::string(e.what()));
  }
  const int ng = static_cast<int>(kr.P.size());
  List P(ng), Q(static_cast<R_xlen_t>(ng) * ng);
  for (int r = 0; r < ng; ++r) P[r] = Rcpp::wrap(kr.P[r]);
  for (int k = 0; k < ng * ng; ++k) Q[k] = Rcpp::wrap(kr.Q[k]);
  return List::create(Named("P") = P, Named("Q") = Q, Named("K") = Rcpp::wrap(kr.K),
                      Named("largest_component") = static_cast<double>(kr.largest_component));
}

// Diagonal of the hat matrix of the conditional fitted values.
// [[Rcpp::export(rng = false)]]
NumericVector leverages_cpp(const NumericMatrix& X, SEXP weights, const List& blocks, const List& T) {
  mlm::ModelData d = mlm_glue::model_data_from(X, R_NilValue, weights, R_NilValue, -1, blocks);
  return Rcpp::wrap(mlm::leverages(d, matrices_from(T)));
}
