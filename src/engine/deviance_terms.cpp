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
    out.unscaled_vcov = sys.unscaled_vcov();
    // The cross-products may be centred: beta = M beta_c with M the identity
    // except for the intercept row, which carries minus the column means.
    if (xp.center.size() > 0) {
      const int p = xp.p, ic = xp.intercept_col;
      Eigen::MatrixXd M = Eigen::MatrixXd::Identity(p, p);
      for (int c = 0; c < p; ++c)
        if (c != ic) M(ic, c) = -xp.center[c];
      out.unscaled_vcov = M * out.unscaled_vcov * M.transpose();
    }
  }
  return out;
}

}  // namespace mlm
