#include "glmm_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "laplace_gradient.h"
#include "lmm_fit.h"
#include "optimum.h"
#include "stage1_gradient.h"

namespace mlm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kStage1ModeTol = 1e-6;  // PIRLS's tolerance while stage 1 searches (see optimise_theta)

// The criterion that PIRLS results are judged by.
class PirlsCriterion {
 public:
  PirlsCriterion(const GlmFamily& fam, int n_agq, Eigen::VectorXd z, Eigen::VectorXd w)
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

// theta's layout for the rules at an optimum (optimum.h), with the entries
// left of each diagonal one in its row (for the probes of perfect
// correlations), in natural units.
ParameterSpace glmm_theta_space(const std::vector<CovTemplate>& tpl, const Eigen::VectorXd& lower_phi) {
  ParameterSpace space = theta_space(tpl, lower_phi);
  space.left.assign(lower_phi.size(), {});
  for (const CovTemplate& t : tpl)
    for (int r = 0; r < t.q; ++r) {
      const int k = t.theta_index[r + r * t.q];
      if (k < 0) continue;
      for (int c = 0; c < r; ++c)
        if (t.theta_index[r + c * t.q] >= 0) space.left[k].push_back(t.theta_index[r + c * t.q]);
    }
  return space;
}

// The same space with p more parameters (the whitened fixed effects of
// stage 2), unbounded and without structure.
ParameterSpace with_fixed_effects(ParameterSpace space, int p) {
  const Eigen::Index nt = space.lower.size();
  Eigen::VectorXd lower = Eigen::VectorXd::Constant(nt + p, -kInf);
  lower.head(nt) = space.lower;
  space.lower = lower;
  space.role.resize(nt + p, ParameterRole::other);
  space.below.resize(nt + p);
  space.left.resize(nt + p);
  return space;
}

// Gradient and Hessian of f at x by central differences with steps h,
// 1 + 2n + n(n - 1) evaluations (the mixed differences along e_i + e_j
// reuse the pure ones; 1 + 2n for the diagonal only). Central differences
// across a bound of theta are
// valid: the deviance is smooth in the entries of the relative covariance
// factor, whatever their sign.
void central_differences(const Objective& f, const Eigen::VectorXd& x, double fx, const Eigen::VectorXd& h,
                         Eigen::VectorXd& g, Eigen::MatrixXd& H, bool diagonal_only = false) {
  const Eigen::Index n = x.size();
  g.resize(n);
  H.setZero(n, n);
  Eigen::VectorXd xt = x;
  for (Eigen::Index i = 0; i < n; ++i) {
    xt[i] = x[i] + h[i];
    const double fp = f(xt);
    xt[i] = x[i] - h[i];
    const double fm = f(xt);
    xt[i] = x[i];
    g[i] = (fp - fm) / (2.0 * h[i]);
    H(i, i) = (fp - 2.0 * fx + fm) / (h[i] * h[i]);
  }
  for (Eigen::Index i = 0; i < n && !diagonal_only; ++i)
    for (Eigen::Index j = 0; j < i; ++j) {
      xt[i] = x[i] + h[i];
      xt[j] = x[j] + h[j];
      const double fpp = f(xt);
      xt[i] = x[i] - h[i];
      xt[j] = x[j] - h[j];
      const double fmm = f(xt);
      xt[i] = x[i];
      xt[j] = x[j];
      H(i, j) = H(j, i) =
          (fpp + fmm - 2.0 * fx) / (2.0 * h[i] * h[j]) - 0.5 * (H(i, i) * h[i] / h[j] + H(j, j) * h[j] / h[i]);
    }
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
  void covariance_from_hessian();
  bool result();

 private:
  void tick();
  void start_at_anchor1();
  double stage1_criterion(const Eigen::VectorXd& phi);
  double stage1_value_and_gradient(const Eigen::VectorXd& phi, Eigen::VectorXd& g);
  bool factor_at_modes(Pirls& pirls, const Eigen::VectorXd& theta);
  double stage2_criterion(const Eigen::VectorXd& y);
  Eigen::VectorXd to_x(const Eigen::VectorXd& y) const;
  bool stage1_derivatives(const Eigen::VectorXd& phi, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H);
  bool stage2_derivatives(const Eigen::VectorXd& y, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H,
                          bool diagonal_only = false);
  bool stage2_gradient(const Eigen::VectorXd& y, double& f, Eigen::VectorXd& g);
  bool quasi_newton_descent(Eigen::VectorXd& y);
  bool near_bound(const Eigen::VectorXd& y, bool except_at_bound = false) const;
  bool entry_near_bound(const Eigen::VectorXd& y, Eigen::Index i) const;
  bool on_bound(const Eigen::VectorXd& y, Eigen::Index i) const;
  bool projected_newton_step(const Eigen::VectorXd& y, const Eigen::VectorXd& g, const Eigen::MatrixXd& H,
                             Eigen::VectorXd& dy) const;
  bool settle_near_bound(Eigen::VectorXd& y);
  bool newton_descent(Eigen::VectorXd& y, double& f);
  Eigen::VectorXd stage2_steps() const;
  Eigen::VectorXd stage1_curvature() const;
  Eigen::VectorXd em_step(const Eigen::VectorXd& phi) const;
  Eigen::VectorXd em_start(const Eigen::VectorXd& phi0);
  bool within_a_thousandth_se(const Eigen::VectorXd& beta_a, const Eigen::VectorXd& beta_b) const;
  OptimumControl optimum_control(bool polish) const;
  bool fail(const std::string& what);

  const ModelData& d_;
  const GlmFamily fam_;
  const GlmmOptions& opt_;
  GlmmResult& res_;
  const Eigen::Index nt_;
  const int p_;
  Eigen::VectorXd gz_, gw_;  // Gauss-Hermite rule (nAGQ > 1)
  PirlsCriterion laplace_, criterion_;
  Pirls joint_, uonly_;
  Eigen::VectorXd units_;  // natural unit of each entry of theta
  ParameterSpace space_;   // of phi = theta / units
  bool thorough_;          // evaluations cheap enough for the extra probes
  bool analytic_;          // stage 2 has the analytic gradient of laplace_gradient.h
  bool stage1_analytic_;   // stage 1 has the analytic gradient of stage1_gradient.h
  SeveralTermsLaplaceGradient several_terms_gradient_;  // that gradient for several factors
  LaplacePartials laplace_partials_;  // the Laplace gradient at fixed beta that stage 1's adds to
  // The last of those partials and where: at the stage-1 optimum they are
  // stage 2's gradient at its start (beta = beta1, u at the joint modes).
  struct Partials {
    Eigen::VectorXd theta, beta, g;
  };
  Partials last_partials_;
  int calls_ = 0;
  std::string last_pirls_message_;
  // The modes at the lowest criterion so far: every evaluation starts
  // PIRLS there (most evaluations are near it), so that a probe far away
  // neither slows nor changes the evaluations after it; from the same
  // linear predictor where it can, whose pass it then need not repeat
  // (PirlsPassState).
  struct Anchor {
    bool have = false;
    double f = kInf;
    std::vector<Eigen::MatrixXd> u;
    Eigen::VectorXd beta;
    std::shared_ptr<const PirlsPassState> state;
  };
  Anchor anchor1_, anchor2_;
  PirlsControl pirls1_;  // PIRLS's control in stage-1 evaluations
  // The last evaluation of each stage: asked again at the same point (the
  // start of a search, the result), its value without a new PIRLS run.
  struct LastEvaluation {
    Eigen::VectorXd at;
    double f = kInf;
  };
  LastEvaluation last1_, last2_;
  // The last analytic gradient of each stage and where it was taken: the
  // searches and the rules at the optimum ask for it again at the point
  // they moved to or ended at.
  struct LastGradient {
    Eigen::VectorXd at, g;
    bool holds(const Eigen::VectorXd& x) const { return at.size() == x.size() && at == x; }
  };
  LastGradient grad1_, grad2_;
  // What stage 1 learnt of its curvature, for whiten(): every analytic
  // gradient it took, and the Hessian of its Newton polish (where it ran).
  std::vector<LastGradient> stage1_gradients_;
  LastGradient stage1_hessian_at_;
  Eigen::MatrixXd stage1_hessian_;

  // Stage 1: theta in natural units, phi = theta / units.
  Eigen::VectorXd phi_;
  double f1_ = kInf;
  Eigen::VectorXd phi_steps_;  // difference steps: a thousandth of the curvature's scale
  Eigen::VectorXd phi_curv_;   // the curvature of the stage-1 criterion along each axis

  // Stage 2: y = (phi, gamma), beta = beta1 + L gamma with L L' the
  // conditional covariance of beta at the stage-1 optimum.
  Eigen::VectorXd beta1_;
  Eigen::MatrixXd L_;
  Eigen::VectorXd y_;
  double f2_ = kInf;
  PirlsResult last_;
  Eigen::VectorXd g_;
  Eigen::MatrixXd H_;
  bool hessian_identifies_ = false;  // the convergence check found a minimum with no flat direction
};

GlmmFitter::GlmmFitter(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                       const Eigen::VectorXd& lower, const GlmmOptions& opt, GlmmResult& res)
    : d_(d),
      fam_(fam),
      opt_(opt),
      res_(res),
      nt_(lower.size()),
      p_(d.p),
      laplace_(fam, 1, Eigen::VectorXd(), Eigen::VectorXd()),
      criterion_(fam, opt.n_agq, Eigen::VectorXd(), Eigen::VectorXd()),
      joint_(d, fam, tpl, true),
      uonly_(d, fam, tpl, false, &joint_),
      several_terms_gradient_(joint_.data(), fam_),  // rows in pass order: its pair sums stream
      laplace_partials_(laplace_partials(d, fam_, several_terms_gradient_)) {
  pirls1_ = opt.pirls;
  // Kept as they pass (last_partials_).
  const LaplacePartials partials = laplace_partials_;
  laplace_partials_ = [this, partials](const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                                       const std::vector<Eigen::MatrixXd>& u, BlockedCholesky& M, Eigen::VectorXd& g,
                                       Eigen::VectorXd* half_score) {
    const bool ok = partials(theta, beta, u, M, g, half_score);
    last_partials_ = ok ? Partials{theta, beta, g} : Partials();
    return ok;
  };
  if (opt.n_agq > 1) {
    gauss_hermite(opt.n_agq, gz_, gw_);
    criterion_ = PirlsCriterion(fam, opt.n_agq, gz_, gw_);
  }
  units_ = joint_.theta_units();
  space_ = glmm_theta_space(tpl, lower.cwiseQuotient(units_));
  // Small data, cheap evaluations: the data whose deviance has several basins.
  thorough_ = static_cast<double>(d.n) * static_cast<double>(std::max<Eigen::Index>(nt_, 1)) <= 3e4;
  // Stage 2 on the analytic gradient: one factor or several (any number
  // of columns each).
  const int nt = static_cast<int>(nt_);
  analytic_ = opt.n_agq == 1 &&
              (laplace_gradient_applies(d, fam, nt) || several_terms_laplace_gradient_applies(d, fam, nt));
  // Stage 1 on its analytic gradient where the Laplace gradient applies
  // (scalar or q x q terms; its criterion is the Laplace formula whatever
  // nAGQ stage 2 uses).
  stage1_analytic_ = stage1_gradient_applies(d, fam, nt);
}

bool GlmmFitter::fail(const std::string& what) {
  res_.error = what + (last_pirls_message_.empty() ? std::string() : " (" + last_pirls_message_ + ")");
  return false;
}

void GlmmFitter::tick() {
  ++res_.evals;
  if (opt_.check_interrupt && (++calls_ & 7) == 0) opt_.check_interrupt();
}

// The joint PIRLS's next run starts from the modes and the pass's sums at
// the lowest stage-1 criterion so far.
void GlmmFitter::start_at_anchor1() {
  if (!anchor1_.have) return;
  joint_.set_u(anchor1_.u);
  joint_.set_beta(anchor1_.beta);
  joint_.set_start_state(anchor1_.state);
}

// The nAGQ = 0 criterion at theta = phi * units: beta and u at their joint
// conditional modes, the Laplace formula.
double GlmmFitter::stage1_criterion(const Eigen::VectorXd& phi) {
  if (last1_.at.size() == phi.size() && last1_.at == phi) return last1_.f;  // the state is still that of phi
  tick();
  start_at_anchor1();
  PirlsResult r = joint_.run(phi.cwiseProduct(units_), pirls1_);
  res_.pirls_passes += r.passes;
  if (!r.ok) last_pirls_message_ = r.message;
  const double f = laplace_(joint_, r);
  if (f < anchor1_.f) anchor1_ = {true, f, joint_.u(), joint_.beta(), joint_.pass_state()};
  last1_ = {phi, f};
  return f;
}

// The factorisation of M at the modes PIRLS left (a gradient's selected
// inverse overwrites it; asked again at the same point, the criterion
// comes from the last evaluation without a new one).
bool GlmmFitter::factor_at_modes(Pirls& pirls, const Eigen::VectorXd& theta) {
  if (pirls.system().holds_factor()) return true;
  const PirlsResult r = pirls.factor_here(theta);
  res_.pirls_passes += r.passes;
  return r.ok;
}

// The stage-1 criterion and its analytic gradient in phi (one or two
// passes over the data at the modes the evaluation left; a factorisation
// there first where a gradient at the same point overwrote it). Where the
// analytic gradient fails at a point whose criterion is finite, central
// differences as without it.
double GlmmFitter::stage1_value_and_gradient(const Eigen::VectorXd& phi, Eigen::VectorXd& g) {
  const double f = stage1_criterion(phi);
  g.resize(0);
  if (!std::isfinite(f)) return f;
  if (grad1_.holds(phi)) {
    g = grad1_.g;
    return f;
  }
  const Eigen::VectorXd theta = phi.cwiseProduct(units_);
  bool ok = factor_at_modes(joint_, theta);
  Eigen::VectorXd gt;
  if (ok) {
    res_.pirls_passes += d_.blocks.size() == 1 ? 1 : several_terms_gradient_.passes();
    ok = stage1_gradient(d_, theta, joint_, laplace_partials_, gt);
  }
  if (ok) {
    g = gt.cwiseProduct(units_);
    stage1_gradients_.push_back({phi, g});
  } else {
    int evals = 0;
    g = fd_gradient([this](const Eigen::VectorXd& t) { return stage1_criterion(t); }, phi, f, space_.lower,
                    opt_.optim.step_rel, &evals);
  }
  grad1_ = {phi, g};
  return f;
}

Eigen::VectorXd GlmmFitter::to_x(const Eigen::VectorXd& y) const {
  Eigen::VectorXd x(nt_ + p_);
  x.head(nt_) = y.head(nt_);
  x.tail(p_) = beta1_ + L_ * y.tail(p_);
  return x;
}

// The criterion (Laplace or quadrature) at y = (phi, gamma): u at its
// conditional mode given theta and beta.
double GlmmFitter::stage2_criterion(const Eigen::VectorXd& y) {
  if (last2_.at.size() == y.size() && last2_.at == y) return last2_.f;  // the state is still that of y
  tick();
  const Eigen::VectorXd x = to_x(y);
  if (anchor2_.have) uonly_.set_u(anchor2_.u);
  uonly_.set_beta(x.tail(p_));
  uonly_.set_start_state(anchor2_.state);
  last_ = uonly_.run(x.head(nt_).cwiseProduct(units_), opt_.pirls);
  res_.pirls_passes += last_.passes;
  if (!last_.ok) last_pirls_message_ = last_.message;
  const double f = criterion_(uonly_, last_);
  if (f < anchor2_.f) anchor2_ = {true, f, uonly_.u(), Eigen::VectorXd(), uonly_.pass_state()};
  last2_ = {y, f};
  return f;
}

// Derivatives. Where stage 1 is the fit (nAGQ = 0) and has its analytic
// gradient: forward differences of that gradient, one per parameter at a
// hundredth of the values' step (the gradient is accurate to the modes'
// convergence). Else central differences of the criterion (every
// evaluation starts PIRLS from the modes at the lowest point, so that the
// differences see one smooth function). Before a Laplace stage 2 the
// gradient's differences saved evaluations too (Contraception
// (urban | district) 64 -> 46) but, on Poisson counts around e^15 (the
// test in test-glmm-optimum.R), changed whitening enough for one seed's
// stage 2 to end at a Hessian it could not confirm positive definite.
bool GlmmFitter::stage1_derivatives(const Eigen::VectorXd& phi, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H) {
  Eigen::VectorXd h(nt_);
  for (Eigen::Index i = 0; i < nt_; ++i) h[i] = 1e-3 * (std::fabs(phi[i]) + 0.1);
  if (stage1_analytic_ && opt_.n_agq == 0) {
    f = stage1_value_and_gradient(phi, g);
    if (!std::isfinite(f) || g.size() != nt_) return false;
    H.resize(nt_, nt_);
    Eigen::VectorXd phi_t = phi, gp;
    for (Eigen::Index i = 0; i < nt_; ++i) {
      const double step = 0.01 * h[i];
      phi_t[i] = phi[i] + step;
      if (!std::isfinite(stage1_value_and_gradient(phi_t, gp)) || gp.size() != nt_) return false;
      phi_t[i] = phi[i];
      H.col(i) = (gp - g) / step;
    }
    H = (0.5 * (H + H.transpose())).eval();
  } else {
    f = stage1_criterion(phi);
    if (!std::isfinite(f)) return false;
    central_differences([this](const Eigen::VectorXd& t) { return stage1_criterion(t); }, phi, f, h, g, H);
  }
  if (!(g.allFinite() && H.allFinite())) return false;
  stage1_hessian_at_ = {phi, g};
  stage1_hessian_ = H;
  return true;
}

// Two values of beta no further apart than a thousandth of a standard
// error along any whitened axis (gamma = L^{-1} beta).
bool GlmmFitter::within_a_thousandth_se(const Eigen::VectorXd& beta_a, const Eigen::VectorXd& beta_b) const {
  if (p_ == 0) return true;
  const Eigen::VectorXd dgamma = L_.triangularView<Eigen::Lower>().solve(beta_a - beta_b);
  return dgamma.allFinite() && dgamma.cwiseAbs().maxCoeff() <= 1e-3;
}

// The criterion and its analytic gradient in y = (phi, gamma) (one more
// pass over the data, at the modes the evaluation left).
bool GlmmFitter::stage2_gradient(const Eigen::VectorXd& y, double& f, Eigen::VectorXd& g) {
  f = stage2_criterion(y);
  if (!std::isfinite(f)) return false;
  if (grad2_.holds(y)) {
    g = grad2_.g;
    return true;
  }
  const Eigen::VectorXd x = to_x(y);
  const Eigen::VectorXd theta = x.head(nt_).cwiseProduct(units_);
  Eigen::VectorXd gx;
  if (opt_.n_agq == 1 && last_partials_.theta.size() == nt_ && last_partials_.theta == theta &&
      last_partials_.beta.size() == p_ && within_a_thousandth_se(last_partials_.beta, x.tail(p_))) {
    // At the stage-1 optimum: the partials its gradient took there (u at
    // the joint modes, which are the modes given beta1; no pass). Stage 1
    // may have stopped PIRLS at looser modes than whiten()'s run, which
    // moves beta1 by far less than a thousandth of a standard error: the
    // gradient there differs by what the Hessian reuse below allows.
    gx = last_partials_.g;
  } else if (d_.blocks.size() == 1) {
    ++res_.pirls_passes;
    if (!laplace_gradient(d_, fam_, theta, x.tail(p_), uonly_.u()[0], gx)) return false;
  } else {
    // Several factors: the gradient works on the factorisation at the modes.
    if (!factor_at_modes(uonly_, theta)) return false;
    res_.pirls_passes += several_terms_gradient_.passes();
    if (!several_terms_gradient_(theta, x.tail(p_), uonly_.u(), uonly_.system(), gx)) return false;
  }
  g.resize(nt_ + p_);
  g.head(nt_) = gx.head(nt_).cwiseProduct(units_);
  g.tail(p_) = L_.triangularView<Eigen::Lower>().transpose() * gx.tail(p_);
  if (!g.allFinite()) return false;
  grad2_ = {y, g};
  return true;
}

// The largest difference between H(i, j) and H(j, i) relative to
// sqrt(|H(i, i) H(j, j)|): the noise of a Hessian from differences of a
// gradient.
double relative_asymmetry(const Eigen::MatrixXd& H) {
  double a = 0.0;
  for (Eigen::Index j = 0; j < H.cols(); ++j)
    for (Eigen::Index i = j + 1; i < H.rows(); ++i)
      a = std::max(a, std::fabs(H(i, j) - H(j, i)) / std::sqrt(std::fabs(H(i, i) * H(j, j))));
  return a;
}

bool GlmmFitter::stage2_derivatives(const Eigen::VectorXd& y, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H,
                                    bool diagonal_only) {
  f = stage2_criterion(y);
  if (!std::isfinite(f)) return false;
  const Eigen::VectorXd h = stage2_steps();
  // After a Newton step of at most a thousandth of a standard error the
  // Hessian has not changed beyond its own accuracy, and the gradient is
  // what the quadratic model predicts (to a millionth of a standard
  // error's worth): no new differences, and no analytic gradient either.
  if (H_.rows() == y.size() && y_.size() == y.size() && ((y - y_).cwiseQuotient(h).cwiseAbs().maxCoeff() <= 0.2)) {
    g = g_ + H_ * (y - y_);
    H = H_;
  } else if (analytic_) {
    if (!stage2_gradient(y, f, g)) return false;
    // Forward differences of the gradient: one (theta, beta) evaluation per
    // parameter instead of 2 per pair of parameters. The gradient is
    // accurate to the modes' convergence, far below the value's rounding,
    // so the step can be a hundredth of the values' (5e-5 standard errors),
    // where the one-sided error is negligible: on cbpp, Contraception and
    // large binary and Poisson fits the standard errors stayed within 3e-6
    // relative of those from central differences at the values' step
    // (errors proportional to the step from 0.1 of it down to 0.001).
    const Eigen::Index n = y.size();
    H.resize(n, n);
    // The modes at y, which the evaluations of the differences replace: y
    // is often where the descent ends (no Newton step left), and the
    // result then needs them.
    const std::vector<Eigen::MatrixXd> u_at_y = uonly_.u();
    const PirlsResult pirls_at_y = last_;
    Eigen::VectorXd yt = y, gp;
    double ft = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) {
      const double step = 0.01 * h[i];
      yt[i] = y[i] + step;
      if (!stage2_gradient(yt, ft, gp)) return false;
      yt[i] = y[i];
      H.col(i) = (gp - g) / step;
    }
    // Where the gradient is not that accurate its differences show it as
    // an asymmetric H (relative 1e-5 at most on bench/glmm-speed.R; 1e-2
    // on Poisson counts around e^18, whose modes the rounding of the
    // linear predictor leaves uncertain): central differences at the
    // values' step instead, a hundred times further above that noise.
    if (relative_asymmetry(H) > 1e-3) {
      Eigen::VectorXd gm;
      for (Eigen::Index i = 0; i < n; ++i) {
        yt[i] = y[i] + h[i];
        if (!stage2_gradient(yt, ft, gp)) return false;
        yt[i] = y[i] - h[i];
        if (!stage2_gradient(yt, ft, gm)) return false;
        yt[i] = y[i];
        H.col(i) = (gp - gm) / (2.0 * h[i]);
      }
    }
    H = (0.5 * (H + H.transpose())).eval();
    grad2_ = {y, g};  // the point the rules at the optimum ask about again
    // Back to the modes at y without a PIRLS run. The factorisation left is
    // the last difference's: nothing asks for it at y, whose gradient
    // grad2_ holds (a gradient elsewhere evaluates there first, and a new
    // evaluation replaces it).
    uonly_.set_theta(to_x(y).head(nt_).cwiseProduct(units_));
    uonly_.set_u(u_at_y);
    last_ = pirls_at_y;
    last2_ = {y, f};
  } else {
    central_differences([this](const Eigen::VectorXd& t) { return stage2_criterion(t); }, y, f, h, g, H,
                        diagonal_only);
  }
  if (!g.allFinite() || !H.allFinite()) return false;
  if (!diagonal_only) {
    y_ = y;
    g_ = g;
    H_ = H;
  }
  return true;
}

