// The only place where the linear mixed model engine meets R: conversion of
// R objects into engine structures (pointers, no copies of the data) and of
// results back into R lists.
#include <RcppEigen.h>

#include <limits>

#include "engine/cross_products.h"
#include "engine/lmm_fit.h"
#include "engine/model_data.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::NumericVector;
using Rcpp::IntegerVector;
using Rcpp::Named;

namespace mlm_glue {

const double* optional_vector(SEXP x, R_xlen_t n, const char* what) {
  if (Rf_isNull(x)) return nullptr;
  if (TYPEOF(x) != REALSXP || XLENGTH(x) != n) Rcpp::stop("internal: '%s' must be a double vector of length n", what);
  return REAL(x);
}

// Every index the engine will follow is checked here, once, so that a
// malformed argument is an R error and never a read out of bounds.
std::vector<mlm::CovTemplate> templates_from(const List& blocks, R_xlen_t n_theta) {
  if (blocks.size() < 1) Rcpp::stop("internal: at least one random-effect block is needed");
  std::vector<mlm::CovTemplate> out;
  for (R_xlen_t f = 0; f < blocks.size(); ++f) {
    List b = blocks[f];
    mlm::CovTemplate t;
    t.q = Rcpp::as<int>(b["q"]);
    if (t.q < 1 || t.q > 46340) Rcpp::stop("internal: a block needs between 1 and 46340 columns");
    IntegerVector ti = b["theta_index"];
    t.theta_index.assign(ti.begin(), ti.end());
    if (static_cast<R_xlen_t>(t.theta_index.size()) != static_cast<R_xlen_t>(t.q) * t.q)
      Rcpp::stop("internal: theta_index must be q x q");
    for (int k : t.theta_index)
      if (k < -1 || k >= n_theta) Rcpp::stop("internal: theta_index refers outside theta");
    out.push_back(t);
  }
  return out;
}

// blocks: list of list(codes = integer (1-based), n_levels, q, cols = list of
// NULL (ones) | integer column of X (1-based) | double vector, theta_index).
mlm::ModelData model_data_from(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, int intercept_col,
                               const List& blocks) {
  mlm::ModelData d;
  d.n = X.nrow();
  d.p = X.ncol();
  d.X = X.begin();
  d.y = optional_vector(y, d.n, "y");
  d.weights = optional_vector(weights, d.n, "weights");
  d.offset = optional_vector(offset, d.n, "offset");
  d.intercept_col = intercept_col;
  if (intercept_col < -1 || intercept_col >= d.p) Rcpp::stop("internal: intercept column out of range");
  std::vector<mlm::CovTemplate> tpl = templates_from(blocks, std::numeric_limits<R_xlen_t>::max());
  for (R_xlen_t f = 0; f < blocks.size(); ++f) {
    List b = blocks[f];
    mlm::FactorBlock F;
    SEXP codes = b["codes"];
    if (TYPEOF(codes) != INTSXP || XLENGTH(codes) != d.n) Rcpp::stop("internal: codes must be integer of length n");
    F.codes = INTEGER(codes);
    F.code_base = 1;
    const double levels = Rcpp::as<double>(b["n_levels"]);
    if (!(levels >= 1.0 && levels <= 2147483647.0)) Rcpp::stop("internal: a grouping factor needs 1 to 2^31 - 1 levels");
    F.n_levels = static_cast<mlm::Index>(levels);
    // Codes index arrays in the engine: each must be a level (not NA).
    const int top = static_cast<int>(F.n_levels);
    for (mlm::Index i = 0; i < d.n; ++i)
      if (F.codes[i] < 1 || F.codes[i] > top) Rcpp::stop("internal: grouping codes must lie in 1..n_levels (no NA)");
    F.cov = tpl[f];
    F.q = F.cov.q;
    List cols = b["cols"];
    if (cols.size() != F.q) Rcpp::stop("internal: a block needs q columns");
    for (R_xlen_t a = 0; a < cols.size(); ++a) {
      SEXP c = cols[a];
      if (Rf_isNull(c)) {
        F.cols.push_back(nullptr);
      } else if (TYPEOF(c) == INTSXP && XLENGTH(c) == 1) {
        const int j = INTEGER(c)[0];
        if (j < 1 || j > d.p) Rcpp::stop("internal: column reference out of range");
        F.cols.push_back(d.X + static_cast<mlm::Index>(j - 1) * d.n);
      } else {
        F.cols.push_back(optional_vector(c, d.n, "random-effect column"));
      }
    }
    d.blocks.push_back(F);
  }
  d.check_interrupt = [] { Rcpp::checkUserInterrupt(); };
  return d;
}

void check_theta(const NumericVector& theta0, const NumericVector& lower) {
  if (theta0.size() != lower.size()) Rcpp::stop("internal: theta0 and lower differ in length");
}

void check_templates_match(const mlm::CrossProducts& xp, const std::vector<mlm::CovTemplate>& tpl) {
  bool ok = tpl.size() == xp.sec_levels.size() + 1 && tpl[0].q == xp.q1;
  for (std::size_t f = 1; ok && f < tpl.size(); ++f) ok = tpl[f].q == xp.sec_q[f - 1];
  if (!ok) Rcpp::stop("internal: the blocks do not match the stored cross-products");
}

NumericVector index_vector(const std::vector<mlm::Index>& v) { return NumericVector(v.begin(), v.end()); }
std::vector<mlm::Index> index_from(const NumericVector& v) { return std::vector<mlm::Index>(v.begin(), v.end()); }

List cross_products_to_r(const mlm::CrossProducts& xp) {
  return List::create(
      Named("n") = static_cast<double>(xp.n), Named("p") = xp.p, Named("sum_log_weights") = xp.sum_log_weights,
      Named("center") = Rcpp::wrap(xp.center), Named("intercept_col") = xp.intercept_col,
      Named("k1") = static_cast<double>(xp.k1), Named("q1") = xp.q1, Named("D1") = Rcpp::wrap(xp.D1),
      Named("C1") = Rcpp::wrap(xp.C1), Named("XX") = Rcpp::wrap(xp.XX),
      Named("sec_levels") = index_vector(xp.sec_levels), Named("sec_q") = Rcpp::wrap(xp.sec_q),
      Named("rr_diag") = Rcpp::wrap(xp.rr_diag), Named("rr_row") = index_vector(xp.rr_row),
      Named("rr_col") = index_vector(xp.rr_col), Named("rr_vals") = Rcpp::wrap(xp.rr_vals),
      Named("r1_ptr") = index_vector(xp.r1_ptr), Named("r1_row") = index_vector(xp.r1_row),
      Named("r1_vals") = Rcpp::wrap(xp.r1_vals), Named("CR") = Rcpp::wrap(xp.CR));
}

mlm::CrossProducts cross_products_from_r(const List& r) {
  mlm::CrossProducts xp;
  xp.n = static_cast<mlm::Index>(Rcpp::as<double>(r["n"]));
  xp.p = Rcpp::as<int>(r["p"]);
  xp.sum_log_weights = Rcpp::as<double>(r["sum_log_weights"]);
  xp.center = Rcpp::as<Eigen::VectorXd>(r["center"]);
  xp.intercept_col = Rcpp::as<int>(r["intercept_col"]);
  xp.k1 = static_cast<mlm::Index>(Rcpp::as<double>(r["k1"]));
  xp.q1 = Rcpp::as<int>(r["q1"]);
  xp.D1 = Rcpp::as<Eigen::MatrixXd>(r["D1"]);
  xp.C1 = Rcpp::as<Eigen::MatrixXd>(r["C1"]);
  xp.XX = Rcpp::as<Eigen::MatrixXd>(r["XX"]);
  xp.sec_levels = index_from(r["sec_levels"]);
  xp.sec_q = Rcpp::as<std::vector<int>>(r["sec_q"]);
  xp.rr_diag = Rcpp::as<std::vector<double>>(r["rr_diag"]);
  xp.rr_row = index_from(r["rr_row"]);
  xp.rr_col = index_from(r["rr_col"]);
  xp.rr_vals = Rcpp::as<std::vector<double>>(r["rr_vals"]);
  xp.r1_ptr = index_from(r["r1_ptr"]);
  xp.r1_row = index_from(r["r1_row"]);
  xp.r1_vals = Rcpp::as<std::vector<double>>(r["r1_vals"]);
  xp.CR = Rcpp::as<Eigen::MatrixXd>(r["CR"]);
  const std::string why = xp.inconsistency();
  if (!why.empty()) Rcpp::stop("internal: stored cross-products are inconsistent: %s", why);
  xp.finalize();
  return xp;
}

// q x (q k) blocks as a q x q x k array.
NumericVector as_array(const Eigen::MatrixXd& m) {
  const int q = static_cast<int>(m.rows());
  NumericVector out(m.data(), m.data() + m.size());
  out.attr("dim") = IntegerVector::create(q, q, q > 0 ? static_cast<int>(m.cols() / q) : 0);
  return out;
}

List evaluation_to_r(const mlm::LmmEvaluation& ev) {
  List b(ev.b.size()), cv(ev.cond_var.size());
  for (std::size_t f = 0; f < ev.b.size(); ++f) b[f] = Rcpp::wrap(ev.b[f]);
  for (std::size_t f = 0; f < ev.cond_var.size(); ++f) cv[f] = as_array(ev.cond_var[f]);
  return List::create(Named("deviance") = ev.deviance, Named("ld_L2") = ev.ld_L2, Named("ld_RX2") = ev.ld_RX2,
                      Named("pwrss") = ev.pwrss, Named("sigma") = ev.sigma, Named("beta") = Rcpp::wrap(ev.beta),
                      Named("vcov") = Rcpp::wrap(ev.vcov), Named("b") = b, Named("cond_var") = cv);
}

mlm::LmmOptions options_from(const List& control, bool reml) {
  mlm::LmmOptions o;
  o.reml = reml;
  o.optim.max_evals = Rcpp::as<int>(control["max_evals"]);
  o.optim.f_tol = Rcpp::as<double>(control["f_tol"]);
  o.optim.step_rel = Rcpp::as<double>(control["step_rel"]);
  o.boundary_tol = Rcpp::as<double>(control["boundary_tol"]);
  o.cond_var = Rcpp::as<bool>(control["cond_var"]);
  o.check_interrupt = [] { Rcpp::checkUserInterrupt(); };
  return o;
}

const char* ray_name(mlm::RayShape r) {
  return r == mlm::RayShape::falling ? "falling" : r == mlm::RayShape::flat ? "flat" : "rising";
}

List result_to_r(const mlm::LmmResult& res) {
  List out = evaluation_to_r(res.at);
  out["theta"] = Rcpp::wrap(res.theta);
  out["optinfo"] = List::create(
      Named("evals") = res.optim.evals, Named("iterations") = res.optim.iterations,
      Named("converged") = res.optim.converged, Named("message") = res.optim.message,
      Named("gradient") = Rcpp::wrap(res.gradient), Named("hessian") = Rcpp::wrap(res.hessian),
      Named("warnings") = Rcpp::wrap(res.warnings), Named("ray") = ray_name(res.ray),
      Named("theta_scale") = Rcpp::wrap(res.theta_scale));
  return out;
}

}  // namespace mlm_glue

