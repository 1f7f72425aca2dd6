// The gradient of the profiled deviance with respect to theta.
//
// With Omega = D'AD + J the matrix factored by BlockedCholesky (D = diag(Lambda,
// I), J = diag(I, 0), A = [Z X y]'W[Z X y]) and dLambda = dLambda/dtheta_k:
//   d log det(Omega_S) = 2 tr( (Omega_S^{-1})_{Z,S} D_S' A_{S,Z} dLambda ),
// where S is the Z block (ML) or the Z and X blocks (REML); only the diagonal
// blocks of (Omega_S^{-1})_{Z,S} D_S' A_{S,Z} are needed, and they follow from
// the entries of M^{-1} = (Lambda'Z'WZ Lambda + I)^{-1} on the pattern of Z'WZ
// (a selected inverse) plus, for REML, p low-rank corrections. The penalised
// residual sum of squares r2 is a minimum over (beta, u), so
//   d r2 = -2 e'WZ dLambda u,  e = y - X beta - Z Lambda u,
// with Z'We formed from the cross-products. No inverse of Lambda is used, so
// the gradient is exact on the boundary (singular fits) too.
#include <algorithm>
#include <cmath>

#include "blocked_cholesky.h"
#include "small_dense.h"

namespace mlm {

namespace {

// out (rows x cols) += A (rows x k) * B (k x cols), column-major raw blocks.
void add_mult(const double* A, int rows, int k, const double* B, int cols, double* out) {
  for (int c = 0; c < cols; ++c)
    for (int l = 0; l < k; ++l) {
      const double b = B[l + c * k];
      if (b == 0.0) continue;
      for (int r = 0; r < rows; ++r) out[r + c * rows] += A[r + l * rows] * b;
    }
}

// out (rows x cols) += A (rows x k) * B' (B is cols x k).
void add_mult_bt(const double* A, int rows, int k, const double* B, int cols, double* out) {
  for (int c = 0; c < cols; ++c)
    for (int l = 0; l < k; ++l) {
      const double b = B[c + l * cols];
      if (b == 0.0) continue;
      for (int r = 0; r < rows; ++r) out[r + c * rows] += A[r + l * rows] * b;
    }
}

// out (rows x cols) += A' (A is k x rows) * B (k x cols).
void add_mult_at(const double* A, int rows, int k, const double* B, int cols, double* out) {
  for (int c = 0; c < cols; ++c)
    for (int r = 0; r < rows; ++r) {
      double s = 0.0;
      for (int l = 0; l < k; ++l) s += A[l + r * k] * B[l + c * k];
      out[r + c * rows] += s;
    }
}

// out (q) = W' x, W (q x q) lower triangular.
void lower_transpose_times(const double* W, int q, const double* x, double* out) {
  for (int a = 0; a < q; ++a) {
    double s = 0.0;
    for (int k = a; k < q; ++k) s += W[k + a * q] * x[k];
    out[a] = s;
  }
}

// out (q) = W x, W (q x q) lower triangular.
void lower_times(const double* W, int q, const double* x, double* out) {
  for (int r = 0; r < q; ++r) {
    double s = 0.0;
    for (int k = 0; k <= r; ++k) s += W[r + k * q] * x[k];
    out[r] = s;
  }
}

}  // namespace

// The steps of the gradient, on a factorisation (and, from
// diagonal_blocks_of_H on, its selected inverse):
//   1. the modes u and b = Lambda u and Z'We, for d r2;
//   2. (REML) V' and K for the low-rank corrections, from the factor;
//   3. the selected inverse, and the diagonal blocks H_jj of
//      M^{-1} Lambda' A_ZZ (plus the REML corrections);
//   4. the sums over levels for each entry of theta.
Eigen::VectorXd BlockedCholesky::deviance_gradient(bool reml, int n_theta) {
  if (xp_.m == 0) {
    switch (xp_.q1) {
      case 1: return nested_gradient<1>(reml, n_theta);
      case 2: return nested_gradient<2>(reml, n_theta);
      case 3: return nested_gradient<3>(reml, n_theta);
      default: return nested_gradient<0>(reml, n_theta);
    }
  }
  const Solution sol = solve();
  Eigen::VectorXd u, b;
  stack_modes(sol, u, b);
  const Eigen::VectorXd rZ = weighted_residual_on_Z(sol.beta, b);
  Eigen::MatrixXd Vt, K;
  const bool reml_terms = reml && xp_.p > 0;
  if (reml_terms) reml_corrections(Vt, K);  // needs the factor: before the selected inverse
  if (xp_.m > 0) sec_.compute_selected_inverse();
  std::vector<double> H = diagonal_blocks_of_H();
  if (reml_terms) add_reml_corrections(Vt, K, H);
  return assemble_gradient(H, rZ, u, reml, n_theta);
}

// Without secondary factors M = Lambda' Z'WZ Lambda + I is block diagonal,
// M_jj = L_j L_j', and each term of the gradient is a sum over the primary
// levels of products of the level's own tiny blocks (the steps above,
// level by level):
//   u_j = L_j^{-T} (L_Xj(y) - L_Xj(X) beta),  b_j = T u_j,
//   r_Zj = C_j(y) - C_j(X) beta - D_j b_j,
//   H_jj = M_jj^{-1} T' D_j  (+ REML: V_j' K_j', with V_j' = L_j^{-T} L_Xj(X)' R_X^{-T}
//          and K_j = D_j T V_j' - C_j(X)' R_X^{-T}),
// where D_j, C_j are the level's blocks of Z'WZ and [X y]'WZ (transposed).
// One pass sums H_jj and r_Zj u_j' (q1 x q1 each); nothing per level is
// stored. Q = q1 fixed at compile time (0: any).
template <int Q>
Eigen::VectorXd BlockedCholesky::nested_gradient(bool reml, int n_theta) const {
  const CrossProducts& xp = xp_;
  const int q = Q > 0 ? Q : xp.q1, qq = q * q;
  const int p = xp.p, P = p + 1;
  const bool reml_terms = reml && p > 0;
  const Eigen::MatrixXd Rx = LXX_.topLeftCorner(p, p);
  const Eigen::VectorXd beta = Rx.transpose().triangularView<Eigen::Upper>().solve(LXX_.row(p).head(p).transpose());
  Eigen::MatrixXd RxiT = Eigen::MatrixXd::Identity(p, p);  // R_X^{-T}, upper triangular
  if (reml_terms) {
    Rx.triangularView<Eigen::Lower>().solveInPlace(RxiT);
    RxiT.transposeInPlace();
  }
  const double* bt = beta.data();
  const double* Ri = RxiT.data();
  const double* T = T_[0].data();
  std::vector<double> scratch(static_cast<std::size_t>(4 * qq + 4 * q + 3 * q * p));
  double* Linv = scratch.data();
  double* Minv = Linv + qq;
  double* TD = Minv + qq;
  double* u = TD + qq;
  double* b = u + q;
  double* rZ = b + q;
  double* tv = rZ + q;
  double* Vt = tv + q;
  double* G = Vt + q * p;
  double* K = G + q * p;
  Eigen::MatrixXd Hsum = Eigen::MatrixXd::Zero(q, q), R2 = Eigen::MatrixXd::Zero(q, q);
  double* Hs = Hsum.data();
  double* R2s = R2.data();
  for (Index j = 0; j < xp.k1; ++j) {
    const double* L = L1_.data() + j * qq;
    const double* LX = LX1_.data() + j * q * P;   // P x q
    const double* D = xp.D1.data() + j * qq;
    const double* C = xp.C1.data() + j * q * P;  // P x q
    // L^{-1} first: the solves with L' below are products with it
    small::inverse_of_gram(L, q, Linv, Minv);
    for (int a = 0; a < q; ++a) {
      double v = LX[p + a * P];
      for (int c = 0; c < p; ++c) v -= LX[c + a * P] * bt[c];
      tv[a] = v;
    }
    lower_transpose_times(Linv, q, tv, u);
    lower_times(T, q, u, b);
    for (int r = 0; r < q; ++r) {
      double v = C[p + r * P];
      for (int c = 0; c < p; ++c) v -= C[c + r * P] * bt[c];
      for (int k = 0; k < q; ++k) v -= D[r + k * q] * b[k];
      rZ[r] = v;
    }
    for (int c = 0; c < q; ++c)
      for (int r = 0; r < q; ++r) R2s[r + c * q] += rZ[r] * u[c];
    small::mult_lower_transpose_left(T, q, D, q, TD);
    add_mult(Minv, q, q, TD, q, Hs);
    if (!reml_terms) continue;
    for (int c = 0; c < p; ++c) {
      double* Vc = Vt + c * q;
      double* Gc = G + c * q;
      for (int a = 0; a < q; ++a) {
        double v = 0.0, g = 0.0;
        for (int k = 0; k <= c; ++k) {
          v += LX[k + a * P] * Ri[k + c * p];
          g += C[k + a * P] * Ri[k + c * p];
        }
        tv[a] = v;
        Gc[a] = g;
      }
      lower_transpose_times(Linv, q, tv, Vc);
      lower_times(T, q, Vc, tv);
      for (int r = 0; r < q; ++r) {
        double v = -Gc[r];
        for (int k = 0; k < q; ++k) v += D[r + k * q] * tv[k];
        K[r + c * q] = v;
      }
    }
    add_mult_bt(Vt, q, p, K, q, Hs);
  }
  const double n_eff = static_cast<double>(reml ? xp.n - xp.p : xp.n);
  Eigen::VectorXd grad = Eigen::VectorXd::Zero(n_theta);
  for (int c = 0; c < q; ++c)
    for (int r = c; r < q; ++r) {
      const int k = tpl_[0].theta_index[r + c * q];
      if (k >= 0) grad[k] += 2.0 * Hsum(c, r) - 2.0 * n_eff * R2(r, c) / pwrss_;
    }
  return grad;
}

Eigen::Index BlockedCholesky::z_coordinate(Index s) const { return xp_.k1 * xp_.q1 + xp_.sec_start[s]; }

// A_ZZ V for V (nz x r): the block-sparse product from the cross-products,
// one pass over the blocks for all columns of V (the blocks are what is
// large); each column's sums in the same order as alone.
Eigen::MatrixXd BlockedCholesky::apply_AZZ(const Eigen::MatrixXd& V) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const Index nz = xp.k1 * q1 + xp.m;
  const Eigen::Index r = V.cols();
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(nz, r);
  const double* v = V.data();
  double* o = out.data();
  if (all_scalar_) {
    // Every block 1 x 1: the same sums without the general block products.
    const Index n1 = xp.k1;
    for (Index j = 0; j < xp.k1; ++j) {
      const double d = xp.D1.data()[j];
      for (Eigen::Index c = 0; c < r; ++c)
        if (v[c * nz + j] != 0.0) o[c * nz + j] += d * v[c * nz + j];
      for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
        const Index zs = n1 + xp.sec_start[xp.r1_row[e]];
        const double a = xp.r1_vals[xp.r1_off[e]];
        for (Eigen::Index c = 0; c < r; ++c) {
          o[c * nz + j] += a * v[c * nz + zs];
          if (v[c * nz + j] != 0.0) o[c * nz + zs] += a * v[c * nz + j];
        }
      }
    }
    for (Index s = 0; s < xp.n_sec; ++s) {
      const Index zs = n1 + xp.sec_start[s];
      const double d = xp.rr_diag[xp.rr_diag_off[s]];
      for (Eigen::Index c = 0; c < r; ++c)
        if (v[c * nz + zs] != 0.0) o[c * nz + zs] += d * v[c * nz + zs];
    }
    for (std::size_t e = 0; e < xp.rr_row.size(); ++e) {
      const Index zr = n1 + xp.sec_start[xp.rr_row[e]], zc = n1 + xp.sec_start[xp.rr_col[e]];
      const double a = xp.rr_vals[xp.rr_off[e]];
      for (Eigen::Index c = 0; c < r; ++c) {
        if (v[c * nz + zc] != 0.0) o[c * nz + zr] += a * v[c * nz + zc];
        o[c * nz + zc] += a * v[c * nz + zr];
      }
    }
    return out;
  }
  for (Index j = 0; j < xp.k1; ++j) {
    const Index zj = j * q1;
    for (Eigen::Index c = 0; c < r; ++c)
      add_mult(xp.D1.data() + j * q1 * q1, q1, q1, v + c * nz + zj, 1, o + c * nz + zj);
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index s = xp.r1_row[e];
      const int q = xp.q_of(s);
      const Index zs = z_coordinate(s);
      const double* A = xp.r1_vals.data() + xp.r1_off[e];  // q x q1
      for (Eigen::Index c = 0; c < r; ++c) {
        add_mult_at(A, q1, q, v + c * nz + zs, 1, o + c * nz + zj);
        add_mult(A, q, q1, v + c * nz + zj, 1, o + c * nz + zs);
      }
    }
  }
  for (Index s = 0; s < xp.n_sec; ++s) {
    const int q = xp.q_of(s);
    const Index zs = z_coordinate(s);
    for (Eigen::Index c = 0; c < r; ++c)
      add_mult(xp.rr_diag.data() + xp.rr_diag_off[s], q, q, v + c * nz + zs, 1, o + c * nz + zs);
  }
  for (std::size_t e = 0; e < xp.rr_row.size(); ++e) {
    const Index r0 = xp.rr_row[e], c0 = xp.rr_col[e];
    const int qr = xp.q_of(r0), qc = xp.q_of(c0);
    const Index zr = z_coordinate(r0), zc = z_coordinate(c0);
    const double* A = xp.rr_vals.data() + xp.rr_off[e];  // qr x qc
    for (Eigen::Index c = 0; c < r; ++c) {
      add_mult(A, qr, qc, v + c * nz + zc, 1, o + c * nz + zr);
      add_mult_at(A, qc, qr, v + c * nz + zr, 1, o + c * nz + zc);
    }
  }
  return out;
}