// Quasi-Newton (BFGS) steps on the analytic gradient, from the curvature
// along each axis (stage 1's along theta; 2 along each whitened fixed
// effect, the deviance's curvature in units of standard errors), until the
// step left is a tenth of a difference step: the Newton descent then needs
// one Hessian (differences of the gradient) and no step that would make
// it take another. Entries on their bound (settle_near_bound put them
// there) are held where the gradient or the step points outwards, as in
// projected_newton_step. False where it stops near (not on) a bound of
// theta or fails.
bool GlmmFitter::quasi_newton_descent(Eigen::VectorXd& y) {
  constexpr double kMaxQuasiNewtonStep = 4.0;
  const Eigen::Index np = nt_ + p_;
  Eigen::MatrixXd B = Eigen::MatrixXd::Identity(np, np) * 2.0;
  for (Eigen::Index i = 0; i < nt_; ++i) B(i, i) = phi_curv_[i];
  const Eigen::VectorXd h = stage2_steps();
  double f = 0.0;
  Eigen::VectorXd g;
  if (!stage2_gradient(y, f, g)) return false;
  for (int it = 0; it < 30; ++it) {
    if (near_bound(y, true)) return false;
    // Entries on their bound (settle_near_bound put them there) held
    // where the gradient or the step points outwards.
    Eigen::VectorXd dy;
    if (!projected_newton_step(y, g, B, dy)) return false;
    if (dy.cwiseQuotient(h).cwiseAbs().maxCoeff() <= 0.1) return true;
    const double decrement = -0.5 * g.dot(dy);
    if (!(decrement > 0.0)) return false;
    // At most half way to a bound of theta, and a few natural units or
    // standard errors: beyond, the curvature model has nothing to say.
    double t = std::min(1.0, kMaxQuasiNewtonStep / dy.cwiseAbs().maxCoeff());
    for (Eigen::Index i = 0; i < nt_; ++i)
      if (y[i] + dy[i] < space_.lower[i]) t = std::min(t, 0.5 * (y[i] - space_.lower[i]) / (-dy[i]));
    // A decrease lost in the criterion's rounding is judged by the gradient
    // alone (the next step's direction), not by the value.
    const double noise = 10.0 * criterion_noise(f);
    bool accepted = false;
    Eigen::VectorXd yt;
    double ft = kInf;
    for (int ls = 0; ls < 20 && !accepted; ++ls, t *= 0.5) {
      yt = y + t * dy;
      ft = stage2_criterion(yt);
      accepted = std::isfinite(ft) && (ft <= f - 1e-4 * t * decrement || (decrement <= noise && ft <= f + noise));
    }
    if (!accepted) return false;
    Eigen::VectorXd gt;
    if (!stage2_gradient(yt, ft, gt)) return false;
    ++res_.stage2.iterations;
    const Eigen::VectorXd sy = yt - y, ry = gt - g;
    const double sr = sy.dot(ry);
    const Eigen::VectorXd Bs = B * sy;
    const double sBs = sy.dot(Bs);
    if (sr > 1e-10 * sy.norm() * ry.norm() && sBs > 0.0) B += ry * ry.transpose() / sr - Bs * Bs.transpose() / sBs;
    y = yt;
    f = ft;
    g = gt;
  }
  return true;
}