using namespace mlm_glue;

// One call per fit: cross-products, optimisation over theta, the solution
// at the optimum and the fitted values.
// [[Rcpp::export(rng = false)]]
List lmm_fit_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, int intercept_col,
                 const List& blocks, const NumericVector& theta0, const NumericVector& lower, bool reml,
                 const List& control) {
  mlm::ModelData d = model_data_from(X, y, weights, offset, intercept_col, blocks);
  mlm::CrossProducts xp = mlm::build_cross_products(d);
  mlm::LmmOptions opt = options_from(control, reml);
  check_theta(theta0, lower);
  mlm::LmmResult res = mlm::fit_lmm(xp, templates_from(blocks, theta0.size()), Rcpp::as<Eigen::VectorXd>(theta0),
                                    Rcpp::as<Eigen::VectorXd>(lower), opt);
  List out = result_to_r(res);
  if (std::isfinite(res.at.deviance)) {
    NumericVector fitted(d.n);
    mlm::linear_predictor(d, res.at.beta, res.at.b, fitted.begin());
    out["fitted"] = fitted;
  }
  out["xp"] = cross_products_to_r(xp);
  return out;
}

// Optimise again from stored cross-products (no pass over the data), e.g.
// with ML instead of REML.
// [[Rcpp::export(rng = false)]]
List lmm_refit_xp_cpp(const List& xp_r, const List& blocks, const NumericVector& theta0,
                      const NumericVector& lower, bool reml, const List& control) {
  mlm::CrossProducts xp = cross_products_from_r(xp_r);
  check_theta(theta0, lower);
  const std::vector<mlm::CovTemplate> tpl = templates_from(blocks, theta0.size());
  check_templates_match(xp, tpl);
  mlm::LmmOptions opt = options_from(control, reml);
  opt.moment_start = false;  // start at theta0 (e.g. the REML estimate for an ML refit)
  mlm::LmmResult res = mlm::fit_lmm(xp, tpl, Rcpp::as<Eigen::VectorXd>(theta0), Rcpp::as<Eigen::VectorXd>(lower), opt);
  return result_to_r(res);
}

