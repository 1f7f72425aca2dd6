#include "lmm_fit.h"

#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

#include "start_values.h"

namespace mlm {

namespace {

constexpr double kLog2Pi = 1.8378770664093454836;

}  // namespace

ProfiledDeviance::ProfiledDeviance(const CrossProducts& xp, const std::vector<CovTemplate>& templates, bool reml)
    : xp_(xp), sys_(xp, templates), reml_(reml) {}

double ProfiledDeviance::from_factor() const {
  const double n_eff = static_cast<double>(reml_ ? xp_.n - xp_.p : xp_.n);
  double dev = sys_.log_det_L() + n_eff * (1.0 + kLog2Pi + std::log(sys_.pwrss() / n_eff)) - xp_.sum_log_weights;
  if (reml_) dev += sys_.log_det_RX();
  return dev;
}

double ProfiledDeviance::operator()(const Eigen::VectorXd& theta) {
  // The line search asks for the value and then the gradient at the same
  // point: keep the factorisation rather than repeat it.
  if (last_theta_.size() == theta.size() && last_theta_ == theta && sys_.holds_factor()) return last_value_;
  last_theta_.resize(0);
  if (!sys_.factor(theta)) return std::numeric_limits<double>::infinity();
  double d = from_factor();
  if (!std::isfinite(d)) d = std::numeric_limits<double>::infinity();
  last_theta_ = theta;
  last_value_ = d;
  return d;
}

double ProfiledDeviance::value_and_gradient(const Eigen::VectorXd& theta, Eigen::VectorXd& gradient) {
  const double d = (*this)(theta);
  if (!std::isfinite(d)) {
    gradient.resize(0);
    return d;
  }
  if (keep_at_gradients_) {
    kept_ = evaluation(false);
    kept_theta_ = theta;
  }
  gradient = sys_.deviance_gradient(reml_, static_cast<int>(theta.size()));
  return d;
}

LmmEvaluation ProfiledDeviance::evaluation(bool cond_var) {
  LmmEvaluation ev;
  ev.deviance = from_factor();
  ev.ld_L2 = sys_.log_det_L();
  ev.ld_RX2 = sys_.log_det_RX();
  ev.pwrss = sys_.pwrss();
  const double n_eff = static_cast<double>(reml_ ? xp_.n - xp_.p : xp_.n);
  ev.sigma = std::sqrt(ev.pwrss / n_eff);
  Solution sol = sys_.solve();
  ev.beta = sol.beta;
  ev.vcov = uncentre_vcov(xp_, sys_.unscaled_vcov() * (ev.sigma * ev.sigma));
  // A linear model's cross-products centre y too: its mean goes to the intercept.
  uncentre(xp_, ev.beta, xp_.center.size() > 0 ? xp_.center[xp_.p] : 0.0);
  ev.b = std::move(sol.b);
  ev.u = std::move(sol.u);
  if (cond_var) {
    ev.cond_var = sys_.unscaled_cond_var();
    for (auto& cv : ev.cond_var) cv *= ev.sigma * ev.sigma;
  }
  return ev;
}

const LmmEvaluation* ProfiledDeviance::kept_evaluation(const Eigen::VectorXd& theta) const {
  return kept_theta_.size() == theta.size() && kept_theta_ == theta ? &kept_ : nullptr;
}

LmmEvaluation evaluate_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates,
                           const Eigen::VectorXd& theta, bool reml, bool cond_var) {
  ProfiledDeviance dev(xp, templates, reml);
  const double d = dev(theta);
  if (!std::isfinite(d)) {
    LmmEvaluation ev;
    ev.deviance = std::numeric_limits<double>::infinity();
    return ev;
  }
  return dev.evaluation(cond_var);
}

ParameterSpace theta_space(const std::vector<CovTemplate>& templates, const Eigen::VectorXd& lower) {
  ParameterSpace space;
  const Eigen::Index nt = lower.size();
  space.lower = lower;
  space.role.assign(nt, ParameterRole::off_diagonal);
  space.below.assign(nt, {});
  for (const CovTemplate& tp : templates)
    for (int c = 0; c < tp.q; ++c) {
      const int k = tp.theta_index[c + c * tp.q];
      if (k < 0 || k >= nt) continue;
      space.role[k] = ParameterRole::diagonal;
      for (int r = c + 1; r < tp.q; ++r) {
        const int e = tp.theta_index[r + c * tp.q];
        if (e >= 0 && e < nt) space.below[k].push_back(e);
      }
    }
  return space;
}

OptimumControl optimum_control(const LmmOptions& opt, double flops_per_evaluation, Eigen::Index n_params) {
  OptimumControl c;
  c.optim = opt.optim;
  c.boundary_tol = opt.boundary_tol;
  c.max_hessian_params = opt.max_hessian_params;
  // The polish costs about 3 (n + 1) evaluations: skipped where that is
  // more than the budget (deterministic, unlike a time limit).
  c.polish = static_cast<double>(n_params + 1) * 3.0 * flops_per_evaluation <= opt.polish_flops;
  // Small data, cheap evaluations: the data whose deviance has several basins.
  c.thorough = flops_per_evaluation < 1e7;
  return c;
}

RayShape ray_shape(const Objective& deviance, const Eigen::VectorXd& phi, double f_min) {
  const double size = phi.size() ? phi.cwiseAbs().maxCoeff() : 0.0;
  if (!std::isfinite(f_min) || !(size > 0.0)) return RayShape::rising;
  const double far = deviance(phi * std::max(10.0, 10.0 / size));
  const double tol = std::max(1e-6, criterion_noise(f_min));
  if (std::isfinite(far) && far < f_min - tol) return RayShape::falling;
  if (std::isfinite(far) && far <= f_min + tol) return RayShape::flat;
  return RayShape::rising;
}

