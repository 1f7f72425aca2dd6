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

// Where theta's entries sit in the relative covariance factors: the
// diagonal entries bounded below by zero (the deviance is even in each of
// them at zero, so zero is a stationary point whatever the data) and, for
// each, the entries below it in its column (whose sign is arbitrary while
// the diagonal entry is zero) and those left of it in its row (which with
// it make up the standard deviation of its random effect).
struct ThetaLayout {
  std::vector<Eigen::Index> diagonal;
  std::vector<std::vector<Eigen::Index>> below, left;
  std::vector<std::vector<Eigen::Index>> below_diagonal;  // the diagonal entry of the row of each entry below
};

ThetaLayout theta_layout(const std::vector<CovTemplate>& tpl, const Eigen::VectorXd& lower) {
  ThetaLayout layout;
  for (const CovTemplate& t : tpl)
    for (int c = 0; c < t.q; ++c) {
      const int k = t.theta_index[c + c * t.q];
      if (k < 0 || lower[k] != 0.0) continue;
      std::vector<Eigen::Index> below, left, below_diagonal;
      for (int r = c + 1; r < t.q; ++r)
        if (t.theta_index[r + c * t.q] >= 0) {
          below.push_back(t.theta_index[r + c * t.q]);
          below_diagonal.push_back(t.theta_index[r + r * t.q]);
        }
      for (int a = 0; a < c; ++a)
        if (t.theta_index[c + a * t.q] >= 0) left.push_back(t.theta_index[c + a * t.q]);
      layout.diagonal.push_back(k);
      layout.below.push_back(std::move(below));
      layout.left.push_back(std::move(left));
      layout.below_diagonal.push_back(std::move(below_diagonal));
    }
  return layout;
}

// Diagonal entries of theta (the first coordinates of x, in natural units)
// that end just above zero are set to zero when that does not raise f.
void settle_boundary(const Objective& f, const ThetaLayout& layout, double tol, Eigen::VectorXd& x, double& fx) {
  for (Eigen::Index k : layout.diagonal) {
    if (!(x[k] > 0.0 && x[k] < tol)) continue;
    Eigen::VectorXd t = x;
    t[k] = 0.0;
    const double ft = f(t);
    if (ft <= fx + 1e-8) {
      x = t;
      fx = std::min(fx, ft);
    }
  }
}

// Points that may lie in a better basin than the optimum x: from each zero
// diagonal entry of theta, a few steps inside (with both signs of the rest
// of its column); where evaluations are cheap, also each nonzero diagonal
// entry with its column at zero (a boundary better than an interior
// minimum), and its random effect perfectly correlated with an earlier one
// of its term (the diagonal entry at zero, the standard deviation moved to
// one entry of its row, either sign). Returns the best point and its value
// (x and fx when none is better by a relative 1e-9).
double probe_basins(const Objective& f, const ThetaLayout& layout, bool thorough, const Eigen::VectorXd& x, double fx,
                    Eigen::VectorXd& best) {
  best = x;
  double fbest = fx;
  auto consider = [&](const Eigen::VectorXd& t) {
    const double ft = f(t);
    if (ft < fbest - 1e-9 * (1.0 + std::fabs(fbest))) {
      best = t;
      fbest = ft;
    }
  };
  for (std::size_t a = 0; a < layout.diagonal.size(); ++a) {
    const Eigen::Index k = layout.diagonal[a];
    const std::vector<Eigen::Index>& below = layout.below[a];
    if (x[k] == 0.0) {
      for (int sign : {1, -1}) {
        if (sign < 0 && below.empty()) continue;
        Eigen::VectorXd t = x;
        if (sign < 0)
          for (Eigen::Index j : below) t[j] = -t[j];
        for (double h : {1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0}) {
          t[k] = h;
          consider(t);
        }
        if (!thorough) continue;
        // The same with the random effects of the rows below perfectly
        // correlated with this one: their standard deviations moved into
        // this column.
        Eigen::VectorXd c = x;
        bool moved = false;
        for (std::size_t b = 0; b < below.size(); ++b) {
          const Eigen::Index j = below[b], dj = layout.below_diagonal[a][b];
          if (dj < 0 || x[dj] == 0.0) continue;
          c[j] = sign * std::sqrt(x[j] * x[j] + x[dj] * x[dj]);
          c[dj] = 0.0;
          moved = true;
        }
        if (!moved) continue;
        for (double h : {1e-3, 1e-2, 0.1, 1.0}) {
          c[k] = h;
          consider(c);
        }
      }
    } else if (thorough) {
      Eigen::VectorXd t = x;
      t[k] = 0.0;
      for (Eigen::Index j : below) t[j] = 0.0;
      consider(t);
      const std::vector<Eigen::Index>& left = layout.left[a];
      double sd2 = x[k] * x[k];
      for (Eigen::Index j : left) sd2 += x[j] * x[j];
      for (Eigen::Index j : left)
        for (int sign : {1, -1}) {
          Eigen::VectorXd c = x;
          c[k] = 0.0;
          for (Eigen::Index i : left) c[i] = 0.0;
          c[j] = sign * std::sqrt(sd2);
          consider(c);
        }
    }
  }
  return fbest;
}