// Everything at a given theta, from stored cross-products.
// [[Rcpp::export(rng = false)]]
List lmm_evaluate_cpp(const List& xp_r, const List& blocks, const NumericVector& theta, bool reml, bool cond_var) {
  mlm::CrossProducts xp = cross_products_from_r(xp_r);
  const std::vector<mlm::CovTemplate> tpl = templates_from(blocks, theta.size());
  check_templates_match(xp, tpl);
  return evaluation_to_r(mlm::evaluate_lmm(xp, tpl, Rcpp::as<Eigen::VectorXd>(theta), reml, cond_var));
}

// The profiled deviance at each column of thetas (profiling, derivatives).
// [[Rcpp::export(rng = false)]]
NumericVector lmm_deviance_cpp(const List& xp_r, const List& blocks, const Rcpp::NumericMatrix& thetas, bool reml) {
  mlm::CrossProducts xp = cross_products_from_r(xp_r);
  const std::vector<mlm::CovTemplate> tpl = templates_from(blocks, thetas.nrow());
  check_templates_match(xp, tpl);
  mlm::ProfiledDeviance dev(xp, tpl, reml);
  NumericVector out(thetas.ncol());
  for (int k = 0; k < thetas.ncol(); ++k) {
    Eigen::Map<const Eigen::VectorXd> th(&thetas(0, k), thetas.nrow());
    out[k] = dev(th);
  }
  return out;
}