namespace {

// A user interrupt is checked between evaluations: every one when an
// evaluation is costly (so that Ctrl-C answers within one evaluation),
// every 16th when it takes microseconds.
std::function<void()> interrupt_checker(const std::function<void()>& check, double flops_per_evaluation) {
  if (!check) return [] {};
  const int every = flops_per_evaluation > 1e6 ? 1 : 16;
  auto calls = std::make_shared<int>(0);
  return [check, every, calls] {
    if (++*calls % every == 0) check();
  };
}

// The profiled deviance as a criterion of phi = theta / scale (natural
// units, see theta_scales), so that predictors on any scale give the same
// path, with its analytic gradient.
Criterion natural_units_criterion(ProfiledDeviance& dev, const Eigen::VectorXd& scale,
                                  const std::function<void()>& interrupt) {
  Criterion c;
  c.value = [&dev, scale, interrupt](const Eigen::VectorXd& phi) {
    interrupt();
    return dev(phi.cwiseProduct(scale));
  };
  c.value_and_gradient = [&dev, scale, interrupt](const Eigen::VectorXd& phi, Eigen::VectorXd& g) {
    interrupt();
    const double v = dev.value_and_gradient(phi.cwiseProduct(scale), g);
    if (g.size() == scale.size()) g = g.cwiseProduct(scale);
    return v;
  };
  return c;
}

// The optimum in natural units back to theta: theta = scale phi,
// d/dtheta = (d/dphi) / scale.
void to_theta_units(const Eigen::VectorXd& scale, OptimumResult& o) {
  const Eigen::VectorXd inv = scale.cwiseInverse();
  const Eigen::Index nt = scale.size();
  o.x = o.x.cwiseProduct(scale);
  o.descent.x = o.x;
  if (o.descent.gradient.size() == nt) o.descent.gradient = o.descent.gradient.cwiseProduct(inv);
  if (o.gradient.size() == nt) o.gradient = o.gradient.cwiseProduct(inv);
  if (o.hessian.rows() == nt) o.hessian = inv.asDiagonal() * o.hessian * inv.asDiagonal();
}

}  // namespace

LmmResult fit_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                  const Eigen::VectorXd& lower, const LmmOptions& opt) {
  ProfiledDeviance dev(xp, templates, opt.reml);
  const double flops = dev.system().flops_per_factor();
  const Eigen::VectorXd scale = theta_scales(xp, templates);
  if (scale.size() != theta0.size()) throw std::invalid_argument("theta0 does not match the covariance templates");
  const Criterion criterion = natural_units_criterion(dev, scale, interrupt_checker(opt.check_interrupt, flops));
  const ParameterSpace space = theta_space(templates, lower.cwiseQuotient(scale));
  const Eigen::VectorXd start =
      (opt.moment_start ? moment_start(xp, templates, theta0, scale) : theta0).cwiseQuotient(scale);

  OptimumControl control = optimum_control(opt, flops, theta0.size());
  // Where the Schur complement is dense, a gradient costs about two
  // factorisations more than the value (the complement's inverse and the
  // sums over its entries): measuring the curvature at the start (one value
  // per parameter) saves more than it costs. Elsewhere the longer path from
  // steepest descent is cheaper (nested designs: fewer evaluations).
  control.optim.costly_gradient = xp.m > 0 && dev.system().dense_schur();
  if (control.optim.costly_gradient) dev.keep_evaluations_at_gradients();
  OptimumResult o = reach_optimum(criterion, start, space, control);
  LmmResult res;
  res.ray = ray_shape(criterion.value, o.x, o.f);
  ++o.descent.evals;
  to_theta_units(scale, o);
  res.theta = o.x;
  res.theta_scale = scale;
  res.optim = o.descent;
  res.gradient = o.gradient;
  res.hessian = o.hessian;
  res.warnings = o.warnings;
  // The estimates at the optimum; the conditional variances of the random
  // effects are left to the methods that ask for them (evaluate_lmm()).
  if (const LmmEvaluation* kept = dev.kept_evaluation(res.theta)) {
    res.at = *kept;
    return res;
  }
  if (!std::isfinite(dev(res.theta))) {
    res.at.deviance = std::numeric_limits<double>::infinity();
    res.warnings.push_back("the deviance is not finite at the reported optimum");
    return res;
  }
  res.at = dev.evaluation(false);
  return res;
}

void linear_predictor(const ModelData& d, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& b,
                      double* eta) {
  const Index n = d.n;
  for (Index i = 0; i < n; ++i) eta[i] = d.offset ? d.offset[i] : 0.0;
  for (int c = 0; c < d.p; ++c) {
    const double* x = d.X + static_cast<Index>(c) * n;
    const double bc = beta[c];
    for (Index i = 0; i < n; ++i) eta[i] += x[i] * bc;
  }
  for (std::size_t f = 0; f < d.blocks.size(); ++f) {
    const FactorBlock& F = d.blocks[f];
    for (int a = 0; a < F.q; ++a) {
      const double* col = F.cols[a];
      for (Index i = 0; i < n; ++i) {
        const double v = b[f](a, F.codes[i] - F.code_base);
        eta[i] += col ? col[i] * v : v;
      }
    }
  }
}

}  // namespace mlm
