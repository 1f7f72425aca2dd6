// Where the GLMM engine meets R: R objects become engine structures
// (pointers into R's memory, no copies of the data) and results become
// R lists. One call fits a model; no R code runs inside the optimisation.
#include <RcppEigen.h>

#include <string>

#include "engine/glm_family.h"
#include "engine/glmm_fit.h"
#include "engine/glmm_nb.h"
#include "engine/model_data.h"
#include "glue_convert.h"

using Rcpp::IntegerVector;
using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

namespace {

mlm::GlmFamily family_from(const List& f) {
  mlm::GlmFamily fam;
  const std::string dist = Rcpp::as<std::string>(f["dist"]);
  const std::string link = Rcpp::as<std::string>(f["link"]);
  if (dist == "binomial") fam.dist = mlm::Dist::binomial;
  else if (dist == "poisson") fam.dist = mlm::Dist::poisson;
  else if (dist == "Gamma") fam.dist = mlm::Dist::gamma;
  else if (dist == "negative_binomial") fam.dist = mlm::Dist::negative_binomial;
  else Rcpp::stop("internal: unknown family '%s'", dist);
  if (link == "logit") fam.link = mlm::Link::logit;
  else if (link == "probit") fam.link = mlm::Link::probit;
  else if (link == "cauchit") fam.link = mlm::Link::cauchit;
  else if (link == "cloglog") fam.link = mlm::Link::cloglog;
  else if (link == "log") fam.link = mlm::Link::log;
  else if (link == "identity") fam.link = mlm::Link::identity;
  else if (link == "inverse") fam.link = mlm::Link::inverse;
  else if (link == "sqrt") fam.link = mlm::Link::sqrt;
  else Rcpp::stop("internal: unknown link '%s'", link);
  fam.nb_size = Rcpp::as<double>(f["nb_size"]);
  fam.aic_const = Rcpp::as<double>(f["aic_const"]);
  fam.sum_weights = Rcpp::as<double>(f["sum_weights"]);
  fam.sum_wt_log_y = Rcpp::as<double>(f["sum_wt_log_y"]);
  fam.eta_mean = Rcpp::as<double>(f["eta_mean"]);
  return fam;
}

mlm::GlmmOptions glmm_options(const List& control, int n_agq) {
  mlm::GlmmOptions o;
  o.n_agq = n_agq;
  o.optim.max_evals = Rcpp::as<int>(control["max_evals"]);
  o.optim.f_tol = Rcpp::as<double>(control["f_tol"]);
  o.optim.step_rel = Rcpp::as<double>(control["step_rel"]);
  o.boundary_tol = Rcpp::as<double>(control["boundary_tol"]);
  o.pirls.tol = Rcpp::as<double>(control["pirls_tol"]);
  o.pirls.max_iter = Rcpp::as<int>(control["pirls_max_iter"]);
  o.hessian = Rcpp::as<bool>(control["hessian"]);
  o.cond_var = Rcpp::as<bool>(control["cond_var"]);
  o.check_interrupt = [] { Rcpp::checkUserInterrupt(); };
  return o;
}

NumericVector as_array3(const Eigen::MatrixXd& m) {
  const int q = static_cast<int>(m.rows());
  NumericVector out(m.data(), m.data() + m.size());
  out.attr("dim") = IntegerVector::create(q, q, q > 0 ? static_cast<int>(m.cols() / q) : 0);
  return out;
}

List optim_to_r(const mlm::OptimResult& o) {
  return List::create(Named("evals") = o.evals, Named("iterations") = o.iterations,
                      Named("converged") = o.converged, Named("message") = o.message, Named("f") = o.f);
}

List glmm_result_to_r(const mlm::GlmmResult& res) {
  if (!res.ok) return List::create(Named("error") = res.error);
  List u(res.u.size()), b(res.b.size()), cv(res.cond_var.size());
  for (std::size_t f = 0; f < res.u.size(); ++f) u[f] = Rcpp::wrap(res.u[f]);
  for (std::size_t f = 0; f < res.b.size(); ++f) b[f] = Rcpp::wrap(res.b[f]);
  for (std::size_t f = 0; f < res.cond_var.size(); ++f) cv[f] = as_array3(res.cond_var[f]);
  return List::create(
      Named("theta") = Rcpp::wrap(res.theta), Named("beta") = Rcpp::wrap(res.beta), Named("u") = u, Named("b") = b,
      Named("criterion") = res.criterion, Named("dev") = res.at.dev, Named("ussq") = res.at.ussq,
      Named("ldL2") = res.at.ldL2, Named("ldRX2") = res.at.ldRX2,
      Named("vcov_unscaled") = Rcpp::wrap(res.vcov_unscaled), Named("vcov_hessian") = Rcpp::wrap(res.vcov_hessian),
      Named("hessian") = Rcpp::wrap(res.hessian), Named("gradient") = Rcpp::wrap(res.gradient),
      Named("eta") = Rcpp::wrap(res.eta), Named("cond_var") = cv,
      Named("optinfo") = List::create(Named("evals") = res.evals, Named("pirls_passes") = res.pirls_passes,
                                      Named("stage1") = optim_to_r(res.stage1),
                                      Named("stage2") = optim_to_r(res.stage2),
                                      Named("warnings") = Rcpp::wrap(res.warnings)));
}

// The engine follows eta_start row by row and beta column by column.
void check_glmm_arguments(const mlm::ModelData& d, const NumericVector& eta_start, const NumericVector& theta,
                          const NumericVector& lower) {
  if (eta_start.size() != d.n) Rcpp::stop("internal: eta_start must have one value per observation");
  if (lower.size() != 0) mlm_glue::check_theta(theta, lower);
}

}  // namespace

