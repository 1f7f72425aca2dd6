// Fitting a generalised linear mixed model by maximum likelihood, in
// lme4's two stages: (1) theta alone, with beta and u both at their
// conditional modes (the nAGQ = 0 criterion), which gives starting values;
// (2) theta and beta together, with u at its conditional mode, on the
// Laplace or adaptive Gauss-Hermite approximation of the deviance. theta
// is measured in the natural units of its random-effect columns. Stage 2
// works in coordinates (phi, gamma): theta in natural units, beta whitened
// by its conditional covariance at the stage-1 optimum (units of standard
// errors), where the deviance is nearly quadratic with unit curvature:
// Newton's method on finite-difference derivatives converges in two or
// three steps. With a canonical link the Laplace deviance has an analytic
// gradient (laplace_gradient.h): then quasi-Newton steps on it, and the
// Hessian from differences of the gradient (one evaluation per parameter
// instead of 2 per pair). With a canonical link (scalar or q x q terms,
// one factor or several) stage 1 has an analytic gradient too (stage1_gradient.h):
// quasi-Newton steps on it instead of central differences. Both
// stages end with the rules of optimum.h (boundary rule,
// probes for a better basin, Newton polish, convergence check, new starts),
// and the last Hessian gives the covariance of the fixed effects as
// glmer's does.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <string>
#include <vector>

#include "glm_family.h"
#include "model_data.h"
#include "optimizer.h"
#include "pirls.h"

namespace mlm {

struct GlmmOptions {
  int n_agq = 1;            // 0: stage 1 only; 1: Laplace; > 1: adaptive Gauss-Hermite
  OptimControl optim;       // the descents of both stages
  PirlsControl pirls;
  double boundary_tol = 1e-3;  // natural units (optimum.h)
  bool hessian = true;      // finite-difference Hessian at the optimum (vcov and convergence check)
  int max_hessian_params = 60;
  bool cond_var = true;
  std::function<void()> check_interrupt;
};

struct GlmmResult {
  bool ok = false;
  std::string error;
  Eigen::VectorXd theta, beta;
  std::vector<Eigen::MatrixXd> u, b, cond_var;
  double criterion = 0.0;         // the minimised approximate deviance
  PirlsResult at;                 // dev, ussq, ldL2 (at the optimum), ldRX2 (joint system)
  Eigen::MatrixXd vcov_unscaled;  // (R_X'R_X)^{-1}: beta given theta
  Eigen::MatrixXd vcov_hessian;   // from the Hessian of the deviance in (theta, beta); empty if unavailable
  Eigen::MatrixXd hessian;        // of the deviance in (theta, beta) (free parameters; NaN for fixed)
  Eigen::VectorXd gradient;       // likewise
  Eigen::VectorXd eta;            // linear predictor at the optimum
  OptimResult stage1, stage2;
  bool stage1_analytic = false;  // stage 1 on its analytic gradient (stage1_gradient.h), not differences
  int evals = 0;
  int pirls_passes = 0;
  std::vector<std::string> warnings;
};

// Nodes and weights of the n-point Gauss-Hermite rule for the standard
// normal density (Golub-Welsch).
void gauss_hermite(int n, Eigen::VectorXd& z, Eigen::VectorXd& w);

GlmmResult fit_glmm(const ModelData& data, const GlmFamily& family, const std::vector<CovTemplate>& templates,
                    const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0, const Eigen::VectorXd& lower,
                    const GlmmOptions& options);

// The approximate deviance at given (theta, beta) (nAGQ >= 1) or theta
// (nAGQ = 0, beta at its mode), with the modes and factorisation there.
GlmmResult evaluate_glmm(const ModelData& data, const GlmFamily& family, const std::vector<CovTemplate>& templates,
                         const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                         const GlmmOptions& options);

// The gradient of the Laplace deviance in (theta, beta) at given (theta,
// beta), where laplace_gradient.h applies (empty otherwise or on failure).
Eigen::VectorXd laplace_gradient_at(const ModelData& data, const GlmFamily& family,
                                    const std::vector<CovTemplate>& templates, const Eigen::VectorXd& eta_start,
                                    const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                                    const GlmmOptions& options);

}  // namespace mlm
