// The gradient of the stage-1 criterion of a GLMM fit (the nAGQ = 0
// criterion): the Laplace deviance l(theta, beta) with beta and u at their
// joint conditional modes, F(theta) = l(theta, beta^(theta)). Its total
// derivative is
//   dF/dtheta = dl/dtheta + (dbeta^/dtheta)' dl/dbeta,
// the first factor's partial derivatives from the Laplace gradient at fixed
// beta (laplace_gradient.h, u at its mode), and dbeta^/dtheta from the
// implicit function theorem on the joint modes' equations. With scalar
// terms (A = Z'WZ, Lambda = diag(theta_t on term t's coordinates), E_t its
// derivative in theta_t, M = Lambda'A Lambda + I, C = Lambda'Z'WX, s the
// derivative of the deviance residuals in eta) the equations
//   Lambda'Z's / 2 + u = 0,  X's / 2 = 0
// give, along theta_t at fixed beta, du_t = -M^{-1} r_t with
// r_t = Lambda'A E_t u + E_t Z's / 2 (= Lambda'A E_t u - E_t u / theta_t
// at the modes), and
//   dbeta^/dtheta_t = -(X'WX - C'M^{-1}C)^{-1} (X'W Z E_t u + C' du_t):
// every product from the cross-products [Z X]'W[Z X] and the factorisation
// that PIRLS left at the modes (no pass over the data), the inverse
// Schur complement being the joint system's unscaled covariance of beta.
// With q x q terms E_t is a place of T on each level of its factor and
// E_t'Z's / 2 comes from the Laplace gradient's first pass (T may be
// singular); see stage1_gradient.cpp. One gradient costs the Laplace
// gradient's passes (one, or two for several factors other than two scalar
// terms) where central differences cost 2 evaluations per entry of theta.
#pragma once

#include <Eigen/Dense>
#include <functional>
#include <vector>

#include "glm_family.h"
#include "laplace_gradient.h"
#include "model_data.h"
#include "pirls.h"

namespace mlm {

// Does stage1_gradient() apply: the Laplace gradient for the terms (one
// grouping factor or several, scalar or q x q; a canonical link).
bool stage1_gradient_applies(const ModelData& data, const GlmFamily& family, int n_theta);

// The Laplace gradient at fixed beta in (theta, beta) at theta, beta and u
// the conditional modes, with M the system PIRLS factored there (which it
// may overwrite): laplace_gradient() or SeveralTermsLaplaceGradient; with
// half_score also Z's / 2 where they give it (q x q terms).
using LaplacePartials = std::function<bool(const Eigen::VectorXd& theta, const Eigen::VectorXd& beta,
                                           const std::vector<Eigen::MatrixXd>& u, BlockedCholesky& M,
                                           Eigen::VectorXd& gradient, Eigen::VectorXd* half_score)>;

// The Laplace gradient of the model: laplace_gradient() for one factor,
// `several` (the fit's, which keeps its lookups) for several terms.
LaplacePartials laplace_partials(const ModelData& data, const GlmFamily& family, SeveralTermsLaplaceGradient& several);

// The stage-1 criterion's gradient in theta at the joint modes that
// `joint` (a joint-mode Pirls) holds after a successful run at theta,
// whose factorisation it still holds (`partials` may then overwrite it).
// False where it does not apply or fails.
bool stage1_gradient(const ModelData& data, const Eigen::VectorXd& theta, Pirls& joint,
                     const LaplacePartials& partials, Eigen::VectorXd& gradient);

// The same at theta alone (for tests): the joint modes by PIRLS from
// eta_start. Empty where it does not apply or PIRLS fails.
Eigen::VectorXd stage1_gradient_at(const ModelData& data, const GlmFamily& family,
                                   const std::vector<CovTemplate>& templates, const Eigen::VectorXd& eta_start,
                                   const Eigen::VectorXd& theta, const PirlsControl& control);

}  // namespace mlm