// u and b = Lambda u as vectors over the Z coordinates (primary first).
void BlockedCholesky::stack_modes(const Solution& sol, Eigen::VectorXd& u, Eigen::VectorXd& b) const {
  const CrossProducts& xp = xp_;
  const Index n1 = xp.k1 * xp.q1, nz = n1 + xp.m;
  u.resize(nz);
  b.resize(nz);
  u.head(n1) = Eigen::Map<const Eigen::VectorXd>(sol.u[0].data(), n1);
  b.head(n1) = Eigen::Map<const Eigen::VectorXd>(sol.b[0].data(), n1);
  Index s = 0;
  for (std::size_t f = 1; f < tpl_.size(); ++f)
    for (Index l = 0; l < xp.sec_levels[f - 1]; ++l, ++s) {
      u.segment(z_coordinate(s), xp.sec_q[f - 1]) = sol.u[f].col(l);
      b.segment(z_coordinate(s), xp.sec_q[f - 1]) = sol.b[f].col(l);
    }
}

// Z'W e = Z'W y - Z'W X beta - Z'WZ b.
Eigen::VectorXd BlockedCholesky::weighted_residual_on_Z(const Eigen::VectorXd& beta, const Eigen::VectorXd& b) const {
  const CrossProducts& xp = xp_;
  const int p = xp.p;
  const Index n1 = xp.k1 * xp.q1;
  Eigen::VectorXd rZ(n1 + xp.m);
  rZ.head(n1) = xp.C1.row(p).transpose() - xp.C1.topRows(p).transpose() * beta;
  if (xp.m > 0) rZ.tail(xp.m) = xp.CR.row(p).transpose() - xp.CR.topRows(p).transpose() * beta;
  rZ -= apply_AZZ(b).col(0);
  return rZ;
}

