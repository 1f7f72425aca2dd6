#include "structured_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlm {

StructuredDeviance::StructuredDeviance(const ModelData& data, const ResidualSpec& spec,
                                       const std::vector<CovTemplate>& templates, bool reml, WhiteningMethod method,
                                       double max_class_bytes)
    : white_(data, spec, method, max_class_bytes), dev_(white_.xp(), templates, reml) {}

double StructuredDeviance::operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (!white_.update(psi)) return inf;
  // Factor directly rather than through ProfiledDeviance::operator(), which
  // may keep its value for an unchanged theta: here the cross-products
  // change with psi.
  if (!dev_.system().factor(theta)) return inf;
  const double d = dev_.from_factor();
  return std::isfinite(d) ? d : inf;
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

// Minimise the deviance over x = (theta, free psi): projected quasi-Newton
// on finite-difference gradients, diagonal entries of T tried at zero,
// Newton steps on a finite-difference Hessian, and the convergence checks.
// Gradients by differences: the whitened cross-products change with psi,
// and the analytic gradient of the profiled deviance covers theta only.
void optimize_once(const Objective& f, const Eigen::VectorXd& x0, const Eigen::VectorXd& lower,
                   const LmmOptions& opt, LmmResult& res) {
  res = LmmResult();
  res.optim = minimize_bounded(f, x0, lower, opt.optim);
  Eigen::VectorXd x = res.optim.x;
  double fmin = f(x);
  int evals = 1;
  const Eigen::Index n = x.size();
  for (Eigen::Index i = 0; i < n; ++i) {
    if (lower[i] != 0.0 || x[i] <= 0.0 || x[i] >= opt.boundary_tol) continue;
    Eigen::VectorXd t = x;
    t[i] = 0.0;
    const double ft = f(t);
    ++evals;
    if (ft <= fmin + 1e-8) {
      x = t;
      fmin = std::min(fmin, ft);
    }
  }
  if (n > 0 && n <= opt.max_hessian_params && std::isfinite(fmin)) {
    Eigen::MatrixXd Hf;
    Eigen::VectorXd gf;
    for (int it = 0; it < 5; ++it) {
      res.gradient = fd_gradient(f, x, fmin, lower, opt.optim.step_rel, &evals);
      res.hessian = fd_hessian(f, x, lower, 1e-4, &evals);
      const std::vector<Eigen::Index> fr = free_set(x, res.gradient, lower);
      if (fr.empty()) break;
      restrict_to(res.hessian, res.gradient, fr, Hf, gf);
      Eigen::LLT<Eigen::MatrixXd> llt(Hf);
      if (llt.info() != Eigen::Success) break;
      const Eigen::VectorXd step = -llt.solve(gf);
      if (-0.5 * gf.dot(step) < 1e-13 * (1.0 + std::fabs(fmin))) break;
      Eigen::VectorXd t = x;
      for (std::size_t a = 0; a < fr.size(); ++a) t[fr[a]] += step[static_cast<Eigen::Index>(a)];
      t = t.cwiseMax(lower);
      const double ft = f(t);
      ++evals;
      if (!(ft < fmin)) break;
      x = t;
      fmin = ft;
    }
    check_optimum(res.hessian, res.gradient, x, lower, res.warnings);
  }
  res.optim.evals += evals;
  if (!res.optim.converged && !res.optim.message.empty())
    res.warnings.push_back("the optimiser did not converge: " + res.optim.message);
  res.theta = x;
}

