#include "glmm_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The criterion that PIRLS results are judged by.
class Criterion {
 public:
  Criterion(const GlmFamily& fam, int n_agq, Eigen::VectorXd z, Eigen::VectorXd w)
      : fam_(fam), n_agq_(n_agq), z_(std::move(z)), w_(std::move(w)) {}

  // nAGQ <= 1: lme4's Laplace value ldL2 + ||u||^2 + aic; nAGQ > 1:
  // lme4's glmerAGQ value (deviance residuals, without aic's constant).
  double operator()(Pirls& pirls, const PirlsResult& r) const {
    if (!r.ok) return kInf;
    if (n_agq_ <= 1) return r.ldL2 + r.ussq + fam_.aic(r.dev);
    return pirls.agq_deviance(z_, w_, r.ldL2);
  }

 private:
  GlmFamily fam_;
  int n_agq_;
  Eigen::VectorXd z_, w_;
};

// The free coordinates: those not held at their lower bound.
std::vector<Eigen::Index> free_coordinates(const Eigen::VectorXd& x, const Eigen::VectorXd& lower) {
  std::vector<Eigen::Index> fr;
  for (Eigen::Index i = 0; i < x.size(); ++i)
    if (!(x[i] <= lower[i])) fr.push_back(i);
  return fr;
}

}  // namespace

void gauss_hermite(int n, Eigen::VectorXd& z, Eigen::VectorXd& w) {
  z.resize(n);
  w.resize(n);
  if (n <= 0) return;
  Eigen::MatrixXd J = Eigen::MatrixXd::Zero(n, n);
  for (int k = 1; k < n; ++k) J(k, k - 1) = J(k - 1, k) = std::sqrt(static_cast<double>(k));
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(J);
  for (int k = 0; k < n; ++k) {
    z[k] = eig.eigenvalues()[k];
    w[k] = eig.eigenvectors()(0, k) * eig.eigenvectors()(0, k);
  }
  // Exact symmetry, and an exact zero node for odd n.
  for (int k = 0; k < n / 2; ++k) {
    const double zz = 0.5 * (z[n - 1 - k] - z[k]);
    const double ww = 0.5 * (w[n - 1 - k] + w[k]);
    z[k] = -zz;
    z[n - 1 - k] = zz;
    w[k] = w[n - 1 - k] = ww;
  }
  if (n % 2 == 1) z[n / 2] = 0.0;
  w /= w.sum();
}

