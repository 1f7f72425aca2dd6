// The blocks of A = [Z X y]' W [Z X y], formed in one pass over the data.
// Every later deviance evaluation works on these blocks only: nothing in the
// optimiser touches an observation.
//
// Random effects are split into the primary factor (the one with the most
// levels, whose block of Z'Z is block diagonal) and the secondary factors
// (all others). "Secondary level" numbers the levels of all secondary
// factors in turn; each owns q consecutive coordinates of the secondary
// random-effect vector of length m.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <vector>

#include "model_data.h"

namespace mlm {

struct CrossProducts {
  Index n = 0;
  int p = 0;
  double sum_log_weights = 0.0;

  // Centring: when X has a constant column, X and y enter as deviations from
  // their weighted means (an exact reparametrisation that keeps y'y from
  // swamping the residual sum of squares). Empty center: no centring.
  Eigen::VectorXd center;  // length p + 1 (last entry: y)
  int intercept_col = -1;

  // Primary factor.
  Index k1 = 0;
  int q1 = 0;
  Eigen::MatrixXd D1;  // q1 x (k1 q1): Z1j' W Z1j for each level j
  Eigen::MatrixXd C1;  // (p+1) x (k1 q1): [X y]' W Z1, y in the last row
  Eigen::MatrixXd XX;  // (p+1) x (p+1): [X y]' W [X y]

  // Secondary factors.
  std::vector<Index> sec_levels;  // levels of each secondary factor
  std::vector<int> sec_q;         // columns of each secondary factor

  // Z_R' W Z_R, lower blocks: one diagonal block per secondary level (in
  // order), then blocks between levels of different factors (row > col).
  std::vector<double> rr_diag;
  std::vector<Index> rr_row, rr_col;
  std::vector<double> rr_vals;

  // Z_R' W Z1 by primary level j: entries r1_ptr[j] .. r1_ptr[j+1]-1, each a
  // (q of its secondary level) x q1 block, secondary levels ascending.
  std::vector<Index> r1_ptr;
  std::vector<Index> r1_row;
  std::vector<double> r1_vals;

  Eigen::MatrixXd CR;  // (p+1) x m: [X y]' W Z_R

  // Derived layout (not stored by callers; rebuilt by finalize()).
  Index n_sec = 0;                 // number of secondary levels
  Index m = 0;                     // secondary coordinates
  std::vector<int> sec_fac;        // factor of each secondary level
  std::vector<Index> sec_start;    // first coordinate of each secondary level
  std::vector<Index> rr_diag_off;  // offset of each diagonal block in rr_diag
  std::vector<Index> rr_off;       // offset of each off-diagonal block in rr_vals
  std::vector<Index> r1_off;       // offset of each entry in r1_vals

  int q_of(Index sec_level) const { return sec_q[sec_fac[sec_level]]; }
  // Rebuild the derived layout from the stored arrays.
  void finalize();
  // Why the stored arrays do not fit together (sizes, index ranges), or an
  // empty string: checked before finalize() on cross-products kept outside
  // the engine.
  std::string inconsistency() const;
};

// One pass over the observations (two when centring).
CrossProducts build_cross_products(const ModelData& data);

// The weighted means of X's columns and of y - offset (last entry; the
// intercept's entry 0) by which cross-products are centred where X has an
// intercept column; empty where it has none.
Eigen::VectorXd centring_means(const ModelData& d);

// From the centred parametrisation of the cross-products to the original
// one: beta = M beta_c, M the identity except for the intercept's row, which
// carries minus the column means (the intercept absorbs the centres). No
// centring: M is the identity and these leave their argument alone.
// beta <- M beta, plus intercept_shift on the intercept (a linear model's mean of y).
void uncentre(const CrossProducts& xp, Eigen::VectorXd& beta, double intercept_shift = 0.0);
// rows <- M rows: derivatives of beta, a row per coefficient.
void uncentre_rows(const CrossProducts& xp, Eigen::MatrixXd& rows);
// M V M': a covariance of beta.
Eigen::MatrixXd uncentre_vcov(const CrossProducts& xp, const Eigen::MatrixXd& V);

}  // namespace mlm
