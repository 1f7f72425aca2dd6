// Entry points of the linear mixed model engine: a fit, refits and
// evaluations from stored cross-products. Each takes the model spec
// (R/spec.R), converted once by glue_convert.cpp, and returns everything its
// caller needs in one call.
#include <RcppEigen.h>

#include "engine/cross_products.h"
#include "engine/deviance_terms.h"
#include "engine/lmm_fit.h"
#include "engine/response_update.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericMatrix;
using Rcpp::NumericVector;

namespace {

// theta_start: NULL for moment estimates from the cross-products (a new
// fit), or a start (a refit from the estimates).
mlm::LmmResult optimise(const mlm::CrossProducts& xp, const mlm_glue::SpecModel& m, SEXP theta_start,
                        mlm::LmmOptions opt) {
  Eigen::VectorXd start = m.theta_start;
  if (!Rf_isNull(theta_start)) {
    start = Rcpp::as<Eigen::VectorXd>(theta_start);
    mlm_glue::check_theta(m, start);
    opt.moment_start = false;
  }
  return mlm::fit_lmm(xp, m.templates, start, m.theta_lower, opt);
}

// The fit's answer: the optimum, the fitted values (when the rows are at
// hand) and the cross-products.
List fit_to_r(const mlm::LmmResult& res, const mlm_glue::SpecModel& m, const mlm::CrossProducts& xp) {
  List out = mlm_glue::lmm_result_to_r(res);
  if (m.has_rows && std::isfinite(res.at.deviance)) out["fitted"] = mlm_glue::fitted_values(m, res.at);
  out["xp"] = mlm_glue::cross_products_to_r(xp);
  return out;
}

}  // namespace

// One call per fit: cross-products, optimisation over theta, the solution
// at the optimum and the fitted values.
// [[Rcpp::export(rng = false)]]
List lmm_fit_cpp(const List& spec, SEXP theta_start, bool reml, const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::CrossProducts xp = mlm::build_cross_products(m.data);
  return fit_to_r(optimise(xp, m, theta_start, mlm_glue::lmm_options_from(control, reml)), m, xp);
}

// Optimise again from stored cross-products, with no pass over the data
// (ML after REML, profiles); fitted values when the spec has rows.
// [[Rcpp::export(rng = false)]]
List lmm_refit_xp_cpp(const List& spec, const List& xp_r, SEXP theta_start, bool reml, const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec, mlm_glue::Rows::optional);
  const mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  return fit_to_r(optimise(xp, m, theta_start, mlm_glue::lmm_options_from(control, reml)), m, xp);
}

// A refit to the spec's response (a new one): the y-parts of the stored
// cross-products are recomputed (one pass over y) and the optimiser starts
// at theta_start.
// [[Rcpp::export(rng = false)]]
List lmm_refit_response_cpp(const List& spec, const List& xp_r, SEXP theta_start, bool reml, const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  mlm::update_response(xp, m.data);
  return fit_to_r(optimise(xp, m, theta_start, mlm_glue::lmm_options_from(control, reml)), m, xp);
}

// Refits for each column of Y (the parametric bootstrap): theta, beta,
// sigma and deviance of each, from the stored cross-products updated with
// that response; NA where a refit fails.
// [[Rcpp::export(rng = false)]]
List lmm_refit_responses_cpp(const List& spec, const List& xp_r, const NumericMatrix& Y, SEXP theta_start,
                             bool reml, const List& control) {
  mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  mlm::ModelData& d = m.data;
  if (Y.nrow() != d.n) Rcpp::stop("internal: Y must have one row per observation");
  mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  const mlm::LmmOptions opt = mlm_glue::lmm_options_from(control, reml);
  const int m_sims = Y.ncol();
  const Eigen::Index k = m.theta_start.size();
  NumericMatrix theta(k, m_sims), beta(d.p, m_sims);
  NumericVector sigma(m_sims), deviance(m_sims);
  Rcpp::IntegerVector n_warnings(m_sims);
  for (int s = 0; s < m_sims; ++s) {
    d.y = &Y(0, s);
    mlm::update_response(xp, d);
    const mlm::LmmResult res = optimise(xp, m, theta_start, opt);
    const bool ok = std::isfinite(res.at.deviance);
    for (Eigen::Index j = 0; j < k; ++j) theta(j, s) = ok ? res.theta[j] : NA_REAL;
    for (int j = 0; j < d.p; ++j) beta(j, s) = ok ? res.at.beta[j] : NA_REAL;
    sigma[s] = ok ? res.at.sigma : NA_REAL;
    deviance[s] = ok ? res.at.deviance : NA_REAL;
    n_warnings[s] = static_cast<int>(res.warnings.size());
    Rcpp::checkUserInterrupt();
  }
  return List::create(Named("theta") = theta, Named("beta") = beta, Named("sigma") = sigma,
                      Named("deviance") = deviance, Named("warnings") = n_warnings);
}

