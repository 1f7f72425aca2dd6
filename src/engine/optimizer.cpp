#include "optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlm {

namespace {

double step_for(double x, double rel) { return rel * (std::fabs(x) + 0.1); }

}  // namespace

Eigen::VectorXd fd_gradient(const Objective& f, const Eigen::VectorXd& x, double fx, const Eigen::VectorXd& lower,
                            double step_rel, int* evals, Eigen::VectorXd* curvature) {
  const Eigen::Index n = x.size();
  Eigen::VectorXd g(n);
  if (curvature) curvature->setConstant(n, std::numeric_limits<double>::quiet_NaN());
  Eigen::VectorXd xt = x;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double h = step_for(x[i], step_rel);
    double gi;
    if (x[i] - h >= lower[i]) {
      xt[i] = x[i] + h;
      const double fp = f(xt);
      xt[i] = x[i] - h;
      const double fm = f(xt);
      *evals += 2;
      if (std::isfinite(fp) && std::isfinite(fm)) {
        gi = (fp - fm) / (2.0 * h);
        if (curvature) (*curvature)[i] = (fp - 2.0 * fx + fm) / (h * h);
      } else if (std::isfinite(fp))
        gi = (fp - fx) / h;
      else
        gi = (fx - fm) / h;
    } else {
      // Next to the bound: second-order one-sided difference into the interior.
      xt[i] = x[i] + h;
      const double f1 = f(xt);
      xt[i] = x[i] + 2.0 * h;
      const double f2 = f(xt);
      *evals += 2;
      gi = (-3.0 * fx + 4.0 * f1 - f2) / (2.0 * h);
    }
    xt[i] = x[i];
    g[i] = gi;
  }
  return g;
}

Eigen::MatrixXd fd_hessian(const Objective& f, const Eigen::VectorXd& x, const Eigen::VectorXd& lower,
                           double step_rel, int* evals) {
  const Eigen::Index n = x.size();
  Eigen::VectorXd h(n), c = x;
  for (Eigen::Index i = 0; i < n; ++i) {
    h[i] = step_for(x[i], step_rel);
    if (c[i] - h[i] < lower[i]) c[i] = lower[i] + h[i];  // differences about a point inside
  }
  const double f0 = f(c);
  ++*evals;
  Eigen::MatrixXd H(n, n);
  Eigen::VectorXd fp(n), fm(n);
  Eigen::VectorXd xt = c;
  for (Eigen::Index i = 0; i < n; ++i) {
    xt[i] = c[i] + h[i];
    fp[i] = f(xt);
    xt[i] = c[i] - h[i];
    fm[i] = f(xt);
    xt[i] = c[i];
    *evals += 2;
    H(i, i) = (fp[i] - 2.0 * f0 + fm[i]) / (h[i] * h[i]);
  }
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < i; ++j) {
      xt[i] = c[i] + h[i];
      xt[j] = c[j] + h[j];
      const double fpp = f(xt);
      xt[j] = c[j] - h[j];
      const double fpm = f(xt);
      xt[i] = c[i] - h[i];
      const double fmm = f(xt);
      xt[j] = c[j] + h[j];
      const double fmp = f(xt);
      xt[i] = c[i];
      xt[j] = c[j];
      *evals += 4;
      H(i, j) = H(j, i) = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j]);
    }
  return H;
}

Eigen::MatrixXd fd_hessian_from_gradient(const ObjectiveWithGradient& fg, const Eigen::VectorXd& x,
                                         const Eigen::VectorXd& gx, const Eigen::VectorXd& lower, double step_rel,
                                         int* evals) {
  const Eigen::Index n = x.size();
  Eigen::MatrixXd H(n, n);
  Eigen::VectorXd xt = x, g;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double h = step_for(x[i], step_rel);
    xt[i] = x[i] + h;  // forward: always inside the bounds
    const double ft = fg(xt, g);
    ++*evals;
    xt[i] = x[i];
    if (!std::isfinite(ft) || g.size() != n) return Eigen::MatrixXd();
    H.col(i) = (g - gx) / h;
  }
  return 0.5 * (H + H.transpose());
}

