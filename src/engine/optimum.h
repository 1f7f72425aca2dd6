// What happens at an optimum, written once for every fit. A fit minimises a
// criterion (a deviance) over variance parameters and possibly others; a
// quasi-Newton descent stops at the first stationary point it meets, which
// may be a poor local minimum, a saddle point, or a point short of the
// minimum. reach_optimum() runs the descent and then the rules that make
// its end point trustworthy, with one set of thresholds (OptimumThresholds):
//
// * the boundary rule: a diagonal entry of a relative covariance factor
//   left just above its bound is set to the bound when that does not raise
//   the criterion beyond its noise (a singular fit);
// * probes for a better basin: from a zero diagonal entry (both signs of
//   its column), far out, and where evaluations are cheap on the boundary
//   and on the diagonal ray; a new descent from the best point found, and
//   for a singular fit new descents from the diagonal ray (1, 10 and 100
//   natural units);
// * the Newton polish: Newton steps on a Hessian from differences (of the
//   analytic gradient when there is one), restricted to the free
//   parameters;
// * the convergence check: the Hessian on the free parameters positive
//   definite and no Newton step left;
// * recovery: where the check fails (a saddle point, a point short of the
//   minimum), new descents along the direction of negative curvature and
//   from other starts; a warning only when they kept finding lower points
//   without reaching a point that passes the check (where none of them
//   finds a lower point, the point is a minimum within the criterion's
//   resolution and the Hessian erred along a flat direction).
//
// The criterion's rounding noise grows with its size (a deviance of 3e7 is
// resolved to about 1e-7), so no decrease smaller than that noise is
// sought: the descent stops there instead of looping on noise.
//
// The interface is a function of the parameters returning the criterion
// and optionally its gradient, so that LMM (profiled deviance over theta),
// structured LMM (theta and the residual parameters) and GLMM (Laplace
// deviance over theta and beta) fits share it.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <string>
#include <vector>

#include "optimizer.h"

namespace mlm {

// The thresholds of every rule, in one place.
struct OptimumThresholds {
  // Rounding noise of a criterion per unit of its size: about 20 times the
  // scatter measured on profiled deviances from 1e3 to 3e7.
  static constexpr double relative_noise = 1e-13;
  // A bound entry may raise the criterion by this much (or its noise).
  static constexpr double boundary_rise = 1e-8;
  // A probe or a new descent must lower the criterion by this much
  // (relative to 1 + |criterion - criterion at the start|).
  static constexpr double improvement = 1e-9;
  // A Newton polish step is taken while it predicts a decrease above this
  // (relative, as improvement), or the noise.
  static constexpr double polish_decrease = 1e-12;
  // Hessian eigenvalues below -negative_curvature * max(|eigenvalue|, 1):
  // a saddle point.
  static constexpr double negative_curvature = 1e-6;
  // Below positive_curvature * max(|eigenvalue|, 1) the remaining Newton
  // step is not defined (a flat direction): no step check.
  static constexpr double positive_curvature = 1e-10;
  // A Newton step larger than this (in the parameters' natural units) that
  // would lower the criterion beyond its noise: not converged.
  static constexpr double step_left = 1e-3;
  // Along the direction of least curvature, a step of flat_step natural
  // units either way that changes the criterion by less than flat_change:
  // the parameters are not identified along it (a standard error of ~100
  // natural units or more).
  static constexpr double flat_step = 0.1;
  static constexpr double flat_change = 1e-6;
};

// The rounding noise of a criterion of value f.
double criterion_noise(double f);

// The criterion: its value (+Inf where undefined) and, optionally, the
// value with its gradient (an empty gradient where the value is not
// finite). Without a gradient, central differences of the value are used.
struct Criterion {
  Objective value;
  ObjectiveWithGradient value_and_gradient;
  // True when the gradient is analytic (accurate to rounding): the Hessian
  // is then taken from its differences; otherwise (no gradient, or one
  // partly by differences) from second differences of the value.
  bool exact_gradient = true;
  // Optional: the value, gradient and Hessian at x by the criterion's own
  // differences, for a criterion whose noise sets the steps they need (a
  // GLMM deviance, each value the end of an iteration); false on failure.
  std::function<bool(const Eigen::VectorXd& x, double& f, Eigen::VectorXd& g, Eigen::MatrixXd& H)> derivatives;
};

// What the rules need to know of each parameter.
enum class ParameterRole {
  diagonal,      // a diagonal entry of a relative covariance factor (bound: zero variance)
  off_diagonal,  // an entry below the diagonal of such a factor
  other          // any other parameter (residual structure, fixed effects)
};

struct ParameterSpace {
  Eigen::VectorXd lower;  // -Inf where unbounded
  std::vector<ParameterRole> role;
  // For each diagonal entry, the entries below it in its column: with the
  // diagonal entry at zero the sign of the rest of the column is arbitrary.
  std::vector<std::vector<Eigen::Index>> below;
  // Optional: for each diagonal entry, the entries left of it in its row
  // (with it they make up the standard deviation of its random effect);
  // used by the probes of perfect correlations.
  std::vector<std::vector<Eigen::Index>> left;
  // The size of one natural unit of each parameter (boundary_tol, probe
  // distances and the step check are measured in natural units); empty:
  // the parameters are in natural units.
  Eigen::VectorXd unit;

