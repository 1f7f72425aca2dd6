// Entry points of the GLMM engine: a fit (the negative binomial's size
// estimated or not) and the approximate deviance at given (theta, beta).
// Each takes the model spec, with its family; one call fits a model and
// returns everything the fit object needs (means, sigma, -2 log-likelihood),
// and no R code runs inside the optimisation.
#include <RcppEigen.h>

#include "engine/glm_family.h"
#include "engine/glmm_fit.h"
#include "engine/glmm_nb.h"
#include "engine/stage1_gradient.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

namespace {

// The engine follows eta_start row by row.
Eigen::VectorXd checked_eta(const mlm_glue::SpecModel& m, const NumericVector& eta_start) {
  if (eta_start.size() != m.data.n) Rcpp::stop("internal: eta_start must have one value per observation");
  return Rcpp::as<Eigen::VectorXd>(eta_start);
}

Eigen::VectorXd checked_start(const mlm_glue::SpecModel& m, SEXP theta_start) {
  Eigen::VectorXd theta = m.theta_start;
  if (!Rf_isNull(theta_start)) theta = Rcpp::as<Eigen::VectorXd>(theta_start);
  mlm_glue::check_theta(m, theta);
  return theta;
}

// A point (theta, beta) at which the engine evaluates, checked.
Eigen::VectorXd checked_theta(const mlm_glue::SpecModel& m, const NumericVector& theta) {
  const Eigen::VectorXd th = Rcpp::as<Eigen::VectorXd>(theta);
  mlm_glue::check_theta(m, th);
  return th;
}

Eigen::VectorXd checked_beta(const mlm_glue::SpecModel& m, const NumericVector& beta) {
  if (beta.size() != m.data.p) Rcpp::stop("internal: beta must have one value per column of X");
  return Rcpp::as<Eigen::VectorXd>(beta);
}

}  // namespace

// One call per fit: PIRLS and both optimisation stages in C++. theta_start:
// NULL for the spec's start.
// [[Rcpp::export(rng = false)]]
List glmm_fit_cpp(const List& spec, SEXP theta_start, const NumericVector& eta_start, int n_agq,
                  const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::GlmFamily fam = mlm_glue::family_from_spec(spec);
  const mlm::GlmmResult res = mlm::fit_glmm(m.data, fam, m.templates, checked_eta(m, eta_start),
                                            checked_start(m, theta_start), m.theta_lower,
                                            mlm_glue::glmm_options_from(control, n_agq));
  return mlm_glue::glmm_result_to_r(res, m, fam, n_agq);
}

// A negative binomial GLMM with its size estimated: the profile over
// log(size) minimised in C++, each evaluation a full fit.
// [[Rcpp::export(rng = false)]]
List glmm_nb_fit_cpp(const List& spec, SEXP theta_start, const NumericVector& eta_start, int n_agq,
                     const List& control, double log_size_lo, double log_size_hi) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  mlm::GlmFamily fam = mlm_glue::family_from_spec(spec);
  const mlm::NbResult res = mlm::fit_glmm_nb(m.data, fam, m.templates, checked_eta(m, eta_start),
                                             checked_start(m, theta_start), m.theta_lower,
                                             mlm_glue::glmm_options_from(control, n_agq), log_size_lo, log_size_hi);
  fam.nb_size = res.size;
  fam.aic_const = mlm::nb_aic_constant(m.data, res.size);
  List out = mlm_glue::glmm_result_to_r(res.fit, m, fam, n_agq);
  out["nb_size"] = res.size;
  out["nb_fits"] = res.fits;
  return out;
}

// The approximate deviance, modes and linear predictor at given theta and
// beta (beta is ignored for nAGQ = 0, where it is at its mode).
// [[Rcpp::export(rng = false)]]
List glmm_evaluate_cpp(const List& spec, const NumericVector& eta_start, const NumericVector& theta,
                       const NumericVector& beta, int n_agq, const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::GlmFamily fam = mlm_glue::family_from_spec(spec);
  const mlm::GlmmResult res = mlm::evaluate_glmm(m.data, fam, m.templates, checked_eta(m, eta_start),
                                                 checked_theta(m, theta), checked_beta(m, beta),
                                                 mlm_glue::glmm_options_from(control, n_agq));
  return mlm_glue::glmm_result_to_r(res, m, fam, n_agq);
}

// The analytic gradient of the Laplace deviance in (theta, beta) (for
// tests: checked against differences of glmm_evaluate_cpp's criterion);
// NULL where it does not apply.
// [[Rcpp::export(rng = false)]]
SEXP glmm_laplace_gradient_cpp(const List& spec, const NumericVector& eta_start, const NumericVector& theta,
                               const NumericVector& beta, const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::GlmFamily fam = mlm_glue::family_from_spec(spec);
  const Eigen::VectorXd g = mlm::laplace_gradient_at(m.data, fam, m.templates, checked_eta(m, eta_start),
                                                     checked_theta(m, theta), checked_beta(m, beta),
                                                     mlm_glue::glmm_options_from(control, 1));
  if (g.size() == 0) return R_NilValue;
  return Rcpp::wrap(g);
}

// The analytic gradient in theta of the stage-1 (nAGQ = 0) criterion, beta
// and u at their joint modes (for tests: checked against differences of
// glmm_evaluate_cpp's criterion with n_agq = 0); NULL where it does not
// apply.
// [[Rcpp::export(rng = false)]]
SEXP glmm_stage1_gradient_cpp(const List& spec, const NumericVector& eta_start, const NumericVector& theta,
                              const List& control) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const mlm::GlmFamily fam = mlm_glue::family_from_spec(spec);
  const Eigen::VectorXd g = mlm::stage1_gradient_at(m.data, fam, m.templates, checked_eta(m, eta_start),
                                                    checked_theta(m, theta),
                                                    mlm_glue::glmm_options_from(control, 0).pirls);
  if (g.size() == 0) return R_NilValue;
  return Rcpp::wrap(g);
}

// Nodes and weights of the Gauss-Hermite rule for the standard normal.
// [[Rcpp::export(rng = false)]]
List gauss_hermite_cpp(int n) {
  Eigen::VectorXd z, w;
  mlm::gauss_hermite(n, z, w);
  return List::create(Named("z") = Rcpp::wrap(z), Named("w") = Rcpp::wrap(w));
}
