#include "pirls.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "start_values.h"


namespace mlm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Neumaier's compensated sum: deviances of 1e6 observations are summed
// without the rounding noise that would swamp finite-difference gradients.
struct CompensatedSum {
  double sum = 0.0, c = 0.0;
  void add(double x) {
    const double t = sum + x;
    if (std::fabs(sum) >= std::fabs(x))
      c += (sum - t) + x;
    else
      c += (x - t) + sum;
    sum = t;
  }
  double value() const { return sum + c; }
};

// The rounding noise of a sum of deviance residuals: each is a difference
// of terms of size about pw (1 + |y|)(1 + |eta|) (y log y and y eta for
// Poisson counts, eta for binomial ones), rounded independently, so the
// sum's error is about eps times the root sum of their squares (times 4
// for the several roundings in each).
struct RoundingNoise {
  double sum_sq = 0.0;
  void add(double scale) { sum_sq += scale * scale; }
  double value() const { return 4.0 * std::numeric_limits<double>::epsilon() * std::sqrt(sum_sq); }
};

inline double rounding_scale(double eta, double y, double pw) {
  return pw * (1.0 + std::fabs(y)) * (1.0 + std::fabs(eta));
}

void complete_lower(double* A, int q) {
  for (int b = 0; b < q; ++b)
    for (int a = 0; a < b; ++a) A[a + b * q] = A[b + a * q];
}

}  // namespace

Pirls::Pirls(const ModelData& data, const GlmFamily& family, const std::vector<CovTemplate>& templates, bool joint)
    : d_(data), fam_(family), tpl_(templates), joint_(joint) {
  // The sparsity pattern of the cross-products depends on the design only:
  // form it once (unit weights), then refill the values in every pass.
  ModelData pattern = d_;
  pattern.intercept_col = -1;
  pattern.weights = nullptr;
  pattern.offset = nullptr;
  if (!joint_) pattern.p = 0;
  xp_ = build_cross_products(pattern);
  theta_units_ = theta_scales(xp_, tpl_);
  const int p = joint_ ? d_.p : 0;
  if (joint_ && d_.intercept_col >= 0) {
    // Centring X by constants is an exact reparametrisation that keeps
    // X'WX well conditioned; the working response is left as it is.
    xp_.center = Eigen::VectorXd::Zero(p + 1);
    for (int c = 0; c < p; ++c) {
      if (c == d_.intercept_col) continue;
      const double* x = d_.X + static_cast<Index>(c) * d_.n;
      double s = 0.0;
      for (Index i = 0; i < d_.n; ++i) s += x[i];
      xp_.center[c] = s / static_cast<double>(d_.n);
    }
    xp_.intercept_col = d_.intercept_col;
  }
  if (joint_) {
    // A ridge far below the arithmetic's noise in any fit whose estimates
    // exist keeps X'WX positive definite when weights vanish (estimates
    // drifting to infinity under separation), so that such fits end with
    // a diagnosis rather than a failed factorisation.
    ridge_.resize(p);
    for (int c = 0; c < p; ++c) {
      const double* x = d_.X + static_cast<Index>(c) * d_.n;
      const double mu = xp_.center.size() > 0 ? xp_.center[c] : 0.0;
      double ss = 0.0;
      for (Index i = 0; i < d_.n; ++i) ss += (x[i] - mu) * (x[i] - mu);
      ridge_[c] = ss > 0.0 ? 1e-12 * ss : 1e-12;  // relative to the column: the same on any scale
    }
  }
  sys_.reset(new BlockedCholesky(xp_, tpl_));
  nf_ = static_cast<int>(d_.blocks.size()) - 1;
  Index lev = 0, coord = 0, doff = 0;
  for (int f = 0; f < nf_; ++f) {
    const FactorBlock& F = d_.blocks[f + 1];
    first_level_.push_back(lev);
    first_coord_.push_back(coord);
    diag_off_.push_back(doff);
    lev += F.n_levels;
    coord += F.n_levels * F.q;
    doff += F.n_levels * F.q * F.q;
  }
  find_secondary_positions();
  T_.resize(tpl_.size());
  u_.resize(tpl_.size());
  for (std::size_t f = 0; f < tpl_.size(); ++f) {
    T_[f].setZero(tpl_[f].q, tpl_[f].q);
    u_[f].setZero(tpl_[f].q, d_.blocks[f].n_levels);
  }
  beta_.setZero(d_.p);
  eta_fixed_.setZero(d_.n);
  chunk_.resize(1024, p + 1);
}

