// The blocked Cholesky factor of
//   [ Lambda' Z'WZ Lambda + I   Lambda' Z'W[X y] ]
//   [ [X y]'WZ Lambda           [X y]'W[X y]     ]
// computed from the cross-products only. Block rows, top to bottom: the
// primary factor (block diagonal, one q1 x q1 factor per level), the
// secondary factors (the Schur complement S, see SecondaryFactor), then the
// fixed effects with y as their last row. Its last diagonal entry squared is
// the penalised residual sum of squares (Bates et al. 2015, section 3).
#pragma once

#include <Eigen/Dense>
#include <memory>
#include <vector>

#include "cross_products.h"
#include "model_data.h"
#include "secondary_factor.h"

namespace mlm {

// Conditional modes and fixed effects at the current factorisation.
struct Solution {
  Eigen::VectorXd beta;            // in the centred parametrisation of the cross-products
  std::vector<Eigen::MatrixXd> u;  // per factor: q x levels, spherical modes
  std::vector<Eigen::MatrixXd> b;  // per factor: q x levels, b = Lambda u
};

// T of each grouping factor at theta: the lower triangle from the
// templates, zero elsewhere (each T[f] already q x q).
void fill_relative_factors(const std::vector<CovTemplate>& tpl, const Eigen::VectorXd& theta,
                           std::vector<Eigen::MatrixXd>& T);

class BlockedCholesky {
 public:
  // templates[0] is the primary factor's, then one per secondary factor.
  BlockedCholesky(const CrossProducts& xp, const std::vector<CovTemplate>& templates);

  // Factor at theta. Returns false when a block is not positive definite.
  bool factor(const Eigen::VectorXd& theta);
  // PIRLS: the blocks of Z'WZ at the next factor() are those that carried
  // this key (nonzero) before. With every term scalar and a dense S, the
  // fill L_R1 L_R1' is T_R F T_R with F depending on those blocks and the
  // primary T alone: F is kept from one factor() with a key to the next
  // with the same key and primary T (a run that starts from a stored
  // pass state at a theta that moves only the secondary terms, or beta;
  // a few are kept, for the primary T of a stencil of finite differences).
  void set_fill_key(unsigned long key) { fill_key_ = key; }
  // The dense L_R1 of the dense fill method is scratch within factor():
  // another system of the same design that never factors at the same time
  // (the other Pirls of a GLMM fit) can hold the same one.
  void share_fill_scratch(const BlockedCholesky& other);

  double log_det_L() const { return ld_L2_; }   // log |L_Z|^2
  double log_det_RX() const { return ld_RX2_; } // log |R_X|^2
  double pwrss() const { return pwrss_; }
  // True after a successful factor() until a selected inverse overwrites it.
  bool holds_factor() const { return factored_ && (xp_.m == 0 || sec_.holds_factor()); }
  // A rough count of the floating-point operations of one factor() call.
  double flops_per_factor() const;
  // Is the Schur complement of the secondary factors held dense (false:
  // sparse; true also when there are no secondary factors)?
  bool dense_schur() const { return xp_.m == 0 || sec_.dense(); }

  // After factor():
  Solution solve() const;
  // A chord step (PIRLS): the Newton step at modes u (spherical, per
  // factor; beta where the cross-products' working response leaves X beta
  // out) for the cross-products as they are now, solved with the factor
  // of the last factor() call, made at other weights. Returned like
  // solve(): the new modes u + du and the increment of beta.
  Solution chord_solve(const std::vector<Eigen::MatrixXd>& u) const;
  Eigen::MatrixXd unscaled_vcov() const;  // (R_X R_X')^{-1}, centred parametrisation
  // Per factor: q x (q * levels), the diagonal blocks of
  // Lambda (L_Z L_Z')^{-1} Lambda' (conditional variances divided by sigma^2).
  std::vector<Eigen::MatrixXd> unscaled_cond_var();
  // After factor(): M^{-1} r for the columns of r, M = Lambda'Z'WZ Lambda
  // + I, in Z coordinates (q1 per primary level, then the secondary
  // coordinates).
  Eigen::MatrixXd solve_M(const Eigen::MatrixXd& r) const;
  // Z'WZ V for the columns of V (Z coordinates as in solve_M), one pass
  // over the stored blocks (deviance_gradient.cpp).
  Eigen::MatrixXd apply_AZZ(const Eigen::MatrixXd& V) const;
  // After factor(): the selected inverse of M (which overwrites a dense
  // factor: solve_M() first): the q1 x q1 diagonal block of each primary
  // level (column-major, one after the other) and M^{-1}(s, j) for each
  // entry of Z_R'WZ_1 (laid out as r1_vals). Between the coordinates of
  // secondary levels (on the pattern of Z_R'WZ_R): secondary_inverse().
  void selected_inverse(std::vector<double>& primary, std::vector<double>& pair);
  // M^{-1}(coordinate r of secondary level s1, coordinate c of s2).
  double secondary_inverse(Index s1, int r, Index s2, int c) const {
    return sec_.inverse_entry(xp_.sec_start[s1] + r, xp_.sec_start[s2] + c);
  }
  const CrossProducts& cross_products() const { return xp_; }
  // Gradient of the profiled deviance (REML or ML) with respect to theta,
  // from the factorisation and a selected inverse (deviance_gradient.cpp).
  Eigen::VectorXd deviance_gradient(bool reml, int n_theta);

