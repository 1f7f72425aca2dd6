// The response distributions and link functions of generalised linear
// (mixed) models, one observation at a time. The formulas follow R's
// family objects (stats::binomial() etc.), including their clamping of
// extreme linear predictors, so that deviances agree with glm() and glmer.
#pragma once

#include <cfloat>
#include <cmath>

#include "family_kernels.h"

namespace mlm {

constexpr double kPi = 3.14159265358979323846;
constexpr double kSqrtHalf = 0.70710678118654752440;

enum class Dist { binomial, poisson, gamma, negative_binomial };
enum class Link { logit, probit, cauchit, cloglog, log, identity, inverse, sqrt };

// The mean at a linear predictor, with what PIRLS needs next to it.
struct MeanAt {
  double mu = 0.0;
  double cmu = 0.0;     // 1 - mu, computed without cancellation (binomial links)
  double mu_eta = 0.0;  // d mu / d eta
  bool valid = true;    // eta inside the link's domain
};

struct GlmFamily {
  Dist dist = Dist::binomial;
  Link link = Link::logit;
  double nb_size = 1.0;  // negative binomial: the size (lme4's theta), variance mu + mu^2 / size

  // aic(dev) = -2 log-likelihood (+2 for Gamma), as R's family$aic():
  // dev + aic_const for binomial, Poisson and negative binomial (the
  // constant is the saturated log-likelihood, computed by the caller), a
  // function of dev alone for Gamma (its dispersion is dev / sum(weights)).
  double aic_const = 0.0;
  double sum_weights = 0.0;        // Gamma
  double sum_wt_log_y = 0.0;       // Gamma: sum(weights * log(y))
  double eta_mean = 0.0;           // the link of the mean response: a safe linear predictor to restart from

  MeanAt mean(double eta) const {
    constexpr double eps = DBL_EPSILON;
    MeanAt m;
    // NaN leaves the domain (the clamps below, fmax and fmin, would turn it into a number)
    if (std::isnan(eta)) {
      m.valid = false;
      return m;
    }
    switch (link) {
      case Link::logit: {
        // R: eta beyond +-30 is clamped, and mu_eta is then eps.
        if (eta < -30.0) {
          m.mu = eps / (1.0 + eps);
          m.cmu = 1.0 / (1.0 + eps);
          m.mu_eta = eps;
        } else if (eta > 30.0) {
          m.mu = 1.0 / (1.0 + eps);
          m.cmu = eps / (1.0 + eps);
          m.mu_eta = eps;
        } else {
          const double e = std::exp(-std::fabs(eta));
          const double big = 1.0 / (1.0 + e), small = e / (1.0 + e);
          m.mu = eta >= 0.0 ? big : small;
          m.cmu = eta >= 0.0 ? small : big;
          m.mu_eta = big * small;
        }
        break;
      }
      case Link::probit: {
        constexpr double thresh = 8.125890664701906;  // -qnorm(DBL_EPSILON)
        const double e = std::fmin(std::fmax(eta, -thresh), thresh);
        m.mu = 0.5 * std::erfc(-e * kSqrtHalf);
        m.cmu = 0.5 * std::erfc(e * kSqrtHalf);
        m.mu_eta = std::fmax(std::exp(-0.5 * eta * eta) / std::sqrt(2.0 * kPi), eps);
        break;
      }
      case Link::cauchit: {
        constexpr double thresh = 1.4323944878270580e15;  // -qcauchy(DBL_EPSILON)
        const double e = std::fmin(std::fmax(eta, -thresh), thresh);
        m.mu = 0.5 + std::atan(e) / kPi;
        m.cmu = 0.5 - std::atan(e) / kPi;
        m.mu_eta = std::fmax(1.0 / (kPi * (1.0 + eta * eta)), eps);
        break;
      }
      case Link::cloglog: {
        const double ee = std::exp(eta);
        m.mu = std::fmax(std::fmin(-std::expm1(-ee), 1.0 - eps), eps);
        m.cmu = std::fmax(std::fmin(std::exp(-ee), 1.0 - eps), eps);
        const double e7 = std::exp(std::fmin(eta, 700.0));
        m.mu_eta = std::fmax(e7 * std::exp(-e7), eps);
        break;
      }
      case Link::log:
        m.mu = std::fmax(std::exp(eta), eps);
        m.mu_eta = m.mu;
        break;
      case Link::identity:
        m.mu = eta;
        m.mu_eta = 1.0;
        break;
      case Link::inverse:
        m.mu = 1.0 / eta;
        m.mu_eta = -1.0 / (eta * eta);
        m.valid = eta != 0.0;
        break;
      case Link::sqrt:
        m.mu = eta * eta;
        m.mu_eta = 2.0 * eta;
        m.valid = eta > 0.0;
        break;
    }
    const bool binomial_link = link == Link::logit || link == Link::probit || link == Link::cauchit ||
                               link == Link::cloglog;
    if (!binomial_link) m.cmu = 1.0 - m.mu;
    if (!std::isfinite(m.mu) || !std::isfinite(m.mu_eta)) m.valid = false;
    // The mean must lie where the distribution is defined (R's validmu).
    if (!(m.mu > 0.0) || (dist == Dist::binomial && !(m.cmu > 0.0))) m.valid = false;
    return m;
  }