// Where each observation's contributions to the off-diagonal blocks of
// Z'WZ live in the fixed pattern (found once by binary search).
void Pirls::find_secondary_positions() {
  if (nf_ <= 0) return;
  const Index n = d_.n;
  const int npairs = nf_ * (nf_ - 1) / 2;
  r1_pos_.assign(static_cast<std::size_t>(n) * nf_, 0);
  rr_pos_.assign(static_cast<std::size_t>(n) * npairs, 0);
  const FactorBlock& F1 = d_.blocks[0];
  std::vector<Index> lev(nf_);
  for (Index obs = 0; obs < n; ++obs) {
    const Index j = F1.codes[obs] - F1.code_base;
    for (int f = 0; f < nf_; ++f) {
      const FactorBlock& F = d_.blocks[f + 1];
      lev[f] = first_level_[f] + (F.codes[obs] - F.code_base);
      auto first = xp_.r1_row.begin() + xp_.r1_ptr[j];
      auto last = xp_.r1_row.begin() + xp_.r1_ptr[j + 1];
      auto it = std::lower_bound(first, last, lev[f]);
      r1_pos_[obs * nf_ + f] = xp_.r1_off[it - xp_.r1_row.begin()];
      for (int g = 0; g < f; ++g) {
        // rr entries are ordered by (col, row); this block is (row lev[f], col lev[g]).
        Index lo = 0, hi = static_cast<Index>(xp_.rr_row.size());
        while (lo < hi) {
          const Index mid = (lo + hi) / 2;
          const bool less = xp_.rr_col[mid] != lev[g] ? xp_.rr_col[mid] < lev[g] : xp_.rr_row[mid] < lev[f];
          if (less)
            lo = mid + 1;
          else
            hi = mid;
        }
        rr_pos_[obs * npairs + f * (f - 1) / 2 + g] = xp_.rr_off[lo];
      }
    }
  }
}

void Pirls::set_start_eta(const Eigen::VectorXd& eta) {
  start_eta_ = eta;
  has_modes_ = false;
}

void Pirls::set_beta(const Eigen::VectorXd& beta) {
  beta_ = beta;
  if (!joint_) {
    const Index n = d_.n;
    for (Index i = 0; i < n; ++i) eta_fixed_[i] = d_.offset ? d_.offset[i] : 0.0;
    for (int c = 0; c < d_.p; ++c) {
      const double* x = d_.X + static_cast<Index>(c) * n;
      const double bc = beta[c];
      if (bc == 0.0) continue;
      for (Index i = 0; i < n; ++i) eta_fixed_[i] += x[i] * bc;
    }
  }
}

void Pirls::set_u(const std::vector<Eigen::MatrixXd>& u) {
  u_ = u;
  has_modes_ = true;
}

void Pirls::set_theta(const Eigen::VectorXd& theta) { fill_relative_factors(tpl_, theta, T_); }

std::vector<Eigen::MatrixXd> Pirls::b() const {
  std::vector<Eigen::MatrixXd> out(u_.size());
  for (std::size_t f = 0; f < u_.size(); ++f) out[f] = T_[f] * u_[f];
  return out;
}

double Pirls::ussq(const std::vector<Eigen::MatrixXd>& u) const {
  double s = 0.0;
  for (const auto& m : u) s += m.squaredNorm();
  return s;
}

// One pass: the sum of deviance residuals at the candidate (or at the
// starting linear predictors), and the cross-products of the next Newton
// step: sqrt(w) [Z, X - centre, z] with working weights w and working
// response z (for u alone, z excludes offset + X beta). +Inf when the
// linear predictor leaves the domain of the link.
double Pirls::pass(const std::vector<Eigen::MatrixXd>& b, const Eigen::VectorXd& beta, bool from_start) {
  if (fam_.dist == Dist::binomial && fam_.link == Link::logit) {
    const LogitKernel k{fam_};
    return joint_ ? pass_joint(k, b, beta, from_start) : pass_u(k, b, from_start);
  }
  if (fam_.dist == Dist::poisson && fam_.link == Link::log) {
    const PoissonLogKernel k{fam_};
    return joint_ ? pass_joint(k, b, beta, from_start) : pass_u(k, b, from_start);
  }
  const GenericKernel k{fam_};
  return joint_ ? pass_joint(k, b, beta, from_start) : pass_u(k, b, from_start);
}