// REML: the X block adds V'(V Lambda' A_ZZ - R_X^{-1} A_XZ) to each H_jj,
// with V = R_X^{-1} L_XZ L_ZZ^{-1}; Vt = V' (nz x p), K the second factor
// transposed.
void BlockedCholesky::reml_corrections(Eigen::MatrixXd& Vt, Eigen::MatrixXd& K) const {
  const CrossProducts& xp = xp_;
  const int p = xp.p, q1 = xp.q1;
  const Index n1 = xp.k1 * q1, m = xp.m, nz = n1 + m;
  const Eigen::MatrixXd Rx = LXX_.topLeftCorner(p, p);
  const Eigen::MatrixXd F1 = Rx.triangularView<Eigen::Lower>().solve(LX1_.topRows(p)).transpose();  // n1 x p
  Eigen::MatrixXd FR(m, p);
  if (m > 0) FR = Rx.triangularView<Eigen::Lower>().solve(Y_.leftCols(p).transpose()).transpose();
  Vt = back_substitute(F1, FR);
  Eigen::MatrixXd LVt(nz, p);  // Lambda V'
  for (Index j = 0; j < xp.k1; ++j) LVt.middleRows(j * q1, q1).noalias() = T_[0] * Vt.middleRows(j * q1, q1);
  for (Index s = 0; s < xp.n_sec; ++s) {
    const int q = xp.q_of(s);
    LVt.middleRows(z_coordinate(s), q).noalias() = T_[1 + xp.sec_fac[s]] * Vt.middleRows(z_coordinate(s), q);
  }
  K = apply_AZZ(LVt);  // (V Lambda' A_ZZ)'
  Eigen::MatrixXd AXZ(p, nz);
  AXZ.leftCols(n1) = xp.C1.topRows(p);
  if (m > 0) AXZ.rightCols(m) = xp.CR.topRows(p);
  K -= Rx.triangularView<Eigen::Lower>().solve(AXZ).transpose();
}