// The projected quasi-Newton search, restarted from where it stopped until
// a restart gains nothing: its stopping rule trusts a curvature model that
// a few wild steps (far into a region where PIRLS struggles) can spoil, and
// a restart measures the curvature afresh by central differences.
OptimResult minimize_restarted(const Objective& f, const Eigen::VectorXd& x0, const Eigen::VectorXd& lower,
                               const OptimControl& control) {
  OptimResult res = minimize_bounded(f, x0, lower, control);
  for (int restart = 0; restart < 4 && std::isfinite(res.f); ++restart) {
    OptimResult again = minimize_bounded(f, res.x, lower, control);
    again.evals += res.evals;
    again.iterations += res.iterations;
    const bool gained = again.f < res.f - control.f_tol * (1.0 + std::fabs(res.f));
    if (again.f <= res.f) res = again;
    else res.evals = again.evals;
    if (!gained) break;
  }
  return res;
}

// One GLMM fit, step by step (see glmm_fit.h): the objects both stages
// share, and the state that passes from one step to the next.
class GlmmFitter {
 public:
  GlmmFitter(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
             const Eigen::VectorXd& lower, const GlmmOptions& opt, GlmmResult& res);

  bool optimise_theta(const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0);
  bool theta_only_result();
  bool whiten();
  bool optimise_theta_and_beta();
  void derivatives_at_optimum();
  bool result();

 private:
  double stage1_criterion(const Eigen::VectorXd& phi);
  double stage2_criterion(const Eigen::VectorXd& z);
  Eigen::VectorXd to_x(const Eigen::VectorXd& z) const { return x0_ + S_ * z; }
  Eigen::VectorXd to_z(const Eigen::VectorXd& x) const { return S_.triangularView<Eigen::Lower>().solve(x - x0_); }
  double stage2_from_modes(const Eigen::VectorXd& z);
  void keep_modes() { u_at_z_ = uonly_.u(); }
  void settle_optimum(const Objective& f, const Eigen::VectorXd& lower, Eigen::VectorXd& x, double& fx,
                      const std::function<bool(const Eigen::VectorXd&, double&, Eigen::VectorXd&)>& reoptimise);
  void derivatives(const Eigen::VectorXd& z, double fz, const std::vector<Eigen::Index>& fr, Eigen::VectorXd& g,
                   Eigen::MatrixXd& H, bool diagonal_only);
  bool newton_stage2();
  void quasi_newton_stage2();
  void newton_polish(const std::vector<Eigen::Index>& fr);
  void covariance_from_hessian(const std::vector<Eigen::Index>& fr);
  bool fail(const std::string& what);

  const ModelData& d_;
  const GlmFamily& fam_;
  const GlmmOptions& opt_;
  GlmmResult& res_;
  const Eigen::Index nt_;
  const int p_;
  const ThetaLayout layout_;
  Eigen::VectorXd gz_, gw_;  // Gauss-Hermite rule (nAGQ > 1)
  Criterion laplace_, criterion_;
  Pirls joint_, uonly_;
  Eigen::VectorXd units_;       // natural unit of each entry of theta
  Eigen::VectorXd lower_phi_;   // lower bounds of theta in natural units
  bool thorough_;               // evaluations cheap enough for the extra probes
  int calls_ = 0;
  std::string last_pirls_message_;