template <class Kernel>
double Pirls::pass_joint(const Kernel& kernel, const std::vector<Eigen::MatrixXd>& b, const Eigen::VectorXd& beta,
                         bool from_start) {
  const Index n = d_.n;
  const int p = joint_ ? d_.p : 0;
  const int P = p + 1;
  const FactorBlock& F1 = d_.blocks[0];
  const int q1 = F1.q;
  const int npairs = nf_ * (nf_ - 1) / 2;
  xp_.D1.setZero();
  xp_.C1.setZero();
  xp_.XX.setZero();
  std::fill(xp_.rr_diag.begin(), xp_.rr_diag.end(), 0.0);
  std::fill(xp_.rr_vals.begin(), xp_.rr_vals.end(), 0.0);
  std::fill(xp_.r1_vals.begin(), xp_.r1_vals.end(), 0.0);
  if (xp_.CR.size() > 0) xp_.CR.setZero();
  const bool centred = xp_.center.size() > 0;
  // The working response leaves out offset + X beta: the solution is then
  // the increment of beta, free of the cancellation between X'Wz and
  // X'WX beta that large linear predictors would cause.
  if (from_start)
    xp_beta_.setZero(d_.p);
  else
    xp_beta_ = beta;

  const Index chunk = chunk_.rows();
  std::vector<double> eta(chunk), zb(chunk), sw(chunk), z1(q1), tdev(chunk), tw(chunk), twres(chunk);
  std::vector<std::vector<double>> zsec(nf_);
  std::vector<Index> lev(nf_);
  for (int f = 0; f < nf_; ++f) zsec[f].resize(d_.blocks[f + 1].q);
  CompensatedSum dev;
  RoundingNoise noise;

  for (Index start = 0; start < n; start += chunk) {
    const Index len = std::min(chunk, n - start);
    // eta = offset + X beta + Z b, with Z b (the part of the working
    // response that is not an increment) kept apart.
    if (from_start) {
      for (Index i = 0; i < len; ++i) {
        eta[i] = start_eta_[start + i];
        zb[i] = eta[i] - (d_.offset ? d_.offset[start + i] : 0.0);
      }
    } else {
      std::fill(zb.begin(), zb.begin() + len, 0.0);
      for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
        const FactorBlock& F = d_.blocks[f];
        const Eigen::MatrixXd& bf = b[f];
        const int* codes = F.codes + start;
        for (int a = 0; a < F.q; ++a) {
          const double* col = F.cols[a] ? F.cols[a] + start : nullptr;
          for (Index i = 0; i < len; ++i) {
            const double v = bf(a, codes[i] - F.code_base);
            zb[i] += col ? col[i] * v : v;
          }
        }
      }
      for (Index i = 0; i < len; ++i) eta[i] = (d_.offset ? d_.offset[start + i] : 0.0) + zb[i];
      for (int c = 0; c < d_.p; ++c) {
        const double* x = d_.X + static_cast<Index>(c) * n + start;
        const double bc = beta[c];
        for (Index i = 0; i < len; ++i) eta[i] += x[i] * bc;
      }
    }

    if (!chunk_terms(kernel, eta.data(), d_.y + start, d_.weights ? d_.weights + start : nullptr, len, tdev.data(),
                     tw.data(), twres.data()))
      return kInf;
    double dev_chunk = 0.0;
    for (Index i = 0; i < len; ++i) {
      dev_chunk += tdev[i];
      noise.add(rounding_scale(eta[i], d_.y[start + i], d_.weights ? d_.weights[start + i] : 1.0));
      const double s = std::sqrt(tw[i]);
      sw[i] = s;
      chunk_(i, p) = s * (zb[i] + twres[i]);
    }
    if (!std::isfinite(dev_chunk)) return kInf;
    dev.add(dev_chunk);
    for (int c = 0; c < p; ++c) {
      const double* x = d_.X + static_cast<Index>(c) * n + start;
      const double mu = centred ? xp_.center[c] : 0.0;
      for (Index i = 0; i < len; ++i) chunk_(i, c) = sw[i] * (x[i] - mu);
    }
    xp_.XX.selfadjointView<Eigen::Lower>().rankUpdate(chunk_.topRows(len).transpose());

    if (q1 == 1 && nf_ == 0) {
      // One scalar term: Z'WZ and [X z]'WZ column by column of the block,
      // reading it in memory order.
      const double* zc = F1.cols[0] ? F1.cols[0] + start : nullptr;
      const int* codes = F1.codes + start;
      const int cb = F1.code_base;
      double* D = xp_.D1.data();
      for (Index i = 0; i < len; ++i) {
        const double zs = sw[i] * (zc ? zc[i] : 1.0);
        sw[i] = zs;
        D[codes[i] - cb] += zs * zs;
      }
      double* C = xp_.C1.data();
      for (int c = 0; c < P; ++c) {
        const double* bc = chunk_.data() + static_cast<Index>(c) * chunk;
        for (Index i = 0; i < len; ++i) C[(codes[i] - cb) * P + c] += sw[i] * bc[i];
      }
      if (d_.check_interrupt && (start / chunk) % 512 == 511) d_.check_interrupt();
      continue;
    }

    for (Index i = 0; i < len; ++i) {
      const Index obs = start + i;
      const double s = sw[i];
      const Index j = F1.codes[obs] - F1.code_base;
      for (int a = 0; a < q1; ++a) z1[a] = s * (F1.cols[a] ? F1.cols[a][obs] : 1.0);
      double* D = xp_.D1.data() + j * q1 * q1;
      for (int bb = 0; bb < q1; ++bb)
        for (int a = bb; a < q1; ++a) D[a + bb * q1] += z1[a] * z1[bb];
      for (int a = 0; a < q1; ++a) {
        double* C = xp_.C1.data() + (j * q1 + a) * P;
        for (int c = 0; c < P; ++c) C[c] += z1[a] * chunk_(i, c);
      }
      for (int f = 0; f < nf_; ++f) {
        const FactorBlock& F = d_.blocks[f + 1];
        const int q = F.q;
        const Index l = F.codes[obs] - F.code_base;
        lev[f] = first_level_[f] + l;
        std::vector<double>& z = zsec[f];
        for (int a = 0; a < q; ++a) z[a] = s * (F.cols[a] ? F.cols[a][obs] : 1.0);
        double* Dd = xp_.rr_diag.data() + diag_off_[f] + l * q * q;
        for (int bb = 0; bb < q; ++bb)
          for (int a = bb; a < q; ++a) Dd[a + bb * q] += z[a] * z[bb];
        for (int a = 0; a < q; ++a) {
          double* C = xp_.CR.data() + (first_coord_[f] + l * q + a) * P;
          for (int c = 0; c < P; ++c) C[c] += z[a] * chunk_(i, c);
        }
        double* R1 = xp_.r1_vals.data() + r1_pos_[obs * nf_ + f];
        for (int bb = 0; bb < q1; ++bb)
          for (int a = 0; a < q; ++a) R1[a + bb * q] += z[a] * z1[bb];
        for (int g = 0; g < f; ++g) {
          const int qg = d_.blocks[g + 1].q;
          double* RR = xp_.rr_vals.data() + rr_pos_[obs * npairs + f * (f - 1) / 2 + g];
          const std::vector<double>& zg = zsec[g];
          for (int bb = 0; bb < qg; ++bb)
            for (int a = 0; a < q; ++a) RR[a + bb * q] += z[a] * zg[bb];
        }
      }
    }
    if (d_.check_interrupt && (start / chunk) % 512 == 511) d_.check_interrupt();
  }

  xp_.XX.triangularView<Eigen::StrictlyUpper>() = xp_.XX.transpose();
  // The last diagonal entry only sets the penalised residual sum of
  // squares, which PIRLS does not use; keeping it away from zero keeps
  // the factorisation defined when the working response fits exactly.
  xp_.XX(p, p) += 1.0;
  for (int c = 0; c < p; ++c) xp_.XX(c, c) += ridge_[c];
  for (Index j = 0; j < xp_.k1; ++j) complete_lower(xp_.D1.data() + j * q1 * q1, q1);
  for (int f = 0; f < nf_; ++f) {
    const int q = d_.blocks[f + 1].q;
    for (Index l = 0; l < d_.blocks[f + 1].n_levels; ++l) complete_lower(xp_.rr_diag.data() + diag_off_[f] + l * q * q, q);
  }
  dev_noise_ = noise.value();
  return dev.value();
}

