// Conversions between R objects and engine structures (glue_convert.h):
// the model spec into the engine's model, stored cross-products both ways,
// control settings into options, and engine results into R lists.
#include "glue_convert.h"

#include <cmath>
#include <limits>
#include <string>

using Rcpp::IntegerVector;
using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

namespace mlm_glue {

namespace {

const double* optional_vector(SEXP x, R_xlen_t n, const char* what) {
  if (Rf_isNull(x)) return nullptr;
  if (TYPEOF(x) != REALSXP || XLENGTH(x) != n) Rcpp::stop("internal: '%s' must be a double vector of length n", what);
  return REAL(x);
}

// The templates of the spec's blocks; every index refers inside theta.
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

// The rows of the spec: X, y, weights, offset and, per block, the grouping
// codes and the columns of Z (NULL: ones; an integer: a column of X; a
// double vector).
void rows_from(const List& rows, const List& blocks, int intercept_col, SpecModel& m) {
  mlm::ModelData& d = m.data;
  SEXP X = rows["X"];
  if (TYPEOF(X) != REALSXP || !Rf_isMatrix(X)) Rcpp::stop("internal: X must be a double matrix");
  d.n = Rf_nrows(X);
  d.p = Rf_ncols(X);
  d.X = REAL(X);
  d.y = optional_vector(rows["y"], d.n, "y");
  d.weights = optional_vector(rows["weights"], d.n, "weights");
  d.offset = optional_vector(rows["offset"], d.n, "offset");
  d.intercept_col = intercept_col - 1;
  if (intercept_col < 0 || intercept_col > d.p) Rcpp::stop("internal: intercept column out of range");
  List groups = rows["groups"], z = rows["z"];
  if (groups.size() != blocks.size() || z.size() != blocks.size())
    Rcpp::stop("internal: the rows need grouping codes and columns for every block");
  for (R_xlen_t f = 0; f < blocks.size(); ++f) {
    List b = blocks[f];
    mlm::FactorBlock F;
    SEXP codes = groups[f];
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
    F.cov = m.templates[f];
    F.q = F.cov.q;
    List cols = z[f];
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
  m.has_rows = true;
}

// A named element of a list, or NULL when the list has no such element.
SEXP element_or_null(const List& x, const char* name) {
  return x.containsElementNamed(name) ? static_cast<SEXP>(x[name]) : R_NilValue;
}

NumericVector index_vector(const std::vector<mlm::Index>& v) { return NumericVector(v.begin(), v.end()); }
std::vector<mlm::Index> index_from(const NumericVector& v) { return std::vector<mlm::Index>(v.begin(), v.end()); }

// q x (q k) blocks as a q x q x k array.
NumericVector as_array(const Eigen::MatrixXd& m) {
  const int q = static_cast<int>(m.rows());
  NumericVector out(m.data(), m.data() + m.size());
  out.attr("dim") = IntegerVector::create(q, q, q > 0 ? static_cast<int>(m.cols() / q) : 0);
  return out;
}

List matrices_to_r(const std::vector<Eigen::MatrixXd>& ms) {
  List out(ms.size());
  for (std::size_t f = 0; f < ms.size(); ++f) out[f] = Rcpp::wrap(ms[f]);
  return out;
}

void optim_options_from(const List& control, mlm::OptimControl& o) {
  o.max_evals = Rcpp::as<int>(control["max_evals"]);
  o.f_tol = Rcpp::as<double>(control["f_tol"]);
  o.step_rel = Rcpp::as<double>(control["step_rel"]);
}

const char* ray_name(mlm::RayShape r) {
  return r == mlm::RayShape::falling ? "falling" : r == mlm::RayShape::flat ? "flat" : "rising";
}

List optim_to_r(const mlm::OptimResult& o) {
  return List::create(Named("evals") = o.evals, Named("iterations") = o.iterations,
                      Named("converged") = o.converged, Named("message") = o.message, Named("f") = o.f);
}

}  // namespace

SpecModel model_from_spec(const List& spec, Rows rows_wanted) {
  SpecModel m;
  List theta = spec["theta"];
  m.theta_start = Rcpp::as<Eigen::VectorXd>(theta["start"]);
  m.theta_lower = Rcpp::as<Eigen::VectorXd>(theta["lower"]);
  if (m.theta_start.size() != m.theta_lower.size()) Rcpp::stop("internal: theta start and lower differ in length");
  List re = spec["re"];
  List blocks = re["blocks"];
  m.templates = templates_from(blocks, m.theta_start.size());
  SEXP rows = element_or_null(spec, "rows");
  if (Rf_isNull(rows)) {
    if (rows_wanted == Rows::required) Rcpp::stop("internal: the spec has no rows");
  } else if (rows_wanted != Rows::none) {
    List fixed = spec["fixed"];
    rows_from(List(rows), blocks, Rcpp::as<int>(fixed["intercept_col"]), m);
  }
  m.data.check_interrupt = [] { Rcpp::checkUserInterrupt(); };
  return m;
}

void check_theta(const SpecModel& m, const Eigen::VectorXd& theta) {
  if (theta.size() != m.theta_start.size())
    Rcpp::stop("internal: theta has %d values where the templates refer to %d (outside theta)",
               static_cast<int>(theta.size()), static_cast<int>(m.theta_start.size()));
}

Eigen::VectorXd vector_or_empty(SEXP x) {
  if (Rf_isNull(x)) return Eigen::VectorXd();
  return Rcpp::as<Eigen::VectorXd>(x);
}

mlm::GlmFamily family_from_spec(const List& spec) {
  SEXP f_sexp = element_or_null(spec, "family");
  if (Rf_isNull(f_sexp)) Rcpp::stop("internal: the spec has no family");
  List f(f_sexp);
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
  const double size = Rcpp::as<double>(f["nb_size"]);
  fam.nb_size = std::isnan(size) ? 1.0 : size;  // NA: estimated (the engine sets it)
  List c = f["constants"];
  fam.aic_const = Rcpp::as<double>(c["aic_const"]);
  fam.sum_weights = Rcpp::as<double>(c["sum_weights"]);
  fam.sum_wt_log_y = Rcpp::as<double>(c["sum_wt_log_y"]);
  fam.eta_mean = Rcpp::as<double>(c["eta_mean"]);
  return fam;
}

// spec$residual$engine: list(correlation = "none" | "ar1" | "car1" |
// "comp_symm", variance = "none" | "ident" | "power" | "exp", order (1-based
// observation numbers in group order), group_start (0-based, n_groups + 1),
// time (double or NULL), stratum (0-based integer or NULL), n_strata,
// covariate (double or NULL), psi0, psi_free, method = "auto" | "classes" |
// "pass").
mlm::ResidualSpec residual_from_spec(const List& spec, mlm::Index n, bool for_fit) {
  SEXP res = element_or_null(spec, "residual");
  if (Rf_isNull(res)) Rcpp::stop("internal: the spec has no residual structure");
  List r = List(res)["engine"];
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
  IntegerVector order = r["order"];
  NumericVector starts = r["group_start"];
  if (order.size() != n) Rcpp::stop("internal: the residual order must have one entry per observation");
  s.order.resize(n);
  for (mlm::Index k = 0; k < n; ++k) {
    if (order[k] < 1 || order[k] > n) Rcpp::stop("internal: residual order out of range");
    s.order[k] = order[k] - 1;
  }
  s.group_start.assign(starts.begin(), starts.end());
  if (s.group_start.size() < 1 || s.group_start.front() != 0 || s.group_start.back() != n)
    Rcpp::stop("internal: residual groups must cover the observations");
  for (std::size_t g = 1; g < s.group_start.size(); ++g)
    if (s.group_start[g] < s.group_start[g - 1]) Rcpp::stop("internal: residual group starts must increase");
  SEXP time = r["time"], stratum = r["stratum"], cov = r["covariate"];
  if (!Rf_isNull(time)) {
    if (TYPEOF(time) != REALSXP || XLENGTH(time) != n) Rcpp::stop("internal: time must be double of length n");
    s.time = REAL(time);
  }
  s.n_strata = Rcpp::as<int>(r["n_strata"]);
  if (!Rf_isNull(stratum)) {
    if (TYPEOF(stratum) != INTSXP || XLENGTH(stratum) != n) Rcpp::stop("internal: stratum must be integer of length n");
    s.stratum = INTEGER(stratum);
    for (mlm::Index i = 0; i < n; ++i)
      if (s.stratum[i] < 0 || s.stratum[i] >= s.n_strata) Rcpp::stop("internal: stratum out of range");
  }
  if (!Rf_isNull(cov)) {
    if (TYPEOF(cov) != REALSXP || XLENGTH(cov) != n) Rcpp::stop("internal: covariate must be double of length n");
    s.covariate = REAL(cov);
  }
  if (s.variance == mlm::VarianceKind::ident && !s.stratum) Rcpp::stop("internal: varIdent needs strata");
  // A covariate of fitted values: a fit iterates it; every other call uses
  // the covariate of the last fit.
  s.covariate_from_fitted = for_fit && r.containsElementNamed("covariate_fitted") &&
                            Rcpp::as<bool>(r["covariate_fitted"]);
  const bool takes_covariate = s.variance == mlm::VarianceKind::power ||
                               s.variance == mlm::VarianceKind::exponential ||
                               s.variance == mlm::VarianceKind::const_power;
  if (s.covariate_from_fitted && !takes_covariate)
    Rcpp::stop("internal: only varPower, varExp and varConstPower take the fitted values as covariate");
  if (takes_covariate && !s.covariate && !s.covariate_from_fitted)
    Rcpp::stop("internal: the variance function needs a covariate");
  if (static_cast<int>(residual_start(spec).size()) != s.n_parameters())
    Rcpp::stop("internal: psi0 must have one value per residual parameter");
  return s;
}

mlm::WhiteningMethod whitening_method(const List& spec) {
  List r = List(spec["residual"])["engine"];
  const std::string m = Rcpp::as<std::string>(r["method"]);
  if (m == "classes") return mlm::WhiteningMethod::classes;
  if (m == "pass") return mlm::WhiteningMethod::pass;
  return mlm::WhiteningMethod::automatic;
}

Eigen::VectorXd residual_start(const List& spec) {
  List r = List(spec["residual"])["engine"];
  return Rcpp::as<Eigen::VectorXd>(r["psi0"]);
}

std::vector<bool> residual_free(const List& spec) {
  List r = List(spec["residual"])["engine"];
  Rcpp::LogicalVector free = r["psi_free"];
  return std::vector<bool>(free.begin(), free.end());
}

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

mlm::CrossProducts cross_products_from_r(const List& r, const SpecModel& m) {
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
  const std::vector<mlm::CovTemplate>& tpl = m.templates;
  bool ok = tpl.size() == xp.sec_levels.size() + 1 && tpl[0].q == xp.q1;
  for (std::size_t f = 1; ok && f < tpl.size(); ++f) ok = tpl[f].q == xp.sec_q[f - 1];
  if (!ok) Rcpp::stop("internal: the blocks do not match the stored cross-products");
  return xp;
}

mlm::LmmOptions lmm_options_from(const List& control, bool reml) {
  mlm::LmmOptions o;
  o.reml = reml;
  optim_options_from(control, o.optim);
  o.boundary_tol = Rcpp::as<double>(control["boundary_tol"]);
  // The finite-difference Newton polish after the quasi-Newton optimiser
  // costs more evaluations than the optimisation itself when it starts at
  // the original estimates; bootstrap refits skip it (polish = FALSE).
  if (control.containsElementNamed("polish") && !Rcpp::as<bool>(control["polish"])) o.max_hessian_params = 0;
  o.check_interrupt = [] { Rcpp::checkUserInterrupt(); };
  return o;
}

mlm::GlmmOptions glmm_options_from(const List& control, int n_agq) {
  mlm::GlmmOptions o;
  o.n_agq = n_agq;
  optim_options_from(control, o.optim);
  o.boundary_tol = Rcpp::as<double>(control["boundary_tol"]);
  o.pirls.tol = Rcpp::as<double>(control["pirls_tol"]);
  o.pirls.max_iter = Rcpp::as<int>(control["pirls_max_iter"]);
  o.hessian = Rcpp::as<bool>(control["hessian"]);
  o.cond_var = Rcpp::as<bool>(control["cond_var"]);
  o.check_interrupt = [] { Rcpp::checkUserInterrupt(); };
  return o;
}

List evaluation_to_r(const mlm::LmmEvaluation& ev) {
  List cv(ev.cond_var.size());
  for (std::size_t f = 0; f < ev.cond_var.size(); ++f) cv[f] = as_array(ev.cond_var[f]);
  return List::create(Named("deviance") = ev.deviance, Named("ld_L2") = ev.ld_L2, Named("ld_RX2") = ev.ld_RX2,
                      Named("pwrss") = ev.pwrss, Named("sigma") = ev.sigma, Named("beta") = Rcpp::wrap(ev.beta),
                      Named("vcov") = Rcpp::wrap(ev.vcov), Named("b") = matrices_to_r(ev.b), Named("cond_var") = cv);
}

List lmm_result_to_r(const mlm::LmmResult& res) {
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

// Everything a glmm() fit needs from the engine's answer, at the optimum:
// the means, the working weights, the sums of squares and deviance
// residuals, sigma (Gamma: from the Pearson residuals and |u|^2, as glmer),
// -2 conditional log-likelihood, the criterion (for the Laplace
// approximation and nAGQ = 0 recomputed from the pieces at the optimum, as
// glmer reports it) and the conditional covariances in units of the response.
List glmm_result_to_r(const mlm::GlmmResult& res, const SpecModel& m, const mlm::GlmFamily& fam, int n_agq) {
  if (!res.ok) return List::create(Named("error") = res.error);
  const mlm::ModelData& d = m.data;
  NumericVector mu(d.n), working_weights(d.n);
  double wrss = 0.0, dev = 0.0;
  for (mlm::Index i = 0; i < d.n; ++i) {
    const mlm::MeanAt at = fam.mean(res.eta[i]);
    const double pw = d.weights ? d.weights[i] : 1.0;
    const double v = fam.variance(at);
    mu[i] = at.mu;
    working_weights[i] = pw * at.mu_eta * at.mu_eta / v;
    wrss += pw * (d.y[i] - at.mu) * (d.y[i] - at.mu) / v;
    dev += fam.dev_resid(d.y[i], at, pw);
  }
  const double ussq = res.at.ussq;
  const double sigma = fam.has_scale() ? std::sqrt((wrss + ussq) / static_cast<double>(d.n)) : 1.0;
  const double aic = fam.aic(dev);
  List cv(res.cond_var.size());
  for (std::size_t f = 0; f < res.cond_var.size(); ++f) cv[f] = as_array(res.cond_var[f] * (sigma * sigma));
  List out = List::create(
      Named("theta") = Rcpp::wrap(res.theta), Named("beta") = Rcpp::wrap(res.beta), Named("u") = matrices_to_r(res.u),
      Named("b") = matrices_to_r(res.b), Named("cond_var") = cv, Named("eta") = Rcpp::wrap(res.eta),
      Named("mu") = mu, Named("working_weights") = working_weights, Named("sigma") = sigma,
      Named("vcov_unscaled") = Rcpp::wrap(res.vcov_unscaled), Named("vcov_hessian") = Rcpp::wrap(res.vcov_hessian),
      Named("hessian") = Rcpp::wrap(res.hessian), Named("gradient") = Rcpp::wrap(res.gradient));
  out["devcomp"] = List::create(
      Named("criterion") = n_agq > 1 ? res.criterion : res.at.ldL2 + ussq + aic, Named("ld_L2") = res.at.ldL2,
      Named("ld_RX2") = res.at.ldRX2, Named("pwrss") = wrss + ussq, Named("n") = static_cast<double>(d.n),
      Named("p") = d.p, Named("sum_dev_resid") = res.at.dev, Named("ussq") = ussq, Named("wrss") = wrss,
      Named("aic") = aic);
  out["optinfo"] = List::create(Named("evals") = res.evals, Named("pirls_passes") = res.pirls_passes,
                                Named("stage1") = optim_to_r(res.stage1), Named("stage2") = optim_to_r(res.stage2),
                                Named("stage1_gradient") = res.stage1_analytic ? "analytic" : "differences",
                                Named("warnings") = Rcpp::wrap(res.warnings));
  return out;
}

NumericVector fitted_values(const SpecModel& m, const mlm::LmmEvaluation& ev) {
  NumericVector fitted(m.data.n);
  mlm::linear_predictor(m.data, ev.beta, ev.b, fitted.begin());
  return fitted;
}

std::vector<Eigen::MatrixXd> relative_factors(const SpecModel& m, const Eigen::VectorXd& theta) {
  check_theta(m, theta);
  std::vector<Eigen::MatrixXd> T;
  for (const mlm::CovTemplate& t : m.templates) T.push_back(Eigen::MatrixXd::Zero(t.q, t.q));
  mlm::fill_relative_factors(m.templates, theta, T);
  return T;
}

}  // namespace mlm_glue
