#include "structured_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "start_values.h"

namespace mlm {

// The deviance two units of the correlation parameter inside the edge
// higher than at the edge by more than this: the likelihood still rises
// towards the limit (by about 1 per unit where it has no maximum; by
// less than 1e-6 where it has levelled off).
constexpr double kStillRising = 1e-3;

StructuredDeviance::StructuredDeviance(const ModelData& data, const ResidualSpec& spec,
                                       const std::vector<CovTemplate>& templates, bool reml, WhiteningMethod method,
                                       double max_class_bytes)
    : white_(data, spec, method, max_class_bytes), dev_(white_.xp(), templates, reml) {}

bool StructuredDeviance::set_psi(const Eigen::VectorXd& psi) {
  if (psi_.size() == psi.size() && psi_ == psi) return psi_ok_;
  dev_.forget();
  psi_ = psi;
  psi_ok_ = white_.update(psi);
  return psi_ok_;
}

double StructuredDeviance::operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi) {
  if (!set_psi(psi)) return std::numeric_limits<double>::infinity();
  return dev_(theta);
}

double StructuredDeviance::value_and_gradient(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi,
                                              Eigen::VectorXd& grad_theta) {
  if (!set_psi(psi)) {
    grad_theta.resize(0);
    return std::numeric_limits<double>::infinity();
  }
  return dev_.value_and_gradient(theta, grad_theta);
}

LmmEvaluation evaluate_lmm_structured(WhitenedCrossProducts& white, const std::vector<CovTemplate>& templates,
                                      const Eigen::VectorXd& theta, const Eigen::VectorXd& psi, bool reml,
                                      bool cond_var) {
  if (!white.update(psi)) {
    LmmEvaluation ev;
    ev.deviance = std::numeric_limits<double>::infinity();
    return ev;
  }
  return evaluate_lmm(white.xp(), templates, theta, reml, cond_var);
}

namespace {

// The optimiser's parameters x = (theta in natural units, free entries of
// psi) and the way back.
struct StructuredCoordinates {
  Eigen::VectorXd scale;  // theta = scale phi
  Eigen::VectorXd psi0;   // fixed entries of psi keep these values
  std::vector<Eigen::Index> free;