// The pass for u alone (beta fixed): the cross-products need only Z'WZ,
// Z'W z and z'W z, accumulated with the weights themselves (no square
// roots, no dense rank update). A single scalar random-effect term, the
// commonest model, gets a loop of its own.
template <class Kernel>
double Pirls::pass_u(const Kernel& kernel, const std::vector<Eigen::MatrixXd>& b, bool from_start) {
  const Index n = d_.n;
  const FactorBlock& F1 = d_.blocks[0];
  const int q1 = F1.q;
  const int npairs = nf_ * (nf_ - 1) / 2;
  xp_.D1.setZero();
  xp_.C1.setZero();
  std::fill(xp_.rr_diag.begin(), xp_.rr_diag.end(), 0.0);
  std::fill(xp_.rr_vals.begin(), xp_.rr_vals.end(), 0.0);
  std::fill(xp_.r1_vals.begin(), xp_.r1_vals.end(), 0.0);
  if (xp_.CR.size() > 0) xp_.CR.setZero();
  CompensatedSum dev, yy;
  RoundingNoise noise;
  const double* y = d_.y;
  const double* pw = d_.weights;
  const double* ef = eta_fixed_.data();
  const Index chunk = 4096;
  std::vector<double> etav(chunk), zbv(chunk), tdev(chunk), tw(chunk), twres(chunk);

  if (nf_ == 0 && q1 == 1) {
    const double* col = F1.cols[0];
    const int* codes = F1.codes;
    const int base = F1.code_base;
    const double* b1 = b[0].data();
    double* D = xp_.D1.data();
    double* C = xp_.C1.data();
    for (Index start = 0; start < n; start += chunk) {
      const Index end = std::min(n, start + chunk);
      const Index len = end - start;
      for (Index i = start; i < end; ++i) {
        const double z = col ? col[i] : 1.0;
        const double zb = from_start ? start_eta_[i] - ef[i] : z * b1[codes[i] - base];
        zbv[i - start] = zb;
        etav[i - start] = ef[i] + zb;
      }
      if (!chunk_terms(kernel, etav.data(), y + start, pw ? pw + start : nullptr, len, tdev.data(), tw.data(),
                       twres.data()))
        return kInf;
      double dev_chunk = 0.0, yy_chunk = 0.0;
      for (Index k = 0; k < len; ++k) {
        const Index i = start + k;
        const Index j = codes[i] - base;
        const double z = col ? col[i] : 1.0;
        dev_chunk += tdev[k];
        noise.add(rounding_scale(etav[k], y[i], pw ? pw[i] : 1.0));
        const double w = tw[k];
        const double yt = zbv[k] + twres[k];
        const double wz = w * z;
        D[j] += wz * z;
        C[j] += wz * yt;
        yy_chunk += w * yt * yt;
      }
      if (!std::isfinite(dev_chunk)) return kInf;
      dev.add(dev_chunk);
      yy.add(yy_chunk);
      if (d_.check_interrupt && (start / chunk) % 128 == 127) d_.check_interrupt();
    }
    xp_.XX(0, 0) = yy.value() + 1.0;
    dev_noise_ = noise.value();
    return dev.value();
  }

  std::vector<double> z1(q1), zw(q1);
  std::vector<std::vector<double>> zsec(nf_);
  std::vector<Index> lev(nf_);
  for (int f = 0; f < nf_; ++f) zsec[f].resize(d_.blocks[f + 1].q);
  for (Index start = 0; start < n; start += chunk) {
    const Index end = std::min(n, start + chunk);
    const Index len = end - start;
    for (Index i = start; i < end; ++i) {
      double zb = 0.0;
      if (from_start) {
        zb = start_eta_[i] - ef[i];
      } else {
        for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
          const FactorBlock& F = d_.blocks[f];
          const Index l = F.codes[i] - F.code_base;
          const double* bl = b[f].data() + l * F.q;
          for (int a = 0; a < F.q; ++a) zb += (F.cols[a] ? F.cols[a][i] : 1.0) * bl[a];
        }
      }
      zbv[i - start] = zb;
      etav[i - start] = ef[i] + zb;
    }
    if (!chunk_terms(kernel, etav.data(), y + start, pw ? pw + start : nullptr, len, tdev.data(), tw.data(),
                     twres.data()))
      return kInf;
    double dev_chunk = 0.0, yy_chunk = 0.0;
    for (Index i = start; i < end; ++i) {
      const Index k = i - start;
      dev_chunk += tdev[k];
      noise.add(rounding_scale(etav[k], y[i], pw ? pw[i] : 1.0));
      const double w = tw[k];
      const double yt = zbv[k] + twres[k];
      yy_chunk += w * yt * yt;
      const Index j = F1.codes[i] - F1.code_base;
      for (int a = 0; a < q1; ++a) {
        z1[a] = F1.cols[a] ? F1.cols[a][i] : 1.0;
        zw[a] = w * z1[a];
      }
      double* D = xp_.D1.data() + j * q1 * q1;
      for (int bb = 0; bb < q1; ++bb)
        for (int a = bb; a < q1; ++a) D[a + bb * q1] += zw[a] * z1[bb];
      double* C = xp_.C1.data() + j * q1;
      for (int a = 0; a < q1; ++a) C[a] += zw[a] * yt;
      for (int f = 0; f < nf_; ++f) {
        const FactorBlock& F = d_.blocks[f + 1];
        const int q = F.q;
        const Index l = F.codes[i] - F.code_base;
        lev[f] = first_level_[f] + l;
        std::vector<double>& z = zsec[f];
        for (int a = 0; a < q; ++a) z[a] = F.cols[a] ? F.cols[a][i] : 1.0;
        double* Dd = xp_.rr_diag.data() + diag_off_[f] + l * q * q;
        for (int bb = 0; bb < q; ++bb)
          for (int a = bb; a < q; ++a) Dd[a + bb * q] += w * z[a] * z[bb];
        double* CR = xp_.CR.data() + first_coord_[f] + l * q;
        for (int a = 0; a < q; ++a) CR[a] += w * z[a] * yt;
        double* R1 = xp_.r1_vals.data() + r1_pos_[i * nf_ + f];
        for (int bb = 0; bb < q1; ++bb)
          for (int a = 0; a < q; ++a) R1[a + bb * q] += z[a] * zw[bb];
        for (int g = 0; g < f; ++g) {
          const int qg = d_.blocks[g + 1].q;
          double* RR = xp_.rr_vals.data() + rr_pos_[i * npairs + f * (f - 1) / 2 + g];
          const std::vector<double>& zg = zsec[g];
          for (int bb = 0; bb < qg; ++bb)
            for (int a = 0; a < q; ++a) RR[a + bb * q] += w * z[a] * zg[bb];
        }
      }
    }
    if (!std::isfinite(dev_chunk)) return kInf;
    dev.add(dev_chunk);
    yy.add(yy_chunk);
    if (d_.check_interrupt && (start / chunk) % 128 == 127) d_.check_interrupt();
  }
  xp_.XX(0, 0) = yy.value() + 1.0;
  dev_noise_ = noise.value();
  for (Index j = 0; j < xp_.k1; ++j) complete_lower(xp_.D1.data() + j * q1 * q1, q1);
  for (int f = 0; f < nf_; ++f) {
    const int q = d_.blocks[f + 1].q;
    for (Index l = 0; l < d_.blocks[f + 1].n_levels; ++l) complete_lower(xp_.rr_diag.data() + diag_off_[f] + l * q * q, q);
  }
  return dev.value();
}