// Within half a standard error of a bound of theta (except_at_bound: and
// not on it): the deviance is far from quadratic there, and the
// quasi-Newton descent of reach_optimum, with its boundary rule, goes on
// instead.
bool GlmmFitter::near_bound(const Eigen::VectorXd& y, bool except_at_bound) const {
  for (Eigen::Index i = 0; i < nt_; ++i)
    if (entry_near_bound(y, i) && !(except_at_bound && on_bound(y, i))) return true;
  return false;
}

// Entry i of theta within half a standard error (100 difference steps) of
// its bound.
bool GlmmFitter::entry_near_bound(const Eigen::VectorXd& y, Eigen::Index i) const {
  return std::isfinite(space_.lower[i]) && (y[i] - space_.lower[i]) * 5e-3 < 0.5 * phi_steps_[i];
}

// Within a thousandth of a difference step of its bound: where the
// differences cannot tell the entry from the bound (a descent or the
// boundary rule may leave it 1e-9 above).
bool GlmmFitter::on_bound(const Eigen::VectorXd& y, Eigen::Index i) const {
  return y[i] - space_.lower[i] <= 1e-3 * phi_steps_[i];
}

// The Newton step on the parameters not held at a bound of theta: an entry
// at its bound is held where the gradient or the step points outwards and
// the curvature along it is positive (the deviance, even in such an entry
// of a singular fit, rises on both sides of the bound). False where the
// Hessian on the others is not positive definite, or where an entry at
// its bound is curved downwards (the deviance falls away from the bound:
// not a point for Newton's method).
bool GlmmFitter::projected_newton_step(const Eigen::VectorXd& y, const Eigen::VectorXd& g, const Eigen::MatrixXd& H,
                                       Eigen::VectorXd& dy) const {
  const Eigen::Index np = y.size();
  std::vector<bool> held(static_cast<std::size_t>(np), false);
  for (Eigen::Index i = 0; i < nt_; ++i)
    if (on_bound(y, i) && g[i] > 0.0) held[static_cast<std::size_t>(i)] = true;
  for (Eigen::Index pass = 0; pass <= nt_; ++pass) {
    std::vector<Eigen::Index> fr;
    for (Eigen::Index i = 0; i < np; ++i) {
      if (!held[static_cast<std::size_t>(i)]) fr.push_back(i);
      else if (!(H(i, i) > 0.0)) return false;
    }
    Eigen::MatrixXd Hf;
    Eigen::VectorXd gf;
    restrict_to(H, g, fr, Hf, gf);
    Eigen::LLT<Eigen::MatrixXd> llt(Hf);
    if (llt.info() != Eigen::Success) return false;
    const Eigen::VectorXd df = -llt.solve(gf);
    dy = Eigen::VectorXd::Zero(np);
    for (std::size_t a = 0; a < fr.size(); ++a) dy[fr[a]] = df[static_cast<Eigen::Index>(a)];
    bool more = false;
    for (Eigen::Index i = 0; i < nt_; ++i)
      if (!held[static_cast<std::size_t>(i)] && on_bound(y, i) && dy[i] < 0.0) {
        held[static_cast<std::size_t>(i)] = true;
        more = true;
      }
    if (!more) return true;
  }
  return false;
}

