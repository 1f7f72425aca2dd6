#include "deviance_terms.h"

#include <cmath>

namespace mlm {

DevianceTerms deviance_terms(ProfiledDeviance& dev, const CrossProducts& xp, const Eigen::VectorXd& theta,
                             bool with_vcov) {
  DevianceTerms out;
  if (!std::isfinite(dev(theta))) return out;
  BlockedCholesky& sys = dev.system();
  out.ok = true;
  out.ld_L2 = sys.log_det_L();
  out.ld_RX2 = sys.log_det_RX();
  out.pwrss = sys.pwrss();
  if (with_vcov) {
    out.unscaled_vcov = uncentre_vcov(xp, sys.unscaled_vcov());
  }
  return out;
}

}  // namespace mlm
