// Penalised iteratively reweighted least squares (PIRLS): the conditional
// modes of the spherical random effects u (and, in the joint mode, of the
// fixed effects beta) of a GLMM at given theta, by Newton steps on the
// penalised deviance  sum(deviance residuals) + ||u||^2  (Bates et al.
// 2015; lme4's pwrssUpdate). Each iteration makes one pass over the data:
// it evaluates the penalised deviance at the candidate modes and, in the
// same pass, forms the weighted cross-products [Z X z]'W[Z X z] of the next
// Newton step in the fixed pattern of the engine's CrossProducts, which the
// BlockedCholesky then factors exactly as for a linear mixed model.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "blocked_cholesky.h"
#include "cross_product_scatter.h"
#include "cross_products.h"
#include "glm_family.h"
#include "model_data.h"

namespace mlm {

struct PirlsControl {
  int max_iter = 100;
  int max_halvings = 30;
  double tol = 1e-11;  // converged when no mode moves by more than tol
};

struct PirlsResult {
  bool ok = false;
  std::string message;
  int iterations = 0;
  int passes = 0;
  double dev = 0.0;   // sum of deviance residuals at the modes
  double ussq = 0.0;  // ||u||^2
  double ldL2 = 0.0;  // log |L_Z|^2 at the weights of the modes
  double ldRX2 = 0.0; // joint mode only
};

// The cross-products and deviance of a pass at converged modes, with the
// linear predictor they were formed at (b = Lambda u per factor, beta). The
// working weights and response depend on the linear predictor only, not on
// theta: a run at another theta that starts from the same b and beta
// (u = Lambda(theta)^{-1} b) starts from these sums instead of a pass over
// the data.
struct PirlsPassState {
  std::vector<Eigen::MatrixXd> b;
  Eigen::VectorXd beta;     // joint: the modes' beta; u alone: the beta fixed in the linear predictor
  Eigen::VectorXd xp_beta;  // joint: the beta the working response leaves out
  double dev = 0.0, dev_noise = 0.0;
  Eigen::MatrixXd D1, C1, XX, CR;
  std::vector<double> rr_diag, rr_vals, r1_vals;
  // u alone: each observation's working weight and working response, so
  // that a run at another beta can start from the linearisation at this
  // linear predictor (Pirls::predict_from_state) instead of a pass. Those
  // the pass wrote, shared with the Pirls until its next pass (null: none).
  std::shared_ptr<const std::vector<double>> w, z;
  unsigned long weights_key = 0;  // of its blocks of Z'WZ (BlockedCholesky::set_fill_key)
};

// With several factors, the data in the order a pass visits its rows
// (Pirls::order_rows()) and each row's places in the fixed pattern of
// Z'WZ (which depends on the grouping factors only): made by one Pirls and
// shared, read-only, with the others of the same fit, so that the fit
// holds one copy of its data beside the caller's.
struct OrderedRows {
  std::vector<std::uint32_t> order;  // order[k]: the data's row of row k
  std::vector<double> X, y, weights, offset;
  std::vector<std::vector<int>> codes;
  std::vector<std::vector<double>> cols;  // the non-null columns of the factors, in order
  std::vector<Index> r1_pos;  // per row and secondary factor: offset of its Z_R'WZ1 block
  std::vector<Index> rr_pos;  // per row and pair of secondary factors: offset of its block
  // The caller's data with its pointers into these copies.
  ModelData view(const ModelData& data) const;
};

class Pirls {
 public:
  // joint: beta and u together (nAGQ = 0); otherwise u alone, beta fixed.
  // same_data: another Pirls on the same data and templates, whose ordered
  // rows and factorisation scratch this one shares (it must outlive this
  // one); null: its own.
  Pirls(const ModelData& data, const GlmFamily& family, const std::vector<CovTemplate>& templates, bool joint,
        const Pirls* same_data = nullptr);
  Pirls(const Pirls&) = delete;
  Pirls& operator=(const Pirls&) = delete;

  // The data as its passes read them (several factors: the rows in pass
  // order, by primary level, then secondary; valid while this Pirls is).
  const ModelData& data() const { return d_; }
  // The first run starts from these linear predictors instead of from modes.
  void set_start_eta(const Eigen::VectorXd& eta);
  void set_beta(const Eigen::VectorXd& beta);  // original (uncentred) parametrisation
  void set_u(const std::vector<Eigen::MatrixXd>& u);
  void set_theta(const Eigen::VectorXd& theta);
  // The next run starts from this state where it can (every diagonal
  // entry of Lambda(theta) nonzero; u alone: its beta the current one, or
  // one that moves the linear predictor by less than a unit, whose first
  // Newton step then comes from the state's linearisation); otherwise
  // from the current modes. Null: from the current modes.
  void set_start_state(std::shared_ptr<const PirlsPassState> state);
  // The state of the last pass when it was made at the current modes
  // (after a successful run); null otherwise.
  std::shared_ptr<const PirlsPassState> pass_state() const;

  // PIRLS to convergence at theta, from the current modes.
  PirlsResult run(const Eigen::VectorXd& theta, const PirlsControl& control);
  // The system at the current modes, without iterating (after run() or set_*).
  PirlsResult factor_here(const Eigen::VectorXd& theta);

  // Adaptive Gauss-Hermite deviance of a model with one scalar random
  // effect, at the modes found by run(): nodes z and weights w of the
  // rule for the standard normal density (lme4's glmerAGQ).
  double agq_deviance(const Eigen::VectorXd& z, const Eigen::VectorXd& w, double ldL2);

  // The natural unit of each entry of theta: 1 / (root mean square of its
  // random-effect column), so that theta / unit is the standard deviation
  // of the linear predictor that the entry contributes (theta_scales).
  const Eigen::VectorXd& theta_units() const { return theta_units_; }