// Entries of theta within half a standard error of their bound, where
// Newton's method does not go (one difference each way tells which case):
// * the deviance rises away from the bound: the entry goes onto it where
//   the deviance is lower there (then held by the Newton steps);
// * it curves down and falls away from the bound (the deviance near a zero
//   variance is a function of its square: curved down where the variance
//   is worth having): a search along the entry alone goes out to the
//   minimum (steps doubling until the deviance rises, then a parabola
//   through the last three points), and the entry's difference step is
//   measured again there.
// Both replace the quasi-Newton descent on differences, which walked there
// in short steps of 2 (nt + p) + 1 evaluations each. True where y moved.
bool GlmmFitter::settle_near_bound(Eigen::VectorXd& y) {
  bool moved = false;
  for (Eigen::Index i = 0; i < nt_; ++i) {
    if (!entry_near_bound(y, i)) continue;
    const double f0 = stage2_criterion(y);
    const double h = 1e-3 * (std::fabs(y[i]) + 0.1);
    Eigen::VectorXd t = y;
    t[i] = y[i] + h;
    const double fp = stage2_criterion(t);
    t[i] = y[i] - h;  // across the bound: the deviance is smooth there
    const double fm = stage2_criterion(t);
    if (!(std::isfinite(f0) && std::isfinite(fp) && std::isfinite(fm))) continue;
    if (!(fp - 2.0 * f0 + fm < 0.0 && fp < f0)) {
      // Rising away from the bound: onto it, where the deviance is lower there.
      if (on_bound(y, i)) continue;
      t[i] = space_.lower[i];
      const double fb = stage2_criterion(t);
      if (std::isfinite(fb) && fb < f0) {
        y[i] = space_.lower[i];
        moved = true;
      }
      continue;
    }
    // Doubling steps of a tenth of a natural unit's scale from the point.
    const double d = 0.1 * (std::fabs(y[i]) + 0.1);
    double xa = y[i], fa = f0, xb = y[i], fb = f0, xc = y[i], fc = f0;
    for (int k = 0; k < 8; ++k) {
      t[i] = y[i] + d * std::ldexp(1.0, k);
      const double ft = stage2_criterion(t);
      xa = xb, fa = fb;
      xb = xc, fb = fc;
      xc = t[i], fc = ft;
      if (!(std::isfinite(ft) && ft < fb)) break;
    }
    double xbest = xb, fbest = fb;
    if (std::isfinite(fc) && fc < fbest) xbest = xc, fbest = fc;
    const double den = (xb - xa) * (fb - fc) - (xb - xc) * (fb - fa);
    if (xa < xb && std::isfinite(fc) && fc >= fb && den != 0.0) {
      t[i] = xb - 0.5 * ((xb - xa) * (xb - xa) * (fb - fc) - (xb - xc) * (xb - xc) * (fb - fa)) / den;
      if (t[i] > xa && t[i] < xc) {
        const double ft = stage2_criterion(t);
        if (std::isfinite(ft) && ft < fbest) xbest = t[i], fbest = ft;
      }
    }
    if (!(fbest < f0)) continue;
    y[i] = xbest;
    moved = true;
    // The entry's standard error at its new place.
    t = y;
    const double hn = 1e-3 * (std::fabs(y[i]) + 0.1);
    t[i] = y[i] + hn;
    const double gp = stage2_criterion(t);
    t[i] = y[i] - hn;
    const double gm = stage2_criterion(t);
    const double curv = (gp - 2.0 * fbest + gm) / (hn * hn);
    if (std::isfinite(curv) && curv > 1e-8) {
      const double se = std::sqrt(2.0 / curv);
      phi_steps_[i] = 5e-3 * se;
      phi_curv_[i] = 2.0 / (se * se);
    }
  }
  return moved;
}

