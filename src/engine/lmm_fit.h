// Linear mixed model fitting on the profiled deviance (Bates et al. 2015):
// the deviance as a function of theta alone, beta and sigma profiled out.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <string>
#include <vector>

#include "blocked_cholesky.h"
#include "cross_products.h"
#include "model_data.h"
#include "optimizer.h"
#include "optimum.h"

namespace mlm {

struct LmmOptions {
  bool reml = true;
  OptimControl optim;
  int max_hessian_params = 40;  // finite-difference Hessian check up to this many parameters
  double boundary_tol = 1e-3;   // try setting smaller diagonal entries of T to zero
  bool moment_start = true;     // start from moment estimates instead of theta0's diagonal
  double polish_flops = 2e9;    // skip the Hessian check when it would cost more (deterministic)
  std::function<void()> check_interrupt;  // called every few evaluations; may throw
};

// Everything the fit reports at one value of theta.
struct LmmEvaluation {
  double deviance = 0.0;
  double ld_L2 = 0.0, ld_RX2 = 0.0, pwrss = 0.0, sigma = 0.0;
  Eigen::VectorXd beta;                   // original (uncentred) parametrisation
  Eigen::MatrixXd vcov;                   // of beta, including sigma^2
  std::vector<Eigen::MatrixXd> b, u;      // per factor: q x levels
  std::vector<Eigen::MatrixXd> cond_var;  // per factor: q x (q levels), including sigma^2; empty unless asked for
};

// The deviance far out along the ray of theta compared with theta: rising
// at a minimum, falling when there is no minimum (sigma -> 0), flat when
// the variances are not identified.
enum class RayShape { rising, flat, falling };

struct LmmResult {
  Eigen::VectorXd theta;
  LmmEvaluation at;
  OptimResult optim;
  Eigen::VectorXd gradient;  // of the deviance at theta (finite differences)
  Eigen::MatrixXd hessian;   // likewise; empty when not computed
  std::vector<std::string> warnings;
  RayShape ray = RayShape::rising;  // the deviance along the ray of theta beyond the optimum
  Eigen::VectorXd theta_scale;      // the natural unit of each entry of theta (theta_scales)
};

// The profiled deviance as a function of theta (+Inf where undefined).
class ProfiledDeviance {
 public:
  ProfiledDeviance(const CrossProducts& xp, const std::vector<CovTemplate>& templates, bool reml);
  double operator()(const Eigen::VectorXd& theta);
  // The deviance and its gradient (analytic) at theta; +Inf and an empty
  // gradient where the deviance is undefined.
  double value_and_gradient(const Eigen::VectorXd& theta, Eigen::VectorXd& gradient);
  BlockedCholesky& system() { return sys_; }
  // The cross-products changed (a new residual structure): forget the
  // factorisation kept for an unchanged theta.
  void forget() {
    last_theta_.resize(0);
    kept_theta_.resize(0);
  }
  // The deviance from the current factorisation.
  double from_factor() const;
  // Everything the fit reports at the current factorisation (the
  // conditional variances only with cond_var: they need a selected inverse,
  // which overwrites a dense factor).
  LmmEvaluation evaluation(bool cond_var);
  // Keep the evaluation at each point where a gradient is taken, before the
  // gradient's selected inverse overwrites the factor: a descent ends at
  // such a point, whose evaluation then needs no new factorisation. Worth
  // it where a factorisation costs much more than a solve (a dense Schur
  // complement).
  void keep_evaluations_at_gradients() { keep_at_gradients_ = true; }
  // The evaluation kept at exactly theta, or nullptr.
  const LmmEvaluation* kept_evaluation(const Eigen::VectorXd& theta) const;

 private:
  const CrossProducts& xp_;
  BlockedCholesky sys_;
  bool reml_;
  Eigen::VectorXd last_theta_;  // theta of the current factorisation
  double last_value_ = 0.0;
  bool keep_at_gradients_ = false;
  Eigen::VectorXd kept_theta_;  // theta of kept_ (empty: none)
  LmmEvaluation kept_;
};

LmmEvaluation evaluate_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates,
                           const Eigen::VectorXd& theta, bool reml, bool cond_var);

// Minimise the profiled deviance over theta from moment estimates (or
// theta0), with the rules at an optimum (optimum.h) in natural units.
LmmResult fit_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                  const Eigen::VectorXd& lower, const LmmOptions& options);

// The entries of theta for the rules at an optimum: diagonal entries of T
// and the entries below each, bounded by lower.
ParameterSpace theta_space(const std::vector<CovTemplate>& templates, const Eigen::VectorXd& lower);

// The rules' control for a fit whose evaluations cost about
// flops_per_evaluation: the polish where it is within the budget, the
// thorough probes where evaluations are cheap.
OptimumControl optimum_control(const LmmOptions& options, double flops_per_evaluation, Eigen::Index n_params);

// The deviance (a function of theta in natural units) along the ray of
// phi beyond the optimum f_min, measured at least 10 natural units out (an
// optimum near zero says nothing about the ray nearby).
RayShape ray_shape(const Objective& deviance, const Eigen::VectorXd& phi, double f_min);

// eta := offset + X beta + Z b, one pass over the data (beta in the original
// parametrisation); eta has room for data.n values.
void linear_predictor(const ModelData& data, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& b,
                      double* eta);

}  // namespace mlm
