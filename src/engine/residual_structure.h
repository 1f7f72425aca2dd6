// The residual covariance sigma^2 R of a linear mixed model with correlated
// or heteroscedastic residuals, as nlme's corStruct and varFunc classes
// define it. R is block diagonal over residual groups:
//   R_g = S_g C_g S_g,
// S_g diagonal with the standard-deviation multipliers of the variance
// function (|v|^power, exp(expon v), const + |v|^power, or one ratio per
// stratum; divided by the square roots of any prior weights), C_g the
// correlation matrix of the group (AR(1), continuous-time AR(1) or compound
// symmetry). The parameters psi are unconstrained (nlme's parametrisation);
// ResidualParameters holds them on their natural scale.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "model_data.h"

namespace mlm {

enum class CorrelationKind { none, ar1, car1, comp_symm };
enum class VarianceKind { none, ident, power, exponential, const_power };

struct ResidualSpec {
  CorrelationKind correlation = CorrelationKind::none;
  VarianceKind variance = VarianceKind::none;
  // Observations in group order: group g is order[group_start[g]] ..
  // order[group_start[g + 1] - 1], sorted by time within the group. Without
  // a correlation structure every observation is a group of its own.
  std::vector<Index> order;        // 0-based observation numbers
  std::vector<Index> group_start;  // n_groups + 1 entries
  // Time of each observation (AR(1): whole numbers; CAR(1): any); nullptr
  // for the position within the group.
  const double* time = nullptr;
  const int* stratum = nullptr;  // varIdent: 0-based stratum; stratum 0 is the reference
  int n_strata = 1;
  const double* covariate = nullptr;  // varPower, varExp, varConstPower
  // The covariate is the fitted values (nlme's form = ~ fitted(.)): the fit
  // supplies it (structured_fit.h).
  bool covariate_from_fitted = false;

  Index n_groups() const { return static_cast<Index>(group_start.size()) - 1; }
  Index max_group_size() const;
  int n_correlation_parameters() const { return correlation == CorrelationKind::none ? 0 : 1; }
  int n_variance_parameters() const;
  int n_parameters() const { return n_correlation_parameters() + n_variance_parameters(); }
};

// psi on the natural scale.
struct ResidualParameters {
  double phi = 0.0;           // AR(1), CAR(1): phi; compound symmetry: rho
  // varIdent: one per stratum (delta[0] = 1); varPower, varExp: one;
  // varConstPower: the constant and the power.
  std::vector<double> delta;
  // Correlation of two observations `gap` apart (AR(1), CAR(1)).
  double lag_correlation(double gap) const;
};

// Map unconstrained psi to the natural scale. Returns false when the result
// is outside the parameter space (|phi| = 1 after rounding, say).
bool natural_parameters(const ResidualSpec& spec, const Eigen::VectorXd& psi, ResidualParameters& out);

// Is the correlation parameter (free in the fit) at an edge of the
// parameter space where its matrix turns singular (|phi| -> 1 for AR(1),
// phi -> 1 for CAR(1), rho -> -1 / (m - 1) or 1 for compound symmetry)?
// An optimum there is no maximum where the likelihood still rises towards
// the limit (a group's residuals in the null direction of the limiting
// matrix); the fit checks that (structured_fit.cpp).
bool correlation_at_limit(const ResidualSpec& spec, const Eigen::VectorXd& psi, const std::vector<bool>& psi_free);

// Standard-deviation multiplier of the variance function for observation i
// (prior weights excluded).
double variance_multiplier(const ResidualSpec& spec, const ResidualParameters& par, Index i);

// log |C_g| of a compound-symmetry correlation matrix of size n.
double comp_symm_log_det(double rho, Index n);

}  // namespace mlm
