// Minimisation of a smooth function subject to lower bounds, by a projected
// quasi-Newton (BFGS) method on an analytic gradient when one is given and
// on finite-difference gradients otherwise; the differences and helpers
// that the rules at an optimum (optimum.h) use.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace mlm {

struct OptimControl {
  int max_evals = 20000;
  int max_iter = 1000;
  double f_tol = 1e-12;      // stop when the predicted decrease is below f_tol * (1 + |f|)
  // The rounding noise of f (absolute): no decrease below it is sought, and
  // three steps in a row that gain less than it end the search.
  double f_noise = 0.0;
  double step_rel = 1e-5;    // finite-difference step, relative to |x| + 0.1
  double max_step = std::numeric_limits<double>::infinity();  // longest step in any coordinate
  // An analytic gradient that costs several values: the quasi-Newton model
  // starts from the diagonal curvature, measured by one value per
  // coordinate (otherwise from steepest descent).
  bool costly_gradient = false;
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

// Free coordinates of x: not held at a lower bound by a gradient pointing
// outwards.
std::vector<Eigen::Index> free_set(const Eigen::VectorXd& x, const Eigen::VectorXd& g, const Eigen::VectorXd& lower);

// H and g restricted to the coordinates fr.
void restrict_to(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, const std::vector<Eigen::Index>& fr,
                 Eigen::MatrixXd& Hf, Eigen::VectorXd& gf);

}  // namespace mlm