PirlsResult Pirls::factor_here(const Eigen::VectorXd& theta) {
  set_theta(theta);
  PirlsResult res;
  res.dev = pass(b(), beta_, false);
  res.passes = 1;
  res.ussq = ussq(u_);
  if (!std::isfinite(res.dev)) {
    res.message = "the linear predictor is outside the domain of the link function";
    return res;
  }
  if (!sys_->factor(theta)) {
    res.message = "the penalised least-squares system is not positive definite";
    return res;
  }
  res.ldL2 = sys_->log_det_L();
  res.ldRX2 = joint_ ? sys_->log_det_RX() : 0.0;
  res.ok = true;
  return res;
}

// The modes where the last factorisation was made, with its determinants.
PirlsResult Pirls::at_modes(PirlsResult res, double dev) const {
  res.ok = true;
  res.dev = dev;
  res.ussq = ussq(u_);
  res.ldL2 = sys_->log_det_L();
  res.ldRX2 = joint_ ? sys_->log_det_RX() : 0.0;
  return res;
}

// How far a change of beta moves the linear predictor, per unit of each
// column (joint mode), so that steps in beta are judged on the scale of
// the predictor they multiply.
Eigen::VectorXd Pirls::column_scales() const {
  Eigen::VectorXd col_scale(d_.p);
  for (int c = 0; c < d_.p; ++c) {
    const double* x = d_.X + static_cast<Index>(c) * d_.n;
    const double mu = xp_.center.size() > 0 ? xp_.center[c] : 0.0;
    double m = 0.0;
    for (Index i = 0; i < d_.n; i += std::max<Index>(1, d_.n / 4096)) m = std::max(m, std::fabs(x[i] - mu));
    col_scale[c] = std::max(m, 1e-8);
  }
  return col_scale;
}