// The analytic gradient of the profiled deviance at theta.
// [[Rcpp::export(rng = false)]]
NumericVector lmm_gradient_cpp(const List& xp_r, const List& blocks, const NumericVector& theta, bool reml) {
  mlm::CrossProducts xp = cross_products_from_r(xp_r);
  const std::vector<mlm::CovTemplate> tpl = templates_from(blocks, theta.size());
  check_templates_match(xp, tpl);
  mlm::ProfiledDeviance dev(xp, tpl, reml);
  Eigen::VectorXd g;
  dev.value_and_gradient(Rcpp::as<Eigen::VectorXd>(theta), g);
  return Rcpp::wrap(g);
}

// offset + X beta + Z b for the rows of X (fitted values, predictions).
// [[Rcpp::export(rng = false)]]
NumericVector linear_predictor_cpp(const Rcpp::NumericMatrix& X, SEXP offset, const List& blocks,
                                   const NumericVector& beta, const List& b) {
  mlm::ModelData d = model_data_from(X, R_NilValue, R_NilValue, offset, -1, blocks);
  if (beta.size() != d.p) Rcpp::stop("internal: beta must have one value per column of X");
  if (b.size() != static_cast<R_xlen_t>(d.blocks.size())) Rcpp::stop("internal: b must have one matrix per block");
  std::vector<Eigen::MatrixXd> bm;
  for (R_xlen_t f = 0; f < b.size(); ++f) {
    bm.push_back(Rcpp::as<Eigen::MatrixXd>(b[f]));
    if (bm.back().rows() != d.blocks[f].q || bm.back().cols() != d.blocks[f].n_levels)
      Rcpp::stop("internal: b must be q x levels for each block");
  }
  NumericVector eta(d.n);
  mlm::linear_predictor(d, Rcpp::as<Eigen::VectorXd>(beta), bm, eta.begin());
  return eta;
}
