// Linear mixed models with a residual covariance structure: the profiled
// deviance as a function of (theta, psi), where psi are the parameters of the
// residual structure (residual_structure.h). At each psi the whitened
// cross-products are formed (whitening.h) and the usual profiled deviance
// over theta is evaluated on them, plus log |R|. The optimiser runs over
// theta (in natural units, analytic gradient) and the free entries of psi
// (central differences) together, with the rules at an optimum that every
// fit shares (optimum.h): the same start values, probes, Newton polish and
// convergence check as a fit without residual structure.
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
  // A variance covariate read from the fitted values (nlme's default
  // form = ~ fitted(.)): fits alternate with updates of the covariate to
  // the fitted values X beta + Z b until the parameters settle, as
  // nlme::lme iterates.
  int max_covariate_updates = 50;
  double covariate_tolerance = 1e-6;  // relative change of the parameters (nlme's)
};

struct StructuredResult {
  LmmResult fit;        // theta and the evaluation at the optimum
  Eigen::VectorXd psi;  // all residual parameters, unconstrained
  double log_det_R = 0.0;
  CrossProducts xp;     // whitened cross-products at the optimum
  bool classes = false;  // cross-products by pattern classes (no pass per evaluation)
  int n_classes = 0;
  double class_storage = 0.0;  // values stored for the classes, in full sets of cross-products
  std::vector<double> covariate;  // the variance covariate of the last fit, when it is the fitted values
  int covariate_updates = 0;      // fits after the first, when it is the fitted values
  bool correlation_at_limit = false;  // at the edge and still rising there: no maximum
};

// The deviance at (theta, psi), +Inf where undefined.
class StructuredDeviance {
 public:
  StructuredDeviance(const ModelData& data, const ResidualSpec& spec, const std::vector<CovTemplate>& templates,
                     bool reml, WhiteningMethod method, double max_class_bytes);
  double operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi);
  // The deviance and its analytic gradient with respect to theta.
  double value_and_gradient(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi, Eigen::VectorXd& grad_theta);
  WhitenedCrossProducts& whitened() { return white_; }
  ProfiledDeviance& profiled() { return dev_; }
  // Whitened cross-products at psi (kept while psi does not change);
  // false outside the parameter space.
  bool set_psi(const Eigen::VectorXd& psi);

 private:
  WhitenedCrossProducts white_;
  ProfiledDeviance dev_;
  Eigen::VectorXd psi_;  // psi of the current cross-products (empty: none)
  bool psi_ok_ = false;
};

// psi_free marks the entries of psi0 that are estimated; the others stay
// fixed. With spec.covariate_from_fitted, spec.covariate is ignored and the
// covariate iterates with the fitted values (StructuredOptions).
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
