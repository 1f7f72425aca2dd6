// Glue for linear mixed models with a residual covariance structure
// (correlation and variance functions): R lists into a ResidualSpec, and the
// fit, evaluation and deviance entry points.
#include <RcppEigen.h>

#include <stdexcept>
#include <string>

#include "engine/lmm_fit.h"
#include "engine/residual_structure.h"
#include "engine/structured_fit.h"
#include "engine/whitening.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

namespace {

// residual: list(correlation = "none" | "ar1" | "car1" | "comp_symm",
// variance = "none" | "ident" | "power" | "exp" | "const_power", order (1-based observation
// numbers in group order), group_start (0-based, n_groups + 1), time (double
// or NULL), stratum (0-based integer or NULL), n_strata, covariate (double or
// NULL), covariate_fitted (optional: the covariate is the fitted values; a
// fit iterates it, other entry points use `covariate`), psi0, psi_free,
// method = "auto" | "classes" | "pass").
mlm::ResidualSpec spec_from(const List& r, mlm::Index n, bool for_fit = false) {
  mlm::ResidualSpec s;
  const std::string cor = Rcpp::as<std::string>(r["correlation"]);
  const std::string var = Rcpp::as<std::string>(r["variance"]);
  if (cor == "none") s.correlation = mlm::CorrelationKind::none;
  else if (cor == "ar1") s.correlation = mlm::CorrelationKind::ar1;
  else if (cor == "car1") s.correlation = mlm::CorrelationKind::car1;
  else if (cor == "comp_symm") s.correlation = mlm::CorrelationKind::comp_symm;
  else Rcpp::stop("internal: unknown correlation structure '%s'", cor);
  if (var == "none") s.variance = mlm::VarianceKind::none;
  else if (var == "ident") s.variance = mlm::VarianceKind::ident;
  else if (var == "power") s.variance = mlm::VarianceKind::power;
  else if (var == "exp") s.variance = mlm::VarianceKind::exponential;
  else if (var == "const_power") s.variance = mlm::VarianceKind::const_power;
  else Rcpp::stop("internal: unknown variance function '%s'", var);
  Rcpp::IntegerVector order = r["order"];
  NumericVector starts = r["group_start"];
  if (order.size() != n) Rcpp::stop("internal: the residual order must have one entry per observation");
  s.order.resize(n);
  for (mlm::Index k = 0; k < n; ++k) {
    if (order[k] < 1 || order[k] > n) Rcpp::stop("internal: residual order out of range");
    s.order[k] = order[k] - 1;
  }
  s.group_start.assign(starts.begin(), starts.end());
  SEXP time = r["time"], stratum = r["stratum"], cov = r["covariate"];
  if (!Rf_isNull(time)) {
    if (TYPEOF(time) != REALSXP || XLENGTH(time) != n) Rcpp::stop("internal: time must be double of length n");
    s.time = REAL(time);
  }
  if (!Rf_isNull(stratum)) {
    if (TYPEOF(stratum) != INTSXP || XLENGTH(stratum) != n) Rcpp::stop("internal: stratum must be integer of length n");
    s.stratum = INTEGER(stratum);
  }
  s.n_strata = Rcpp::as<int>(r["n_strata"]);
  if (!Rf_isNull(cov)) {
    if (TYPEOF(cov) != REALSXP || XLENGTH(cov) != n) Rcpp::stop("internal: covariate must be double of length n");
    s.covariate = REAL(cov);
  }
  if (s.variance == mlm::VarianceKind::ident && !s.stratum) Rcpp::stop("internal: varIdent needs strata");
  s.covariate_from_fitted = for_fit && r.containsElementNamed("covariate_fitted") &&
                            Rcpp::as<bool>(r["covariate_fitted"]);
  const bool takes_covariate = s.variance == mlm::VarianceKind::power ||
                               s.variance == mlm::VarianceKind::exponential ||
                               s.variance == mlm::VarianceKind::const_power;
  if (s.covariate_from_fitted && !takes_covariate)
    Rcpp::stop("internal: only varPower, varExp and varConstPower take the fitted values as covariate");
  if (takes_covariate && !s.covariate && !s.covariate_from_fitted)
    Rcpp::stop("internal: the variance function needs a covariate");
  return s;
}

mlm::WhiteningMethod method_from(const List& r) {
  const std::string m = Rcpp::as<std::string>(r["method"]);
  if (m == "classes") return mlm::WhiteningMethod::classes;
  if (m == "pass") return mlm::WhiteningMethod::pass;
  return mlm::WhiteningMethod::automatic;
}

}  // namespace