// Difference steps of 1/200 of a standard error: far above the noise of
// the criterion, close enough for its cubic terms not to matter.
Eigen::VectorXd GlmmFitter::stage2_steps() const {
  Eigen::VectorXd h = Eigen::VectorXd::Constant(nt_ + p_, 5e-3);
  h.head(nt_) = phi_steps_;
  return h;
}

// Newton's method on the stage-2 criterion from the stage-1 point: in
// coordinates measured in standard errors the deviance is nearly quadratic
// with unit curvature and the start is close, so two or three steps
// converge (the first with the curvature along each axis only: the cross
// terms are small there, and the full Hessian is worth its n^2 evaluations
// near the optimum). Entries of theta on their bound (a singular fit) are
// held there while the deviance rises away from it: Newton steps on the
// others converge as fast, where the quasi-Newton descent on differences
// took some ten steps of 2n evaluations; entries near their bound are
// first settled onto it or out along it (settle_near_bound), and once more
// where a Newton step fails on a bound. With the analytic gradient the
// settled point goes to quasi_newton_descent first (on binary (x1 | g)
// 1e5: 23 stage-2 evaluations instead of 153). True when it converged: the rules
// at the optimum start there (the boundary rule and probes included). It
// stops near (not on) a bound of theta or at a step that fails, and the
// quasi-Newton descent of reach_optimum goes on from there.
bool GlmmFitter::newton_descent(Eigen::VectorXd& y, double& f) {
  const Eigen::Index np = nt_ + p_;
  if (np > opt_.max_hessian_params) return false;
  settle_near_bound(y);
  if (analytic_ && !quasi_newton_descent(y)) return false;
  bool settled = false;  // settle_near_bound after a failed Newton step (once)
  for (int it = 0; it < 10; ++it) {
    if (near_bound(y, true)) return false;
    Eigen::VectorXd g, dy;
    Eigen::MatrixXd H;
    const bool diagonal_only = it == 0 && np > 2 && !analytic_;
    if (!stage2_derivatives(y, f, g, H, diagonal_only)) return false;
    if (!projected_newton_step(y, g, H, dy)) {
      if (settled || !settle_near_bound(y)) return false;
      settled = true;
      continue;
    }
    const double decrement = -0.5 * g.dot(dy);
    if (!(decrement > opt_.optim.f_tol * (1.0 + std::fabs(f)))) return !diagonal_only;
    double t = 1.0;  // at most half way to a bound of theta
    for (Eigen::Index i = 0; i < nt_; ++i)
      if (y[i] + dy[i] < space_.lower[i]) t = std::min(t, 0.5 * (y[i] - space_.lower[i]) / (-dy[i]));
    bool accepted = false;
    for (int ls = 0; ls < 20; ++ls) {
      const Eigen::VectorXd yt = y + t * dy;
      const double ft = stage2_criterion(yt);
      if (std::isfinite(ft) && ft <= f - 1e-4 * t * decrement) {
        y = yt;
        f = ft;
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) return false;
    ++res_.stage2.iterations;
    // A full step of a thousandth of a standard error: converged.
    if (!diagonal_only && decrement < 1e-6 && t == 1.0) return true;
  }
  return false;
}

OptimumControl GlmmFitter::optimum_control(bool polish) const {
  OptimumControl c;
  c.optim = opt_.optim;
  c.optim.f_noise = std::max(c.optim.f_noise, joint_.deviance_noise());
  c.boundary_tol = opt_.boundary_tol;
  c.max_hessian_params = opt_.max_hessian_params;
  c.polish = polish;
  c.thorough = thorough_;
  // Standard deviations of the linear predictor beyond a few units: a GLMM
  // optimum there is found by the descent itself, and PIRLS works
  // hardest there.
  c.probe_reach = 3.0;
  c.correlation_probes = true;
  c.far_probe = false;  // a GLMM deviance does not fall without limit as the variances grow
  return c;
}

// Stage 1: theta alone, beta and u at their joint conditional modes.
bool GlmmFitter::optimise_theta(const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0) {
  joint_.set_start_eta(eta_start);
  const Eigen::VectorXd phi0 = theta0.cwiseQuotient(units_).cwiseMax(space_.lower);
  // The Newton polish and the convergence check where stage 1 is the fit
  // (nAGQ = 0) or evaluations are cheap; otherwise stage 2 does both.
  const bool polish = opt_.n_agq == 0 ? opt_.hessian : thorough_;
  // Where stage 2 follows and stage 1 only gives it starting values, on
  // its analytic gradient and without a Newton polish (no differences of
  // the criterion, which would divide its errors by their steps), modes to
  // 1e-6, the first run included: the criterion then errs by at most
  // ~1e-4 at the points the search accepts (crossed Poisson, 2e5 rows;
  // ~1e-3 at line-search trials a hundred units above), inside the
  // search's tolerance (5e-4 there), and an evaluation saves the Newton
  // step that only confirmed the last digits. (1e-5: errors of 1e-2. With
  // differences, on (x | person) + (x | item), a looser tolerance took 203
  // evaluations instead of 163.) Whitening and stage 2 use the full
  // tolerance again.
  const bool gives_start_only = opt_.n_agq > 0 && stage1_analytic_ && !polish;
  if (gives_start_only) pirls1_.tol = std::max(pirls1_.tol, kStage1ModeTol);
  PirlsResult first = joint_.run(phi0.cwiseProduct(units_), pirls1_);
  res_.pirls_passes += first.passes;
  if (!first.ok) {
    res_.error = "PIRLS failed at the starting values: " + first.message;
    return false;
  }
  // The search starts where this run converged: its first evaluation is
  // this one (counted as one), and the modes and sums there the anchor.
  tick();
  last1_ = {phi0, laplace_(joint_, first)};
  anchor1_ = {true, last1_.f, joint_.u(), joint_.beta(), joint_.pass_state()};
  Criterion c;
  c.value = [this](const Eigen::VectorXd& phi) { return stage1_criterion(phi); };
  c.exact_gradient = false;
  if (stage1_analytic_)
    c.value_and_gradient = [this](const Eigen::VectorXd& phi, Eigen::VectorXd& g) {
      return stage1_value_and_gradient(phi, g);
    };
  if (polish)
    c.derivatives = [this](const Eigen::VectorXd& phi, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H) {
      return stage1_derivatives(phi, f, g, H);
    };
  OptimumControl oc = optimum_control(polish);
  // Stage 1 only gives starting values when stage 2 follows: a loose
  // tolerance saves evaluations that stage 2 would make redundant.
  // (The search sees the criterion minus its value at the start: the
  // tolerance is made relative to the criterion itself.)
  if (opt_.n_agq > 0) oc.optim.f_tol = std::max(oc.optim.f_tol, 1e-9 * (1.0 + std::fabs(laplace_(joint_, first))));
  // Steps of at most one natural unit: a standard deviation of the linear
  // predictor several units away from the last is where PIRLS struggles
  // and the curvature model learns nothing useful (near a bound, where the
  // deviance is flat in a standard deviation, the first quasi-Newton step
  // would otherwise go hundreds of units out).
  oc.optim.max_step = 1.0;
  // Where stage 1 only gives starting values, the search starts from one
  // EM step where that lowers the criterion. Near the optimum, the first
  // step of a steepest-descent model (half a unit) would overshoot it and
  // be taken back: the model starts from the diagonal curvature, measured
  // by one value per entry (crossed Poisson 2e5 rows: 54 passes over the
  // data without that, 48 with it).
  const Eigen::VectorXd start = gives_start_only ? em_start(phi0) : phi0;
  if (start != phi0) oc.optim.costly_gradient = true;
  OptimumResult r = reach_optimum(c, start, space_, oc);
  pirls1_ = opt_.pirls;
  // What follows (whitening) starts PIRLS at the optimum: from the modes
  // and sums at the lowest criterion, where the search ended.
  start_at_anchor1();
  res_.stage1 = r.descent;
  res_.stage1_analytic = stage1_analytic_;
  res_.stage1.evals = res_.evals;
  if (!std::isfinite(r.f)) return fail("the deviance is not finite at the starting values");
  phi_ = r.x;
  f1_ = r.f;
  if (opt_.n_agq == 0) res_.warnings = r.warnings;
  return true;
}

// The start of stage 1's search: one EM step from phi0 (em_step) where
// it lowers the criterion, else phi0 itself. From theta at its template
// (1), the search took 10 evaluations after the first to reach the
// optimum of crossed Poisson 2e5 rows (0.50, 0.35), 3 of them line-search
// trials taken back; one EM step lands at (0.52, 0.36). It costs one
// evaluation (two or three passes over the data) and, where it is kept,
// saves the gradient at phi0.
Eigen::VectorXd GlmmFitter::em_start(const Eigen::VectorXd& phi0) {
  const Eigen::VectorXd phi_em = em_step(phi0);
  if (phi_em.size() == 0 || phi_em == phi0) return phi0;
  const double f0 = last1_.f;
  return stage1_criterion(phi_em) < f0 ? phi_em : phi0;
}

// One EM step for the variances of scalar random effects, from the modes
// of the last run at phi (theta = phi * units): u_j given the data is
// about normal with mean its mode and variance 1 / (1 + theta^2 d_j),
// d_j = z_j'W z_j of its level (the pass's sums), and EM sets theta^2 to
// the mean over levels of E(b_j^2) = theta^2 (u_j^2 + 1 / (1 + theta^2
// d_j)). Each entry moves by at most one natural unit (stage 1's step
// cap). Empty where a term is not scalar with its own entry of theta
// (scalar_terms_with_own_theta()), a variance is zero, or the sums at the
// modes are not at hand.
Eigen::VectorXd GlmmFitter::em_step(const Eigen::VectorXd& phi) const {
  const std::shared_ptr<const PirlsPassState> s = joint_.pass_state();
  if (!s || !scalar_terms_with_own_theta(d_)) return Eigen::VectorXd();
  const std::vector<Eigen::MatrixXd>& u = joint_.u();
  Eigen::VectorXd out = phi;
  std::size_t sec_start = 0;  // first diagonal entry of this secondary factor in rr_diag
  for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
    const FactorBlock& F = d_.blocks[f];
    const int t = F.cov.theta_index[0];
    const double theta = phi[t] * units_[t];
    if (!(theta > 0.0)) return Eigen::VectorXd();
    const std::size_t have = f == 0 ? static_cast<std::size_t>(s->D1.cols()) : s->rr_diag.size() - sec_start;
    if (have < static_cast<std::size_t>(F.n_levels) || (f == 0 && s->D1.rows() != 1)) return Eigen::VectorXd();
    double sum = 0.0;
    for (Index j = 0; j < F.n_levels; ++j) {
      const double dj = f == 0 ? s->D1(0, j) : s->rr_diag[sec_start + static_cast<std::size_t>(j)];
      sum += u[f](0, j) * u[f](0, j) + 1.0 / (1.0 + theta * theta * dj);
    }
    if (f > 0) sec_start += static_cast<std::size_t>(F.n_levels);
    const double ratio = std::sqrt(sum / static_cast<double>(F.n_levels));
    out[t] = std::clamp(phi[t] * ratio, phi[t] - 1.0, phi[t] + 1.0);
  }
  return out.cwiseMax(space_.lower);
}

