#include "lmm_fit.h"

#include <cmath>
#include <limits>

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
  if (!sys_.factor(theta)) return std::numeric_limits<double>::infinity();
  const double d = from_factor();
  return std::isfinite(d) ? d : std::numeric_limits<double>::infinity();
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
                  const Eigen::VectorXd& lower, const LmmOptions& opt) {
  ProfiledDeviance dev(xp, templates, opt.reml);
  int calls = 0;
  Objective f = [&dev, &opt, &calls](const Eigen::VectorXd& th) {
    if (opt.check_interrupt && (++calls & 15) == 0) opt.check_interrupt();
    return dev(th);
  };
  LmmResult res;
  res.optim = minimize_bounded(f, theta0, lower, opt.optim);
  Eigen::VectorXd theta = res.optim.x;
  double fmin = res.optim.f;
  const Eigen::Index nt = theta.size();
  int evals = 0;

  // Boundary: a diagonal entry of T that the optimiser left just above zero
  // is set to zero when that does not raise the deviance (a singular fit).
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

  // Newton steps with a finite-difference Hessian: confirms the optimum and
  // tightens it where the quasi-Newton model was loose.
  if (nt > 0 && nt <= opt.max_hessian_params && std::isfinite(fmin)) {
    for (int it = 0; it < 5; ++it) {
      Eigen::VectorXd g = fd_gradient(f, theta, fmin, lower, opt.optim.step_rel, &evals);
      Eigen::MatrixXd H = fd_hessian(f, theta, lower, 1e-4, &evals);
      res.gradient = g;
      res.hessian = H;
      std::vector<Eigen::Index> fr;
      for (Eigen::Index i = 0; i < nt; ++i)
        if (!(theta[i] <= lower[i] && g[i] > 0.0)) fr.push_back(i);
      if (fr.empty()) break;
      const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
      Eigen::MatrixXd Hf(nf, nf);
      Eigen::VectorXd gf(nf);
      for (Eigen::Index a = 0; a < nf; ++a) {
        gf[a] = g[fr[a]];
        for (Eigen::Index b = 0; b < nf; ++b) Hf(a, b) = H(fr[a], fr[b]);
      }
      Eigen::LLT<Eigen::MatrixXd> llt(Hf);
      if (llt.info() != Eigen::Success) break;
      Eigen::VectorXd df = -llt.solve(gf);
      if (-0.5 * gf.dot(df) < 1e-13 * (1.0 + std::fabs(fmin))) break;
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
    if (res.hessian.size() > 0) {
      std::vector<Eigen::Index> fr;
      for (Eigen::Index i = 0; i < nt; ++i)
        if (!(theta[i] <= lower[i] && res.gradient[i] > 0.0)) fr.push_back(i);
      const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
      if (nf > 0) {
        Eigen::MatrixXd Hf(nf, nf);
        Eigen::VectorXd gf(nf);
        for (Eigen::Index a = 0; a < nf; ++a) {
          gf[a] = res.gradient[fr[a]];
          for (Eigen::Index b = 0; b < nf; ++b) Hf(a, b) = res.hessian(fr[a], fr[b]);
        }
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Hf);
        const double emax = eig.eigenvalues().cwiseAbs().maxCoeff();
        if (eig.eigenvalues().minCoeff() < -1e-6 * std::max(emax, 1.0)) {
          res.warnings.push_back("the Hessian of the deviance is not positive definite at the optimum: "
                                 "the fit may be at a saddle point");
        } else if (eig.eigenvalues().minCoeff() > 1e-10 * std::max(emax, 1.0)) {
          const double step = Hf.ldlt().solve(gf).cwiseAbs().maxCoeff();
          if (step > 1e-3)
            res.warnings.push_back("the optimiser stopped with a Newton step of size " + std::to_string(step) +
                                   " left: the fit may not have converged");
        }
      }
    }
  }
  res.optim.evals += evals;
  if (!res.optim.converged && !res.optim.message.empty())
    res.warnings.push_back("the optimiser did not converge: " + res.optim.message);

  res.theta = theta;
  if (!std::isfinite(dev(theta))) {
    res.at.deviance = std::numeric_limits<double>::infinity();
    res.warnings.push_back("the deviance is not finite at the reported optimum");
    return res;
  }
  res.at = evaluation_from(dev, xp, opt.reml, opt.cond_var);
  return res;
}

Eigen::VectorXd linear_predictor(const ModelData& d, const Eigen::VectorXd& beta,
                                 const std::vector<Eigen::MatrixXd>& b) {
  const Index n = d.n;
  Eigen::VectorXd eta(n);
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
  return eta;
}

}  // namespace mlm
