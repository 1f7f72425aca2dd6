// The cross-products [Z X y]' R^{-1} [Z X y] of a model whose residuals have
// covariance sigma^2 R (residual_structure.h), at any value of the residual
// parameters psi, on the layout of CrossProducts; and log |R|. Fitting the
// model is then fitting an ordinary linear mixed model to the whitened data
// L^{-1} [Z X y] (R = L L'), with log |R| added to the deviance.
//
// Each residual group lies within one level of every grouping factor, so
// whitening mixes only rows that share their random effects: the blocks of
// the cross-products keep the pattern of the unwhitened model.
//
// Two ways to the cross-products at psi:
// * classes: R^{-1} = sum_k c_k(psi) E_k over a few fixed patterns E_k.
//   AR(1) and CAR(1) have a tridiagonal precision whose entries depend on
//   psi only through the gap between neighbouring occasions, compound
//   symmetry only through the group size, varIdent only through the
//   strata of the observations (and of pairs of neighbours). The
//   cross-products of each pattern are formed once; an evaluation is a
//   weighted sum of them and costs nothing per observation.
// * pass: where no such split exists (varPower, varExp, many distinct
//   gaps), one lean pass over the observations per evaluation, whitening
//   group by group.
#pragma once

#include <Eigen/Dense>
#include <array>
#include <cstddef>
#include <map>
#include <vector>

#include "cross_product_scatter.h"
#include "cross_products.h"
#include "model_data.h"
#include "residual_structure.h"

namespace mlm {

enum class WhiteningMethod { automatic, classes, pass };

class WhitenedCrossProducts {
 public:
  // data and spec must outlive this object. Throws std::invalid_argument
  // when a residual group spans several levels of a grouping factor.
  WhitenedCrossProducts(const ModelData& data, const ResidualSpec& spec, WhiteningMethod method,
                        double max_class_bytes = 1e9);
  // Holds pointers into its own cross-products: neither copied nor moved.
  WhitenedCrossProducts(const WhitenedCrossProducts&) = delete;
  WhitenedCrossProducts& operator=(const WhitenedCrossProducts&) = delete;

  // The cross-products at psi (xp().sum_log_weights = -log |R|). Returns
  // false when psi maps outside the parameter space.
  bool update(const Eigen::VectorXd& psi);
  const CrossProducts& xp() const { return xp_; }
  const ResidualParameters& parameters() const { return par_; }
  double log_det() const { return -xp_.sum_log_weights; }
  bool uses_classes() const { return n_classes_ > 0; }
  int n_classes() const { return n_classes_; }
  // Values stored for all classes, in units of one full set of cross-products.
  double class_storage() const;

 private:
  // Patterns of R^{-1}: row (every observation of stratum s), diff and end
  // (neighbours gap class a apart, without strata), end and cross (the same
  // by strata s and s <= t), sum (groups of size a, strata s <= t).
  enum class ClassKind { row, diff, end, cross, sum };
  struct PatternClass {
    ClassKind kind;
    int a, s, t;
  };

  void set_up_layout();
  void set_up_centring();
  void set_up_group_levels();
  void set_up_level_pairs();
  void set_up_values();
  void set_up_gaps();
  bool classes_available() const;
  int stratum_of(Index i) const;
  int class_of(ClassKind kind, int a, int s, int t);
  void enumerate_classes();
  void build_classes();
  void pass(double* values) const;
  double log_det_at() const;
  double class_coefficient(const PatternClass& c) const;
  // Row of [Z X y] for observation i, centred, times sqrt(prior weight).
  void row(Index i, double* m) const;
  // Add the dim x dim symmetric G of group g into the flat value vector
  // (t: the accumulator's work space).
  void scatter(const double* G, Index g, double* values, ScatterTargets& t) const;
  void unpack(const double* values);

  const ModelData& d_;
  const ResidualSpec& spec_;
  ResidualParameters par_;
  CrossProducts xp_;  // layout fixed at construction, values set by update()
  int nf_ = 0;            // secondary factors
  ScatterLayout layout_;  // the coordinates of a row: Z columns by factor, then [X y]
  Eigen::VectorXd center_;

  // Per residual group: the primary level, the secondary levels (global
  // numbering), and the cross-product entries that the group touches.
  std::vector<Index> lev1_, sec_, r1e_, rre_;
  int n_pairs_ = 0;  // pairs of secondary factors

  // Flat layout of the values: D1, C1, XX, rr_diag, rr_vals, r1_vals, CR.
  Index off_C1_ = 0, off_XX_ = 0, off_rrd_ = 0, off_rrv_ = 0, off_r1_ = 0, off_CR_ = 0, n_values_ = 0;

  // Gaps between neighbouring occasions (AR(1), CAR(1)): the class of the gap
  // before each position of `order` (-1 for the first of a group), the value
  // and the number of occurrences of each class.
  std::vector<int> gap_class_;
  std::vector<double> gap_value_;
  std::vector<Index> gap_count_;
  std::vector<Index> size_count_;      // compound symmetry: groups of each size
  std::vector<Index> stratum_count_;   // varIdent: observations of each stratum
  double sum_log_weights_ = 0.0;       // of the prior weights
  double sum_log_abs_cov_ = 0.0, sum_cov_ = 0.0;

  std::vector<PatternClass> classes_;
  std::map<std::array<int, 4>, int> class_index_;
  int n_classes_ = 0;
  // The cross-products of each class, stored by chunks of kChunk values
  // that are not all zero: a class of rare gaps touches few groups, and an
  // evaluation then reads little of it.
  static constexpr Index kChunk = 16;
  struct ChunkedValues {
    std::vector<Index> chunks;  // chunk numbers, ascending
    std::vector<double> data;   // kChunk values per chunk
  };
  std::vector<ChunkedValues> class_values_;
  std::vector<double*> chunk_dest_;  // where each chunk of values lives in xp_ (nullptr: padding)
  std::vector<int> chunk_len_;
  void combine_classes(const Eigen::VectorXd& coef);
  Eigen::VectorXd values_;
};

}  // namespace mlm