  // Stage 1: theta in natural units, phi = theta / units.
  Eigen::VectorXd phi_;
  double f1_ = kInf;

  // Stage 2: x = (phi, beta) = x0 + S z, S lower triangular.
  Eigen::VectorXd x0_, lowz_, z_;
  Eigen::MatrixXd S_;
  double f2_ = kInf;
  std::vector<Eigen::MatrixXd> u_at_z_;  // the modes at z_: every evaluation near z starts there
  PirlsResult last_;
  bool newton_ = false;
  bool have_derivs_ = false;  // g_ and H_ are the derivatives at z_ over all coordinates
  Eigen::VectorXd g_;
  Eigen::MatrixXd H_;
};

GlmmFitter::GlmmFitter(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                       const Eigen::VectorXd& lower, const GlmmOptions& opt, GlmmResult& res)
    : d_(d),
      fam_(fam),
      opt_(opt),
      res_(res),
      nt_(lower.size()),
      p_(d.p),
      layout_(theta_layout(tpl, lower)),
      laplace_(fam, 1, Eigen::VectorXd(), Eigen::VectorXd()),
      criterion_(fam, opt.n_agq, Eigen::VectorXd(), Eigen::VectorXd()),
      joint_(d, fam, tpl, true),
      uonly_(d, fam, tpl, false) {
  if (opt.n_agq > 1) {
    gauss_hermite(opt.n_agq, gz_, gw_);
    criterion_ = Criterion(fam, opt.n_agq, gz_, gw_);
  }
  units_ = joint_.theta_units();
  lower_phi_ = lower.cwiseQuotient(units_);
  thorough_ = static_cast<double>(d.n) * static_cast<double>(std::max<Eigen::Index>(nt_, 1)) <= 2e5;
}

bool GlmmFitter::fail(const std::string& what) {
  res_.error = what + (last_pirls_message_.empty() ? std::string() : " (" + last_pirls_message_ + ")");
  return false;
}

// The nAGQ = 0 criterion at theta = phi * units: beta and u at their joint
// conditional modes, the Laplace formula.
double GlmmFitter::stage1_criterion(const Eigen::VectorXd& phi) {
  ++res_.evals;
  if (opt_.check_interrupt && (++calls_ & 7) == 0) opt_.check_interrupt();
  PirlsResult r = joint_.run(phi.cwiseProduct(units_), opt_.pirls);
  res_.pirls_passes += r.passes;
  if (!r.ok) last_pirls_message_ = r.message;
  return laplace_(joint_, r);
}

// The criterion (Laplace or quadrature) at x = x0 + S z: u at its
// conditional mode given theta and beta.
double GlmmFitter::stage2_criterion(const Eigen::VectorXd& z) {
  ++res_.evals;
  if (opt_.check_interrupt && (++calls_ & 7) == 0) opt_.check_interrupt();
  const Eigen::VectorXd x = to_x(z);
  uonly_.set_beta(x.tail(p_));
  last_ = uonly_.run(x.head(nt_).cwiseProduct(units_), opt_.pirls);
  res_.pirls_passes += last_.passes;
  if (!last_.ok) last_pirls_message_ = last_.message;
  return criterion_(uonly_, last_);
}

// The stage-2 criterion with PIRLS started from the modes at z_, so that
// nearby evaluations (differences, line searches) see one smooth function.
double GlmmFitter::stage2_from_modes(const Eigen::VectorXd& z) {
  uonly_.set_u(u_at_z_);
  return stage2_criterion(z);
}