  double variance(const MeanAt& m) const {
    switch (dist) {
      case Dist::binomial: return m.mu * m.cmu;
      case Dist::poisson: return m.mu;
      case Dist::gamma: return m.mu * m.mu;
      case Dist::negative_binomial: return m.mu + m.mu * m.mu / nb_size;
    }
    return 1.0;
  }

  // The unit deviance of one observation with prior weight wt (R's dev.resids).
  double dev_resid(double y, const MeanAt& m, double wt) const {
    switch (dist) {
      case Dist::binomial: {
        double r = 0.0;
        if (y > 0.0) r += y * std::log(y / m.mu);
        if (y < 1.0) r += (1.0 - y) * std::log((1.0 - y) / m.cmu);
        return 2.0 * wt * r;
      }
      case Dist::poisson: {
        const double r = y > 0.0 ? y * std::log(y / m.mu) - (y - m.mu) : m.mu;
        return 2.0 * wt * r;
      }
      case Dist::gamma:
        return -2.0 * wt * ((y == 0.0 ? 0.0 : std::log(y / m.mu)) - (y - m.mu) / m.mu);
      case Dist::negative_binomial: {
        const double k = nb_size;
        const double r = (y > 0.0 ? y * std::log(y / m.mu) : 0.0) - (y + k) * std::log((y + k) / (m.mu + k));
        return 2.0 * wt * r;
      }
    }
    return 0.0;
  }

  // -2 log-likelihood (+2 for Gamma) from the sum of deviance residuals.
  double aic(double dev) const {
    if (dist != Dist::gamma) return dev + aic_const;
    const double W = sum_weights;
    const double a = W / dev;  // shape = 1 / dispersion
    return 2.0 * W * (std::lgamma(a) - a * std::log(a) + a) + W + 2.0 * sum_wt_log_y + 2.0;
  }

