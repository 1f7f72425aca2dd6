// Where the GLMM engine meets R: R objects become engine structures
// (pointers into R's memory, no copies of the data) and results become
// R lists. One call fits a model; no R code runs inside the optimisation.
#include <RcppEigen.h>

#include <string>

#include "engine/glm_family.h"
#include "engine/glmm_fit.h"
#include "engine/glmm_nb.h"
#include "engine/model_data.h"

using Rcpp::IntegerVector;
using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

namespace {

const double* optional_vector(SEXP x, R_xlen_t n, const char* what) {
  if (Rf_isNull(x)) return nullptr;
  if (TYPEOF(x) != REALSXP || XLENGTH(x) != n) Rcpp::stop("internal: '%s' must be a double vector of length n", what);
  return REAL(x);
}

std::vector<mlm::CovTemplate> glmm_templates(const List& blocks) {
  std::vector<mlm::CovTemplate> out;
  for (R_xlen_t f = 0; f < blocks.size(); ++f) {
    List b = blocks[f];
    mlm::CovTemplate t;
    t.q = Rcpp::as<int>(b["q"]);
    IntegerVector ti = b["theta_index"];
    t.theta_index.assign(ti.begin(), ti.end());
    if (static_cast<int>(t.theta_index.size()) != t.q * t.q) Rcpp::stop("internal: theta_index must be q x q");
    out.push_back(t);
  }
  return out;
}

// blocks as for lmm_fit_cpp(): codes (1-based), n_levels, q, cols (NULL for
// ones, an integer column of X, or a double vector), theta_index.
mlm::ModelData glmm_model_data(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, int intercept_col,
                               const List& blocks) {
  mlm::ModelData d;
  d.n = X.nrow();
  d.p = X.ncol();
  d.X = X.begin();
  d.y = optional_vector(y, d.n, "y");
  d.weights = optional_vector(weights, d.n, "weights");
  d.offset = optional_vector(offset, d.n, "offset");
  d.intercept_col = intercept_col;
  std::vector<mlm::CovTemplate> tpl = glmm_templates(blocks);
  for (R_xlen_t f = 0; f < blocks.size(); ++f) {
    List b = blocks[f];
    mlm::FactorBlock F;
    SEXP codes = b["codes"];
    if (TYPEOF(codes) != INTSXP || XLENGTH(codes) != d.n) Rcpp::stop("internal: codes must be integer of length n");
    F.codes = INTEGER(codes);
    F.code_base = 1;
    F.n_levels = static_cast<mlm::Index>(Rcpp::as<double>(b["n_levels"]));
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

}  // namespace

// One call per fit: PIRLS and both optimisation stages in C++.
// [[Rcpp::export(rng = false)]]
List glmm_fit_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, const NumericVector& eta_start,
                  int intercept_col, const List& blocks, const NumericVector& theta0, const NumericVector& lower,
                  const List& family, int n_agq, const List& control) {
  mlm::ModelData d = glmm_model_data(X, y, weights, offset, intercept_col, blocks);
  mlm::GlmmResult res = mlm::fit_glmm(d, family_from(family), glmm_templates(blocks),
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
  mlm::ModelData d = glmm_model_data(X, y, weights, offset, intercept_col, blocks);
  mlm::GlmmResult res = mlm::evaluate_glmm(d, family_from(family), glmm_templates(blocks),
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
  mlm::ModelData d = glmm_model_data(X, y, weights, offset, intercept_col, blocks);
  mlm::NbResult res = mlm::fit_glmm_nb(d, family_from(family), glmm_templates(blocks),
                                       Rcpp::as<Eigen::VectorXd>(eta_start), Rcpp::as<Eigen::VectorXd>(theta0),
                                       Rcpp::as<Eigen::VectorXd>(lower), glmm_options(control, n_agq), log_size_lo,
                                       log_size_hi);
  List out = glmm_result_to_r(res.fit);
  out["nb_size"] = res.size;
  out["nb_fits"] = res.fits;
  return out;
}