// What happens at an optimum x of f (theta first, in natural units): the
// boundary rule, then up to three rounds of probes for a better basin,
// each followed by a new optimisation from the best point probed.
void GlmmFitter::settle_optimum(
    const Objective& f, const Eigen::VectorXd& lower, Eigen::VectorXd& x, double& fx,
    const std::function<bool(const Eigen::VectorXd&, double&, Eigen::VectorXd&)>& reoptimise) {
  settle_boundary(f, layout_, opt_.boundary_tol, x, fx);
  for (int round = 0; round < 3 && std::isfinite(fx); ++round) {
    Eigen::VectorXd best;
    const double fbest = probe_basins(f, layout_, thorough_, x, fx, best);
    if (!(fbest < fx)) break;
    Eigen::VectorXd again;
    double fagain = kInf;
    if (reoptimise(best, fagain, again) && fagain < fbest) {
      x = again.cwiseMax(lower);
      fx = fagain;
    } else {
      x = best;
      fx = fbest;
    }
    settle_boundary(f, layout_, opt_.boundary_tol, x, fx);
  }
}

// Stage 1: theta alone, beta and u at their joint conditional modes.
bool GlmmFitter::optimise_theta(const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0) {
  joint_.set_start_eta(eta_start);
  const Eigen::VectorXd phi0 = theta0.cwiseQuotient(units_).cwiseMax(lower_phi_);
  PirlsResult first = joint_.run(phi0.cwiseProduct(units_), opt_.pirls);
  res_.pirls_passes += first.passes;
  if (!first.ok) {
    res_.error = "PIRLS failed at the starting values: " + first.message;
    return false;
  }
  Objective f1 = [this](const Eigen::VectorXd& phi) { return stage1_criterion(phi); };
  // Stage 1 only gives starting values when stage 2 follows: a loose
  // tolerance saves evaluations that stage 2 would make redundant.
  OptimControl c1 = opt_.optim;
  if (opt_.n_agq > 0) c1.f_tol = std::max(c1.f_tol, 1e-7);
  // Steps of at most one natural unit: a standard deviation of the linear
  // predictor several units away from the last is where PIRLS struggles
  // and the curvature model learns nothing useful.
  c1.max_step = 1.0;
  res_.stage1 = minimize_restarted(f1, phi0, lower_phi_, c1);
  if (!std::isfinite(res_.stage1.f)) return fail("the deviance is not finite at the starting values");
  phi_ = res_.stage1.x;
  f1_ = res_.stage1.f;
  settle_optimum(f1, lower_phi_, phi_, f1_, [&](const Eigen::VectorXd& from, double& f, Eigen::VectorXd& at) {
    OptimResult again = minimize_restarted(f1, from, lower_phi_, c1);
    res_.stage1.iterations += again.iterations;
    res_.stage1.evals += again.evals;
    at = again.x;
    f = again.f;
    return std::isfinite(again.f);
  });
  return true;
}

// nAGQ = 0: the stage-1 optimum is the fit.
bool GlmmFitter::theta_only_result() {
  if (!res_.stage1.converged && !res_.stage1.message.empty())
    res_.warnings.push_back("the optimiser did not converge: " + res_.stage1.message);
  const Eigen::VectorXd theta = phi_.cwiseProduct(units_);
  PirlsResult r = joint_.run(theta, opt_.pirls);
  res_.pirls_passes += r.passes;
  if (!r.ok) {
    res_.error = "PIRLS failed at the optimum: " + r.message;
    return false;
  }
  res_.theta = theta;
  res_.beta = joint_.beta();
  res_.u = joint_.u();
  res_.b = joint_.b();
  res_.at = r;
  res_.criterion = laplace_(joint_, r);
  res_.vcov_unscaled = joint_.unscaled_vcov();
  if (opt_.cond_var) res_.cond_var = joint_.system().unscaled_cond_var();
  res_.eta = joint_.linear_predictor();
  res_.ok = true;
  return true;
}