// The Newton (Gauss-Newton) candidate from the current factorisation, and
// the largest change of a mode it makes (of the linear predictor per unit
// of a column, for beta).
double Pirls::newton_candidate(std::vector<Eigen::MatrixXd>& cand_u, Eigen::VectorXd& cand_beta,
                               const Eigen::VectorXd& col_scale) const {
  Solution sol = sys_->solve();
  double step = 0.0;
  for (std::size_t f = 0; f < u_.size(); ++f) {
    cand_u[f] = std::move(sol.u[f]);
    step = std::max(step, (cand_u[f] - u_[f]).cwiseAbs().maxCoeff());
  }
  if (joint_) {
    // The solution is the increment of beta (see pass_joint), centred.
    Eigen::VectorXd delta = sol.beta;
    if (xp_.center.size() > 0) {
      const int ic = xp_.intercept_col;
      double shift = 0.0;
      for (int c = 0; c < d_.p; ++c)
        if (c != ic) shift -= xp_.center[c] * delta[c];
      delta[ic] += shift;
    }
    cand_beta = xp_beta_ + delta;
    step = std::max(step, ((cand_beta - beta_).cwiseAbs().array() * col_scale.array()).sum());
  }
  return step;
}

// The penalised deviance may rise by rounding alone: by a relative 1e-11,
// or by the rounding noise of the sum of deviance residuals where that is
// larger (large counts, whose residuals are small differences of large terms).
double Pirls::pdev_slack(double pdev) const { return std::max(1e-11 * (1.0 + std::fabs(pdev)), dev_noise_); }

