#include "structured_fit.h"

#include <cmath>
#include <limits>

namespace mlm {

StructuredDeviance::StructuredDeviance(const ModelData& data, const ResidualSpec& spec,
                                       const std::vector<CovTemplate>& templates, bool reml, WhiteningMethod method,
                                       double max_class_bytes)
    : white_(data, spec, method, max_class_bytes), dev_(white_.xp(), templates, reml) {}

double StructuredDeviance::operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& psi) {
  if (!white_.update(psi)) return std::numeric_limits<double>::infinity();
  return dev_(theta);
}

LmmEvaluation evaluate_lmm_structured(WhitenedCrossProducts& white, const std::vector<CovTemplate>& templates,
                                      const Eigen::VectorXd& theta, const Eigen::VectorXd& psi, bool reml,
                                      bool cond_var) {
  if (!white.update(psi)) {
    LmmEvaluation ev;
    ev.deviance = std::numeric_limits<double>::infinity();
    return ev;
  }
  return evaluate_lmm(white.xp(), templates, theta, reml, cond_var);
}

StructuredResult fit_lmm_structured(const ModelData& data, const ResidualSpec& spec,
                                    const std::vector<CovTemplate>& templates, const Eigen::VectorXd& theta0,
                                    const Eigen::VectorXd& lower, const Eigen::VectorXd& psi0,
                                    const std::vector<bool>& psi_free, const StructuredOptions& opt) {
  StructuredDeviance dev(data, spec, templates, opt.lmm.reml, opt.method, opt.max_class_bytes);
  const Eigen::Index nt = theta0.size();
  std::vector<Eigen::Index> free;
  for (Eigen::Index k = 0; k < psi0.size(); ++k)
    if (psi_free[k]) free.push_back(k);
  const Eigen::Index nfree = static_cast<Eigen::Index>(free.size());

  // The optimiser sees x = (theta, free entries of psi).
  auto split = [&](const Eigen::VectorXd& x, Eigen::VectorXd& psi) {
    psi = psi0;
    for (Eigen::Index a = 0; a < nfree; ++a) psi[free[a]] = x[nt + a];
  };
  Eigen::VectorXd psi_work;
  int calls = 0;
  Objective f = [&](const Eigen::VectorXd& x) {
    if (opt.lmm.check_interrupt && (++calls & 15) == 0) opt.lmm.check_interrupt();
    split(x, psi_work);
    return dev(x.head(nt), psi_work);
  };
  Eigen::VectorXd x0(nt + nfree), lo(nt + nfree);
  x0.head(nt) = theta0;
  lo.head(nt) = lower;
  for (Eigen::Index a = 0; a < nfree; ++a) {
    x0[nt + a] = psi0[free[a]];
    lo[nt + a] = -std::numeric_limits<double>::infinity();
  }

  StructuredResult out;
  optimize_profiled(f, x0, lo, opt.lmm, out.fit);
  const Eigen::VectorXd x = out.fit.theta;
  split(x, out.psi);
  out.fit.theta = x.head(nt);
  out.classes = dev.whitened().uses_classes();
  out.n_classes = dev.whitened().n_classes();
  out.class_storage = dev.whitened().class_storage();
  out.fit.at = evaluate_lmm_structured(dev.whitened(), templates, out.fit.theta, out.psi, opt.lmm.reml,
                                       opt.lmm.cond_var);
  if (!std::isfinite(out.fit.at.deviance)) {
    out.fit.warnings.push_back("the deviance is not finite at the reported optimum");
    return out;
  }
  out.log_det_R = dev.whitened().log_det();
  out.xp = dev.whitened().xp();
  return out;
}

}  // namespace mlm
