// The random effects split into components that no observation links: two
// levels are in one component when an observation belongs to both (crossed
// factors), and the marginal covariance of y is block diagonal over the
// observations of the components. One grouping factor gives one component
// per level, nested factors one per top-level group, crossed factors
// usually one large component. Computations that need Var(y)^{-1}
// (Kenward-Roger, leverages) work component by component on dense blocks of
// the random-effect dimension instead of on n x n matrices.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "model_data.h"

namespace mlm {

struct ReComponents {
  int n_components = 0;
  std::vector<std::vector<int>> comp;     // [block][level]: component
  std::vector<std::vector<Index>> start;  // [block][level]: first coordinate within its component
  std::vector<Index> size;                // coordinates of each component
  // Members of each component in coordinate order: (block, level).
  std::vector<std::vector<std::pair<int, Index>>> members;
};

ReComponents find_components(const ModelData& data);

// The random-effect coordinates observation i touches, within its component,
// and their values in Z: fills idx and z, returns the component.
int component_row(const ModelData& data, const ReComponents& rc, Index i, std::vector<Index>& idx,
                  std::vector<double>& z);

// Per component c: A[c] = Z_c' W Z_c and B[c] = Z_c' W X, and F = X' W X.
struct ComponentGram {
  std::vector<Eigen::MatrixXd> A, B;
  Eigen::MatrixXd F;
};

ComponentGram component_gram(const ModelData& data, const ReComponents& rc);

// C = Lambda (Lambda' A Lambda + I)^{-1} Lambda' for one component, with
// T[block] the relative covariance factor of each block.
Eigen::MatrixXd component_c(const Eigen::MatrixXd& A, const ReComponents& rc, int c,
                            const std::vector<Eigen::MatrixXd>& T);

}  // namespace mlm
