// Loops for the tiny dense blocks (q x q, p x q) that the blocked Cholesky
// handles once per group and per evaluation. Eigen's dynamic-size products
// cost more in set-up than in arithmetic at these sizes, so these are plain
// loops over column-major storage.
#pragma once

#include <cmath>

namespace mlm {
namespace small {

// A (q x q, symmetric, lower triangle used) := its lower Cholesky factor.
// Returns false when A is not positive definite.
inline bool cholesky_lower(double* A, int q) {
  for (int j = 0; j < q; ++j) {
    double d = A[j + j * q];
    for (int k = 0; k < j; ++k) d -= A[j + k * q] * A[j + k * q];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    A[j + j * q] = d;
    for (int i = j + 1; i < q; ++i) {
      double s = A[i + j * q];
      for (int k = 0; k < j; ++k) s -= A[i + k * q] * A[j + k * q];
      A[i + j * q] = s / d;
    }
    for (int i = 0; i < j; ++i) A[i + j * q] = 0.0;
  }
  return true;
}

// out (r x c) = A (r x c) * T (c x c, lower triangular)
inline void mult_lower_right(const double* A, int r, int c, const double* T, double* out) {
  for (int j = 0; j < c; ++j)
    for (int i = 0; i < r; ++i) {
      double s = 0.0;
      for (int k = j; k < c; ++k) s += A[i + k * r] * T[k + j * c];
      out[i + j * r] = s;
    }
}

// out (r x c) = T' (r x r, T lower triangular) * A (r x c)
inline void mult_lower_transpose_left(const double* T, int r, const double* A, int c, double* out) {
  for (int j = 0; j < c; ++j) {
    for (int i = 0; i < r; ++i) {
      double s = 0.0;
      for (int k = i; k < r; ++k) s += T[k + i * r] * A[k + j * r];
      out[i + j * r] = s;
    }
  }
}

// B (r x c) := B * L^{-T}, L (c x c) lower triangular: solves X L' = B row by row.
inline void solve_right_lower_transpose(double* B, int r, int c, const double* L) {
  for (int j = 0; j < c; ++j) {
    const double inv = 1.0 / L[j + j * c];  // one division per column, not per entry
    for (int i = 0; i < r; ++i) {
      double s = B[i + j * r];
      for (int k = 0; k < j; ++k) s -= B[i + k * r] * L[j + k * c];
      B[i + j * r] = s * inv;
    }
  }
}

// x (q) := L^{-T} x, L lower triangular (back substitution with L').
inline void solve_lower_transpose(const double* L, int q, double* x) {
  for (int i = q - 1; i >= 0; --i) {
    double s = x[i];
    for (int k = i + 1; k < q; ++k) s -= L[k + i * q] * x[k];
    x[i] = s / L[i + i * q];
  }
}

// x (q) := L^{-1} x, L lower triangular (forward substitution).
inline void solve_lower(const double* L, int q, double* x) {
  for (int i = 0; i < q; ++i) {
    double s = x[i];
    for (int k = 0; k < i; ++k) s -= L[i + k * q] * x[k];
    x[i] = s / L[i + i * q];
  }
}

// out (q x q, both triangles) = (L L')^{-1} = L^{-T} L^{-1}, L lower
// triangular; w (q x q) is scratch and receives L^{-1}.
inline void inverse_of_gram(const double* L, int q, double* w, double* out) {
  // L^{-1} column by column (lower triangular); its diagonal holds the
  // reciprocals of L's, so that the rest needs no division.
  for (int c = 0; c < q; ++c) {
    for (int r = 0; r < q; ++r) w[r + c * q] = 0.0;
    w[c + c * q] = 1.0 / L[c + c * q];
  }
  for (int c = 0; c < q; ++c)
    for (int r = c + 1; r < q; ++r) {
      double s = 0.0;
      for (int k = c; k < r; ++k) s -= L[r + k * q] * w[k + c * q];
      w[r + c * q] = s * w[r + r * q];
    }
  for (int c = 0; c < q; ++c)
    for (int r = c; r < q; ++r) {
      double s = 0.0;
      for (int k = r; k < q; ++k) s += w[k + r * q] * w[k + c * q];  // L^{-1} is lower triangular
      out[r + c * q] = out[c + r * q] = s;
    }
}

// out (r x c) -= A (r x k) * B' (B is c x k)
inline void sub_mult_transpose(const double* A, int r, int k, const double* B, int c, double* out, int ld_out) {
  for (int j = 0; j < c; ++j)
    for (int l = 0; l < k; ++l) {
      const double b = B[j + l * c];
      if (b == 0.0) continue;
      for (int i = 0; i < r; ++i) out[i + j * ld_out] -= A[i + l * r] * b;
    }
}

}  // namespace small
}  // namespace mlm