namespace {

// The state of the projected quasi-Newton search: the point, its value and
// gradient, and the model B of the Hessian.
class ProjectedBfgs {
 public:
  ProjectedBfgs(const Objective& f, const ObjectiveWithGradient& fg, const Eigen::VectorXd& lower,
                const OptimControl& ctl, OptimResult& res)
      : f_(f), fg_(fg), lower_(lower), ctl_(ctl), res_(res), n_(lower.size()) {}

  // Value and gradient at the start, and the first model. False where the
  // objective is not finite.
  bool start(const Eigen::VectorXd& x0);
  // The projected quasi-Newton direction on the free coordinates and the
  // decrease it predicts.
  void direction(Eigen::VectorXd& d, double& predicted);
  // Backtracking along the projected path (values only); tries = the
  // number of reductions of the step. False when no step decreased f.
  bool line_search(const Eigen::VectorXd& d, double& alpha, Eigen::VectorXd& xn, double& fn, int& tries);
  // A full step that gained about the linear prediction says the model's
  // curvature is too high along d: go further while that keeps paying.
  void extend(const Eigen::VectorXd& d, double predicted, double alpha, Eigen::VectorXd& xn, double& fn);
  // Move to xn (value fn): its gradient, the BFGS update of the model.
  void move_to(const Eigen::VectorXd& xn, double fn);
  // Start the model again from steepest descent; false when it already was.
  bool reset_model() {
    if (fresh_) return false;
    steepest_descent_model();
    return true;
  }
  const Eigen::VectorXd& x() const { return x_; }
  double fx() const { return fx_; }
  const Eigen::VectorXd& g() const { return g_; }