  Eigen::Index n_theta() const { return scale.size(); }
  Eigen::Index size() const { return scale.size() + static_cast<Eigen::Index>(free.size()); }
  Eigen::VectorXd theta(const Eigen::VectorXd& x) const { return x.head(n_theta()).cwiseProduct(scale); }
  Eigen::VectorXd psi(const Eigen::VectorXd& x) const {
    Eigen::VectorXd p = psi0;
    for (std::size_t a = 0; a < free.size(); ++a) p[free[a]] = x[n_theta() + static_cast<Eigen::Index>(a)];
    return p;
  }
  Eigen::VectorXd x(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi) const {
    Eigen::VectorXd out(size());
    out.head(n_theta()) = theta.cwiseQuotient(scale);
    for (std::size_t a = 0; a < free.size(); ++a) out[n_theta() + static_cast<Eigen::Index>(a)] = psi[free[a]];
    return out;
  }
};

// The deviance over x, with the analytic gradient in theta and central
// differences in psi (the whitened cross-products change with psi).
// Evaluations for the differences are counted in extra_evals.
Criterion structured_criterion(StructuredDeviance& dev, const StructuredCoordinates& co, double step_rel,
                               const std::function<void()>& check_interrupt, int& extra_evals) {
  auto calls = std::make_shared<int>(0);
  auto interrupt = [check_interrupt, calls] {
    if (check_interrupt && (++*calls & 15) == 0) check_interrupt();
  };
  Criterion c;
  c.value = [&dev, &co, interrupt](const Eigen::VectorXd& x) {
    interrupt();
    return dev(co.theta(x), co.psi(x));
  };
  const Objective value = c.value;
  c.value_and_gradient = [&dev, &co, interrupt, value, step_rel, &extra_evals](const Eigen::VectorXd& x,
                                                                                Eigen::VectorXd& g) {
    interrupt();
    const Eigen::Index nt = co.n_theta(), np = static_cast<Eigen::Index>(co.free.size());
    Eigen::VectorXd gt;
    const double f = dev.value_and_gradient(co.theta(x), co.psi(x), gt);
    if (!std::isfinite(f) || gt.size() != nt) {
      g.resize(0);
      return f;
    }
    g.resize(nt + np);
    g.head(nt) = gt.cwiseProduct(co.scale);
    if (np > 0) {
      Objective of_psi = [&x, &value](const Eigen::VectorXd& p) {
        Eigen::VectorXd xt = x;
        xt.tail(p.size()) = p;
        return value(xt);
      };
      const Eigen::VectorXd unbounded = Eigen::VectorXd::Constant(np, -std::numeric_limits<double>::infinity());
      g.tail(np) = fd_gradient(of_psi, x.tail(np), f, unbounded, step_rel, &extra_evals);
    }
    return f;
  };
  c.exact_gradient = co.free.empty();
  return c;
}

// One fit at the spec's covariate: natural units and moment starting
// values from the whitened cross-products at psi0, then the rules at an
// optimum over (theta, psi) together.
StructuredResult fit_at_covariate(const ModelData& data, const ResidualSpec& spec,
                                  const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                                  const Eigen::VectorXd& lower, const Eigen::VectorXd& psi0,
                                  const std::vector<bool>& psi_free, const StructuredOptions& opt) {
  StructuredDeviance dev(data, spec, templates, opt.lmm.reml, opt.method, opt.max_class_bytes);
  StructuredResult out;
  StructuredCoordinates co;
  co.psi0 = psi0;
  for (Eigen::Index k = 0; k < psi0.size(); ++k)
    if (psi_free[k]) co.free.push_back(k);
  if (!dev.set_psi(psi0)) {
    out.fit.at.deviance = std::numeric_limits<double>::infinity();
    out.fit.warnings.push_back("the residual structure is not defined at its starting values");
    return out;
  }
  co.scale = theta_scales(dev.whitened().xp(), templates);
  const Eigen::VectorXd theta_start =
      opt.lmm.moment_start ? moment_start(dev.whitened().xp(), templates, theta0, co.scale) : theta0;
  const double flops = dev.profiled().system().flops_per_factor();
  int difference_evals = 0;
  const Criterion criterion =
      structured_criterion(dev, co, opt.lmm.optim.step_rel, opt.lmm.check_interrupt, difference_evals);

  ParameterSpace space = theta_space(templates, lower.cwiseQuotient(co.scale));
  const Eigen::Index nt = co.n_theta(), n = co.size();
  space.lower.conservativeResize(n);
  space.lower.tail(n - nt).setConstant(-std::numeric_limits<double>::infinity());
  space.role.resize(n, ParameterRole::other);
  space.below.resize(n);

  OptimumResult o = reach_optimum(criterion, co.x(theta_start, psi0), space, optimum_control(opt.lmm, flops, n));
  out.fit.optim = o.descent;
  out.fit.optim.evals += difference_evals;
  out.fit.gradient = o.gradient;
  out.fit.hessian = o.hessian;
  out.fit.warnings = o.warnings;
  out.fit.theta = co.theta(o.x);
  out.fit.theta_scale = co.scale;
  out.psi = co.psi(o.x);
  // At the edge, the likelihood either still rises towards the limit (no
  // maximum: the deviance two units inside is higher by about 2) or has
  // levelled off (a random intercept takes over from compound symmetry:
  // the same likelihood all the way out, nlme's interior optimum).
  if (correlation_at_limit(spec, out.psi, psi_free)) {
    Eigen::VectorXd inside = o.x;
    inside[nt] -= std::copysign(2.0, inside[nt]);
    out.correlation_at_limit = criterion.value(inside) > o.f + kStillRising;
  }
  out.classes = dev.whitened().uses_classes();
  out.n_classes = dev.whitened().n_classes();
  out.class_storage = dev.whitened().class_storage();
  out.fit.at = evaluate_lmm_structured(dev.whitened(), templates, out.fit.theta, out.psi, opt.lmm.reml, false);
  if (!std::isfinite(out.fit.at.deviance)) {
    out.fit.warnings.push_back("the deviance is not finite at the reported optimum");
    return out;
  }
  out.log_det_R = dev.whitened().log_det();
  out.xp = dev.whitened().xp();
  return out;
}

double largest_relative_change(const Eigen::VectorXd& before, const Eigen::VectorXd& after) {
  double m = 0.0;
  for (Eigen::Index i = 0; i < after.size(); ++i)
    m = std::max(m, std::fabs(before[i] - after[i]) / (after[i] == 0.0 ? 1.0 : std::fabs(after[i])));
  return m;
}

// nlme's iteration for a variance covariate that is the fitted values: a
// fit with the covariate held, the covariate set to that fit's fitted
// values X beta + Z b, again, until the parameters change by less than the
// tolerance. The first covariate comes from the fit without the variance
// function (its parameter at 0 gives unit multipliers whatever the
// covariate).
StructuredResult fit_with_fitted_covariate(const ModelData& data, const ResidualSpec& spec,
                                           const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                                           const Eigen::VectorXd& lower, const Eigen::VectorXd& psi0,
                                           const std::vector<bool>& psi_free, const StructuredOptions& opt) {
  std::vector<double> covariate(data.n, 1.0);
  ResidualSpec at = spec;
  at.covariate_from_fitted = false;
  at.covariate = covariate.data();
  // The first fit holds the variance function with its power (or
  // exponent) at 0: the same multiplier for every observation.
  const int k_var = spec.n_correlation_parameters();  // the variance function's first parameter
  const int k_power = spec.variance == VarianceKind::const_power ? k_var + 1 : k_var;
  Eigen::VectorXd psi_unit = psi0;
  psi_unit[k_power] = 0.0;
  std::vector<bool> free_unit = psi_free;
  for (int k = k_var; k < k_var + spec.n_variance_parameters(); ++k) free_unit[k] = false;
  StructuredResult res = fit_at_covariate(data, at, templates, theta0, lower, psi_unit, free_unit, opt);
  int evals = res.fit.optim.evals;

  StructuredOptions warm = opt;
  warm.lmm.moment_start = false;
  Eigen::VectorXd psi_start = psi0, theta_start = res.fit.theta;
  for (Eigen::Index k = 0; k < k_var; ++k) psi_start[k] = res.psi[k];  // the correlation's
  Eigen::VectorXd before(theta_start.size() + psi_start.size());
  before << theta_start, psi_start;
  for (int update = 0; std::isfinite(res.fit.at.deviance); ++update) {
    if (update == opt.max_covariate_updates) {
      res.fit.warnings.push_back("the variance covariate (the fitted values) did not settle in " +
                                 std::to_string(update) + " updates");
      break;
    }
    linear_predictor(data, res.fit.at.beta, res.fit.at.b, covariate.data());
    res = fit_at_covariate(data, at, templates, theta_start, lower, psi_start, psi_free, warm);
    if (!std::isfinite(res.fit.at.deviance)) break;
    evals += res.fit.optim.evals;
    res.fit.optim.evals = evals;
    res.covariate_updates = update + 1;
    Eigen::VectorXd after(before.size());
    after << res.fit.theta, res.psi;
    const bool settled = largest_relative_change(before, after) < opt.covariate_tolerance;
    before = after;
    theta_start = res.fit.theta;
    psi_start = res.psi;
    if (settled) break;
  }
  res.covariate = covariate;
  return res;
}

}  // namespace

StructuredResult fit_lmm_structured(const ModelData& data, const ResidualSpec& spec,
                                    const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                                    const Eigen::VectorXd& lower, const Eigen::VectorXd& psi0,
                                    const std::vector<bool>& psi_free, const StructuredOptions& opt) {
  if (spec.covariate_from_fitted)
    return fit_with_fitted_covariate(data, spec, templates, theta0, lower, psi0, psi_free, opt);
  return fit_at_covariate(data, spec, templates, theta0, lower, psi0, psi_free, opt);
}

}  // namespace mlm