GlmmResult fit_glmm(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                    const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0, const Eigen::VectorXd& lower,
                    const GlmmOptions& opt) {
  GlmmResult res;
  const Eigen::Index nt = theta0.size();
  const int p = d.p;
  Eigen::VectorXd gz, gw;
  if (opt.n_agq > 1) gauss_hermite(opt.n_agq, gz, gw);
  const Criterion laplace(fam, 1, gz, gw);
  const Criterion criterion(fam, opt.n_agq, gz, gw);
  int calls = 0;
  auto tick = [&]() {
    ++res.evals;
    if (opt.check_interrupt && (++calls & 7) == 0) opt.check_interrupt();
  };

  // Stage 1: theta alone, beta and u at their joint conditional modes.
  Pirls joint(d, fam, tpl, true);
  joint.set_start_eta(eta_start);
  PirlsResult first = joint.run(theta0.cwiseMax(lower), opt.pirls);
  res.pirls_passes += first.passes;
  if (!first.ok) {
    res.error = "PIRLS failed at the starting values: " + first.message;
    return res;
  }
  std::string last_pirls_message;
  Objective f1 = [&](const Eigen::VectorXd& th) {
    tick();
    PirlsResult r = joint.run(th, opt.pirls);
    res.pirls_passes += r.passes;
    if (!r.ok) last_pirls_message = r.message;
    return laplace(joint, r);
  };
  // Stage 1 only gives starting values when stage 2 follows: a loose
  // tolerance saves evaluations that stage 2 would make redundant.
  OptimControl c1 = opt.optim;
  if (opt.n_agq > 0) c1.f_tol = std::max(c1.f_tol, 1e-7);
  res.stage1 = minimize_bounded(f1, theta0, lower, c1);
  if (!std::isfinite(res.stage1.f)) {
    res.error = "the deviance is not finite at the starting values" +
                (last_pirls_message.empty() ? std::string() : " (" + last_pirls_message + ")");
    return res;
  }
  Eigen::VectorXd theta = res.stage1.x;
  double fmin = res.stage1.f;

  auto boundary = [&](Eigen::VectorXd& x, double& fx, const Objective& f, Eigen::Index n_theta,
                      const Eigen::VectorXd& theta_of_x_lower, const std::function<double(const Eigen::VectorXd&, Eigen::Index)>& theta_at) {
    for (Eigen::Index i = 0; i < n_theta; ++i) {
      if (lower[i] != 0.0) continue;
      const double th = theta_at(x, i);
      if (!(th > 0.0 && th < opt.boundary_tol)) continue;
      Eigen::VectorXd t = x;
      t[i] = theta_of_x_lower[i];
      const double ft = f(t);
      if (ft <= fx + 1e-8) {
        x = t;
        fx = std::min(fx, ft);
      }
    }
  };

  if (opt.n_agq == 0) {
    boundary(theta, fmin, f1, nt, lower, [](const Eigen::VectorXd& x, Eigen::Index i) { return x[i]; });
    if (!res.stage1.converged && !res.stage1.message.empty())
      res.warnings.push_back("the optimiser did not converge: " + res.stage1.message);
    PirlsResult r = joint.run(theta, opt.pirls);
    res.pirls_passes += r.passes;
    if (!r.ok) {
      res.error = "PIRLS failed at the optimum: " + r.message;
      return res;
    }
    res.theta = theta;
    res.beta = joint.beta();
    res.u = joint.u();
    res.b = joint.b();
    res.at = r;
    res.criterion = laplace(joint, r);
    res.vcov_unscaled = joint.unscaled_vcov();
    if (opt.cond_var) res.cond_var = joint.system().unscaled_cond_var();
    res.eta = joint.linear_predictor();
    res.ok = true;
    return res;
  }

  // Whitening for stage 2: theta scaled by the curvature of the stage-1
  // criterion, beta by the Cholesky factor of its conditional covariance.
  {
    PirlsResult r = joint.run(theta, opt.pirls);
    res.pirls_passes += r.passes;
    if (!r.ok) {
      res.error = "PIRLS failed at the stage-1 optimum: " + r.message;
      return res;
    }
  }
  const Eigen::VectorXd beta1 = joint.beta();
  const std::vector<Eigen::MatrixXd> u1 = joint.u();
  const Eigen::MatrixXd V1 = joint.unscaled_vcov();
  const Eigen::Index np = nt + p;
  Eigen::MatrixXd S = Eigen::MatrixXd::Zero(np, np);
  for (Eigen::Index i = 0; i < nt; ++i) {
    const double h = 1e-3 * (std::fabs(theta[i]) + 0.1);
    Eigen::VectorXd t = theta;
    double curv = -1.0;
    if (theta[i] - h >= lower[i]) {
      t[i] = theta[i] + h;
      const double fp = f1(t);
      t[i] = theta[i] - h;
      const double fm = f1(t);
      curv = (fp - 2.0 * fmin + fm) / (h * h);
    } else {
      t[i] = theta[i] + h;
      const double f1p = f1(t);
      t[i] = theta[i] + 2.0 * h;
      const double f2p = f1(t);
      curv = (f2p - 2.0 * f1p + fmin) / (h * h);
    }
    S(i, i) = (std::isfinite(curv) && curv > 1e-8) ? std::sqrt(2.0 / curv) : std::max(0.1, std::fabs(theta[i]));
  }
  if (p > 0) {
    Eigen::LLT<Eigen::MatrixXd> llt(V1);
    if (llt.info() == Eigen::Success && llt.matrixL().toDenseMatrix().diagonal().minCoeff() > 0.0) {
      S.bottomRightCorner(p, p) = llt.matrixL();
    } else {
      S.bottomRightCorner(p, p) = Eigen::MatrixXd::Identity(p, p);
    }
  }
  Eigen::VectorXd x0(np);
  x0 << theta, beta1;
  Eigen::VectorXd lowz(np);
  for (Eigen::Index i = 0; i < np; ++i) {
    lowz[i] = (i < nt && std::isfinite(lower[i])) ? (lower[i] - x0[i]) / S(i, i) : -kInf;
  }

  Pirls uonly(d, fam, tpl, false);
  uonly.set_u(u1);
  PirlsResult last;
  auto to_x = [&](const Eigen::VectorXd& z) -> Eigen::VectorXd { return x0 + S * z; };
  Objective f2 = [&](const Eigen::VectorXd& z) {
    tick();
    const Eigen::VectorXd x = to_x(z);
    uonly.set_beta(x.tail(p));
    last = uonly.run(x.head(nt), opt.pirls);
    res.pirls_passes += last.passes;
    if (!last.ok) last_pirls_message = last.message;
    return criterion(uonly, last);
  };

  // Gradient and Hessian by central differences over the coordinates fr,
  // 1 + 2n + n(n - 1) evaluations (the mixed differences along e_i + e_j
  // reuse the pure ones), each started from the modes at z.
  std::vector<Eigen::MatrixXd> u_at_z;
  auto derivatives = [&](const Eigen::VectorXd& z, double fz, const std::vector<Eigen::Index>& fr,
                         Eigen::VectorXd& g, Eigen::MatrixXd& H, bool diagonal_only) {
    const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
    const double h = 5e-3;
    g.resize(nf);
    H.resize(nf, nf);
    auto at = [&](const Eigen::VectorXd& zz) {
      uonly.set_u(u_at_z);
      return f2(zz);
    };
    Eigen::VectorXd zt = z;
    for (Eigen::Index a = 0; a < nf; ++a) {
      const Eigen::Index i = fr[a];
      zt[i] = z[i] + h;
      const double fp = at(zt);
      zt[i] = z[i] - h;
      const double fm = at(zt);
      zt[i] = z[i];
      g[a] = (fp - fm) / (2.0 * h);
      H(a, a) = (fp - 2.0 * fz + fm) / (h * h);
    }
    if (diagonal_only) {
      for (Eigen::Index a = 0; a < nf; ++a)
        for (Eigen::Index c = 0; c < a; ++c) H(a, c) = H(c, a) = 0.0;
    }
    for (Eigen::Index a = 0; a < nf && !diagonal_only; ++a)
      for (Eigen::Index c = 0; c < a; ++c) {
        const Eigen::Index i = fr[a], j = fr[c];
        zt[i] = z[i] + h;
        zt[j] = z[j] + h;
        const double fpp = at(zt);
        zt[i] = z[i] - h;
        zt[j] = z[j] - h;
        const double fmm = at(zt);
        zt[i] = z[i];
        zt[j] = z[j];
        H(a, c) = H(c, a) = (fpp + fmm - 2.0 * fz) / (2.0 * h * h) - 0.5 * (H(a, a) + H(c, c));
      }
    uonly.set_u(u_at_z);
  };

  // Stage 2 by Newton's method on finite-difference derivatives: in the
  // whitened coordinates the deviance is nearly quadratic and the stage-1
  // point is close, so two or three steps converge. Near a boundary of
  // theta, or if a Newton step fails, a projected quasi-Newton search
  // takes over.
  Eigen::VectorXd z = Eigen::VectorXd::Zero(np);
  fmin = f2(z);
  if (!std::isfinite(fmin)) {
    res.error = "the deviance is not finite at the stage-1 estimates" +
                (last_pirls_message.empty() ? std::string() : " (" + last_pirls_message + ")");
    return res;
  }
  u_at_z = uonly.u();
  std::vector<Eigen::Index> all(np);
  for (Eigen::Index i = 0; i < np; ++i) all[i] = i;
  bool newton = np <= opt.max_hessian_params;
  for (Eigen::Index i = 0; i < nt; ++i)
    if (std::isfinite(lowz[i]) && z[i] - lowz[i] < 0.5) newton = false;
  Eigen::VectorXd g;
  Eigen::MatrixXd H;
  bool have_derivs = false;
  int newton_steps = 0;
  for (int it = 0; newton && it < 10; ++it) {
    // The first step uses the curvature along each axis only (2n
    // evaluations): the whitening makes the cross terms small, and the
    // full Hessian is worth its n^2 evaluations only near the optimum.
    const bool diagonal_only = it == 0 && np > 2;
    derivatives(z, fmin, all, g, H, diagonal_only);
    have_derivs = !diagonal_only;
    Eigen::LLT<Eigen::MatrixXd> llt(H);
    if (llt.info() != Eigen::Success) {
      newton = false;
      break;
    }
    const Eigen::VectorXd dz = -llt.solve(g);
    const double decrement = -0.5 * g.dot(dz);
    if (!(decrement > opt.optim.f_tol * (1.0 + std::fabs(fmin)))) {
      if (diagonal_only) {
        derivatives(z, fmin, all, g, H, false);
        have_derivs = true;
      }
      break;
    }
    double t = 1.0;
    for (Eigen::Index i = 0; i < nt; ++i)
      if (std::isfinite(lowz[i]) && z[i] + dz[i] < lowz[i]) t = std::min(t, 0.5 * (z[i] - lowz[i]) / (-dz[i]));
    bool accepted = false;
    for (int ls = 0; ls < 20; ++ls) {
      const Eigen::VectorXd zt = z + t * dz;
      uonly.set_u(u_at_z);
      const double ft = f2(zt);
      if (std::isfinite(ft) && ft <= fmin - 1e-4 * t * decrement) {
        z = zt;
        fmin = ft;
        u_at_z = uonly.u();
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) {
      newton = false;
      break;
    }
    ++newton_steps;
    // After a step this small (a thousandth of a standard error) the
    // Hessian has not changed beyond its own accuracy, and the gradient is
    // what the quadratic model predicts.
    if (!diagonal_only && decrement < 1e-6 && t == 1.0) {
      g += H * dz;
      break;
    }
    have_derivs = false;
  }
  res.stage2.iterations = newton_steps;
  res.stage2.converged = newton;
  if (!newton) {
    OptimControl c2 = opt.optim;
    c2.step_rel = 1e-4;
    res.stage2 = minimize_bounded(f2, z, lowz, c2);
    z = res.stage2.x;
    fmin = res.stage2.f;
    uonly.set_u(u_at_z);
    fmin = f2(z);
    u_at_z = uonly.u();
    have_derivs = false;
  }
  if (!std::isfinite(fmin)) {
    res.error = "the deviance is not finite at the optimum" +
                (last_pirls_message.empty() ? std::string() : " (" + last_pirls_message + ")");
    return res;
  }
  {
    const Eigen::VectorXd zb = z;
    boundary(z, fmin, f2, nt, lowz, [&](const Eigen::VectorXd& zz, Eigen::Index i) { return x0[i] + S(i, i) * zz[i]; });
    if (z != zb) {
      uonly.set_u(u_at_z);
      fmin = f2(z);
      u_at_z = uonly.u();
      have_derivs = false;
    }
  }

  // Derivatives at the optimum: the Hessian gives the covariance of beta
  // that accounts for theta's uncertainty (as glmer's default), and the
  // Newton decrement checks convergence.
  const std::vector<Eigen::Index> fr = have_derivs ? all : free_coordinates(z, lowz);
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  if (opt.hessian && nf > 0 && nf <= opt.max_hessian_params) {
    if (!have_derivs) {
      derivatives(z, fmin, fr, g, H, false);
      // One Newton step polishes an optimum found by the quasi-Newton search.
      Eigen::LLT<Eigen::MatrixXd> llt(H);
      if (llt.info() == Eigen::Success) {
        const Eigen::VectorXd dz = -llt.solve(g);
        Eigen::VectorXd zt = z;
        for (Eigen::Index a = 0; a < nf; ++a) zt[fr[a]] = std::max(z[fr[a]] + dz[a], lowz[fr[a]]);
        uonly.set_u(u_at_z);
        const double ft = f2(zt);
        if (ft < fmin) {
          Eigen::VectorXd moved(nf);
          for (Eigen::Index a = 0; a < nf; ++a) moved[a] = zt[fr[a]] - z[fr[a]];
          g += H * moved;  // the gradient the quadratic model predicts there
          z = zt;
          fmin = ft;
          u_at_z = uonly.u();
        }
      }
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H);
    const double emax = std::max(eig.eigenvalues().cwiseAbs().maxCoeff(), 1.0);
    if (!(eig.eigenvalues().minCoeff() > 1e-8 * emax)) {
      res.warnings.push_back(
          "the Hessian of the deviance is not positive definite at the optimum: some parameters are not "
          "identified by the data (for example a random-effect variance, or a fixed effect with perfect "
          "prediction)");
    } else {
      const Eigen::VectorXd step = H.llt().solve(g);
      const double decrement = 0.5 * g.dot(step);
      if (decrement > 1e-3)
        res.warnings.push_back("the optimiser stopped where the deviance may still fall by " +
                               std::to_string(decrement) + ": the fit may not have converged");
      // Covariance of (theta, beta) in z, mapped to x = x0 + S z.
      Eigen::MatrixXd Sf(np, nf);
      for (Eigen::Index a = 0; a < nf; ++a) Sf.col(a) = S.col(fr[a]);
      const Eigen::MatrixXd Vz = 2.0 * H.llt().solve(Eigen::MatrixXd::Identity(nf, nf));
      const Eigen::MatrixXd Vx = Sf * Vz * Sf.transpose();
      if (p > 0) res.vcov_hessian = Vx.bottomRightCorner(p, p);
    }
    // Derivatives in the original coordinates (theta at a bound: NaN).
    const double nan = std::numeric_limits<double>::quiet_NaN();
    res.hessian = Eigen::MatrixXd::Constant(np, np, nan);
    res.gradient = Eigen::VectorXd::Constant(np, nan);
    Eigen::MatrixXd Sff(nf, nf);
    for (Eigen::Index a = 0; a < nf; ++a)
      for (Eigen::Index c = 0; c < nf; ++c) Sff(a, c) = S(fr[a], fr[c]);
    Eigen::FullPivLU<Eigen::MatrixXd> lu(Sff);
    if (lu.isInvertible()) {
      const Eigen::MatrixXd Si = lu.inverse();
      const Eigen::MatrixXd Hx = Si.transpose() * H * Si;
      const Eigen::VectorXd gx = Si.transpose() * g;
      for (Eigen::Index a = 0; a < nf; ++a) {
        res.gradient[fr[a]] = gx[a];
        for (Eigen::Index c = 0; c < nf; ++c) res.hessian(fr[a], fr[c]) = Hx(a, c);
      }
    }
  }
  if (!newton && !res.stage2.converged && !res.stage2.message.empty())
    res.warnings.push_back("the optimiser did not converge: " + res.stage2.message);

  // The state at the optimum.
  uonly.set_u(u_at_z);
  const double fz = f2(z);
  if (!std::isfinite(fz)) {
    res.error = "the deviance is not finite at the optimum";
    return res;
  }
  const Eigen::VectorXd x = to_x(z);
  res.theta = x.head(nt);
  res.beta = x.tail(p);
  res.criterion = fz;
  res.at = last;
  res.u = uonly.u();
  res.b = uonly.b();
  joint.set_beta(res.beta);
  joint.set_u(res.u);
  PirlsResult jr = joint.factor_here(res.theta);
  res.pirls_passes += jr.passes;
  if (jr.ok) {
    res.at.ldRX2 = jr.ldRX2;
    res.vcov_unscaled = joint.unscaled_vcov();
    if (opt.cond_var) res.cond_var = joint.system().unscaled_cond_var();
  } else {
    res.warnings.push_back("the fixed-effect system is singular at the optimum: " + jr.message);
  }
  res.eta = joint.linear_predictor();
  res.ok = true;
  return res;
}

GlmmResult evaluate_glmm(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                         const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                         const GlmmOptions& opt) {
  GlmmResult res;
  Eigen::VectorXd gz, gw;
  if (opt.n_agq > 1) gauss_hermite(opt.n_agq, gz, gw);
  const Criterion criterion(fam, opt.n_agq, gz, gw);
  Pirls joint(d, fam, tpl, true);
  joint.set_start_eta(eta_start);
  PirlsResult r = joint.run(theta, opt.pirls);
  if (!r.ok) {
    res.error = "PIRLS failed: " + r.message;
    return res;
  }
  res.theta = theta;
  if (opt.n_agq == 0) {
    res.beta = joint.beta();
    res.u = joint.u();
    res.b = joint.b();
    res.at = r;
    res.criterion = criterion(joint, r);
  } else {
    Pirls uonly(d, fam, tpl, false);
    uonly.set_u(joint.u());
    uonly.set_beta(beta);
    PirlsResult ru = uonly.run(theta, opt.pirls);
    if (!ru.ok) {
      res.error = "PIRLS failed: " + ru.message;
      return res;
    }
    res.beta = beta;
    res.u = uonly.u();
    res.b = uonly.b();
    res.at = ru;
    res.criterion = criterion(uonly, ru);
    joint.set_beta(beta);
    joint.set_u(res.u);
    PirlsResult jr = joint.factor_here(theta);
    if (jr.ok) res.at.ldRX2 = jr.ldRX2;
  }
  res.vcov_unscaled = joint.unscaled_vcov();
  res.eta = joint.linear_predictor();
  res.ok = true;
  return res;
}

}  // namespace mlm