// Coordinates for stage 2 in which the deviance is nearly quadratic with
// unit curvature: phi scaled by the curvature of the stage-1 criterion
// along each axis, beta by the Cholesky factor of its conditional
// covariance at the stage-1 optimum.
bool GlmmFitter::whiten() {
  {
    PirlsResult r = joint_.run(phi_.cwiseProduct(units_), opt_.pirls);
    res_.pirls_passes += r.passes;
    if (!r.ok) {
      res_.error = "PIRLS failed at the stage-1 optimum: " + r.message;
      return false;
    }
  }
  const Eigen::VectorXd beta1 = joint_.beta();
  u_at_z_ = joint_.u();
  const Eigen::MatrixXd V1 = joint_.unscaled_vcov();
  const Eigen::Index np = nt_ + p_;
  S_ = Eigen::MatrixXd::Zero(np, np);
  for (Eigen::Index i = 0; i < nt_; ++i) {
    const double h = 1e-3 * (std::fabs(phi_[i]) + 0.1);
    Eigen::VectorXd t = phi_;
    double curv;
    if (phi_[i] - h >= lower_phi_[i]) {
      t[i] = phi_[i] + h;
      const double fp = stage1_criterion(t);
      t[i] = phi_[i] - h;
      const double fm = stage1_criterion(t);
      curv = (fp - 2.0 * f1_ + fm) / (h * h);
    } else {
      t[i] = phi_[i] + h;
      const double f1p = stage1_criterion(t);
      t[i] = phi_[i] + 2.0 * h;
      const double f2p = stage1_criterion(t);
      curv = (f2p - 2.0 * f1p + f1_) / (h * h);
    }
    S_(i, i) = (std::isfinite(curv) && curv > 1e-8) ? std::sqrt(2.0 / curv) : std::max(0.1, std::fabs(phi_[i]));
  }
  if (p_ > 0) {
    Eigen::LLT<Eigen::MatrixXd> llt(V1);
    if (llt.info() == Eigen::Success && llt.matrixL().toDenseMatrix().diagonal().minCoeff() > 0.0)
      S_.bottomRightCorner(p_, p_) = llt.matrixL();
    else
      S_.bottomRightCorner(p_, p_) = Eigen::MatrixXd::Identity(p_, p_);
  }
  x0_.resize(np);
  x0_ << phi_, beta1;
  lowz_.resize(np);
  for (Eigen::Index i = 0; i < np; ++i)
    lowz_[i] = (i < nt_ && std::isfinite(lower_phi_[i])) ? (lower_phi_[i] - x0_[i]) / S_(i, i) : -kInf;
  return true;
}

// Gradient and Hessian by central differences over the coordinates fr,
// 1 + 2n + n(n - 1) evaluations (the mixed differences along e_i + e_j
// reuse the pure ones), each started from the modes at z.
void GlmmFitter::derivatives(const Eigen::VectorXd& z, double fz, const std::vector<Eigen::Index>& fr,
                             Eigen::VectorXd& g, Eigen::MatrixXd& H, bool diagonal_only) {
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  const double h = 5e-3;
  g.resize(nf);
  H.setZero(nf, nf);
  Eigen::VectorXd zt = z;
  for (Eigen::Index a = 0; a < nf; ++a) {
    const Eigen::Index i = fr[a];
    zt[i] = z[i] + h;
    const double fp = stage2_from_modes(zt);
    zt[i] = z[i] - h;
    const double fm = stage2_from_modes(zt);
    zt[i] = z[i];
    g[a] = (fp - fm) / (2.0 * h);
    H(a, a) = (fp - 2.0 * fz + fm) / (h * h);
  }
  for (Eigen::Index a = 0; a < nf && !diagonal_only; ++a)
    for (Eigen::Index c = 0; c < a; ++c) {
      const Eigen::Index i = fr[a], j = fr[c];
      zt[i] = z[i] + h;
      zt[j] = z[j] + h;
      const double fpp = stage2_from_modes(zt);
      zt[i] = z[i] - h;
      zt[j] = z[j] - h;
      const double fmm = stage2_from_modes(zt);
      zt[i] = z[i];
      zt[j] = z[j];
      H(a, c) = H(c, a) = (fpp + fmm - 2.0 * fz) / (2.0 * h * h) - 0.5 * (H(a, a) + H(c, c));
    }
  uonly_.set_u(u_at_z_);
}