// Diagonal blocks H_jj of M^{-1} Lambda' A_ZZ, primary levels (q1 x q1
// each) then secondary levels (laid out as rr_diag), from the selected
// inverse.
std::vector<double> BlockedCholesky::diagonal_blocks_of_H() const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  std::vector<double> H(static_cast<std::size_t>(xp.k1) * q1 * q1 + xp.rr_diag.size(), 0.0);
  const Index hsec = xp.k1 * q1 * q1;
  int qmax = q1;
  for (int q : xp.sec_q) qmax = std::max(qmax, q);
  std::vector<double> tmp(static_cast<std::size_t>(qmax) * qmax), tmp2(tmp.size());
  Eigen::MatrixXd Mjj;
  std::vector<double> Q, Mej;
  const double* T1 = T_[0].data();
  auto Tsec = [&](Index s) { return T_[1 + xp.sec_fac[s]].data(); };
  // Primary level j: M^{-1}(j, j) T1' A(j, j), and the blocks with its
  // secondary levels s on both sides.
  for (Index j = 0; j < xp.k1; ++j) {
    inverse_blocks_for_level(j, Q, Mjj, Mej);
    double* Hj = H.data() + j * q1 * q1;
    small::mult_lower_transpose_left(T1, q1, xp.D1.data() + j * q1 * q1, q1, tmp.data());
    add_mult(Mjj.data(), q1, q1, tmp.data(), q1, Hj);
    const Index base = xp.r1_ptr[j] < xp.r1_ptr[j + 1] ? xp.r1_off[xp.r1_ptr[j]] : 0;
    for (Index e = xp.r1_ptr[j]; e < xp.r1_ptr[j + 1]; ++e) {
      const Index s = xp.r1_row[e];
      const int q = xp.q_of(s);
      const double* A = xp.r1_vals.data() + xp.r1_off[e];  // A_ZZ(s, j), q x q1
      const double* Me = Mej.data() + xp.r1_off[e] - base;  // M^{-1}(s, j), q x q1
      // H_jj += M^{-1}(j, s) T_s' A(s, j)
      small::mult_lower_transpose_left(Tsec(s), q, A, q1, tmp.data());
      add_mult_at(Me, q1, q, tmp.data(), q1, Hj);
      // H_ss += M^{-1}(s, j) T1' A(s, j)'
      small::mult_lower_right(A, q, q1, T1, tmp2.data());  // A T1, q x q1
      add_mult_bt(Me, q, q1, tmp2.data(), q, H.data() + hsec + xp.rr_diag_off[s]);
    }
  }
  if (xp.m == 0) return H;
  // Secondary levels: S^{-1} blocks with their own diagonal blocks and the
  // blocks between secondary levels.
  Eigen::MatrixXd Z;
  auto sinv = [&](Index ra, Index cb, int qa, int qb) {
    Z.resize(qa, qb);
    for (int c = 0; c < qb; ++c)
      for (int r = 0; r < qa; ++r) Z(r, c) = sec_.inverse_entry(xp.sec_start[ra] + r, xp.sec_start[cb] + c);
  };
  for (Index s = 0; s < xp.n_sec; ++s) {
    const int q = xp.q_of(s);
    sinv(s, s, q, q);
    small::mult_lower_transpose_left(Tsec(s), q, xp.rr_diag.data() + xp.rr_diag_off[s], q, tmp.data());
    add_mult(Z.data(), q, q, tmp.data(), q, H.data() + hsec + xp.rr_diag_off[s]);
  }
  for (std::size_t e = 0; e < xp.rr_row.size(); ++e) {
    const Index r0 = xp.rr_row[e], c0 = xp.rr_col[e];
    const int qr = xp.q_of(r0), qc = xp.q_of(c0);
    const double* A = xp.rr_vals.data() + xp.rr_off[e];  // A_ZZ(r0, c0), qr x qc
    // H_c0 += Sinv(c0, r0) T_r0' A
    small::mult_lower_transpose_left(Tsec(r0), qr, A, qc, tmp.data());
    sinv(c0, r0, qc, qr);
    add_mult(Z.data(), qc, qr, tmp.data(), qc, H.data() + hsec + xp.rr_diag_off[c0]);
    // H_r0 += Sinv(r0, c0) T_c0' A'
    small::mult_lower_right(A, qr, qc, Tsec(c0), tmp2.data());  // A T_c0 (qr x qc); T_c0' A' = (A T_c0)'
    sinv(r0, c0, qr, qc);
    add_mult_bt(Z.data(), qr, qc, tmp2.data(), qr, H.data() + hsec + xp.rr_diag_off[r0]);
  }
  return H;
}