 private:
  void steepest_descent_model() {
    B_ = Eigen::MatrixXd::Identity(n_, n_) * std::max(g_.cwiseAbs().maxCoeff(), 1e-8) / 0.5;
    fresh_ = true;
  }
  const Objective& f_;
  const ObjectiveWithGradient& fg_;
  const Eigen::VectorXd& lower_;
  const OptimControl& ctl_;
  OptimResult& res_;
  const Eigen::Index n_;
  Eigen::VectorXd x_, g_;
  double fx_ = 0.0;
  Eigen::MatrixXd B_;
  bool scaled_ = false;  // B has been scaled to the curvature
  bool fresh_ = true;    // B carries no curvature information yet
};

bool ProjectedBfgs::start(const Eigen::VectorXd& x0) {
  x_ = x0.cwiseMax(lower_);
  fx_ = f_(x_);
  res_.evals = 1;
  if (!std::isfinite(fx_) || n_ == 0) return std::isfinite(fx_);
  Eigen::VectorXd curv = Eigen::VectorXd::Constant(n_, std::numeric_limits<double>::quiet_NaN());
  if (fg_) {
    fx_ = fg_(x_, g_);
    ++res_.evals;
    // Where asked: the diagonal of the Hessian from one forward difference
    // of the value per coordinate. From the scalar steepest-descent model,
    // the quasi-Newton model learns the curvature of flat directions one
    // short step (and one gradient) at a time (InstEval: 10 gradients; from
    // this diagonal, 7).
    Eigen::VectorXd xt = x_;
    for (Eigen::Index i = 0; ctl_.costly_gradient && i < n_; ++i) {
      const double h = 0.05 * (std::fabs(x_[i]) + 0.1);  // forward: inside the bounds
      xt[i] = x_[i] + h;
      const double ft = f_(xt);
      ++res_.evals;
      xt[i] = x_[i];
      if (std::isfinite(ft)) curv[i] = 2.0 * (ft - fx_ - h * g_[i]) / (h * h);
    }
  } else {
    g_ = fd_gradient(f_, x_, fx_, lower_, ctl_.step_rel, &res_.evals, &curv);
  }
  // Start from the diagonal curvature the differences measured, so that
  // the first steps are already scaled like Newton steps.
  steepest_descent_model();
  const double fallback = B_(0, 0);
  double cmax = 0.0;
  for (Eigen::Index i = 0; i < n_; ++i)
    if (std::isfinite(curv[i])) cmax = std::max(cmax, curv[i]);
  if (cmax > 0.0) {
    for (Eigen::Index i = 0; i < n_; ++i)
      B_(i, i) = (std::isfinite(curv[i]) && curv[i] > 1e-6 * cmax) ? curv[i] : std::max(1e-6 * cmax, fallback * 1e-3);
    scaled_ = true;
  }
  return true;
}

void ProjectedBfgs::direction(Eigen::VectorXd& d, double& predicted) {
  const std::vector<Eigen::Index> fr = free_set(x_, g_, lower_);
  d = Eigen::VectorXd::Zero(n_);
  predicted = 0.0;
  if (fr.empty()) return;
  Eigen::MatrixXd Bf;
  Eigen::VectorXd gf;
  restrict_to(B_, g_, fr, Bf, gf);
  Eigen::LLT<Eigen::MatrixXd> llt(Bf);
  Eigen::VectorXd df;
  if (llt.info() == Eigen::Success) df = -llt.solve(gf);
  if (llt.info() != Eigen::Success || !(gf.dot(df) < 0.0)) {
    steepest_descent_model();
    df = -gf / B_(0, 0);
  }
  for (std::size_t a = 0; a < fr.size(); ++a) d[fr[a]] = df[static_cast<Eigen::Index>(a)];
  predicted = -0.5 * gf.dot(df);
}

bool ProjectedBfgs::line_search(const Eigen::VectorXd& d, double& alpha, Eigen::VectorXd& xn, double& fn,
                                int& tries) {
  alpha = 1.0;
  for (tries = 0; tries < 60; ++tries) {
    xn = (x_ + alpha * d).cwiseMax(lower_);
    fn = f_(xn);
    ++res_.evals;
    const double dec = g_.dot(xn - x_);
    if (std::isfinite(fn) && fn <= fx_ + 1e-4 * dec) return true;
    // A step whose predicted gain is below the noise of f cannot show a
    // decrease: shorter ones would only repeat the same evaluation.
    if (std::isfinite(fn) && -dec <= ctl_.f_noise) return false;
    double shrink = 0.1;
    if (std::isfinite(fn) && dec < 0.0) {
      // Minimiser of the quadratic through f(x), its slope and f(xn).
      const double curv = fn - fx_ - dec;
      if (curv > 0.0) shrink = std::min(0.5, std::max(0.1, -0.5 * dec / curv));
    }
    alpha *= shrink;
  }
  return false;
}

void ProjectedBfgs::extend(const Eigen::VectorXd& d, double predicted, double alpha, Eigen::VectorXd& xn,
                           double& fn) {
  const double longest = d.cwiseAbs().maxCoeff();
  for (int ext = 0; ext < 6 && fx_ - fn > 1.5 * predicted; ++ext) {
    if (3.0 * alpha * longest > ctl_.max_step) break;
    alpha *= 3.0;
    const Eigen::VectorXd xt = (x_ + alpha * d).cwiseMax(lower_);
    if ((xt - xn).cwiseAbs().maxCoeff() == 0.0) break;
    const double ft = f_(xt);
    ++res_.evals;
    if (!(std::isfinite(ft) && ft < fn)) break;
    xn = xt;
    fn = ft;
  }
}

void ProjectedBfgs::move_to(const Eigen::VectorXd& xn, double fn) {
  Eigen::VectorXd gn;
  if (fg_) {
    fn = fg_(xn, gn);
    ++res_.evals;
  } else {
    gn = fd_gradient(f_, xn, fn, lower_, ctl_.step_rel, &res_.evals);
  }
  const Eigen::VectorXd s = xn - x_;
  const Eigen::VectorXd yv = gn - g_;
  const double sy = s.dot(yv);
  if (sy > 1e-12 * s.norm() * yv.norm() && sy > 0.0) {
    if (!scaled_) {
      B_ = Eigen::MatrixXd::Identity(n_, n_) * (yv.squaredNorm() / sy);
      scaled_ = true;
    }
    const Eigen::VectorXd Bs = B_ * s;
    const double sBs = s.dot(Bs);
    if (sBs > 0.0) {
      B_ += yv * yv.transpose() / sy - Bs * Bs.transpose() / sBs;
      fresh_ = false;
    }
  }
  x_ = xn;
  fx_ = fn;
  g_ = gn;
}

}  // namespace