// Everything at a given theta, from stored cross-products (fitted values
// when the spec has rows and they are asked for: a pass over the rows).
// [[Rcpp::export(rng = false)]]
List lmm_evaluate_cpp(const List& spec, const List& xp_r, const NumericVector& theta, bool reml, bool cond_var,
                      bool fitted = true) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec, mlm_glue::Rows::optional);
  const Eigen::VectorXd th = Rcpp::as<Eigen::VectorXd>(theta);
  mlm_glue::check_theta(m, th);
  const mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  const mlm::LmmEvaluation ev = mlm::evaluate_lmm(xp, m.templates, th, reml, cond_var);
  List out = mlm_glue::evaluation_to_r(ev);
  if (fitted && m.has_rows && std::isfinite(ev.deviance)) out["fitted"] = mlm_glue::fitted_values(m, ev);
  return out;
}

// The profiled deviance at each column of thetas and, with gradient, its
// analytic gradient there (one column per point; empty where undefined).
// [[Rcpp::export(rng = false)]]
List lmm_deviance_cpp(const List& spec, const List& xp_r, const NumericMatrix& thetas, bool reml, bool gradient) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec, mlm_glue::Rows::none);
  if (thetas.nrow() != m.theta_start.size()) mlm_glue::check_theta(m, Eigen::VectorXd(thetas.nrow()));
  const mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  mlm::ProfiledDeviance dev(xp, m.templates, reml);
  NumericVector out(thetas.ncol());
  NumericMatrix grad(gradient ? thetas.nrow() : 0, gradient ? thetas.ncol() : 0);
  for (int k = 0; k < thetas.ncol(); ++k) {
    const Eigen::Map<const Eigen::VectorXd> th(&thetas(0, k), thetas.nrow());
    if (!gradient) {
      out[k] = dev(th);
      continue;
    }
    Eigen::VectorXd g;
    out[k] = dev.value_and_gradient(th, g);
    for (int j = 0; j < thetas.nrow(); ++j) grad(j, k) = g.size() == thetas.nrow() ? g[j] : NA_REAL;
  }
  return List::create(Named("deviance") = out, Named("gradient") = grad);
}

// ld_L2, ld_RX2, pwrss (and the unscaled covariance of beta, p x p x m) at
// each column of thetas; ok = FALSE where the system is not positive definite.
// [[Rcpp::export(rng = false)]]
List lmm_deviance_terms_cpp(const List& spec, const List& xp_r, const NumericMatrix& thetas, bool with_vcov) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec, mlm_glue::Rows::none);
  if (thetas.nrow() != m.theta_start.size()) mlm_glue::check_theta(m, Eigen::VectorXd(thetas.nrow()));
  const mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  mlm::ProfiledDeviance dev(xp, m.templates, false);
  const int n_points = thetas.ncol(), p = xp.p;
  Rcpp::LogicalVector ok(n_points);
  NumericVector ld_L2(n_points), ld_RX2(n_points), pwrss(n_points);
  NumericVector vc(with_vcov ? static_cast<R_xlen_t>(p) * p * n_points : 0);
  for (int k = 0; k < n_points; ++k) {
    const Eigen::Map<const Eigen::VectorXd> th(&thetas(0, k), thetas.nrow());
    const mlm::DevianceTerms t = mlm::deviance_terms(dev, xp, th, with_vcov);
    ok[k] = t.ok;
    ld_L2[k] = t.ok ? t.ld_L2 : NA_REAL;
    ld_RX2[k] = t.ok ? t.ld_RX2 : NA_REAL;
    pwrss[k] = t.ok ? t.pwrss : NA_REAL;
    if (with_vcov)
      for (int j = 0; j < p * p; ++j)
        vc[static_cast<R_xlen_t>(k) * p * p + j] = t.ok ? t.unscaled_vcov.data()[j] : NA_REAL;
  }
  if (with_vcov) vc.attr("dim") = Rcpp::IntegerVector::create(p, p, n_points);
  return List::create(Named("ok") = ok, Named("ld_L2") = ld_L2, Named("ld_RX2") = ld_RX2, Named("pwrss") = pwrss,
                      Named("vcov") = vc);
}