void BlockedCholesky::add_reml_corrections(const Eigen::MatrixXd& Vt, const Eigen::MatrixXd& K,
                                           std::vector<double>& H) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const Index hsec = xp.k1 * q1 * q1;
  for (Index j = 0; j < xp.k1; ++j) {
    Eigen::Map<Eigen::MatrixXd> Hj(H.data() + j * q1 * q1, q1, q1);
    Hj.noalias() += Vt.middleRows(j * q1, q1) * K.middleRows(j * q1, q1).transpose();
  }
  for (Index s = 0; s < xp.n_sec; ++s) {
    const int q = xp.q_of(s);
    Eigen::Map<Eigen::MatrixXd> Hs(H.data() + hsec + xp.rr_diag_off[s], q, q);
    Hs.noalias() += Vt.middleRows(z_coordinate(s), q) * K.middleRows(z_coordinate(s), q).transpose();
  }
}

// d dev / d theta_k = d log det + n_eff d log r2, summed over the levels
// of the factor that theta_k belongs to.
Eigen::VectorXd BlockedCholesky::assemble_gradient(const std::vector<double>& H, const Eigen::VectorXd& rZ,
                                                   const Eigen::VectorXd& u, bool reml, int n_theta) const {
  const CrossProducts& xp = xp_;
  const int q1 = xp.q1;
  const Index hsec = xp.k1 * q1 * q1;
  const double n_eff = static_cast<double>(reml ? xp.n - xp.p : xp.n);
  Eigen::VectorXd grad = Eigen::VectorXd::Zero(n_theta);
  Index first_sec = 0;
  for (std::size_t f = 0; f < tpl_.size(); ++f) {
    const int q = tpl_[f].q;
    const Index levels = f == 0 ? xp.k1 : xp.sec_levels[f - 1];
    for (int c = 0; c < q; ++c)
      for (int r = c; r < q; ++r) {
        const int k = tpl_[f].theta_index[r + c * q];
        if (k < 0) continue;
        double ld = 0.0, r2 = 0.0;
        for (Index l = 0; l < levels; ++l) {
          const Index start = f == 0 ? l * q1 : z_coordinate(first_sec + l);
          const double* Hl = f == 0 ? H.data() + l * q1 * q1 : H.data() + hsec + xp.rr_diag_off[first_sec + l];
          ld += 2.0 * Hl[c + r * q];
          r2 -= 2.0 * rZ[start + r] * u[start + c];
        }
        grad[k] += ld + n_eff * r2 / pwrss_;
      }
    if (f > 0) first_sec += levels;
  }
  return grad;
}

}  // namespace mlm