  // Dispersion-free families report no scale (sigma = 1).
  bool has_scale() const { return dist == Dist::gamma; }
};

// What one PIRLS pass needs from one observation: its deviance residual,
// working weight pw * mu_eta^2 / V(mu) and working residual
// (y - mu) / mu_eta. The generic kernel asks the family; the kernels for
// the two commonest models (binomial-logit, Poisson-log) do the same
// arithmetic with one exponential, one logarithm and two divisions.
struct ObsTerms {
  double dev = 0.0, w = 0.0, wres = 0.0;
  bool valid = true;
};

// What a pass sums over a block of observations besides the terms: the
// deviance residuals added one by one in row order from 0 (the deviance's
// one order: some fits lie on the edge between two optima and follow its
// rounding, pirls.cpp), and the squares of the rounding scales
// pw (1 + |y|)(1 + |eta|) of the residuals (pirls.cpp, RoundingNoise) in
// four running sums: observation i of each whole group of four into
// sq[i % 4], the last few into sq[0] (the family kernels compute the same
// a vector at a time, family_kernels_impl.h).
struct ChunkSums {
  double dev = 0.0;
  double sq[4] = {0.0, 0.0, 0.0, 0.0};
};

inline double row_order_sum(const double* dev, long len) {
  double sum = 0.0;
  for (long i = 0; i < len; ++i) sum += dev[i];
  return sum;
}

inline double rounding_scale(double eta, double y, double pw) {
  return pw * (1.0 + std::fabs(y)) * (1.0 + std::fabs(eta));
}

inline void add_rounding_scales(const double* eta, const double* y, const double* pw, long len, double* sq) {
  long i = 0;
  for (; i + 4 <= len; i += 4)
    for (int l = 0; l < 4; ++l) {
      const double sc = rounding_scale(eta[i + l], y[i + l], pw ? pw[i + l] : 1.0);
      sq[l] += sc * sc;
    }
  for (; i < len; ++i) {
    const double sc = rounding_scale(eta[i], y[i], pw ? pw[i] : 1.0);
    sq[0] += sc * sc;
  }
}

// The terms of a block of observations, into arrays, and the block's sums;
// false if any linear predictor leaves the link's domain.
template <class Kernel>
inline bool chunk_terms(const Kernel& k, const double* eta, const double* y, const double* pw, long len, double* dev,
                        double* w, double* wres, ChunkSums& sums) {
  for (long i = 0; i < len; ++i) {
    const ObsTerms t = k(eta[i], y[i], pw ? pw[i] : 1.0);
    if (!t.valid) return false;
    dev[i] = t.dev;
    w[i] = t.w;
    wres[i] = t.wres;
  }
  sums = ChunkSums();
  sums.dev = row_order_sum(dev, len);
  add_rounding_scales(eta, y, pw, len, sums.sq);
  return true;
}

// The terms of the observations whose linear predictor lies outside
// [lo, hi] (or is NaN), one at a time through the kernel's own checks.
template <class Kernel>
inline bool clamped_terms(const Kernel& k, double lo, double hi, const double* eta, const double* y, const double* pw,
                          long len, double* dev, double* w, double* wres) {
  for (long i = 0; i < len; ++i) {
    const double et = eta[i];
    if (et >= lo && et <= hi) continue;
    const ObsTerms t = k(et, y[i], pw ? pw[i] : 1.0);
    if (!t.valid) return false;
    dev[i] = t.dev;
    w[i] = t.w;
    wres[i] = t.wres;
  }
  return true;
}

struct GenericKernel {
  const GlmFamily& fam;
  ObsTerms operator()(double eta, double y, double pw) const {
    ObsTerms t;
    const MeanAt m = fam.mean(eta);
    t.valid = m.valid;
    if (!m.valid) return t;
    t.dev = fam.dev_resid(y, m, pw);
    t.w = pw * m.mu_eta * m.mu_eta / fam.variance(m);
    t.wres = (y - m.mu) / m.mu_eta;
    return t;
  }
};

struct LogitKernel {
  const GlmFamily& fam;
  ObsTerms operator()(double eta, double y, double pw) const {
    if (!(eta >= -30.0 && eta <= 30.0)) return GenericKernel{fam}(eta, y, pw);  // R's clamping
    ObsTerms t;
    const double e = std::exp(-std::fabs(eta));
    const double big = 1.0 / (1.0 + e), small = e * big;
    const double mu = eta >= 0.0 ? big : small;
    const double mu_eta = big * small;
    // -log(mu) and -log(1 - mu) without cancellation
    const double l1pe = std::log1p(e);
    const double nlmu = l1pe + (eta < 0.0 ? -eta : 0.0), nlcmu = l1pe + (eta > 0.0 ? eta : 0.0);
    double r;
    if (y == 1.0) {
      r = nlmu;
    } else if (y == 0.0) {
      r = nlcmu;
    } else {
      r = (y > 0.0 ? y * (std::log(y) + nlmu) : 0.0) + (y < 1.0 ? (1.0 - y) * (std::log(1.0 - y) + nlcmu) : 0.0);
    }
    t.dev = 2.0 * pw * r;
    t.w = pw * mu_eta;
    t.wres = (y - mu) / mu_eta;
    return t;
  }
};

// Binomial-logit over the block in the family kernels (a vector of
// observations at a time, family_kernels.h). The rare cases go apart:
// proportions add y log y + (1 - y) log(1 - y), and linear predictors
// beyond R's clamping at |eta| = 30 take the generic path.
template <>
inline bool chunk_terms<LogitKernel>(const LogitKernel& k, const double* eta, const double* y, const double* pw,
                                     long len, double* dev, double* w, double* wres, ChunkSums& sums) {
  bool proportions = false;
  const long clamped = family_kernels::logit(eta, y, pw, len, dev, w, wres, proportions, sums.dev, sums.sq);
  if (proportions)
    for (long i = 0; i < len; ++i) {
      const double yi = y[i];
      if (yi > 0.0 && yi < 1.0) dev[i] += 2.0 * (pw ? pw[i] : 1.0) * (yi * std::log(yi) + (1.0 - yi) * std::log(1.0 - yi));
    }
  if (clamped > 0 && !clamped_terms(k, -30.0, 30.0, eta, y, pw, len, dev, w, wres)) return false;
  if (proportions || clamped > 0) sums.dev = row_order_sum(dev, len);
  return true;
}

struct PoissonLogKernel {
  const GlmFamily& fam;
  ObsTerms operator()(double eta, double y, double pw) const {
    if (!(eta >= -36.0 && eta <= 700.0)) return GenericKernel{fam}(eta, y, pw);  // R's clamping at eps
    ObsTerms t;
    const double mu = std::exp(eta);
    t.dev = 2.0 * pw * (y > 0.0 ? y * (std::log(y) - eta) - (y - mu) : mu);
    t.w = pw * mu;
    t.wres = (y - mu) / mu;
    return t;
  }
};

// Poisson-log over the block in the family kernels; linear predictors
// beyond R's clamping of mu take the generic path.
template <>
inline bool chunk_terms<PoissonLogKernel>(const PoissonLogKernel& k, const double* eta, const double* y,
                                          const double* pw, long len, double* dev, double* w, double* wres,
                                          ChunkSums& sums) {
  if (family_kernels::poisson_log(eta, y, pw, len, dev, w, wres, sums.dev, sums.sq) > 0) {
    if (!clamped_terms(k, -36.0, 700.0, eta, y, pw, len, dev, w, wres)) return false;
    sums.dev = row_order_sum(dev, len);
  }
  return true;
}

}  // namespace mlm
