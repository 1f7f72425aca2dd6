#include "residual_structure.h"

#include <algorithm>
#include <cmath>

namespace mlm {

Index ResidualSpec::max_group_size() const {
  Index m = 0;
  for (Index g = 0; g < n_groups(); ++g) m = std::max(m, group_start[g + 1] - group_start[g]);
  return m;
}

int ResidualSpec::n_variance_parameters() const {
  switch (variance) {
    case VarianceKind::none: return 0;
    case VarianceKind::ident: return n_strata - 1;
    case VarianceKind::power:
    case VarianceKind::exponential: return 1;
    case VarianceKind::const_power: return 2;
  }
  return 0;
}

double ResidualParameters::lag_correlation(double gap) const {
  if (gap == 1.0) return phi;
  return std::pow(phi, gap);
}

namespace {

// A correlation parameter beyond this on the unconstrained scale puts the
// correlation within about 4e-9 of a limit where its matrix is singular
// (|phi| = 1 for AR(1), rho = -1 / (m - 1) or 1 for compound symmetry): the
// whitened cross-products lose their digits there, so the parameter space
// ends before it. A likelihood that rises towards such a limit stops at
// the edge.
constexpr double kMaxCorrelationPsi = 20.0;

}  // namespace

bool natural_parameters(const ResidualSpec& spec, const Eigen::VectorXd& psi, ResidualParameters& out) {
  if (psi.size() != spec.n_parameters()) return false;
  if (spec.correlation != CorrelationKind::none && !(std::fabs(psi[0]) <= kMaxCorrelationPsi)) return false;
  int k = 0;
  switch (spec.correlation) {
    case CorrelationKind::none: out.phi = 0.0; break;
    case CorrelationKind::ar1:  // nlme: psi = log((1 + phi) / (1 - phi))
      out.phi = std::tanh(0.5 * psi[k++]);
      if (!(std::fabs(out.phi) < 1.0)) return false;
      break;
    case CorrelationKind::car1:  // nlme: psi = log(phi / (1 - phi))
      out.phi = 1.0 / (1.0 + std::exp(-psi[k++]));
      if (!(out.phi > 0.0 && out.phi < 1.0)) return false;
      break;
    case CorrelationKind::comp_symm: {  // nlme: psi = log((rho - inf) / (1 - rho)), inf = -1 / (n_max - 1)
      const double inf = -1.0 / static_cast<double>(std::max<Index>(spec.max_group_size() - 1, 1));
      const double e = std::exp(psi[k++]);
      out.phi = std::isinf(e) ? 1.0 : (e + inf) / (e + 1.0);
      if (!(out.phi > inf && out.phi < 1.0)) return false;
      break;
    }
  }
  switch (spec.variance) {
    case VarianceKind::none: out.delta.clear(); break;
    case VarianceKind::ident:  // nlme: psi = log(delta) for every stratum but the first
      out.delta.assign(spec.n_strata, 1.0);
      for (int s = 1; s < spec.n_strata; ++s) {
        out.delta[s] = std::exp(psi[k++]);
        if (!(out.delta[s] > 0.0 && std::isfinite(out.delta[s]))) return false;
      }
      break;
    case VarianceKind::power:
    case VarianceKind::exponential:
      out.delta.assign(1, psi[k++]);
      if (!std::isfinite(out.delta[0])) return false;
      break;
    case VarianceKind::const_power:  // nlme: psi = (log(const), power)
      out.delta.assign({std::exp(psi[k]), psi[k + 1]});
      k += 2;
      if (!(out.delta[0] > 0.0 && std::isfinite(out.delta[0]) && std::isfinite(out.delta[1]))) return false;
      break;
  }
  return true;
}

bool correlation_at_limit(const ResidualSpec& spec, const Eigen::VectorXd& psi, const std::vector<bool>& psi_free) {
  if (spec.correlation == CorrelationKind::none || psi.size() == 0 || psi_free.empty() || !psi_free[0]) return false;
  // within one unit of the edge: the correlation within about 1e-8 of its
  // limit; CAR(1)'s lower edge is phi -> 0, independence, not singular
  if (spec.correlation == CorrelationKind::car1 && psi[0] < 0.0) return false;
  return std::fabs(psi[0]) > kMaxCorrelationPsi - 1.0;
}

double variance_multiplier(const ResidualSpec& spec, const ResidualParameters& par, Index i) {
  switch (spec.variance) {
    case VarianceKind::none: return 1.0;
    case VarianceKind::ident: return par.delta[spec.stratum[i]];
    case VarianceKind::power: return std::pow(std::fabs(spec.covariate[i]), par.delta[0]);
    case VarianceKind::exponential: return std::exp(par.delta[0] * spec.covariate[i]);
    case VarianceKind::const_power: return par.delta[0] + std::pow(std::fabs(spec.covariate[i]), par.delta[1]);
  }
  return 1.0;
}

double comp_symm_log_det(double rho, Index n) {
  const double m = static_cast<double>(n);
  return (m - 1.0) * std::log1p(-rho) + std::log1p((m - 1.0) * rho);
}

}  // namespace mlm
