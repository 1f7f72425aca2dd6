// The bodies of the dense kernels (dense_kernels.h), included by
// dense_kernels.cpp into namespace mlm::dense_baseline and by
// dense_kernels_avx2.cpp into mlm::dense_avx2, each after Eigen. Not a
// header to include anywhere else.

using MatrixMap = Eigen::Map<Eigen::MatrixXd>;
using ConstMatrixMap = Eigen::Map<const Eigen::MatrixXd>;

bool cholesky_lower(double* A, Index n) {
  MatrixMap M(A, n, n);
  Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>, Eigen::Lower> llt(M);
  return llt.info() == Eigen::Success;
}

namespace {

// A (lower triangular) := A^{-1}, recursively by halves:
// [A11 0; A21 A22]^{-1} = [A11^{-1} 0; -A22^{-1} A21 A11^{-1}  A22^{-1}].
void invert_lower_in_place(Eigen::Ref<Eigen::MatrixXd> A) {
  const Index n = A.rows();
  if (n <= 48) {
    Eigen::MatrixXd I = Eigen::MatrixXd::Identity(n, n);
    A.triangularView<Eigen::Lower>().solveInPlace(I);
    A = I.triangularView<Eigen::Lower>();
    return;
  }
  const Index h = n / 2;
  invert_lower_in_place(A.topLeftCorner(h, h));
  invert_lower_in_place(A.bottomRightCorner(n - h, n - h));
  Eigen::MatrixXd T = A.bottomLeftCorner(n - h, h) * A.topLeftCorner(h, h).triangularView<Eigen::Lower>();
  A.bottomLeftCorner(n - h, h).noalias() = -(A.bottomRightCorner(n - h, n - h).triangularView<Eigen::Lower>() * T);
}

// Lower triangle of A := lower triangle of L' L, L the lower triangle of A:
// [A11 0; A21 A22]' [A11 0; A21 A22] = [A11'A11 + A21'A21, .; A22'A21, A22'A22].
void lower_transpose_product_in_place(Eigen::Ref<Eigen::MatrixXd> A) {
  const Index n = A.rows();
  if (n <= 48) {
    const Eigen::MatrixXd L = A.triangularView<Eigen::Lower>();
    const Eigen::MatrixXd P = L.transpose() * L;
    A.triangularView<Eigen::Lower>() = P;
    return;
  }
  const Index h = n / 2;
  lower_transpose_product_in_place(A.topLeftCorner(h, h));
  A.topLeftCorner(h, h).selfadjointView<Eigen::Lower>().rankUpdate(A.bottomLeftCorner(n - h, h).transpose());
  A.bottomLeftCorner(n - h, h) =
      A.bottomRightCorner(n - h, n - h).triangularView<Eigen::Lower>().transpose() * A.bottomLeftCorner(n - h, h);
  lower_transpose_product_in_place(A.bottomRightCorner(n - h, n - h));
}

}  // namespace

// (L L')^{-1} = L^{-T} L^{-1} in place of L: a blocked triangular inverse,
// then the product (about 2/3 n^3 operations, no second n x n matrix).
void inverse_from_cholesky(double* A, Index n) {
  MatrixMap M(A, n, n);
  invert_lower_in_place(M);
  lower_transpose_product_in_place(M);
  M.triangularView<Eigen::StrictlyUpper>() = M.transpose();
}

void subtract_gram(double* C, Index n, const double* G, Index k) {
  MatrixMap M(C, n, n);
  M.selfadjointView<Eigen::Lower>().rankUpdate(ConstMatrixMap(G, n, k), -1.0);
}

void multiply(const double* S, Index n, const double* B, Index k, double* out) {
  MatrixMap(out, n, k).noalias() = ConstMatrixMap(S, n, n) * ConstMatrixMap(B, n, k);
}