// One call per fit: PIRLS and both optimisation stages in C++.
// [[Rcpp::export(rng = false)]]
List glmm_fit_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, const NumericVector& eta_start,
                  int intercept_col, const List& blocks, const NumericVector& theta0, const NumericVector& lower,
                  const List& family, int n_agq, const List& control) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  check_glmm_arguments(d, eta_start, theta0, lower);
  mlm::GlmmResult res = mlm::fit_glmm(d, family_from(family), mlm_glue::templates_from(blocks, theta0.size()),
                                      Rcpp::as<Eigen::VectorXd>(eta_start), Rcpp::as<Eigen::VectorXd>(theta0),
                                      Rcpp::as<Eigen::VectorXd>(lower), glmm_options(control, n_agq));
  return glmm_result_to_r(res);
}

// The approximate deviance, modes and linear predictor at given theta and
// beta (beta is ignored for nAGQ = 0, where it is at its mode).
// [[Rcpp::export(rng = false)]]
List glmm_evaluate_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset,
                       const NumericVector& eta_start, int intercept_col, const List& blocks,
                       const NumericVector& theta, const NumericVector& beta, const List& family, int n_agq,
                       const List& control) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  check_glmm_arguments(d, eta_start, theta, NumericVector());
  if (beta.size() != d.p) Rcpp::stop("internal: beta must have one value per column of X");
  mlm::GlmmResult res = mlm::evaluate_glmm(d, family_from(family), mlm_glue::templates_from(blocks, theta.size()),
                                           Rcpp::as<Eigen::VectorXd>(eta_start), Rcpp::as<Eigen::VectorXd>(theta),
                                           Rcpp::as<Eigen::VectorXd>(beta), glmm_options(control, n_agq));
  return glmm_result_to_r(res);
}

// Nodes and weights of the Gauss-Hermite rule for the standard normal.
// [[Rcpp::export(rng = false)]]
List gauss_hermite_cpp(int n) {
  Eigen::VectorXd z, w;
  mlm::gauss_hermite(n, z, w);
  return List::create(Named("z") = Rcpp::wrap(z), Named("w") = Rcpp::wrap(w));
}

// A negative binomial GLMM with its size estimated: the profile over
// log(size) minimised in C++, each evaluation a full fit.
// [[Rcpp::export(rng = false)]]
List glmm_nb_fit_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, const NumericVector& eta_start,
                     int intercept_col, const List& blocks, const NumericVector& theta0, const NumericVector& lower,
                     const List& family, int n_agq, const List& control, double log_size_lo, double log_size_hi) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  check_glmm_arguments(d, eta_start, theta0, lower);
  mlm::NbResult res = mlm::fit_glmm_nb(d, family_from(family), mlm_glue::templates_from(blocks, theta0.size()),
                                       Rcpp::as<Eigen::VectorXd>(eta_start), Rcpp::as<Eigen::VectorXd>(theta0),
                                       Rcpp::as<Eigen::VectorXd>(lower), glmm_options(control, n_agq), log_size_lo,
                                       log_size_hi);
  List out = glmm_result_to_r(res.fit);
  out["nb_size"] = res.size;
  out["nb_fits"] = res.fits;
  return out;
}