// Newton's method on finite-difference derivatives: in the whitened
// coordinates the deviance is nearly quadratic and the stage-1 point is
// close, so two or three steps converge. False when a step fails (the
// quasi-Newton search takes over).
bool GlmmFitter::newton_stage2() {
  const Eigen::Index np = nt_ + p_;
  std::vector<Eigen::Index> all(np);
  for (Eigen::Index i = 0; i < np; ++i) all[i] = i;
  for (int it = 0; it < 10; ++it) {
    // The first step uses the curvature along each axis only (2n
    // evaluations): the whitening makes the cross terms small, and the
    // full Hessian is worth its n^2 evaluations only near the optimum.
    const bool diagonal_only = it == 0 && np > 2;
    derivatives(z_, f2_, all, g_, H_, diagonal_only);
    have_derivs_ = !diagonal_only;
    Eigen::LLT<Eigen::MatrixXd> llt(H_);
    if (llt.info() != Eigen::Success) return false;
    const Eigen::VectorXd dz = -llt.solve(g_);
    const double decrement = -0.5 * g_.dot(dz);
    if (!(decrement > opt_.optim.f_tol * (1.0 + std::fabs(f2_)))) {
      if (diagonal_only) {
        derivatives(z_, f2_, all, g_, H_, false);
        have_derivs_ = true;
      }
      return true;
    }
    double t = 1.0;
    for (Eigen::Index i = 0; i < nt_; ++i)
      if (std::isfinite(lowz_[i]) && z_[i] + dz[i] < lowz_[i]) t = std::min(t, 0.5 * (z_[i] - lowz_[i]) / (-dz[i]));
    bool accepted = false;
    for (int ls = 0; ls < 20 && !accepted; ++ls, t *= 0.5) {
      const Eigen::VectorXd zt = z_ + t * dz;
      const double ft = stage2_from_modes(zt);
      if (std::isfinite(ft) && ft <= f2_ - 1e-4 * t * decrement) {
        z_ = zt;
        f2_ = ft;
        keep_modes();
        accepted = true;
        // After a full step this small (a thousandth of a standard error)
        // the Hessian has not changed beyond its own accuracy, and the
        // gradient is what the quadratic model predicts.
        if (!diagonal_only && decrement < 1e-6 && t == 1.0) {
          g_ += H_ * dz;
          ++res_.stage2.iterations;
          return true;
        }
      }
    }
    if (!accepted) return false;
    ++res_.stage2.iterations;
    have_derivs_ = false;
  }
  return true;
}

// The projected quasi-Newton search, from z_, when Newton's method cannot
// be used (near a bound of theta) or failed.
void GlmmFitter::quasi_newton_stage2() {
  Objective f2 = [this](const Eigen::VectorXd& z) { return stage2_criterion(z); };
  OptimControl c2 = opt_.optim;
  c2.step_rel = 1e-4;
  const int iterations = res_.stage2.iterations;
  res_.stage2 = minimize_restarted(f2, z_, lowz_, c2);
  res_.stage2.iterations += iterations;
  z_ = res_.stage2.x;
  f2_ = stage2_from_modes(z_);
  keep_modes();
  have_derivs_ = false;
}

