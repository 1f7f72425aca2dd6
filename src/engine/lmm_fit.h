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

namespace mlm {

struct LmmOptions {
  bool reml = true;
  OptimControl optim;
  bool cond_var = true;       // conditional variances of the random effects
  int max_hessian_params = 40;  // finite-difference Hessian check up to this many parameters
  double boundary_tol = 1e-3;   // try setting smaller diagonal entries of T to zero
  std::function<void()> check_interrupt;  // called every few evaluations; may throw
};

// Everything the fit reports at one value of theta.
struct LmmEvaluation {
  double deviance = 0.0;
  double ld_L2 = 0.0, ld_RX2 = 0.0, pwrss = 0.0, sigma = 0.0;
  Eigen::VectorXd beta;                   // original (uncentred) parametrisation
  Eigen::MatrixXd vcov;                   // of beta, including sigma^2
  std::vector<Eigen::MatrixXd> b, u;      // per factor: q x levels
  std::vector<Eigen::MatrixXd> cond_var;  // per factor: q x (q levels), including sigma^2
};

struct LmmResult {
  Eigen::VectorXd theta;
  LmmEvaluation at;
  OptimResult optim;
  Eigen::VectorXd gradient;  // of the deviance at theta (finite differences)
  Eigen::MatrixXd hessian;   // likewise; empty when not computed
  std::vector<std::string> warnings;
};

// The profiled deviance as a function of theta (+Inf where undefined).
class ProfiledDeviance {
 public:
  ProfiledDeviance(const CrossProducts& xp, const std::vector<CovTemplate>& templates, bool reml);
  double operator()(const Eigen::VectorXd& theta);
  BlockedCholesky& system() { return sys_; }
  // The deviance from the current factorisation.
  double from_factor() const;

 private:
  const CrossProducts& xp_;
  BlockedCholesky sys_;
  bool reml_;
};

LmmEvaluation evaluate_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates,
                           const Eigen::VectorXd& theta, bool reml, bool cond_var);

LmmResult fit_lmm(const CrossProducts& xp, const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                  const Eigen::VectorXd& lower, const LmmOptions& options);

// offset + X beta + Z b, one pass over the data (beta in the original parametrisation).
Eigen::VectorXd linear_predictor(const ModelData& data, const Eigen::VectorXd& beta,
                                 const std::vector<Eigen::MatrixXd>& b);

}  // namespace mlm
