// Minimisation of a smooth function subject to lower bounds, by a projected
// quasi-Newton (BFGS) method on finite-difference gradients. The profiled
// deviance has few parameters and cheap evaluations, so gradients by
// differences are affordable and give the fast, tight convergence that
// derivative-free methods lack near the optimum.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <string>

namespace mlm {

struct OptimControl {
  int max_evals = 20000;
  int max_iter = 1000;
  double f_tol = 1e-12;      // stop when the predicted decrease is below f_tol * (1 + |f|)
  double step_rel = 1e-5;    // finite-difference step, relative to |x| + 0.1
};

struct OptimResult {
  Eigen::VectorXd x;
  double f = 0.0;
  Eigen::VectorXd gradient;
  int evals = 0;
  int iterations = 0;
  bool converged = false;
  std::string message;
};

using Objective = std::function<double(const Eigen::VectorXd&)>;
// The objective and its gradient together (the gradient is left empty
// where the objective is not finite).
using ObjectiveWithGradient = std::function<double(const Eigen::VectorXd&, Eigen::VectorXd&)>;

// With fg, gradients are analytic; without, central differences of f.
OptimResult minimize_bounded(const Objective& f, const Eigen::VectorXd& x0, const Eigen::VectorXd& lower,
                             const OptimControl& control, const ObjectiveWithGradient& fg = nullptr);

// Central-difference gradient, one-sided next to a bound. When curvature is
// given, it receives the second differences along each axis (free with
// central differences; NaN where a one-sided difference was used).
Eigen::VectorXd fd_gradient(const Objective& f, const Eigen::VectorXd& x, double fx, const Eigen::VectorXd& lower,
                            double step_rel, int* evals, Eigen::VectorXd* curvature = nullptr);

// Hessian by forward differences of an analytic gradient (symmetrised),
// stepping into the interior next to a bound.
Eigen::MatrixXd fd_hessian_from_gradient(const ObjectiveWithGradient& fg, const Eigen::VectorXd& x,
                                         const Eigen::VectorXd& gx, const Eigen::VectorXd& lower, double step_rel,
                                         int* evals);

// Central-difference Hessian (one-sided next to a bound).
Eigen::MatrixXd fd_hessian(const Objective& f, const Eigen::VectorXd& x, const Eigen::VectorXd& lower,
                           double step_rel, int* evals);

}  // namespace mlm
