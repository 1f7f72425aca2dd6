// The gradient of the Laplace deviance of a GLMM in (theta, beta), with u
// at its conditional mode, for random effects on one grouping factor or
// several, and a canonical link (binomial-logit, Poisson-log): one or two
// passes over the data at the modes instead of 2 (theta, beta) evaluations
// per parameter by differences. With M = Lambda'Z'WZ Lambda + I (W the working weights),
// the deviance is  dev(eta) + ||u||^2 + log|M|,  eta = X beta + Z Lambda u.
// Its total derivative in a parameter t is the partial derivative of
// dev + ||u||^2 (u at its mode: the envelope theorem) plus that of log|M|,
// which moves with t directly (theta) and through the weights at
// eta(t, u(t)): sum_i dw_i/deta_i h_i deta_i/dt, h_i the i-th diagonal
// entry of Z Lambda M^{-1} Lambda'Z', and du/dt from the implicit function
// theorem on the mode's equation (the Hessian of the penalised deviance in
// u is 2M for a canonical link, where observed and expected information
// agree). For one grouping factor M is block diagonal, so every term is a
// sum per level accumulated in the same pass. For several factors (crossed
// or nested terms, each q x q) h_i needs M^{-1} at each observation's
// levels and their pairs (the selected inverse that the LMM gradient uses
// too), and du/dt one solve with M for all parameters at once: two passes
// over the data, streamed by chunks of rows, and the factorisation that
// the evaluation left. Two scalar terms (crossed or nested intercepts, or
// a single column each) take one pass: h_i and du/dt at an observation
// depend only on its pair of levels and its two columns, so the first
// pass also sums w' times the products of those columns per pair of
// levels, and a sweep over the pairs replaces the second.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "blocked_cholesky.h"
#include "glm_family.h"
#include "model_data.h"

namespace mlm {

// Does laplace_gradient() apply: one grouping factor (q columns, T lower
// triangular with each entry of theta in one or more of its places), a
// canonical link of a family without dispersion.
bool laplace_gradient_applies(const ModelData& data, const GlmFamily& family, int n_theta);

// The gradient (d/dtheta, d/dbeta) of the Laplace deviance at theta (lme4's
// parametrisation, Lambda = I (x) T), beta, and u the conditional modes
// there (q x levels); false where a mean leaves the family's domain. M is
// block diagonal (q x q per level): every term is a sum per level of
// moments of the level's observations accumulated in one pass. With
// half_score, also Z's / 2 (s = d dev / d eta; per coordinate of M, q per
// level) from the same pass: stage 1's gradient needs it.
bool laplace_gradient(const ModelData& data, const GlmFamily& family, const Eigen::VectorXd& theta,
                      const Eigen::VectorXd& beta, const Eigen::MatrixXd& u, Eigen::VectorXd& gradient,
                      Eigen::VectorXd* half_score = nullptr);

// Does SeveralTermsLaplaceGradient apply: several grouping factors
// (each with q columns, T lower triangular, every entry of theta in one or
// more places of the T's), a canonical link of a family without dispersion.
bool several_terms_laplace_gradient_applies(const ModelData& data, const GlmFamily& family, int n_theta);

// Where each factor's coordinates sit in M, and the places of theta in the
// T's: position (factor f, row r, column c) of T_f holds theta_t.
struct TermLayout {
  struct Place {
    int f, r, c, t;
  };
  int nb = 0, width_q = 0;       // factors; sum of their q (an observation's coordinates)
  std::vector<int> q, off;       // per factor: q and its first place among width_q
  std::vector<Index> sec_first;  // per factor: its first secondary level (factor 0: unused)
  std::vector<Place> places;
  std::vector<Eigen::MatrixXd> T;
  Eigen::Index n_theta = 0;

  // False where M's cross-products do not hold these factors.
  bool set_up(const ModelData& d, const CrossProducts& xp, const Eigen::VectorXd& theta);
  // The first coordinate in M of level l of factor f.
  Index coordinate(const CrossProducts& xp, int f, Index l) const {
    return f == 0 ? l * q[0] : xp.k1 * xp.q1 + xp.sec_start[sec_first[f] + l];
  }
};

// Every factor one scalar term (q = 1) with its own entry of theta, so
// that Lambda is diagonal: crossed or nested intercepts, single slopes.
bool scalar_terms_with_own_theta(const ModelData& data);

// The same gradient for several grouping factors. One per fit: it keeps,
// from its first call, where each observation's pair of levels (primary,
// secondary) sits in the selected inverse (4 bytes per observation and
// secondary factor; the passes stream everything else by chunks of rows).
class SeveralTermsLaplaceGradient {
 public:
  SeveralTermsLaplaceGradient(const ModelData& data, const GlmFamily& family)
      : d_(data),
        fam_(family),
        scalar_(scalar_terms_with_own_theta(data)),
        one_pass_(scalar_ && data.blocks.size() == 2) {}
  // Passes over the data a call makes.
  int passes() const { return one_pass_ ? 1 : 2; }
  // At theta, beta and u the conditional modes there (per factor q x
  // levels, as Pirls::u()), with M the system that PIRLS factored at the
  // weights of those modes (its selected inverse overwrites the factor).
  // False where a mean leaves the family's domain or M does not match the
  // data. With half_score and any q x q block, also Z's / 2 per coordinate
  // of M from the first pass (left empty for scalar terms).
  bool operator()(const Eigen::VectorXd& theta, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& u,
                  BlockedCholesky& M, Eigen::VectorXd& gradient, Eigen::VectorXd* half_score = nullptr);

 private:
  bool find_pairs(const CrossProducts& xp);
  // Every factor one scalar term with its own entry of theta (Lambda
  // diagonal: crossed and nested intercepts); with two factors, one pass
  // (PairMoments in the .cpp). The trace by an identity
  // that needs Lambda invertible; kept apart from vector_terms() so that
  // these fits take the paths they took before q x q blocks were covered.
  bool scalar_terms(const Eigen::VectorXd& theta, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& u,
                    BlockedCholesky& M, Eigen::VectorXd& gradient);
  // Any q x q blocks.
  bool vector_terms(const TermLayout& layout, const Eigen::VectorXd& beta, const std::vector<Eigen::MatrixXd>& u,
                    BlockedCholesky& M, Eigen::VectorXd& gradient, Eigen::VectorXd* half_score);

  const ModelData& d_;
  const GlmFamily& fam_;
  const bool scalar_;    // scalar_terms_with_own_theta(): scalar_terms() serves
  const bool one_pass_;  // scalar_ and two factors
  // Per secondary factor, per observation (n each): the offset of
  // M^{-1}(secondary level, primary level) among the entries of Z_R'WZ_1.
  std::vector<std::uint32_t> pair_offset_;
};

}  // namespace mlm