  const Eigen::VectorXd& beta() const { return beta_; }
  const std::vector<Eigen::MatrixXd>& u() const { return u_; }
  std::vector<Eigen::MatrixXd> b() const;  // Lambda u per factor
  BlockedCholesky& system() { return *sys_; }
  // Rounding noise of the sum of deviance residuals at the last evaluation.
  double deviance_noise() const { return dev_noise_; }
  // (R_X'R_X)^{-1} in the original parametrisation (joint mode, after a factorisation).
  Eigen::MatrixXd unscaled_vcov() const;
  // offset + X beta + Z b at the current modes.
  Eigen::VectorXd linear_predictor() const;

 private:
  struct PassScratch;
  struct PassSums;
  struct Candidate;
  double pass(const std::vector<Eigen::MatrixXd>& b, const Eigen::VectorXd& beta, bool from_start);
  template <class Kernel>
  double pass_joint(const Kernel& kernel, const std::vector<Eigen::MatrixXd>& b, const Eigen::VectorXd& beta,
                    bool from_start);
  template <class Kernel>
  double pass_u(const Kernel& kernel, const std::vector<Eigen::MatrixXd>& b, bool from_start);
  void clear_cross_products();
  void unshare_linearisation();
  void random_part(Index start, Index len, const std::vector<Eigen::MatrixXd>& b, double* zb) const;
  bool chunk_deviance(const PassScratch& s, PassSums& sums) const;
  bool chunk_sums(Index start, Index len, const PassScratch& s, Eigen::MatrixXd& B, int p, PassSums& sums) const;
  void scatter_chunk(Index start, Index len, const std::vector<double>& sw, const Eigen::MatrixXd& B);
  void scatter_chunk_scalar(Index start, Index len, std::vector<double>& sw, const Eigen::MatrixXd& B);
  void scatter_chunk_scalar_terms(Index start, Index len, const std::vector<double>& sw, const Eigen::MatrixXd& B);
  bool scalar_u_sums(Index start, Index len, const PassScratch& s, PassSums& sums, double& yy);
  std::shared_ptr<OrderedRows> order_rows() const;
  void centre_fixed_effects();
  void set_ridge();
  void find_ones_column();
  PirlsResult iterate(const Eigen::VectorXd& theta, const PirlsControl& control, bool use_start_state);
  bool restore_start_state(double& dev, bool& predicted);
  bool predict_from_state(const PirlsPassState& s);
  bool halve_until_no_rise(Candidate& c, bool have_modes, double pdev_cur, int max_halvings, int& passes);
  bool restart_from_intercept(double& dev_cur, int& passes);
  PirlsResult converged_here(PirlsResult res, const Eigen::VectorXd& theta, double dev);
  void find_secondary_positions(OrderedRows& rows) const;
  PirlsResult at_modes(PirlsResult res, double dev) const;
  Eigen::VectorXd column_scales() const;
  double newton_candidate(std::vector<Eigen::MatrixXd>& cand_u, Eigen::VectorXd& cand_beta,
                          const Eigen::VectorXd& col_scale, bool chord) const;
  double pdev_slack(double pdev) const;
  double ussq(const std::vector<Eigen::MatrixXd>& u) const;
  double mode_residual(const std::vector<Eigen::MatrixXd>& cand_u) const;

  ModelData d_;
  // Several factors: the rows in the order of order_rows(); d_ points into
  // them. Null: d_ is the caller's data.
  std::shared_ptr<const OrderedRows> rows_;
  GlmFamily fam_;
  std::vector<CovTemplate> tpl_;
  bool joint_;
  CrossProducts xp_;
  ScatterLayout layout_;          // the rows [Z X z] of the per-observation scatter
  std::unique_ptr<BlockedCholesky> sys_;
  int nf_ = 0;                    // secondary factors
  const Index* r1_pos_ = nullptr; // rows_->r1_pos
  const Index* rr_pos_ = nullptr; // rows_->rr_pos
  std::vector<Index> first_level_, first_coord_, diag_off_;
  std::vector<Eigen::MatrixXd> T_;
  Eigen::VectorXd eta_fixed_;     // u-only: offset + X beta
  // u-only: working weights and responses of the last pass; a pass state
  // shares them, and the next pass then writes into new arrays.
  std::shared_ptr<std::vector<double>> obs_w_, obs_z_;
  Eigen::VectorXd start_eta_;
  bool has_modes_ = false;
  Eigen::VectorXd beta_;
  std::vector<Eigen::MatrixXd> u_;
  std::vector<Eigen::MatrixXd> good_u_;  // the modes of the last successful run
  Eigen::VectorXd good_beta_;
  Eigen::VectorXd ridge_;         // joint: added to the diagonal of X'WX
  int ones_col_ = -1;             // joint: the column of X that holds only ones, or -1
  Eigen::VectorXd theta_units_;
  double dev_noise_ = 0.0;        // rounding noise of the deviance of the last pass
  bool xp_at_modes_ = false;      // the last pass was made at the current modes
  unsigned long weights_key_ = 0; // names the working weights of the cross-products: one per pass
  double last_dev_ = 0.0;         // the deviance of that pass
  bool last_run_ok_ = false;
  std::shared_ptr<const PirlsPassState> start_state_;
  Eigen::VectorXd xp_beta_;       // joint: the beta of the last pass (its working response leaves out X beta)
  Eigen::MatrixXd chunk_;         // sqrt(w) [X - centre, working response], a block of rows
  std::vector<double> scalar_z_;  // scatter_chunk_scalar_terms: sqrt(w) z of each factor, a block of rows
};

}  // namespace mlm
