#include "glmm_nb.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>

namespace mlm {

double nb_aic_constant(const ModelData& d, double k) {
  // R's negative.binomial(theta)$aic() minus the sum of its dev.resids().
  double s = 0.0;
  const double lk = std::lgamma(k) - k * std::log(k);
  for (Index i = 0; i < d.n; ++i) {
    const double y = d.y[i];
    const double w = d.weights ? d.weights[i] : 1.0;
    s += w * (std::lgamma(y + 1.0) + lk - std::lgamma(k + y) - (y > 1.0 ? y * std::log(y) : 0.0) +
              (y + k) * std::log(y + k));
  }
  return 2.0 * s;
}

namespace {

// Brent's minimisation without derivatives on [a, b] (the algorithm of R's
// optimize()): golden-section steps, parabolic ones where they are safe.
double minimize_on_interval(const std::function<double(double)>& f, double a, double b, double tol) {
  const double golden = 0.3819660112501051;
  double v = a + golden * (b - a), w = v, x = v;
  double fx = f(x), fv = fx, fw = fx;
  double dd = 0.0, e = 0.0;
  for (int it = 0; it < 100; ++it) {
    const double xm = 0.5 * (a + b);
    const double tol1 = 1.5e-8 * std::fabs(x) + tol / 3.0, tol2 = 2.0 * tol1;
    if (std::fabs(x - xm) <= tol2 - 0.5 * (b - a)) break;
    bool golden_step = true;
    if (std::fabs(e) > tol1) {
      double r = (x - w) * (fx - fv);
      double q = (x - v) * (fx - fw);
      double pp = (x - v) * q - (x - w) * r;
      q = 2.0 * (q - r);
      if (q > 0.0) pp = -pp; else q = -q;
      const double etemp = e;
      e = dd;
      if (std::fabs(pp) < std::fabs(0.5 * q * etemp) && pp > q * (a - x) && pp < q * (b - x)) {
        dd = pp / q;
        const double u = x + dd;
        if (u - a < tol2 || b - u < tol2) dd = xm >= x ? tol1 : -tol1;
        golden_step = false;
      }
    }
    if (golden_step) {
      e = (x < xm) ? b - x : a - x;
      dd = golden * e;
    }
    const double u = std::fabs(dd) >= tol1 ? x + dd : x + (dd > 0.0 ? tol1 : -tol1);
    const double fu = f(u);
    if (fu <= fx) {
      if (u < x) b = x; else a = x;
      v = w; fv = fw;
      w = x; fw = fx;
      x = u; fx = fu;
    } else {
      if (u < x) a = u; else b = u;
      if (fu <= fw || w == x) {
        v = w; fv = fw;
        w = u; fw = fu;
      } else if (fu <= fv || v == x || v == w) {
        v = u; fv = fu;
      }
    }
  }
  return x;
}

}  // namespace

NbResult fit_glmm_nb(const ModelData& d, const GlmFamily& family, const std::vector<CovTemplate>& tpl,
                     const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0, const Eigen::VectorXd& lower,
                     const GlmmOptions& opt, double lo, double hi) {
  NbResult out;
  GlmmOptions inner = opt;
  inner.hessian = false;
  inner.cond_var = false;
  Eigen::VectorXd eta = eta_start;
  Eigen::VectorXd theta = theta0;
  std::string error;

  // -2 log-likelihood at size exp(t), warm-started from the previous fit.
  auto profile = [&](double t) {
    GlmFamily fam = family;
    fam.nb_size = std::exp(t);
    fam.aic_const = nb_aic_constant(d, fam.nb_size);
    GlmmResult r = fit_glmm(d, fam, tpl, eta, theta, lower, inner);
    ++out.fits;
    if (!r.ok) {
      error = r.error;
      return std::numeric_limits<double>::infinity();
    }
    eta = r.eta;
    theta = r.theta;
    return r.criterion;
  };

  // log(size) on an interval widened while the minimum sits at its edge.
  double best_t = 0.5 * (lo + hi);
  for (int widen = 0; widen < 4; ++widen) {
    best_t = minimize_on_interval(profile, lo, hi, 1e-6);
    const double width = hi - lo;
    if (best_t - lo < 1e-3 * width) {
      hi = lo + 0.1 * width;
      lo -= width;
    } else if (hi - best_t < 1e-3 * width) {
      lo = hi - 0.1 * width;
      hi += width;
    } else {
      break;
    }
  }

  GlmFamily fam = family;
  fam.nb_size = std::exp(best_t);
  fam.aic_const = nb_aic_constant(d, fam.nb_size);
  out.fit = fit_glmm(d, fam, tpl, eta, theta, lower, opt);
  ++out.fits;
  if (!out.fit.ok && out.fit.error.empty()) out.fit.error = error;
  out.size = fam.nb_size;
  return out;
}

}  // namespace mlm