  Eigen::Index size() const { return lower.size(); }
  double unit_of(Eigen::Index i) const { return unit.size() ? unit[i] : 1.0; }
};

struct OptimumControl {
  OptimControl optim;
  double boundary_tol = 1e-3;   // natural units
  int max_hessian_params = 40;  // no polish and check beyond this many free parameters
  bool polish = true;           // Newton polish and convergence check (the caller weighs their cost)
  bool thorough = true;         // the probes worth their evaluations only where evaluations are cheap
  int max_recoveries = 3;       // new descents after a failed convergence check
  // The farthest probe, in natural units (far out, the diagonal ray, steps
  // from a zero entry): a GLMM deviance has no use for points where PIRLS
  // works hardest and the likelihood never falls.
  double probe_reach = 1e3;
  // The start is the end of the caller's own descent (a Newton method on
  // derivatives it computes better): the rules start there.
  bool start_at_minimum = false;
  // The probe far out (probe_reach natural units), for criteria that may
  // fall without limit as the variances grow (an LMM that reproduces the data).
  bool far_probe = true;
  // Where thorough: also probe perfect correlations (needs space.left): a
  // random effect's standard deviation moved from its diagonal entry to
  // one entry of its row, and a zero diagonal entry probed with the rows
  // below it moved into its column.
  bool correlation_probes = false;
};

// How the convergence check ended: a minimum; a saddle point or a point
// short of the minimum (warned: new descents kept improving but did not
// get there); a minimum where the Hessian from differences failed the
// check along a flat direction (no new descent could lower the
// criterion; not warned).
enum class OptimumCheck { not_checked, minimum, saddle, step_left, flat };

struct OptimumResult {
  Eigen::VectorXd x;
  double f = 0.0;            // the criterion at x
  Eigen::VectorXd gradient;  // at x, from the polish (empty when not computed)
  Eigen::MatrixXd hessian;   // likewise
  OptimResult descent;       // the descent that led to x (evals: every evaluation of the fit)
  OptimumCheck check = OptimumCheck::not_checked;
  std::vector<std::string> warnings;
};

// Minimise the criterion from start, then apply the rules above.
OptimumResult reach_optimum(const Criterion& criterion, const Eigen::VectorXd& start, const ParameterSpace& space,
                            const OptimumControl& control);

// The convergence check at x on the free parameters (not held at a bound
// by a gradient pointing outwards); the warning (if any) is appended.
OptimumCheck check_optimum(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, const Eigen::VectorXd& x,
                           const ParameterSpace& space, double noise, std::vector<std::string>* warnings);

}  // namespace mlm