// One call per fit with a residual structure: the optimisation over theta
// and the residual parameters, the solution at the optimum and the
// whitened cross-products there (fitted values: linear_predictor_cpp); for
// a covariate from the fitted values, the covariate of the last fit.
// [[Rcpp::export(rng = false)]]
List lmm_fit_residual_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, int intercept_col,
                          const List& blocks, const NumericVector& theta0, const NumericVector& lower, bool reml,
                          const List& control, const List& residual) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  mlm::ResidualSpec spec = spec_from(residual, d.n, true);
  mlm::StructuredOptions opt;
  opt.lmm = mlm_glue::options_from(control, reml);
  opt.method = method_from(residual);
  Rcpp::LogicalVector free_r = residual["psi_free"];
  std::vector<bool> free(free_r.begin(), free_r.end());
  mlm::StructuredResult res;
  try {
    res = mlm::fit_lmm_structured(d, spec, mlm_glue::templates_from(blocks), Rcpp::as<Eigen::VectorXd>(theta0),
                                  Rcpp::as<Eigen::VectorXd>(lower), Rcpp::as<Eigen::VectorXd>(residual["psi0"]), free,
                                  opt);
  } catch (const std::invalid_argument& e) {
    Rcpp::stop("internal: %s", e.what());
  }
  List out = mlm_glue::result_to_r(res.fit);
  out["psi"] = Rcpp::wrap(res.psi);
  out["log_det_R"] = res.log_det_R;
  out["whitening"] = List::create(Named("classes") = res.classes, Named("n_classes") = res.n_classes,
                                  Named("storage") = res.class_storage);
  if (std::isfinite(res.fit.at.deviance)) out["xp"] = mlm_glue::cross_products_to_r(res.xp);
  if (spec.covariate_from_fitted) {
    out["covariate"] = Rcpp::wrap(res.covariate);
    out["covariate_updates"] = res.covariate_updates;
  }
  return out;
}

// Everything at (theta, psi): deviance, beta, vcov, sigma, b, conditional
// variances, log |R| and the whitened cross-products.
// [[Rcpp::export(rng = false)]]
List lmm_residual_evaluate_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset, int intercept_col,
                               const List& blocks, const List& residual, const NumericVector& theta,
                               const NumericVector& psi, bool reml, bool cond_var) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  mlm::ResidualSpec spec = spec_from(residual, d.n);
  mlm::WhitenedCrossProducts white(d, spec, method_from(residual));
  mlm::LmmEvaluation ev = mlm::evaluate_lmm_structured(white, mlm_glue::templates_from(blocks),
                                                       Rcpp::as<Eigen::VectorXd>(theta),
                                                       Rcpp::as<Eigen::VectorXd>(psi), reml, cond_var);
  mlm::LmmResult as_result;  // for its conversion
  as_result.at = ev;
  as_result.theta = Rcpp::as<Eigen::VectorXd>(theta);
  List out = mlm_glue::result_to_r(as_result);
  if (std::isfinite(ev.deviance)) {
    out["log_det_R"] = white.log_det();
    out["xp"] = mlm_glue::cross_products_to_r(white.xp());
  }
  return out;
}

// The deviance at each column of params = (theta, psi) (profiles,
// derivatives for inference). Columns outside the parameter space give Inf.
// [[Rcpp::export(rng = false)]]
NumericVector lmm_residual_deviance_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset,
                                        int intercept_col, const List& blocks, const List& residual,
                                        const Rcpp::NumericMatrix& params, int n_theta, bool reml) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  mlm::ResidualSpec spec = spec_from(residual, d.n);
  mlm::StructuredDeviance dev(d, spec, mlm_glue::templates_from(blocks), reml, method_from(residual), 1e9);
  NumericVector out(params.ncol());
  const int n_psi = params.nrow() - n_theta;
  for (int k = 0; k < params.ncol(); ++k) {
    Eigen::Map<const Eigen::VectorXd> col(&params(0, k), params.nrow());
    out[k] = dev(col.head(n_theta), col.tail(n_psi));
  }
  return out;
}

// At each column of params = (theta, psi), with one set-up of the whitening
// for all columns (inference: Satterthwaite's derivatives, profiles): rows
// deviance, ld_L2, ld_RX2, pwrss, sigma, log |R| and, with with_vcov, the
// covariance of beta (column-major). Columns outside the parameter space
// have deviance Inf and NaN elsewhere.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix lmm_residual_terms_cpp(const Rcpp::NumericMatrix& X, SEXP y, SEXP weights, SEXP offset,
                                           int intercept_col, const List& blocks, const List& residual,
                                           const Rcpp::NumericMatrix& params, int n_theta, bool reml,
                                           bool with_vcov) {
  mlm::ModelData d = mlm_glue::model_data_from(X, y, weights, offset, intercept_col, blocks);
  mlm::ResidualSpec spec = spec_from(residual, d.n);
  mlm::WhitenedCrossProducts white(d, spec, method_from(residual));
  const std::vector<mlm::CovTemplate> tpl = mlm_glue::templates_from(blocks);
  const int n_psi = params.nrow() - n_theta;
  if (n_theta < 0 || n_psi < 0) Rcpp::stop("internal: params has fewer rows than theta");
  const int p = static_cast<int>(d.p);
  const int rows = 6 + (with_vcov ? p * p : 0);
  Rcpp::NumericMatrix out(rows, params.ncol());
  for (int k = 0; k < params.ncol(); ++k) {
    if ((k & 15) == 15) Rcpp::checkUserInterrupt();
    Eigen::Map<const Eigen::VectorXd> col(&params(0, k), params.nrow());
    const mlm::LmmEvaluation ev =
        mlm::evaluate_lmm_structured(white, tpl, col.head(n_theta), col.tail(n_psi), reml, false);
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
    if (with_vcov) {
      for (int i = 0; i < p * p; ++i) out(6 + i, k) = ev.vcov.data()[i];
    }
  }
  return out;
}
