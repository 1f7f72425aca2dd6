// The exponential and the logarithm of a vector of doubles, in GCC's and
// Clang's vector extension (no intrinsics): the including unit sets the
// vector's width in MLM_VECTOR_BYTES, 16 (two doubles, SSE2 or NEON) for
// the baseline build, 32 (four, AVX2). Included inside a namespace per
// instruction set (family_kernels.cpp, family_kernels_avx2.cpp). Every lane takes the same sequence of IEEE
// additions, multiplications and divisions, and the units are built
// without contracting them into fused multiply-adds (src/Makevars), so
// both builds give the same bits, on any CPU.
//
// Both are the textbook reductions (J.-M. Muller, Elementary Functions,
// 2016, ch. 11): exp by x = n ln 2 + r, |r| <= ln 2 / 2, with ln 2 in two
// parts (Cody and Waite), and the series of exp(r) - 1 to r^13 / 13!; log
// by x = 2^k m, m in [sqrt(1/2), sqrt(2)), s = f / (2 + f) with f = m - 1,
// log m = f - f^2/2 + s (f^2/2 + R(s^2)), R the series of 2 atanh(s) / s - 2
// to s^18. The series are truncated where their remainder is below 2^-56
// of the result; the error is within one unit in the last place
// (tests/testthat/test-family-kernels.R compares with R's exp and log).

typedef double Vd __attribute__((vector_size(MLM_VECTOR_BYTES)));
typedef long long Vi __attribute__((vector_size(MLM_VECTOR_BYTES)));
typedef unsigned long long Vu __attribute__((vector_size(MLM_VECTOR_BYTES)));
constexpr long kLanes = MLM_VECTOR_BYTES / sizeof(double);

inline Vd splat(double v) { return Vd{} + v; }
inline Vd load_v(const double* p) {
  Vd v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store_v(double* p, Vd v) { __builtin_memcpy(p, &v, sizeof v); }
// a where the mask (all ones or all zeros per lane, from a comparison) is set, b elsewhere
inline Vd select_v(Vi mask, Vd a, Vd b) { return (Vd)(((Vi)a & mask) | ((Vi)b & ~mask)); }

// 2^n for n a whole number in [-1022, 1023], held as a double: with
// 1.5 * 2^52 added, n + 2^51 sits in the low bits of the mantissa.
inline Vd pow2(Vd n) {
  const Vu bits = (Vu)(n + splat(0x1.8p52));
  return (Vd)((bits + 1023ULL) << 52);
}

inline Vd exp_v(Vd x) {
  constexpr double log2e = 1.4426950408889634;
  constexpr double ln2_hi = 0x1.62e42feep-1;  // 32 bits: n ln2_hi exact for |n| < 2^21
  constexpr double ln2_lo = 0x1.a39ef35793c76p-33;
  constexpr double round = 0x1.8p52;  // adding it rounds to a whole number
  // Beyond +-1000 the result is 0 or +Inf; NaN passes (comparisons fail).
  x = select_v(x > splat(1000.0), splat(1000.0), x);
  x = select_v(x < splat(-1000.0), splat(-1000.0), x);
  const Vd n = (x * log2e + round) - round;
  const Vd r = (x - n * ln2_hi) - n * ln2_lo;
  // 1/2! + r/3! + ... + r^11/13! by Estrin's scheme: a few short chains
  // instead of one long one, which the processor runs side by side
  const Vd r2 = r * r, r4 = r2 * r2;
  const Vd a0 = 1.0 / 2 + r * (1.0 / 6), a1 = 1.0 / 24 + r * (1.0 / 120), a2 = 1.0 / 720 + r * (1.0 / 5040),
           a3 = 1.0 / 40320 + r * (1.0 / 362880), a4 = 1.0 / 3628800 + r * (1.0 / 39916800),
           a5 = 1.0 / 479001600 + r * (1.0 / 6227020800);
  const Vd b0 = a0 + r2 * a1, b1 = a2 + r2 * a3, b2 = a4 + r2 * a5;
  const Vd p = b0 + r4 * (b1 + r4 * b2);
  const Vd e = 1.0 + (r + r2 * p);
  // 2^n in two factors, each normal over the clamped range (and the
  // product rounds once when the result is subnormal)
  const Vd n1 = (n * 0.5 + round) - round;
  return (e * pow2(n1)) * pow2(n - n1);
}

inline Vd log_v(Vd x) {
  constexpr double ln2_hi = 0x1.62e42feep-1;
  constexpr double ln2_lo = 0x1.a39ef35793c76p-33;
  constexpr double sqrt2 = 1.4142135623730951;
  const Vd one = splat(1.0);
  // subnormals scaled into the normal range first
  const Vi subnormal = x < splat(0x1p-1022);
  const Vd xs = select_v(subnormal, x * 0x1p54, x);
  const Vu bits = (Vu)xs;
  // the biased exponent as a double: its 11 bits in the low mantissa of 2^52
  Vd k = (Vd)((bits >> 52) | 0x4330000000000000ULL) - (0x1p52 + 1023.0);
  k = k - (Vd)((Vi)splat(54.0) & subnormal);
  Vd m = (Vd)((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);  // in [1, 2)
  const Vi high = m > splat(sqrt2);
  m = select_v(high, m * 0.5, m);
  k = k + (Vd)((Vi)one & high);
  const Vd f = m - 1.0;
  const Vd s = f / (2.0 + f);
  const Vd z = s * s;
  // R = 2 z / 3 + 2 z^2 / 5 + ... + 2 z^9 / 19 (Estrin, as in exp_v)
  const Vd z2 = z * z, z4 = z2 * z2;
  const Vd a0 = 2.0 / 3 + z * (2.0 / 5), a1 = 2.0 / 7 + z * (2.0 / 9), a2 = 2.0 / 11 + z * (2.0 / 13),
           a3 = 2.0 / 15 + z * (2.0 / 17);
  const Vd R = z * ((a0 + z2 * a1) + z4 * ((a2 + z2 * a3) + z4 * (2.0 / 19)));
  const Vd hfsq = 0.5 * f * f;
  Vd out = k * ln2_hi - ((hfsq - (s * (hfsq + R) + k * ln2_lo)) - f);
  const double inf = __builtin_inf();
  out = select_v(x == splat(inf), splat(inf), out);
  out = select_v(x == splat(0.0), splat(-inf), out);
  out = select_v(~(x >= splat(0.0)), splat(__builtin_nan("")), out);  // negative or NaN
  return out;
}

// out[i] = exp(x[i]) / log(x[i]), i < n; a vector at a time, the last
// few through a padded vector (the same arithmetic whatever a value's place).
template <Vd (*Fn)(Vd)>
inline void apply_v(const double* x, double* out, long n) {
  long i = 0;
  for (; i + kLanes <= n; i += kLanes) store_v(out + i, Fn(load_v(x + i)));
  if (i < n) {
    double in[kLanes], res[kLanes];
    for (long j = 0; j < kLanes; ++j) in[j] = i + j < n ? x[i + j] : 1.0;
    store_v(res, Fn(load_v(in)));
    for (long j = i; j < n; ++j) out[j] = res[j - i];
  }
}