// Stage 2: theta and beta together, u at its conditional mode, on the
// Laplace or quadrature criterion.
bool GlmmFitter::optimise_theta_and_beta() {
  z_ = Eigen::VectorXd::Zero(nt_ + p_);
  uonly_.set_u(u_at_z_);
  f2_ = stage2_criterion(z_);
  if (!std::isfinite(f2_)) return fail("the deviance is not finite at the stage-1 estimates");
  keep_modes();
  newton_ = nt_ + p_ <= opt_.max_hessian_params;
  for (Eigen::Index i = 0; i < nt_; ++i)
    if (std::isfinite(lowz_[i]) && z_[i] - lowz_[i] < 0.5) newton_ = false;
  if (newton_) newton_ = newton_stage2();
  res_.stage2.converged = newton_;
  if (!newton_) quasi_newton_stage2();
  if (!std::isfinite(f2_)) return fail("the deviance is not finite at the optimum");

  // The boundary rule and the probes, on theta in natural units.
  Objective fx = [this](const Eigen::VectorXd& x) { return stage2_from_modes(to_z(x)); };
  Eigen::VectorXd lower_x = Eigen::VectorXd::Constant(nt_ + p_, -kInf);
  lower_x.head(nt_) = lower_phi_;
  Eigen::VectorXd x = to_x(z_);
  for (Eigen::Index i = 0; i < nt_; ++i)
    if (z_[i] <= lowz_[i]) x[i] = lower_phi_[i];  // exactly on the bound
  const Eigen::VectorXd x_before = x;
  double fbefore = f2_;
  settle_optimum(fx, lower_x, x, fbefore, [&](const Eigen::VectorXd& from, double& f, Eigen::VectorXd& at) {
    OptimControl c2 = opt_.optim;
    c2.step_rel = 1e-4;
    Objective f2 = [this](const Eigen::VectorXd& z) { return stage2_criterion(z); };
    OptimResult again = minimize_restarted(f2, to_z(from).cwiseMax(lowz_), lowz_, c2);
    res_.stage2.iterations += again.iterations;
    res_.stage2.evals += again.evals;
    if (!again.converged) res_.stage2.message = again.message;
    at = to_x(again.x);
    f = again.f;
    return std::isfinite(again.f);
  });
  if (x != x_before) {
    z_ = to_z(x).cwiseMax(lowz_);
    for (Eigen::Index i = 0; i < nt_; ++i)
      if (x[i] <= lower_phi_[i]) z_[i] = lowz_[i];
    f2_ = stage2_criterion(z_);
    keep_modes();
    have_derivs_ = false;
    newton_ = false;
  }
  if (!std::isfinite(f2_)) return fail("the deviance is not finite at the optimum");
  return true;
}

// One Newton step on the free coordinates polishes an optimum found by the
// quasi-Newton search (or moved by the boundary rule).
void GlmmFitter::newton_polish(const std::vector<Eigen::Index>& fr) {
  Eigen::LLT<Eigen::MatrixXd> llt(H_);
  if (llt.info() != Eigen::Success) return;
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  const Eigen::VectorXd dz = -llt.solve(g_);
  Eigen::VectorXd zt = z_;
  for (Eigen::Index a = 0; a < nf; ++a) zt[fr[a]] = std::max(z_[fr[a]] + dz[a], lowz_[fr[a]]);
  const double ft = stage2_from_modes(zt);
  if (!(ft < f2_)) return;
  Eigen::VectorXd moved(nf);
  for (Eigen::Index a = 0; a < nf; ++a) moved[a] = zt[fr[a]] - z_[fr[a]];
  g_ += H_ * moved;  // the gradient the quadratic model predicts there
  z_ = zt;
  f2_ = ft;
  keep_modes();
}

// The covariance of the fixed effects from the Hessian of the deviance in
// (theta, beta) (as glmer's default), the convergence check (the Newton
// decrement that remains), and the derivatives in the original
// coordinates.
void GlmmFitter::covariance_from_hessian(const std::vector<Eigen::Index>& fr) {
  const Eigen::Index np = nt_ + p_;
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H_);
  const double emax = std::max(eig.eigenvalues().cwiseAbs().maxCoeff(), 1.0);
  if (!(eig.eigenvalues().minCoeff() > 1e-8 * emax)) {
    res_.warnings.push_back(
        "the Hessian of the deviance is not positive definite at the optimum: some parameters are not "
        "identified by the data (for example a random-effect variance, or a fixed effect with perfect "
        "prediction)");
  } else {
    const Eigen::VectorXd step = H_.llt().solve(g_);
    const double decrement = 0.5 * g_.dot(step);
    if (decrement > 1e-3)
      res_.warnings.push_back("the optimiser stopped where the deviance may still fall by " +
                              std::to_string(decrement) + ": the fit may not have converged");
    // Covariance of (phi, beta) in z, mapped to x = x0 + S z.
    Eigen::MatrixXd Sf(np, nf);
    for (Eigen::Index a = 0; a < nf; ++a) Sf.col(a) = S_.col(fr[a]);
    const Eigen::MatrixXd Vz = 2.0 * H_.llt().solve(Eigen::MatrixXd::Identity(nf, nf));
    const Eigen::MatrixXd Vx = Sf * Vz * Sf.transpose();
    if (p_ > 0) res_.vcov_hessian = Vx.bottomRightCorner(p_, p_);
  }
  // Derivatives in theta and beta (theta at a bound: NaN): x = (phi, beta),
  // theta = units * phi.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  res_.hessian = Eigen::MatrixXd::Constant(np, np, nan);
  res_.gradient = Eigen::VectorXd::Constant(np, nan);
  Eigen::MatrixXd Sff(nf, nf);
  for (Eigen::Index a = 0; a < nf; ++a)
    for (Eigen::Index c = 0; c < nf; ++c) Sff(a, c) = S_(fr[a], fr[c]);
  Eigen::FullPivLU<Eigen::MatrixXd> lu(Sff);
  if (!lu.isInvertible()) return;
  Eigen::VectorXd per_unit = Eigen::VectorXd::Ones(nf);  // d phi / d theta
  for (Eigen::Index a = 0; a < nf; ++a)
    if (fr[a] < nt_) per_unit[a] = 1.0 / units_[fr[a]];
  const Eigen::MatrixXd Si = lu.inverse() * per_unit.asDiagonal();
  const Eigen::MatrixXd Hx = Si.transpose() * H_ * Si;
  const Eigen::VectorXd gx = Si.transpose() * g_;
  for (Eigen::Index a = 0; a < nf; ++a) {
    res_.gradient[fr[a]] = gx[a];
    for (Eigen::Index c = 0; c < nf; ++c) res_.hessian(fr[a], fr[c]) = Hx(a, c);
  }
}

