#include "lmm_fit.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "start_values.h"

namespace mlm {

namespace {

constexpr double kLog2Pi = 1.8378770664093454836;

// Undo the centring of the cross-products: beta_c keeps every slope and
// moves the intercept by the means, beta = M beta_c + a.
void uncentre(const CrossProducts& xp, Eigen::VectorXd& beta, Eigen::MatrixXd* vcov) {
  if (xp.center.size() == 0) return;
  const int p = xp.p, ic = xp.intercept_col;
  double shift = xp.center[p];
  for (int c = 0; c < p; ++c)
    if (c != ic) shift -= xp.center[c] * beta[c];
  beta[ic] += shift;
  if (vcov) {
    Eigen::MatrixXd M = Eigen::MatrixXd::Identity(p, p);
    for (int c = 0; c < p; ++c)
      if (c != ic) M(ic, c) = -xp.center[c];
    *vcov = M * (*vcov) * M.transpose();
  }
}

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
  gradient = sys_.deviance_gradient(reml_, static_cast<int>(theta.size()));
  return d;
}

static LmmEvaluation evaluation_from(ProfiledDeviance& dev, const CrossProducts& xp, bool reml, bool cond_var) {
  BlockedCholesky& sys = dev.system();
  LmmEvaluation ev;
  ev.deviance = dev.from_factor();
  ev.ld_L2 = sys.log_det_L();
  ev.ld_RX2 = sys.log_det_RX();
  ev.pwrss = sys.pwrss();
  const double n_eff = static_cast<double>(reml ? xp.n - xp.p : xp.n);
  ev.sigma = std::sqrt(ev.pwrss / n_eff);
  Solution sol = sys.solve();
  ev.beta = sol.beta;
  ev.vcov = sys.unscaled_vcov() * (ev.sigma * ev.sigma);
  uncentre(xp, ev.beta, &ev.vcov);
  ev.b = std::move(sol.b);
  ev.u = std::move(sol.u);
  if (cond_var) {
    ev.cond_var = sys.unscaled_cond_var();
    for (auto& cv : ev.cond_var) cv *= ev.sigma * ev.sigma;
  }
  return ev;
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
  return evaluation_from(dev, xp, reml, cond_var);
}

LmmResult fit_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                  const Eigen::VectorXd& lower_theta, const LmmOptions& opt) {
  ProfiledDeviance dev(xp, templates, opt.reml);
  // A user interrupt is checked between evaluations: every one when an
  // evaluation is costly (so that Ctrl-C answers within one evaluation),
  // every 16th when it takes microseconds.
  const int check_every = dev.system().flops_per_factor() > 1e6 ? 1 : 16;
  int calls = 0;
  auto interrupt = [&opt, &calls, check_every] {
    if (opt.check_interrupt && ++calls % check_every == 0) opt.check_interrupt();
  };
  // The optimiser works on phi = theta / scale (natural units, see
  // theta_scales), so that predictors on any scale give the same path.
  const Eigen::VectorXd scale = theta_scales(xp, templates);
  if (scale.size() != theta0.size()) throw std::invalid_argument("theta0 does not match the covariance templates");
  const Eigen::VectorXd lower = lower_theta.cwiseQuotient(scale);
  const Eigen::VectorXd start =
      (opt.moment_start ? moment_start(xp, templates, theta0, scale) : theta0).cwiseQuotient(scale);
  // The deviance relative to its value at the start: the units of y add a
  // constant to the deviance, which must not change the convergence test.
  double shift = dev(start.cwiseMax(lower).cwiseProduct(scale));
  if (!std::isfinite(shift)) shift = 0.0;
  Objective f = [&](const Eigen::VectorXd& ph) {
    interrupt();
    return dev(ph.cwiseProduct(scale)) - shift;
  };
  ObjectiveWithGradient fg = [&](const Eigen::VectorXd& ph, Eigen::VectorXd& g) {
    interrupt();
    const double v = dev.value_and_gradient(ph.cwiseProduct(scale), g);
    if (g.size() == scale.size()) g = g.cwiseProduct(scale);
    return v - shift;
  };
  LmmResult res;
  res.optim = minimize_bounded(f, start, lower, opt.optim, fg);
  Eigen::VectorXd theta = res.optim.x;  // phi until the end
  double fmin = res.optim.f;
  const Eigen::Index nt = theta.size();
  int evals = 0;

  // Boundary: a diagonal entry of T that the optimiser left just above zero
  // is set to zero when that does not raise the deviance (a singular fit).
  auto settle_boundary = [&] {
    for (Eigen::Index i = 0; i < nt; ++i) {
      if (lower[i] != 0.0 || theta[i] <= 0.0 || theta[i] >= opt.boundary_tol) continue;
      Eigen::VectorXd t = theta;
      t[i] = 0.0;
      const double ft = f(t);
      ++evals;
      if (ft <= fmin + 1e-8) {
        theta = t;
        fmin = std::min(fmin, ft);
      }
    }
  };
  settle_boundary();

  // The deviance need not be convex in theta, and a quasi-Newton method
  // stops at the first stationary point. Where a better point may hide,
  // each probed with a few evaluations; from the best one found the
  // optimiser starts again:
  // * inside from a zero diagonal entry of T: zero is a stationary point
  //   whatever the data (the deviance is even in that column of T), and with
  //   T(c, c) = 0 the sign of the rest of column c is arbitrary, so both
  //   signs are probed;
  // * far out (theta of 1000 natural units), where the deviance falls when
  //   the model can reproduce the data (no minimum; see the ray test below).
  // Where evaluations are cheap (small data, whose deviance is the one that
  // has several basins), more thoroughly:
  // * on the boundary, with a column of T set to zero (a singular fit better
  //   than an interior local minimum);
  // * on the diagonal ray, T = 0.1, 1 (lme4's start), 10 and 100 times I;
  // * for a singular fit, a second optimisation from T = I (below).
  const bool thorough = dev.system().flops_per_factor() < 1e7;
  std::vector<std::vector<Eigen::Index>> below(nt);  // entries under each diagonal one
  std::vector<bool> diagonal(nt, false);
  for (const CovTemplate& tp : templates)
    for (int c = 0; c < tp.q; ++c) {
      const int k = tp.theta_index[c + c * tp.q];
      if (k < 0) continue;
      diagonal[k] = true;
      for (int r = c + 1; r < tp.q; ++r)
        if (tp.theta_index[r + c * tp.q] >= 0) below[k].push_back(tp.theta_index[r + c * tp.q]);
    }
  for (int round = 0; round < 3 && std::isfinite(fmin); ++round) {
    Eigen::VectorXd best = theta;
    double fbest = fmin;
    auto consider = [&](const Eigen::VectorXd& t) {
      const double ft = f(t);
      ++evals;
      if (ft < fbest - 1e-9 * (1.0 + std::fabs(fbest))) {
        best = t;
        fbest = ft;
      }
    };
    Eigen::VectorXd far = theta;
    for (Eigen::Index i = 0; i < nt; ++i) {
      if (!diagonal[i]) continue;
      far[i] = std::max(theta[i], 1e3);
      if (lower[i] != 0.0) continue;
      if (theta[i] == 0.0) {
        for (int sign : {1, -1}) {
          Eigen::VectorXd base = theta;
          if (sign < 0) {
            if (below[i].empty()) continue;
            for (Eigen::Index k : below[i]) base[k] = -base[k];
          }
          for (double h : {1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
            Eigen::VectorXd t = base;
            t[i] = h;
            consider(t);
          }
        }
      } else if (thorough) {
        Eigen::VectorXd t = theta;
        t[i] = 0.0;
        for (Eigen::Index k : below[i]) t[k] = 0.0;
        consider(t);
      }
    }
    if (round == 0) {
      consider(far);
      for (double d : {0.1, 1.0, 10.0, 100.0}) {
        if (!thorough) break;
        Eigen::VectorXd t = Eigen::VectorXd::Zero(nt);
        for (Eigen::Index i = 0; i < nt; ++i)
          if (diagonal[i]) t[i] = d;
        consider(t.cwiseMax(lower));
      }
    }
    if (!(fbest < fmin)) break;
    OptimResult again = minimize_bounded(f, best, lower, opt.optim, fg);
    evals += again.evals;
    if (!(again.f < fmin)) break;
    again.evals = res.optim.evals;
    again.iterations += res.optim.iterations;
    res.optim = again;
    theta = again.x;
    fmin = again.f;
    settle_boundary();
  }

  // A singular fit is where separate basins meet the boundary: where
  // evaluations are cheap, optimise once more from T = I (lme4's start) and
  // keep the better optimum.
  bool singular = false;
  for (Eigen::Index i = 0; i < nt; ++i) singular = singular || (diagonal[i] && lower[i] == 0.0 && theta[i] == 0.0);
  if (thorough && singular && std::isfinite(fmin)) {
    Eigen::VectorXd identity = Eigen::VectorXd::Zero(nt);
    for (Eigen::Index i = 0; i < nt; ++i)
      if (diagonal[i]) identity[i] = 1.0;
    OptimResult again = minimize_bounded(f, identity.cwiseMax(lower), lower, opt.optim, fg);
    evals += again.evals;
    if (again.f < fmin - 1e-9 * (1.0 + std::fabs(fmin))) {
      again.evals = res.optim.evals;
      again.iterations += res.optim.iterations;
      res.optim = again;
      theta = again.x;
      fmin = again.f;
      settle_boundary();
    }
  }

  // Newton steps with a Hessian from differences of the analytic gradient:
  // they confirm the optimum and tighten it where the quasi-Newton model
  // was loose.
  const double hessian_flops = static_cast<double>(nt + 1) * 3.0 * dev.system().flops_per_factor();
  if (nt > 0 && nt <= opt.max_hessian_params && std::isfinite(fmin) && hessian_flops <= opt.polish_flops) {
    for (int it = 0; it < 3; ++it) {
      Eigen::VectorXd g;
      fmin = fg(theta, g);
      ++evals;
      Eigen::MatrixXd H = fd_hessian_from_gradient(fg, theta, g, lower, 1e-5, &evals);
      if (H.size() == 0) break;
      res.gradient = g;
      res.hessian = H;
      const std::vector<Eigen::Index> fr = free_set(theta, g, lower);
      if (fr.empty()) break;
      const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
      Eigen::MatrixXd Hf;
      Eigen::VectorXd gf;
      restrict_to(H, g, fr, Hf, gf);
      Eigen::LLT<Eigen::MatrixXd> llt(Hf);
      if (llt.info() != Eigen::Success) break;
      Eigen::VectorXd df = -llt.solve(gf);
      if (-0.5 * gf.dot(df) < 1e-12 * (1.0 + std::fabs(fmin))) break;
      Eigen::VectorXd t = theta;
      for (Eigen::Index a = 0; a < nf; ++a) t[fr[a]] += df[a];
      t = t.cwiseMax(lower);
      const double ft = f(t);
      ++evals;
      if (!(ft < fmin)) break;
      theta = t;
      fmin = ft;
    }
    // Convergence check on the free parameters: the Newton step that remains.
    check_optimum(res.hessian, res.gradient, theta, lower, res.warnings);
  }
  // At a minimum the deviance rises along the ray of theta. When the fixed
  // and random effects can describe every observation it falls instead
  // (sigma -> 0, no minimum at all); when the fixed effects absorb the
  // random effects it stays flat (the variances are not identified).
  if (std::isfinite(fmin) && theta.cwiseAbs().maxCoeff() > 0.0) {
    const double far = f(theta * 10.0);
    ++evals;
    if (std::isfinite(far) && far < fmin - 1e-6)
      res.ray = RayShape::falling;
    else if (std::isfinite(far) && far <= fmin + 1e-6)
      res.ray = RayShape::flat;
  }
  res.optim.evals += evals;
  if (!res.optim.converged && !res.optim.message.empty())
    res.warnings.push_back("the optimiser did not converge: " + res.optim.message);

  // Back to theta: theta = scale phi, d/dtheta = (d/dphi) / scale.
  theta = theta.cwiseProduct(scale);
  res.optim.x = theta;
  res.optim.f += shift;
  if (res.optim.gradient.size() == nt) res.optim.gradient = res.optim.gradient.cwiseQuotient(scale);
  if (res.gradient.size() == nt) res.gradient = res.gradient.cwiseQuotient(scale);
  if (res.hessian.rows() == nt)
    res.hessian = scale.cwiseInverse().asDiagonal() * res.hessian * scale.cwiseInverse().asDiagonal();
  res.theta = theta;
  if (!std::isfinite(dev(theta))) {
    res.at.deviance = std::numeric_limits<double>::infinity();
    res.warnings.push_back("the deviance is not finite at the reported optimum");
    return res;
  }
  res.at = evaluation_from(dev, xp, opt.reml, opt.cond_var);
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
