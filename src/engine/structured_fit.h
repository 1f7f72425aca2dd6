// Linear mixed models with a residual covariance structure: the profiled
// deviance as a function of (theta, psi), where psi are the parameters of the
// residual structure (residual_structure.h). At each psi the whitened
// cross-products are formed (whitening.h) and the usual profiled deviance
// over theta is evaluated on them, plus log |R|. The optimiser runs over
// theta and the free entries of psi together (finite-difference gradients,
// Newton polish, restart away from saddle points).
#pragma once

#include <Eigen/Dense>
#include <string>
#include <vector>

#include "lmm_fit.h"
#include "model_data.h"
#include "residual_structure.h"
#include "whitening.h"

namespace mlm {

struct StructuredOptions {
  LmmOptions lmm;
  WhiteningMethod method = WhiteningMethod::automatic;
  double max_class_bytes = 1e9;
};

struct StructuredResult {
  LmmResult fit;        // theta and the evaluation at the optimum
  Eigen::VectorXd psi;  // all residual parameters, unconstrained
  double log_det_R = 0.0;
  CrossProducts xp;     // whitened cross-products at the optimum
  bool classes = false;  // cross-products by pattern classes (no pass per evaluation)
  int n_classes = 0;
  double class_storage = 0.0;  // values stored for the classes, in full sets of cross-products
};

// The deviance at (theta, psi), +Inf where undefined.
class StructuredDeviance {
 public:
  StructuredDeviance(const ModelData& data, const ResidualSpec& spec, const std::vector<CovTemplate>& templates,
                     bool reml, WhiteningMethod method, double max_class_bytes);
  double operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi);
  WhitenedCrossProducts& whitened() { return white_; }

 private:
  WhitenedCrossProducts white_;
  ProfiledDeviance dev_;
};

// psi_free marks the entries of psi0 that are estimated; the others stay fixed.
StructuredResult fit_lmm_structured(const ModelData& data, const ResidualSpec& spec,
                                    const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                                    const Eigen::VectorXd& lower, const Eigen::VectorXd& psi0,
                                    const std::vector<bool>& psi_free, const StructuredOptions& options);

// Everything the fit reports at (theta, psi); the deviance is +Inf and
// nothing else is set where the point is outside the parameter space.
LmmEvaluation evaluate_lmm_structured(WhitenedCrossProducts& white, const std::vector<CovTemplate>& templates,
                                      const Eigen::VectorXd& theta, const Eigen::VectorXd& psi, bool reml,
                                      bool cond_var);

}  // namespace mlm