// Derivatives at the optimum: the Hessian gives the covariance of beta
// that accounts for theta's uncertainty, and the Newton decrement checks
// convergence.
void GlmmFitter::derivatives_at_optimum() {
  const Eigen::Index np = nt_ + p_;
  std::vector<Eigen::Index> all(np);
  for (Eigen::Index i = 0; i < np; ++i) all[i] = i;
  const std::vector<Eigen::Index> fr = have_derivs_ ? all : free_coordinates(z_, lowz_);
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  if (opt_.hessian && nf > 0 && nf <= opt_.max_hessian_params) {
    if (!have_derivs_) {
      derivatives(z_, f2_, fr, g_, H_, false);
      newton_polish(fr);
    }
    covariance_from_hessian(fr);
  }
  if (!newton_ && !res_.stage2.converged && !res_.stage2.message.empty())
    res_.warnings.push_back("the optimiser did not converge: " + res_.stage2.message);
}

// The state at the optimum: modes, determinants, the covariance of beta
// given theta, the linear predictor.
bool GlmmFitter::result() {
  const double fz = stage2_from_modes(z_);
  if (!std::isfinite(fz)) {
    res_.error = "the deviance is not finite at the optimum";
    return false;
  }
  const Eigen::VectorXd x = to_x(z_);
  res_.theta = x.head(nt_).cwiseProduct(units_);
  for (Eigen::Index i = 0; i < nt_; ++i)
    if (z_[i] <= lowz_[i]) res_.theta[i] = lower_phi_[i] * units_[i];
  res_.beta = x.tail(p_);
  res_.criterion = fz;
  res_.at = last_;
  res_.u = uonly_.u();
  res_.b = uonly_.b();
  joint_.set_beta(res_.beta);
  joint_.set_u(res_.u);
  PirlsResult jr = joint_.factor_here(res_.theta);
  res_.pirls_passes += jr.passes;
  if (jr.ok) {
    res_.at.ldRX2 = jr.ldRX2;
    res_.vcov_unscaled = joint_.unscaled_vcov();
    if (opt_.cond_var) res_.cond_var = joint_.system().unscaled_cond_var();
  } else {
    res_.warnings.push_back("the fixed-effect system is singular at the optimum: " + jr.message);
  }
  res_.eta = joint_.linear_predictor();
  res_.ok = true;
  return true;
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
  GlmmFitter fit(d, fam, tpl, lower, opt, res);
  if (!fit.optimise_theta(eta_start, theta0)) return res;
  if (opt.n_agq == 0) {
    fit.theta_only_result();
    return res;
  }
  if (!fit.whiten() || !fit.optimise_theta_and_beta()) return res;
  fit.derivatives_at_optimum();
  fit.result();
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