// nAGQ = 0: the stage-1 optimum is the fit.
bool GlmmFitter::theta_only_result() {
  const Eigen::VectorXd theta = phi_.cwiseProduct(units_);
  last1_ = LastEvaluation();
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

// The coordinates of stage 2: beta whitened by the Cholesky factor of its
// conditional covariance at the stage-1 optimum (its units: standard
// errors, whatever the scale of the predictors); the difference steps of
// phi from the curvature of the stage-1 criterion along each axis.
bool GlmmFitter::whiten() {
  last1_ = LastEvaluation();
  // PIRLS starts from the modes at the lowest point (phi_, or next to it
  // where a bound was taken): optimise_theta() left them set.
  PirlsResult r = joint_.run(phi_.cwiseProduct(units_), opt_.pirls);
  res_.pirls_passes += r.passes;
  if (!r.ok) {
    res_.error = "PIRLS failed at the stage-1 optimum: " + r.message;
    return false;
  }
  beta1_ = joint_.beta();
  const std::vector<Eigen::MatrixXd> u1 = joint_.u();
  const Eigen::MatrixXd V1 = joint_.unscaled_vcov();
  // Stage 1 ended at a point where it took no gradient (an accepted step
  // of a line search, a probe): the analytic gradient there, at these
  // modes, lets its gradients tell the curvature (two passes where
  // differences took two evaluations per axis: 37 passes on
  // (x | person) + (x | item)), and its partials are stage 2's first
  // gradient (stage2_gradient), which then costs no pass.
  if (stage1_analytic_ && !stage1_hessian_at_.holds(phi_) &&
      std::none_of(stage1_gradients_.begin(), stage1_gradients_.end(),
                   [this](const LastGradient& p) { return p.holds(phi_); })) {
    last1_ = {phi_, laplace_(joint_, r)};
    Eigen::VectorXd g;
    stage1_value_and_gradient(phi_, g);
    last1_ = LastEvaluation();
  }
  phi_steps_.resize(nt_);
  phi_curv_.resize(nt_);
  const Eigen::VectorXd known = stage1_curvature();
  for (Eigen::Index i = 0; i < nt_; ++i) {
    double curv = known[i];
    if (!std::isfinite(curv)) {  // second differences of the criterion
      const double h = 1e-3 * (std::fabs(phi_[i]) + 0.1);
      Eigen::VectorXd t = phi_;
      t[i] = phi_[i] + h;
      const double fp = stage1_criterion(t);
      t[i] = phi_[i] - h;  // across a bound too: the criterion is smooth in theta
      const double fm = stage1_criterion(t);
      curv = (fp - 2.0 * f1_ + fm) / (h * h);
    }
    const double se = (std::isfinite(curv) && curv > 1e-8) ? std::sqrt(2.0 / curv) : std::max(0.1, std::fabs(phi_[i]));
    phi_steps_[i] = 5e-3 * se;
    phi_curv_[i] = 2.0 / (se * se);
  }
  L_ = Eigen::MatrixXd::Identity(p_, p_);
  if (p_ > 0) {
    Eigen::LLT<Eigen::MatrixXd> llt(V1);
    if (llt.info() == Eigen::Success && llt.matrixL().toDenseMatrix().diagonal().minCoeff() > 0.0)
      L_ = llt.matrixL();
  }
  anchor2_ = {true, kInf, u1, Eigen::VectorXd(), nullptr};
  return true;
}

// The curvature of the stage-1 criterion along each axis at phi_ from what
// stage 1 already computed (NaN where it does not tell): the diagonal of
// its polish's Hessian where that was taken at phi_; else the symmetric
// matrix that best reproduces the differences of its analytic gradients
// between phi_ and the points it visited within a natural unit and not
// closer than the second differences' step (least squares, each pair
// weighted by the inverse square of its distance: the nearest tell most
// of the curvature at phi_), where they span every
// direction and its diagonal is positive. On crossed binomial and Poisson
// fits of 2e5 rows it is within 25% of the second differences of the
// values that it replaces (two evaluations per axis): it only sets
// difference steps and the quasi-Newton start.
Eigen::VectorXd GlmmFitter::stage1_curvature() const {
  Eigen::VectorXd c = Eigen::VectorXd::Constant(nt_, std::numeric_limits<double>::quiet_NaN());
  if (stage1_hessian_at_.holds(phi_)) return stage1_hessian_.diagonal();
  const LastGradient* at = nullptr;
  for (const LastGradient& p : stage1_gradients_)
    if (p.holds(phi_)) at = &p;
  if (at == nullptr) return c;
  // Unknowns: the lower triangle of H, column by column.
  const Eigen::Index nu = nt_ * (nt_ + 1) / 2;
  std::vector<Eigen::VectorXd> rows;
  std::vector<double> rhs;
  // Pairs closer than the second differences' step would divide the
  // gradients' convergence error by a tiny distance.
  const double closest = 1e-3 * (phi_.cwiseAbs().maxCoeff() + 0.1);
  for (const LastGradient& p : stage1_gradients_) {
    const Eigen::VectorXd sv = p.at - phi_;
    const double dist = sv.norm();
    if (!(dist >= closest) || sv.cwiseAbs().maxCoeff() > 1.0) continue;
    const Eigen::VectorXd yv = p.g - at->g;
    for (Eigen::Index i = 0; i < nt_; ++i) {
      Eigen::VectorXd row = Eigen::VectorXd::Zero(nu);
      for (Eigen::Index j = 0; j < nt_; ++j) {
        const Eigen::Index a = std::min(i, j), b = std::max(i, j);
        row[a * nt_ - a * (a - 1) / 2 + (b - a)] += sv[j] / dist;
      }
      rows.push_back(row);
      rhs.push_back(yv[i] / dist);
    }
  }
  if (static_cast<Eigen::Index>(rows.size()) < nu) return c;
  Eigen::MatrixXd A(static_cast<Eigen::Index>(rows.size()), nu);
  Eigen::VectorXd bv(A.rows());
  for (Eigen::Index k = 0; k < A.rows(); ++k) {
    A.row(k) = rows[static_cast<std::size_t>(k)].transpose();
    bv[k] = rhs[static_cast<std::size_t>(k)];
  }
  Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(A);
  qr.setThreshold(1e-6);
  if (qr.rank() < nu) return c;
  const Eigen::VectorXd h = qr.solve(bv);
  for (Eigen::Index i = 0; i < nt_; ++i) {
    const double hii = h[i * nt_ - i * (i - 1) / 2];
    if (std::isfinite(hii) && hii > 0.0) c[i] = hii;
  }
  return c;
}

// Stage 2: theta and beta together, u at its conditional mode, on the
// Laplace or quadrature criterion; the Newton polish gives the Hessian
// for the covariance of the fixed effects.
bool GlmmFitter::optimise_theta_and_beta() {
  const Eigen::Index np = nt_ + p_;
  Criterion c;
  c.value = [this](const Eigen::VectorXd& y) { return stage2_criterion(y); };
  c.exact_gradient = false;
  c.derivatives = [this](const Eigen::VectorXd& y, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H) {
    return stage2_derivatives(y, f, g, H);
  };
  const bool polish = opt_.hessian && np <= opt_.max_hessian_params;
  OptimumControl oc = optimum_control(polish);
  oc.optim.step_rel = 1e-4;
  oc.optim.max_step = 1.0;  // natural units of theta, standard errors of beta
  Eigen::VectorXd y0 = Eigen::VectorXd::Zero(np);
  y0.head(nt_) = phi_;
  const int evals_before = res_.evals;
  double f0 = kInf;
  oc.start_at_minimum = newton_descent(y0, f0);
  OptimumResult r = reach_optimum(c, y0, with_fixed_effects(space_, p_), oc);
  const int newton_steps = res_.stage2.iterations;
  res_.stage2 = r.descent;
  res_.stage2.iterations += newton_steps;
  res_.stage2.evals = res_.evals - evals_before;
  if (!std::isfinite(r.f)) return fail("the deviance is not finite at the optimum");
  y_ = r.x;
  f2_ = r.f;
  g_ = r.gradient;
  H_ = r.hessian;
  hessian_identifies_ = r.check == OptimumCheck::minimum;
  for (const std::string& w : r.warnings) res_.warnings.push_back(w);
  return true;
}

// The covariance of the fixed effects from the Hessian of the deviance in
// (theta, beta) on the free parameters (glmer's default), and the
// derivatives in theta and beta (NaN for theta at a bound).
void GlmmFitter::covariance_from_hessian() {
  const Eigen::Index np = nt_ + p_;
  if (H_.rows() != np || g_.size() != np) return;
  Eigen::VectorXd lower = Eigen::VectorXd::Constant(np, -kInf);
  lower.head(nt_) = space_.lower;
  const std::vector<Eigen::Index> fr = free_set(y_, g_, lower);
  const Eigen::Index nf = static_cast<Eigen::Index>(fr.size());
  Eigen::MatrixXd Hf;
  Eigen::VectorXd gf;
  restrict_to(H_, g_, fr, Hf, gf);
  // y = M x: phi = theta / units, gamma = L^{-1} (beta - beta1)
  Eigen::MatrixXd M = Eigen::MatrixXd::Zero(np, np);
  for (Eigen::Index i = 0; i < nt_; ++i) M(i, i) = 1.0 / units_[i];
  if (p_ > 0) M.bottomRightCorner(p_, p_) = L_.triangularView<Eigen::Lower>().solve(Eigen::MatrixXd::Identity(p_, p_));
  Eigen::MatrixXd Mf(nf, np);
  for (Eigen::Index a = 0; a < nf; ++a) Mf.row(a) = M.row(fr[a]);
  Eigen::LLT<Eigen::MatrixXd> llt(Hf);
  // Along a flat direction (parameters the data do not identify, such as a
  // fixed effect under separation) the inverse Hessian is an artefact of
  // where the search stopped: the covariance given theta is reported instead.
  if (hessian_identifies_ && llt.info() == Eigen::Success && p_ > 0) {
    // Covariance of y on the free parameters, mapped to beta = beta1 + L gamma.
    const Eigen::MatrixXd Vy = 2.0 * llt.solve(Eigen::MatrixXd::Identity(nf, nf));
    Eigen::MatrixXd Vg = Eigen::MatrixXd::Zero(p_, p_);
    std::vector<Eigen::Index> gamma_at;
    for (Eigen::Index a = 0; a < nf; ++a)
      if (fr[a] >= nt_) gamma_at.push_back(a);
    if (static_cast<int>(gamma_at.size()) == p_) {
      for (int i = 0; i < p_; ++i)
        for (int j = 0; j < p_; ++j) Vg(i, j) = Vy(gamma_at[i], gamma_at[j]);
      res_.vcov_hessian = L_ * Vg * L_.transpose();
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  res_.hessian = Eigen::MatrixXd::Constant(np, np, nan);
  res_.gradient = Eigen::VectorXd::Constant(np, nan);
  // d/dx = M' d/dy on the free parameters
  Eigen::MatrixXd Mff(nf, nf);
  for (Eigen::Index a = 0; a < nf; ++a)
    for (Eigen::Index b = 0; b < nf; ++b) Mff(a, b) = M(fr[a], fr[b]);
  const Eigen::MatrixXd Hx = Mff.transpose() * Hf * Mff;
  const Eigen::VectorXd gx = Mff.transpose() * gf;
  for (Eigen::Index a = 0; a < nf; ++a) {
    res_.gradient[fr[a]] = gx[a];
    for (Eigen::Index b = 0; b < nf; ++b) res_.hessian(fr[a], fr[b]) = Hx(a, b);
  }
}

// The state at the optimum: modes, determinants, the covariance of beta
// given theta, the linear predictor.
bool GlmmFitter::result() {
  const double f = stage2_criterion(y_);
  if (!std::isfinite(f)) {
    res_.error = "the deviance is not finite at the optimum";
    return false;
  }
  const Eigen::VectorXd x = to_x(y_);
  res_.theta = x.head(nt_).cwiseProduct(units_);
  res_.beta = x.tail(p_);
  res_.criterion = f;
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
  fit.covariance_from_hessian();
  fit.result();
  return res;
}

GlmmResult evaluate_glmm(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                         const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                         const GlmmOptions& opt) {
  GlmmResult res;
  Eigen::VectorXd gz, gw;
  if (opt.n_agq > 1) gauss_hermite(opt.n_agq, gz, gw);
  const PirlsCriterion criterion(fam, opt.n_agq, gz, gw);
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
    Pirls uonly(d, fam, tpl, false, &joint);
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

Eigen::VectorXd laplace_gradient_at(const ModelData& d, const GlmFamily& fam, const std::vector<CovTemplate>& tpl,
                                    const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta,
                                    const Eigen::VectorXd& beta, const GlmmOptions& opt) {
  Eigen::VectorXd g;
  const int nt = static_cast<int>(theta.size());
  if (laplace_gradient_applies(d, fam, nt)) {
    GlmmOptions laplace = opt;
    laplace.n_agq = 1;
    const GlmmResult at = evaluate_glmm(d, fam, tpl, eta_start, theta, beta, laplace);
    if (!at.ok || !laplace_gradient(d, fam, theta, beta, at.u[0], g)) g.resize(0);
    return g;
  }
  if (!several_terms_laplace_gradient_applies(d, fam, nt)) return g;
  // As evaluate_glmm(): the joint modes from eta_start, then u alone at beta.
  Pirls joint(d, fam, tpl, true);
  joint.set_start_eta(eta_start);
  if (!joint.run(theta, opt.pirls).ok) return g;
  Pirls uonly(d, fam, tpl, false, &joint);
  uonly.set_u(joint.u());
  uonly.set_beta(beta);
  SeveralTermsLaplaceGradient gradient(d, fam);
  if (!uonly.run(theta, opt.pirls).ok || !gradient(theta, beta, uonly.u(), uonly.system(), g))
    g.resize(0);
  return g;
}

}  // namespace mlm
