// Test-only entry: the pieces of the blocked Cholesky factorisation at one
// theta, from a fit's spec and stored cross-products, so that the tests can compare them
// with dense algebra on the same model (tests/testthat/test-blocked-cholesky.R).
// Not used by the package's R code.
#include <RcppEigen.h>

#include "engine/blocked_cholesky.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;

// log |L_Z|^2, log |R_X|^2, the penalised residual sum of squares, beta (in
// the centred parametrisation of the cross-products), u and b per factor,
// (R_X R_X')^{-1}, the conditional variances over sigma^2 per factor and the
// gradient of the profiled deviance (REML or ML), whether the Schur
// complement was held dense, and u and beta from a chord step (chord_solve).
// [[Rcpp::export(rng = false)]]
List blocked_cholesky_parts_cpp(const List& spec, const List& xp_r, const Rcpp::NumericVector& theta, bool reml) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec, mlm_glue::Rows::none);
  const mlm::CrossProducts xp = mlm_glue::cross_products_from_r(xp_r, m);
  const Eigen::VectorXd th = Rcpp::as<Eigen::VectorXd>(theta);
  mlm_glue::check_theta(m, th);
  const std::vector<mlm::CovTemplate>& tpl = m.templates;
  mlm::BlockedCholesky sys(xp, tpl);
  if (!sys.factor(th)) Rcpp::stop("the system is not positive definite at theta");
  const mlm::Solution sol = sys.solve();
  // A chord step from half the modes: the system being linear, any Newton
  // step lands on its solution.
  std::vector<Eigen::MatrixXd> half_u(sol.u.size());
  for (std::size_t f = 0; f < sol.u.size(); ++f) half_u[f] = 0.5 * sol.u[f];
  const mlm::Solution chord = sys.chord_solve(half_u);
  List chord_u(chord.u.size());
  for (std::size_t f = 0; f < chord.u.size(); ++f) chord_u[f] = Rcpp::wrap(chord.u[f]);
  List u(sol.u.size()), b(sol.b.size());
  for (std::size_t f = 0; f < sol.u.size(); ++f) {
    u[f] = Rcpp::wrap(sol.u[f]);
    b[f] = Rcpp::wrap(sol.b[f]);
  }
  const Eigen::MatrixXd vcov = sys.unscaled_vcov();
  const std::vector<Eigen::MatrixXd> cv = sys.unscaled_cond_var();
  List cond_var(cv.size());
  for (std::size_t f = 0; f < cv.size(); ++f) cond_var[f] = Rcpp::wrap(cv[f]);
  // the selected inverse overwrote a dense factor: factor again for the gradient
  if (!sys.factor(th)) Rcpp::stop("the system is not positive definite at theta");
  const Eigen::VectorXd gradient = sys.deviance_gradient(reml, static_cast<int>(th.size()));
  return List::create(Named("ld_L2") = sys.log_det_L(), Named("ld_RX2") = sys.log_det_RX(),
                      Named("pwrss") = sys.pwrss(), Named("beta") = Rcpp::wrap(sol.beta), Named("u") = u,
                      Named("b") = b, Named("unscaled_vcov") = Rcpp::wrap(vcov), Named("cond_var") = cond_var,
                      Named("gradient") = Rcpp::wrap(gradient), Named("dense_schur") = sys.dense_schur(),
                      Named("chord_u") = chord_u, Named("chord_beta") = Rcpp::wrap(chord.beta));
}
