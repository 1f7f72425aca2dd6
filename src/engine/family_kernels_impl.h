// The bodies of the family kernels (family_kernels.h), included inside a
// namespace per instruction set after vector_math_impl.h. A vector of
// observations at a time, branch-free; lanes past the end of a block are
// computed on padding and not written.

inline Vd fabs_v(Vd x) { return (Vd)((Vu)x & 0x7fffffffffffffffULL); }
inline Vd ones_where(Vi mask) { return (Vd)((Vi)splat(1.0) & mask); }
inline double lane_sum(Vd v) {
  double s = 0.0;
  for (long j = 0; j < kLanes; ++j) s += v[j];
  return s;
}

// A kernel's work on the whole vectors of a block, then on the last few
// observations through padded copies (fill: the inputs' padding; a null
// input stays null). The body gets the position of the vector's first
// observation and the number of its lanes that are observations.
template <int In, int Out, class Body>
inline void over_block(const double* const (&in)[In], const double (&fill)[In], double* const (&out)[Out], long len,
                       Body body) {
  long i = 0;
  for (; i + kLanes <= len; i += kLanes) {
    const double* a[In];
    double* b[Out];
    for (int k = 0; k < In; ++k) a[k] = in[k] ? in[k] + i : nullptr;
    for (int k = 0; k < Out; ++k) b[k] = out[k] + i;
    body(a, b, i, kLanes);
  }
  if (i == len) return;
  double pad_in[In][kLanes], pad_out[Out][kLanes];
  const double* a[In];
  double* b[Out];
  for (int k = 0; k < In; ++k) {
    for (long j = 0; j < kLanes; ++j) pad_in[k][j] = in[k] && i + j < len ? in[k][i + j] : fill[k];
    a[k] = in[k] ? pad_in[k] : nullptr;
  }
  for (int k = 0; k < Out; ++k) {
    for (long j = 0; j < kLanes; ++j) pad_out[k][j] = i + j < len ? out[k][i + j] : fill[0];
    b[k] = pad_out[k];
  }
  body(a, b, i, len - i);
  for (int k = 0; k < Out; ++k)
    for (long j = i; j < len; ++j) out[k][j] = pad_out[k][j - i];
}

// The sums of a block that a pass needs besides the terms (glm_family.h,
// ChunkSums): the deviance residuals one by one in row order, and the
// squares of the rounding scales pw (1 + |y|)(1 + |eta|) in four running
// sums, observation i of each whole group of four into sq[i % 4], the last
// few into sq[0], in the order of the scalar code.
struct BlockSums {
  long whole;  // observations in whole groups of four
  double dev = 0.0;
  Vd lanes_a = splat(0.0), lanes_b = splat(0.0);  // sq[0..kLanes), and sq[2], sq[3] when kLanes = 2
  double tail[4] = {};
  long n_tail = 0;
  explicit BlockSums(long len) : whole(len - len % 4) {}
  void add(Vd d, Vd et, Vd yi, Vd p, long i, long n_obs) {
    for (long j = 0; j < n_obs; ++j) dev += d[j];
    const Vd sc = (p * (1.0 + fabs_v(yi))) * (1.0 + fabs_v(et));
    const Vd sc2 = sc * sc;
    if (i < whole) {
      if (kLanes == 4 || i % 4 == 0)
        lanes_a += sc2;
      else
        lanes_b += sc2;
    } else {
      for (long j = 0; j < n_obs; ++j) tail[n_tail++] = sc2[j];
    }
  }
  void finish(double& dev_sum, double* sq) const {
    dev_sum = dev;
    for (long j = 0; j < 4; ++j) sq[j] = kLanes == 4 ? lanes_a[j % kLanes] : (j < 2 ? lanes_a[j % kLanes] : lanes_b[j % kLanes]);
    for (long j = 0; j < n_tail; ++j) sq[0] += tail[j];
  }
};