// PIRLS from the current modes; where that fails (modes left far away by
// an evaluation at a distant theta), again from the starting linear
// predictors (joint mode) or from u = 0 (u alone). A failed run leaves the
// modes of the last successful one, so that one bad evaluation does not
// spoil the next.
PirlsResult Pirls::run(const Eigen::VectorXd& theta, const PirlsControl& ctl) {
  PirlsResult res = iterate(theta, ctl);
  if (!res.ok && has_modes_) {
    if (joint_ && start_eta_.size() == d_.n) {
      has_modes_ = false;
    } else {
      for (auto& m : u_) m.setZero();
    }
    PirlsResult again = iterate(theta, ctl);
    again.passes += res.passes;
    res = again;
  }
  if (res.ok) {
    good_u_ = u_;
    if (joint_) good_beta_ = beta_;
  } else if (!good_u_.empty()) {
    u_ = good_u_;
    if (joint_) beta_ = good_beta_;
    has_modes_ = true;
  }
  return res;
}

PirlsResult Pirls::iterate(const Eigen::VectorXd& theta, const PirlsControl& ctl) {
  set_theta(theta);
  PirlsResult res;
  const bool from_start = !has_modes_ && start_eta_.size() == d_.n;
  double dev_cur = pass(b(), beta_, from_start);
  res.passes = 1;
  double pdev_cur = from_start ? kInf : dev_cur + ussq(u_);
  if (!from_start && !std::isfinite(pdev_cur)) {
    res.message = "the penalised deviance is not finite at the starting values";
    return res;
  }
  bool have_modes = !from_start;
  const std::size_t nfac = tpl_.size();
  std::vector<Eigen::MatrixXd> cand_u(nfac), cand_b(nfac);
  Eigen::VectorXd cand_beta = beta_;
  const Eigen::VectorXd col_scale = joint_ ? column_scales() : Eigen::VectorXd();
  const char* not_pd = "the penalised least-squares system is not positive definite";

  for (res.iterations = 0; res.iterations < ctl.max_iter; ++res.iterations) {
    if (!sys_->factor(theta)) {
      res.message = not_pd;
      return res;
    }
    const double step = newton_candidate(cand_u, cand_beta, col_scale);
    if (have_modes && step <= ctl.tol) return at_modes(res, dev_cur);

    // Step halving until the penalised deviance does not rise.
    bool accepted = false;
    double dev_new = kInf, pdev_new = kInf;
    for (int h = 0; h <= ctl.max_halvings; ++h) {
      for (std::size_t f = 0; f < nfac; ++f) cand_b[f] = T_[f] * cand_u[f];
      dev_new = pass(cand_b, cand_beta, false);
      ++res.passes;
      pdev_new = dev_new + ussq(cand_u);
      if (std::isfinite(pdev_new) && (!have_modes || pdev_new <= pdev_cur + pdev_slack(pdev_cur))) {
        accepted = true;
        break;
      }
      if (!have_modes) break;  // no previous modes to fall back on
      for (std::size_t f = 0; f < nfac; ++f) cand_u[f] = 0.5 * (cand_u[f] + u_[f]);
      if (joint_) cand_beta = 0.5 * (cand_beta + beta_);
    }
    if (!accepted && !have_modes && joint_ && d_.intercept_col >= 0) {
      // The first step from the starting means left the domain of the
      // link: restart from the intercept-only model (beta = link of the
      // mean, u = 0) and let step halving keep the iterates inside.
      beta_.setZero();
      beta_[d_.intercept_col] = fam_.eta_mean;
      for (std::size_t f = 0; f < nfac; ++f) u_[f].setZero();
      dev_cur = pass(b(), beta_, false);
      ++res.passes;
      pdev_cur = dev_cur;
      if (std::isfinite(pdev_cur)) {
        have_modes = true;
        has_modes_ = true;
        continue;
      }
    }
    if (!accepted) {
      if (have_modes && step <= 1e-6) {
        // A small step that no halving makes pay: its effect is lost in
        // the rounding of the deviance, and the modes are as accurate as
        // the arithmetic allows.
        if (!sys_->factor(theta)) {
          res.message = not_pd;
          return res;
        }
        return at_modes(res, dev_cur);
      }
      res.message = have_modes ? "step halving failed to reduce the penalised deviance"
                               : "the first step from the starting values leaves the domain of the link function";
      return res;
    }
    // A small step that changed the penalised deviance by no more than its
    // rounding noise: the modes are at the resolution of the arithmetic.
    // Far into the iterations with the penalised deviance no longer
    // changing: estimates drifting off to infinity (separation). Stop
    // there, as lme4 does.
    const double change = std::fabs(pdev_cur - pdev_new);
    const bool at_noise = have_modes && step <= 1e-6 && change <= pdev_slack(pdev_new);
    const bool stalled = res.iterations >= 30 && change <= 10.0 * pdev_slack(pdev_new);
    u_ = cand_u;
    if (joint_) beta_ = cand_beta;
    have_modes = true;
    has_modes_ = true;
    dev_cur = dev_new;
    pdev_cur = pdev_new;
    if (at_noise || stalled) {
      if (!sys_->factor(theta)) {
        res.message = not_pd;
        return res;
      }
      return at_modes(res, dev_cur);
    }
  }
  res.message = "PIRLS did not converge in " + std::to_string(ctl.max_iter) + " iterations";
  return res;
}