 private:
  // Per primary level j: the blocks Q_e = sum_e' Sinv(e, e') G_e' for its
  // secondary entries e (q_e x q1 each, stored like xp.r1_vals), the primary
  // diagonal block of M^{-1} (q1 x q1) and the blocks M^{-1}(sec_e, j).
  void inverse_blocks_for_level(Eigen::Index j, std::vector<double>& Q, Eigen::MatrixXd& Mjj,
                                std::vector<double>& Mej) const;
  // Solve L_ZZ' v = rhs for r right-hand sides: rhs1 (k1 q1 x r, natural
  // coordinates) and rhsR (m x r, half-solve basis); result in natural
  // coordinates, primary first.
  Eigen::MatrixXd back_substitute(const Eigen::MatrixXd& rhs1, const Eigen::MatrixXd& rhsR) const;
  void fill_templates(const Eigen::VectorXd& theta);
  // The primary blocks of factor(): L1_, LX1_, log |L_Z|^2 of the primary
  // part and XXs = XX - L_X1 L_X1'. Q = q1 fixed at compile time (0: any).
  template <int Q>
  bool factor_primary(Eigen::MatrixXd& XXs);
  // deviance_gradient() without secondary factors: one pass over the
  // primary levels (deviance_gradient.cpp).
  template <int Q>
  Eigen::VectorXd nested_gradient(bool reml, int n_theta) const;
  // The steps of deviance_gradient() (deviance_gradient.cpp).
  Eigen::Index z_coordinate(Index secondary_level) const;
  void stack_modes(const Solution& sol, Eigen::VectorXd& u, Eigen::VectorXd& b) const;
  Eigen::VectorXd weighted_residual_on_Z(const Eigen::VectorXd& beta, const Eigen::VectorXd& b) const;
  void reml_corrections(Eigen::MatrixXd& Vt, Eigen::MatrixXd& K) const;
  std::vector<double> diagonal_blocks_of_H() const;
  void add_reml_corrections(const Eigen::MatrixXd& Vt, const Eigen::MatrixXd& K, std::vector<double>& H) const;
  Eigen::VectorXd assemble_gradient(const std::vector<double>& H, const Eigen::VectorXd& rZ,
                                    const Eigen::VectorXd& u, bool reml, int n_theta) const;
  void set_up_secondary();
  void choose_fill_method();
  // Subtract the fill L_R1 L_R1' from a dense S (gathered or dense method).
  void subtract_fill_dense(double* S);
  int fill_cache_slots() const;
  void add_cached_fill(const AlignedMatrix& F);
  // Q of every entry of L_R1 at once (dense S only), kept until the next
  // selected inverse: see inverse_blocks_for_level().
  void compute_all_q() const;
  void lay_out_LR1(Index j0, Index j1, AlignedMatrix& G) const;
  template <class F>
  void for_each_schur_block(F&& f) const;
  // S = Lambda_R' A_RR Lambda_R + I, less the fill L_R1 L_R1' unless
  // with_fill is false (the dense methods only: the caller adds it).
  void assemble_schur(bool with_fill = true);
  template <class Positions>
  void assemble_schur_with(Positions& pos, bool with_fill);

  const CrossProducts& xp_;
  std::vector<CovTemplate> tpl_;
  std::vector<Eigen::MatrixXd> T_;  // current T per factor

  Eigen::MatrixXd L1_;   // q1 x (k1 q1)
  Eigen::MatrixXd LX1_;  // (p+1) x (k1 q1)
  std::vector<double> LR1_;  // same layout as xp.r1_vals
  SecondaryFactor sec_;
  // Sparse S only: positions of the entries of each diagonal block (q x q,
  // -1 above the diagonal) and of all other scattered blocks, in order.
  std::vector<Index> diag_pos_;
  std::vector<Index> diag_pos_off_;
  std::vector<Index> block_pos_;
  // How the fill L_R1 L_R1' enters S, chosen once by cost (see
  // choose_fill_method()): pair by pair in the fixed pattern (sparse S);
  // gathered column block by column block into a dense S, each column of S
  // staying in cache (sparse L_R1); or as one dense rank update when L_R1 is
  // mostly full (secondary levels that meet most primary levels).
  enum class FillMethod { scatter, gather, dense };
  FillMethod fill_ = FillMethod::scatter;
  // Gather: the entries of L_R1 by secondary level (ascending primary
  // level), each with its primary level.
  std::vector<Index> by_sec_ptr_, by_sec_entry_, by_sec_level_;
  std::shared_ptr<AlignedMatrix> Gd_;  // dense method: L_R1 as an m x (k1 q1) matrix, within factor()
  unsigned long fill_key_ = 0;     // set_fill_key() for the next factor()
  // The fills kept (see set_fill_key()), most recently used first.
  struct CachedFill {
    unsigned long key = 0;  // of the blocks of Z'WZ
    double t1 = 0.0;        // the primary T
    AlignedMatrix F;        // -F, lower triangle
  };
  std::vector<CachedFill> fill_cache_;
  mutable std::vector<double> q_all_;  // like xp.r1_vals: Q of each entry
  mutable long q_generation_ = -1;     // selected inverse that q_all_ belongs to
  mutable std::vector<double> level_scratch_;  // inverse_blocks_for_level(): C, L^{-1}, C L^{-1}
  Eigen::MatrixXd W_;    // (p+1) x m
  Eigen::MatrixXd Y_;    // m x (p+1): half-solved W'
  Eigen::MatrixXd LXX_;  // (p+1) x (p+1), lower
  std::vector<double> work_;
  bool all_scalar_ = false;         // every term a random intercept (q = 1)
  std::vector<double> sec_scale_;   // all_scalar_: T of each secondary level

  double ld_L2_ = 0.0, ld_RX2_ = 0.0, pwrss_ = 0.0;
  bool factored_ = false;
};

}  // namespace mlm