// Binomial-logit in three loops over the block: exp(-|eta|) into w,
// log(1 + exp(-|eta|)) into dev, then the terms and the block's sums. The
// vectors of a loop
// are independent of each other, so the processor overlaps their long
// chains of arithmetic (one loop doing it all would wait on each chain),
// and the deviance's chain of additions hides behind the terms' arithmetic.
template <bool Weighted>
void logit_block(const double* eta, const double* y, const double* pw, long len, double* dev, double* w,
                 double* wres, Vd& clamped, Vd& props, BlockSums& sums) {
  over_block<1, 1>({eta}, {0.0}, {w}, len,
                   [&](const double* const* a, double* const* b, long, long) { store_v(b[0], exp_v(-fabs_v(load_v(a[0])))); });
  over_block<1, 1>({w}, {0.0}, {dev}, len,
                   [&](const double* const* a, double* const* b, long, long) { store_v(b[0], log_v(1.0 + load_v(a[0]))); });
  over_block<3, 3>({eta, y, pw}, {0.0, 0.0, 1.0}, {dev, w, wres}, len,
                   [&](const double* const* a, double* const* b, long i, long n_obs) {
    const Vd et = load_v(a[0]), yi = load_v(a[1]), e = load_v(b[1]), l1pe = load_v(b[0]);
    clamped += ones_where(~(fabs_v(et) <= splat(30.0)));  // NaN too
    props += ones_where(yi * (1.0 - yi) > splat(0.0));
    // one division: d = 1 / (e (1 + e)) gives 1 / (1 + e) and 1 / mu_eta
    const Vd ope = 1.0 + e;
    const Vd dd = 1.0 / (e * ope);
    const Vd big = e * dd, small = e * big;
    const Vd mu = select_v(et >= splat(0.0), big, small);
    const Vd inv_mu_eta = ope * ope * ope * dd;
    const Vd neg = select_v(et < splat(0.0), -et, splat(0.0)), pos = select_v(et > splat(0.0), et, splat(0.0));
    // y (-log mu) + (1 - y) (-log(1 - mu)); l1pe is -log of the larger of the two
    const Vd r = yi * (l1pe + neg) + (1.0 - yi) * (l1pe + pos);
    Vd d = 2.0 * r, wt = big * small;
    const Vd p = Weighted ? load_v(a[2]) : splat(1.0);
    if (Weighted) {
      d = d * p;
      wt = wt * p;
    }
    store_v(b[0], d);
    store_v(b[1], wt);
    store_v(b[2], (yi - mu) * inv_mu_eta);
    sums.add(d, et, yi, p, i, n_obs);
  });
}

long logit(const double* eta, const double* y, const double* pw, long len, double* dev, double* w, double* wres,
           bool& proportions, double& dev_sum, double* sq) {
  Vd clamped = splat(0.0), props = splat(0.0);
  BlockSums sums(len);
  if (pw)
    logit_block<true>(eta, y, pw, len, dev, w, wres, clamped, props, sums);
  else
    logit_block<false>(eta, y, pw, len, dev, w, wres, clamped, props, sums);
  sums.finish(dev_sum, sq);
  proportions = lane_sum(props) > 0.0;
  return static_cast<long>(lane_sum(clamped));
}

// Poisson-log in three loops over the block (as logit_block): exp(eta)
// into w, log(y) into dev, then the terms and the block's sums.
template <bool Weighted>
void poisson_log_block(const double* eta, const double* y, const double* pw, long len, double* dev, double* w,
                       double* wres, Vd& clamped, BlockSums& sums) {
  over_block<1, 1>({eta}, {0.0}, {w}, len,
                   [&](const double* const* a, double* const* b, long, long) { store_v(b[0], exp_v(load_v(a[0]))); });
  over_block<1, 1>({y}, {1.0}, {dev}, len,
                   [&](const double* const* a, double* const* b, long, long) { store_v(b[0], log_v(load_v(a[0]))); });
  over_block<3, 3>({eta, y, pw}, {0.0, 1.0, 1.0}, {dev, w, wres}, len,
                   [&](const double* const* a, double* const* b, long i, long n_obs) {
    const Vd et = load_v(a[0]), yi = load_v(a[1]), mu = load_v(b[1]), log_y = load_v(b[0]);
    clamped += ones_where(~(et >= splat(-36.0) & et <= splat(700.0)));  // NaN too
    const Vd p = Weighted ? load_v(a[2]) : splat(1.0);
    // y log(y / mu) - (y - mu), or mu where y = 0
    const Vd r = select_v(yi > splat(0.0), yi * (log_y - et) - (yi - mu), mu);
    const Vd d = (2.0 * p) * r;
    store_v(b[0], d);
    store_v(b[1], p * mu);
    store_v(b[2], (yi - mu) / mu);
    sums.add(d, et, yi, p, i, n_obs);
  });
}

long poisson_log(const double* eta, const double* y, const double* pw, long len, double* dev, double* w,
                 double* wres, double& dev_sum, double* sq) {
  Vd clamped = splat(0.0);
  BlockSums sums(len);
  if (pw)
    poisson_log_block<true>(eta, y, pw, len, dev, w, wres, clamped, sums);
  else
    poisson_log_block<false>(eta, y, pw, len, dev, w, wres, clamped, sums);
  sums.finish(dev_sum, sq);
  return static_cast<long>(lane_sum(clamped));
}

void exp_values(const double* x, double* out, long n) { apply_v<exp_v>(x, out, n); }
void log_values(const double* x, double* out, long n) { apply_v<log_v>(x, out, n); }