OptimResult minimize_bounded(const Objective& f, const Eigen::VectorXd& x0, const Eigen::VectorXd& lower,
                             const OptimControl& ctl, const ObjectiveWithGradient& fg) {
  OptimResult res;
  ProjectedBfgs search(f, fg, lower, ctl, res);
  const bool finite = search.start(x0);
  res.converged = finite && x0.size() == 0;
  if (!finite) res.message = "the objective is not finite at the starting values";
  int stalled = 0;  // steps in a row that gained no more than the noise
  for (res.iterations = 1; finite && x0.size() > 0 && res.iterations <= ctl.max_iter; ++res.iterations) {
    Eigen::VectorXd d, xn;
    double predicted = 0.0, alpha = 1.0, fn = search.fx();
    int tries = 0;
    search.direction(d, predicted);
    if (predicted <= std::max(ctl.f_tol * (1.0 + std::fabs(search.fx())), ctl.f_noise)) {
      res.converged = true;
      break;
    }
    // A step longer than max_step in some coordinate is shortened (the
    // convergence test above keeps the full step's prediction).
    const double longest = d.cwiseAbs().maxCoeff();
    if (longest > ctl.max_step) d *= ctl.max_step / longest;
    if (res.evals > ctl.max_evals) {
      res.message = "the maximum number of evaluations was reached";
      break;
    }
    if (!search.line_search(d, alpha, xn, fn, tries)) {
      if (search.reset_model()) continue;  // retry from a steepest-descent model
      // No decrease is possible at the resolution of the differences.
      res.converged = predicted <= 1e-6 * (1.0 + std::fabs(search.fx()));
      if (!res.converged) res.message = "the line search could not decrease the objective";
      break;
    }
    if (tries == 0) search.extend(d, predicted, alpha, xn, fn);
    const double before = search.fx();
    search.move_to(xn, fn);
    stalled = ctl.f_noise > 0.0 && before - search.fx() <= ctl.f_noise ? stalled + 1 : 0;
    if (stalled >= 3) {  // progress below the resolution of f
      res.converged = true;
      break;
    }
  }
  if (res.iterations > ctl.max_iter) res.message = "the maximum number of iterations was reached";
  res.x = search.x();
  res.f = search.fx();
  res.gradient = search.g();
  return res;
}

std::vector<Eigen::Index> free_set(const Eigen::VectorXd& x, const Eigen::VectorXd& g, const Eigen::VectorXd& lower) {
  std::vector<Eigen::Index> fr;
  for (Eigen::Index i = 0; i < x.size(); ++i)
    if (!(x[i] <= lower[i] && g[i] > 0.0)) fr.push_back(i);
  return fr;
}

void restrict_to(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, const std::vector<Eigen::Index>& fr,
                 Eigen::MatrixXd& Hf, Eigen::VectorXd& gf) {
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  Hf.resize(nf, nf);
  gf.resize(nf);
  for (Eigen::Index a = 0; a < nf; ++a) {
    gf[a] = g[fr[a]];
    for (Eigen::Index b = 0; b < nf; ++b) Hf(a, b) = H(fr[a], fr[b]);
  }
}

}  // namespace mlm