// The quasi-Newton method can stop at a stationary point that is not a
// minimum: with AR(1) on times two units apart the likelihood depends on
// phi^2 only, and phi = 0 (nlme's start) is a saddle point; likewise a
// standard deviation at its bound 0. Where the finite-difference Hessian
// at the end has a negative eigenvalue, step along its eigenvector and
// optimise again from the lower point.
void optimize(const Objective& f, const Eigen::VectorXd& x0, const Eigen::VectorXd& lower, const LmmOptions& opt,
              LmmResult& res) {
  optimize_once(f, x0, lower, opt, res);
  for (int attempt = 0; attempt < 3; ++attempt) {
    const Eigen::Index n = res.theta.size();
    if (res.hessian.rows() != n || n == 0 || !res.hessian.allFinite()) return;
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(res.hessian);
    const double emax = eig.eigenvalues().cwiseAbs().maxCoeff();
    if (!(eig.eigenvalues()[0] < -1e-6 * std::max(emax, 1.0))) return;
    const Eigen::VectorXd v = eig.eigenvectors().col(0);
    const double f0 = f(res.theta);
    double best = f0;
    Eigen::VectorXd start;
    // Steps from large to small: the curvature may turn within a short
    // distance (a standard deviation whose optimum is just off zero).
    for (double t = 1.0; t > 3e-4; t *= 0.3) {
      for (double sign : {1.0, -1.0}) {
        const Eigen::VectorXd x = (res.theta + sign * t * v).cwiseMax(lower);
        const double fx = f(x);
        if (fx < best - 1e-8 * (1.0 + std::fabs(f0))) {
          best = fx;
          start = x;
        }
      }
    }
    if (start.size() == 0) return;
    LmmResult again;
    optimize_once(f, start, lower, opt, again);
    if (!(f(again.theta) < f0)) return;
    again.optim.evals += res.optim.evals + 15;
    res = again;
  }
}

}  // namespace

StructuredResult fit_lmm_structured(const ModelData& data, const ResidualSpec& spec,
                                    const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                                    const Eigen::VectorXd& lower, const Eigen::VectorXd& psi0,
                                    const std::vector<bool>& psi_free, const StructuredOptions& opt) {
  StructuredDeviance dev(data, spec, templates, opt.lmm.reml, opt.method, opt.max_class_bytes);
  const Eigen::Index nt = theta0.size();
  std::vector<Eigen::Index> free;
  for (Eigen::Index k = 0; k < psi0.size(); ++k)
    if (psi_free[k]) free.push_back(k);
  const Eigen::Index nfree = static_cast<Eigen::Index>(free.size());

  // The optimiser sees x = (theta, free entries of psi).
  auto split = [&](const Eigen::VectorXd& x, Eigen::VectorXd& psi) {
    psi = psi0;
    for (Eigen::Index a = 0; a < nfree; ++a) psi[free[a]] = x[nt + a];
  };
  Eigen::VectorXd psi_work;
  int calls = 0;
  Objective f = [&](const Eigen::VectorXd& x) {
    if (opt.lmm.check_interrupt && (++calls & 15) == 0) opt.lmm.check_interrupt();
    split(x, psi_work);
    return dev(x.head(nt), psi_work);
  };
  Eigen::VectorXd x0(nt + nfree), lo(nt + nfree);
  x0.head(nt) = theta0;
  lo.head(nt) = lower;
  for (Eigen::Index a = 0; a < nfree; ++a) {
    x0[nt + a] = psi0[free[a]];
    lo[nt + a] = -std::numeric_limits<double>::infinity();
  }

  StructuredResult out;
  optimize(f, x0, lo, opt.lmm, out.fit);
  const Eigen::VectorXd x = out.fit.theta;
  split(x, out.psi);
  out.fit.theta = x.head(nt);
  out.classes = dev.whitened().uses_classes();
  out.n_classes = dev.whitened().n_classes();
  out.class_storage = dev.whitened().class_storage();
  out.fit.at = evaluate_lmm_structured(dev.whitened(), templates, out.fit.theta, out.psi, opt.lmm.reml,
                                       opt.lmm.cond_var);
  if (!std::isfinite(out.fit.at.deviance)) {
    out.fit.warnings.push_back("the deviance is not finite at the reported optimum");
    return out;
  }
  out.log_det_R = dev.whitened().log_det();
  out.xp = dev.whitened().xp();
  return out;
}

}  // namespace mlm