double Pirls::agq_deviance(const Eigen::VectorXd& z, const Eigen::VectorXd& w, double ldL2) {
  const FactorBlock& F = d_.blocks[0];
  const Index k = F.n_levels;
  const int K = static_cast<int>(z.size());
  const double t = T_[0](0, 0);
  Eigen::VectorXd sd(k), dev0 = Eigen::VectorXd::Zero(k);
  for (Index j = 0; j < k; ++j) sd[j] = 1.0 / std::sqrt(1.0 + t * t * xp_.D1(0, j));
  Eigen::MatrixXd devk = Eigen::MatrixXd::Zero(K, k);
  const Eigen::MatrixXd& u = u_[0];
  for (Index i = 0; i < d_.n; ++i) {
    const Index j = F.codes[i] - F.code_base;
    const double zc = F.cols[0] ? F.cols[0][i] : 1.0;
    const double eta0 = eta_fixed_[i] + zc * t * u(0, j);
    const double y = d_.y[i];
    const double pw = d_.weights ? d_.weights[i] : 1.0;
    const MeanAt m0 = fam_.mean(eta0);
    if (!m0.valid) return kInf;
    dev0[j] += fam_.dev_resid(y, m0, pw);
    for (int q = 0; q < K; ++q) {
      if (z[q] == 0.0) continue;
      const MeanAt m = fam_.mean(eta0 + zc * t * z[q] * sd[j]);
      if (!m.valid) return kInf;
      devk(q, j) += fam_.dev_resid(y, m, pw);
    }
  }
  double total = ldL2;
  for (Index j = 0; j < k; ++j) {
    const double devc0 = u(0, j) * u(0, j) + dev0[j];
    double mult = 0.0;
    for (int q = 0; q < K; ++q) {
      if (z[q] == 0.0) {
        mult += w[q];
      } else {
        const double uq = u(0, j) + z[q] * sd[j];
        mult += w[q] * std::exp(-0.5 * (uq * uq + devk(q, j) - devc0) + 0.5 * z[q] * z[q]);
      }
    }
    total += devc0 - 2.0 * std::log(mult);
  }
  return total;
}

Eigen::MatrixXd Pirls::unscaled_vcov() const {
  Eigen::MatrixXd V = sys_->unscaled_vcov();
  if (xp_.center.size() > 0) {
    const int p = d_.p, ic = xp_.intercept_col;
    Eigen::MatrixXd M = Eigen::MatrixXd::Identity(p, p);
    for (int c = 0; c < p; ++c)
      if (c != ic) M(ic, c) = -xp_.center[c];
    V = M * V * M.transpose();
  }
  return V;
}

Eigen::VectorXd Pirls::linear_predictor() const {
  const Index n = d_.n;
  Eigen::VectorXd eta(n);
  for (Index i = 0; i < n; ++i) eta[i] = d_.offset ? d_.offset[i] : 0.0;
  for (int c = 0; c < d_.p; ++c) {
    const double* x = d_.X + static_cast<Index>(c) * n;
    const double bc = beta_[c];
    for (Index i = 0; i < n; ++i) eta[i] += x[i] * bc;
  }
  const std::vector<Eigen::MatrixXd> bf = b();
  for (std::size_t f = 0; f < d_.blocks.size(); ++f) {
    const FactorBlock& F = d_.blocks[f];
    for (int a = 0; a < F.q; ++a) {
      const double* col = F.cols[a];
      for (Index i = 0; i < n; ++i) {
        const double v = bf[f](a, F.codes[i] - F.code_base);
        eta[i] += col ? col[i] * v : v;
      }
    }
  }
  return eta;
}

}  // namespace mlm
