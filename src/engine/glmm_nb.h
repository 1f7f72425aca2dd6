// Negative binomial GLMMs with the size (dispersion) parameter estimated:
// the Laplace deviance profiled over log(size), minimised by Brent's
// method, each evaluation a full GLMM fit warm-started from the last (the
// approach of lme4's glmer.nb, with its loop in C++).
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "glm_family.h"
#include "glmm_fit.h"
#include "model_data.h"

namespace mlm {

struct NbResult {
  GlmmResult fit;      // at the estimated size, with the Hessian if requested
  double size = 0.0;   // the estimated size (lme4's theta of the family)
  int fits = 0;        // GLMM fits made
};

// -2 log-likelihood minus the sum of deviance residuals of the negative
// binomial with this size (it does not depend on the means).
double nb_aic_constant(const ModelData& data, double size);

// log_size_lo / _hi: the interval searched first (widened when the minimum
// is at its edge).
NbResult fit_glmm_nb(const ModelData& data, const GlmFamily& family, const std::vector<CovTemplate>& templates,
                     const Eigen::VectorXd& eta_start, const Eigen::VectorXd& theta0, const Eigen::VectorXd& lower,
                     const GlmmOptions& options, double log_size_lo, double log_size_hi);

}  // namespace mlm
