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

OptimResult minimize_bounded(const Objective& f, const Eigen::VectorXd& x0, const Eigen::VectorXd& lower,
                             const OptimControl& ctl, const ObjectiveWithGradient& fg) {
  const Eigen::Index n = x0.size();
  OptimResult res;
  Eigen::VectorXd x = x0.cwiseMax(lower);
  double fx = f(x);
  res.evals = 1;
  if (!std::isfinite(fx)) {
    res.x = x;
    res.f = fx;
    res.message = "the objective is not finite at the starting values";
    return res;
  }
  if (n == 0) {
    res.x = x;
    res.f = fx;
    res.converged = true;
    return res;
  }
  Eigen::VectorXd curv = Eigen::VectorXd::Constant(n, std::numeric_limits<double>::quiet_NaN());
  Eigen::VectorXd g;
  if (fg) {
    fx = fg(x, g);
    ++res.evals;
  } else {
    g = fd_gradient(f, x, fx, lower, ctl.step_rel, &res.evals, &curv);
  }
  // Start from the diagonal curvature the central differences measured, so
  // that the first steps are already scaled like Newton steps.
  const double fallback = std::max(g.cwiseAbs().maxCoeff(), 1e-8) / 0.5;
  Eigen::MatrixXd B = Eigen::MatrixXd::Identity(n, n) * fallback;
  bool scaled = false;
  {
    double cmax = 0.0;
    for (Eigen::Index i = 0; i < n; ++i)
      if (std::isfinite(curv[i])) cmax = std::max(cmax, curv[i]);
    if (cmax > 0.0) {
      for (Eigen::Index i = 0; i < n; ++i)
        B(i, i) = (std::isfinite(curv[i]) && curv[i] > 1e-6 * cmax) ? curv[i] : std::max(1e-6 * cmax, fallback * 1e-3);
      scaled = true;
    }
  }
  bool fresh = true;  // B carries no curvature information yet

  for (res.iterations = 1; res.iterations <= ctl.max_iter; ++res.iterations) {
    // Variables held at their bound by a gradient pointing outwards.
    std::vector<Eigen::Index> fr;
    for (Eigen::Index i = 0; i < n; ++i)
      if (!(x[i] <= lower[i] && g[i] > 0.0)) fr.push_back(i);
    Eigen::VectorXd d = Eigen::VectorXd::Zero(n);
    double pred = 0.0;
    if (!fr.empty()) {
      const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
      Eigen::MatrixXd Bf(nf, nf);
      Eigen::VectorXd gf(nf);
      for (Eigen::Index a = 0; a < nf; ++a) {
        gf[a] = g[fr[a]];
        for (Eigen::Index b = 0; b < nf; ++b) Bf(a, b) = B(fr[a], fr[b]);
      }
      Eigen::LLT<Eigen::MatrixXd> llt(Bf);
      Eigen::VectorXd df;
      if (llt.info() == Eigen::Success) df = -llt.solve(gf);
      if (llt.info() != Eigen::Success || !(gf.dot(df) < 0.0)) {
        B = Eigen::MatrixXd::Identity(n, n) * std::max(g.cwiseAbs().maxCoeff(), 1e-8) / 0.5;
        fresh = true;
        df = -gf / B(0, 0);
      }
      for (Eigen::Index a = 0; a < nf; ++a) d[fr[a]] = df[a];
      pred = -0.5 * gf.dot(df);
    }
    if (pred <= ctl.f_tol * (1.0 + std::fabs(fx))) {
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

    // Backtracking line search along the projected path (values only).
    double alpha = 1.0;
    Eigen::VectorXd xn, gn;
    double fn = fx;
    bool accepted = false;
    int tries = 0;
    for (; tries < 60; ++tries) {
      xn = (x + alpha * d).cwiseMax(lower);
      fn = f(xn);
      ++res.evals;
      const double dec = g.dot(xn - x);
      if (std::isfinite(fn) && fn <= fx + 1e-4 * dec) {
        accepted = true;
        break;
      }
      double shrink = 0.1;
      if (std::isfinite(fn) && dec < 0.0) {
        // Minimiser of the quadratic through f(x), its slope and f(xn).
        const double curv = fn - fx - dec;
        if (curv > 0.0) shrink = std::min(0.5, std::max(0.1, -0.5 * dec / curv));
      }
      alpha *= shrink;
    }
    if (!accepted) {
      if (!fresh) {  // retry from a steepest-descent model
        B = Eigen::MatrixXd::Identity(n, n) * std::max(g.cwiseAbs().maxCoeff(), 1e-8) / 0.5;
        fresh = true;
        continue;
      }
      // No decrease is possible at the resolution of the differences.
      res.converged = pred <= 1e-6 * (1.0 + std::fabs(fx));
      if (!res.converged) res.message = "the line search could not decrease the objective";
      break;
    }
    // A full step that gained about the linear prediction says the model's
    // curvature is too high along d: go further while that keeps paying.
    if (tries == 0) {
      for (int ext = 0; ext < 6 && fx - fn > 1.5 * pred; ++ext) {
        alpha *= 3.0;
        const Eigen::VectorXd xt = (x + alpha * d).cwiseMax(lower);
        if ((xt - xn).cwiseAbs().maxCoeff() == 0.0) break;
        const double ft = f(xt);
        ++res.evals;
        if (!(std::isfinite(ft) && ft < fn)) break;
        xn = xt;
        fn = ft;
      }
    }
    if (fg) {
      fn = fg(xn, gn);
      ++res.evals;
    } else {
      gn = fd_gradient(f, xn, fn, lower, ctl.step_rel, &res.evals);
    }
    const Eigen::VectorXd s = xn - x;
    const Eigen::VectorXd yv = gn - g;
    const double sy = s.dot(yv);
    if (sy > 1e-12 * s.norm() * yv.norm() && sy > 0.0) {
      if (!scaled) {
        B = Eigen::MatrixXd::Identity(n, n) * (yv.squaredNorm() / sy);
        scaled = true;
      }
      const Eigen::VectorXd Bs = B * s;
      const double sBs = s.dot(Bs);
      if (sBs > 0.0) {
        B += yv * yv.transpose() / sy - Bs * Bs.transpose() / sBs;
        fresh = false;
      }
    }
    x = xn;
    fx = fn;
    g = gn;
  }
  if (res.iterations > ctl.max_iter) res.message = "the maximum number of iterations was reached";
  res.x = x;
  res.f = fx;
  res.gradient = g;
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

void check_optimum(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, const Eigen::VectorXd& x,
                   const Eigen::VectorXd& lower, std::vector<std::string>& warnings) {
  if (H.size() == 0) return;
  const std::vector<Eigen::Index> fr = free_set(x, g, lower);
  if (fr.empty()) return;
  Eigen::MatrixXd Hf;
  Eigen::VectorXd gf;
  restrict_to(H, g, fr, Hf, gf);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Hf);
  const double emax = eig.eigenvalues().cwiseAbs().maxCoeff();
  if (eig.eigenvalues().minCoeff() < -1e-6 * std::max(emax, 1.0)) {
    warnings.push_back("the Hessian of the deviance is not positive definite at the optimum: "
                       "the fit may be at a saddle point");
  } else if (eig.eigenvalues().minCoeff() > 1e-10 * std::max(emax, 1.0)) {
    const double step = Hf.ldlt().solve(gf).cwiseAbs().maxCoeff();
    if (step > 1e-3)
      warnings.push_back("the optimiser stopped with a Newton step of size " + std::to_string(step) +
                         " left: the fit may not have converged");
  }
}

}  // namespace mlm
