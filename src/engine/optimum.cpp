#include "optimum.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlm {

double criterion_noise(double f) {
  return std::isfinite(f) ? OptimumThresholds::relative_noise * (1.0 + std::fabs(f)) : 0.0;
}

OptimumCheck check_optimum(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, const Eigen::VectorXd& x,
                           const ParameterSpace& space, double noise, std::vector<std::string>* warnings) {
  using T = OptimumThresholds;
  if (H.size() == 0 || H.rows() != x.size() || g.size() != x.size() || !H.allFinite() || !g.allFinite())
    return OptimumCheck::not_checked;
  const std::vector<Eigen::Index> fr = free_set(x, g, space.lower);
  if (fr.empty()) return OptimumCheck::minimum;
  Eigen::MatrixXd Hf;
  Eigen::VectorXd gf;
  restrict_to(H, g, fr, Hf, gf);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Hf);
  const double scale = std::max(eig.eigenvalues().cwiseAbs().maxCoeff(), 1.0);
  if (eig.eigenvalues().minCoeff() < -T::negative_curvature * scale) {
    if (warnings)
      warnings->push_back("the Hessian of the deviance is not positive definite at the optimum: "
                          "the fit may be at a saddle point");
    return OptimumCheck::saddle;
  }
  if (!(eig.eigenvalues().minCoeff() > T::positive_curvature * scale)) return OptimumCheck::minimum;
  const Eigen::VectorXd step = Hf.ldlt().solve(gf);
  double largest = 0.0;
  for (std::size_t a = 0; a < fr.size(); ++a)
    largest = std::max(largest, std::fabs(step[static_cast<Eigen::Index>(a)]) * space.unit_of(fr[a]));
  if (largest > T::step_left && 0.5 * gf.dot(step) > noise) {
    if (warnings)
      warnings->push_back("the optimiser stopped with a Newton step of size " + std::to_string(largest) +
                          " left: the fit may not have converged");
    return OptimumCheck::step_left;
  }
  return OptimumCheck::minimum;
}

namespace {

// One minimisation with its state: the best point so far and every
// evaluation counted. The optimiser sees the criterion minus its value at
// the start, so that a constant in the criterion (the units of y add one
// to a deviance) leaves the relative tolerance unchanged.
class OptimumSearch {
 public:
  OptimumSearch(const Criterion& criterion, const ParameterSpace& space, const OptimumControl& control)
      : crit_(criterion), space_(space), ctl_(control), n_(space.size()) {
    value_ = [this](const Eigen::VectorXd& x) {
      ++evals_;
      return crit_.value(x) - shift_;
    };
    if (crit_.value_and_gradient)
      value_and_gradient_ = [this](const Eigen::VectorXd& x, Eigen::VectorXd& g) {
        ++evals_;
        return crit_.value_and_gradient(x, g) - shift_;
      };
  }

  // The first descent, from start; false when the criterion is not finite there.
  bool start_from(const Eigen::VectorXd& start) {
    const double f0 = crit_.value(start.cwiseMax(space_.lower));
    ++evals_;
    shift_ = std::isfinite(f0) ? f0 : 0.0;
    noise_ = criterion_noise(f0);
    optim_ = ctl_.optim;
    optim_.f_noise = std::max(optim_.f_noise, noise_);
    if (ctl_.start_at_minimum && std::isfinite(f0)) {
      descent_.x = start.cwiseMax(space_.lower);
      descent_.f = 0.0;
      descent_.converged = true;
    } else {
      descent_ = descend(start);
    }
    x_ = descent_.x;
    f_ = descent_.f;
    return std::isfinite(f_);
  }

  void settle_boundary();
  void probe_for_better_basins();
  template <class Consider>
  void probe_correlated_row(Eigen::Index i, Consider& consider) const;
  template <class Consider>
  void probe_correlated_below(Eigen::Index i, int sign, Consider& consider) const;
  void retry_singular_from_ray();
  bool can_polish() const {
    return ctl_.polish && n_ > 0 && n_ <= ctl_.max_hessian_params && std::isfinite(f_);
  }
  void polish();
  OptimumCheck check(std::vector<std::string>* warnings) const {
    return check_optimum(hessian_, gradient_, x_, space_, noise_, warnings);
  }
  bool recover(OptimumCheck failed);
  // The check that is reported (exhausted: the last recovery found no
  // lower point).
  OptimumCheck final_check(bool exhausted, std::vector<std::string>* warnings);
  OptimumResult result();

 private:
  OptimResult descend(const Eigen::VectorXd& start) {
    OptimResult r = minimize_bounded(value_, start, space_.lower, optim_, value_and_gradient_);
    r.evals = 0;  // counted by value_
    return r;
  }
  bool improves(double f, double reference) const {
    return f < reference - std::max(OptimumThresholds::improvement * (1.0 + std::fabs(reference)), noise_);
  }
  // Take the end of a descent when it is better than the current point.
  bool accept_if_better(const OptimResult& r) {
    if (!improves(r.f, f_)) return false;
    const int iterations = descent_.iterations;
    descent_ = r;
    descent_.iterations += iterations;
    x_ = r.x;
    f_ = r.f;
    gradient_.resize(0);
    hessian_.resize(0, 0);
    settle_boundary();
    return true;
  }
  bool bounded_diagonal(Eigen::Index i) const {
    return space_.role[i] == ParameterRole::diagonal && std::isfinite(space_.lower[i]);
  }
  // A point on the diagonal ray: diagonal entries d natural units above
  // their bounds, off-diagonal entries zero, other parameters as at x.
  Eigen::VectorXd ray_point(double d) const {
    Eigen::VectorXd t = x_;
    for (Eigen::Index i = 0; i < n_; ++i) {
      if (space_.role[i] == ParameterRole::diagonal)
        t[i] = (std::isfinite(space_.lower[i]) ? space_.lower[i] : 0.0) + d / space_.unit_of(i);
      else if (space_.role[i] == ParameterRole::off_diagonal)
        t[i] = 0.0;
    }
    return t.cwiseMax(space_.lower);
  }
  // The eigenvector of the smallest eigenvalue of the Hessian on the free
  // parameters (embedded in all parameters), the eigenvalue and the
  // largest absolute eigenvalue; false without a Hessian.
  bool least_curvature(Eigen::VectorXd& v, double& lambda, double& largest) const;
  bool flat_along(const Eigen::VectorXd& v);

  const Criterion& crit_;
  const ParameterSpace& space_;
  const OptimumControl& ctl_;
  const Eigen::Index n_;
  Objective value_;
  ObjectiveWithGradient value_and_gradient_;
  OptimControl optim_;
  double shift_ = 0.0, noise_ = 0.0;
  int evals_ = 0;
  Eigen::VectorXd x_;
  double f_ = 0.0;  // shifted criterion at x_
  OptimResult descent_;
  Eigen::VectorXd gradient_;
  Eigen::MatrixXd hessian_;
};

// A diagonal entry that the optimiser left just above its bound goes to
// the bound when that does not raise the criterion beyond its noise; so
// does an entry below a diagonal entry at its bound that was left near
// zero (it alone would carry a variance of its square).
void OptimumSearch::settle_boundary() {
  auto try_value = [this](Eigen::Index i, double v) {
    Eigen::VectorXd t = x_;
    t[i] = v;
    const double ft = value_(t);
    if (ft <= f_ + std::max(OptimumThresholds::boundary_rise, noise_)) {
      x_ = t;
      f_ = std::min(f_, ft);
      gradient_.resize(0);
      hessian_.resize(0, 0);
    }
  };
  for (Eigen::Index i = 0; i < n_; ++i) {
    if (!bounded_diagonal(i)) continue;
    const double above = (x_[i] - space_.lower[i]) * space_.unit_of(i);
    if (above > 0.0 && above < ctl_.boundary_tol) try_value(i, space_.lower[i]);
    if (x_[i] != space_.lower[i]) continue;
    for (Eigen::Index k : space_.below[i]) {
      const double size = std::fabs(x_[k]) * space_.unit_of(k);
      if (size > 0.0 && size < ctl_.boundary_tol) try_value(k, 0.0);
    }
  }
}

// The criterion need not be convex, and a quasi-Newton method stops at the
// first stationary point. Where a better point may hide, each probed with a
// few evaluations; from the best one found the optimiser starts again:
// * from a zero diagonal entry of a relative covariance factor: zero is a
//   stationary point whatever the data (the criterion is even in that
//   column), and with the entry at zero the sign of the rest of its column
//   is arbitrary, so both signs are probed;
// * far out (1000 natural units), where a deviance falls when the model can
//   reproduce the data (no minimum; the caller's ray test reports it).
// Where evaluations are cheap (small data, whose criteria are the ones
// with several basins), more thoroughly:
// * on the boundary, with a column set to zero (a singular fit better than
//   an interior local minimum);
// * on the diagonal ray, 0.1, 1 (lme4's start), 10 and 100 natural units.
void OptimumSearch::probe_for_better_basins() {
  for (int round = 0; round < 3 && std::isfinite(f_); ++round) {
    Eigen::VectorXd best = x_;
    double fbest = f_;
    auto consider = [&](const Eigen::VectorXd& t) {
      const double ft = value_(t);
      if (improves(ft, fbest)) {
        best = t;
        fbest = ft;
      }
    };
    const bool correlations = ctl_.thorough && ctl_.correlation_probes && space_.left.size() == space_.below.size();
    Eigen::VectorXd far = x_;
    for (Eigen::Index i = 0; i < n_; ++i) {
      if (space_.role[i] != ParameterRole::diagonal) continue;
      const double base = std::isfinite(space_.lower[i]) ? space_.lower[i] : 0.0;
      far[i] = std::max(x_[i], base + std::min(1e3, ctl_.probe_reach) / space_.unit_of(i));
      if (!bounded_diagonal(i)) continue;
      if (x_[i] == space_.lower[i]) {
        for (int sign : {1, -1}) {
          Eigen::VectorXd flipped = x_;
          if (sign < 0) {
            if (space_.below[i].empty()) continue;
            for (Eigen::Index k : space_.below[i]) flipped[k] = -flipped[k];
          }
          for (double h : {1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
            if (h > ctl_.probe_reach) break;
            Eigen::VectorXd t = flipped;
            t[i] = space_.lower[i] + h / space_.unit_of(i);
            consider(t);
          }
          if (correlations) probe_correlated_below(i, sign, consider);
        }
      } else if (ctl_.thorough) {
        Eigen::VectorXd t = x_;
        t[i] = space_.lower[i];
        for (Eigen::Index k : space_.below[i]) t[k] = 0.0;
        consider(t);
        if (correlations) probe_correlated_row(i, consider);
      }
    }
    if (round == 0) {
      if (ctl_.far_probe) consider(far);
      if (ctl_.thorough)
        for (double d : {0.1, 1.0, 10.0, 100.0})
          if (d <= ctl_.probe_reach) consider(ray_point(d));
    }
    if (!(fbest < f_)) break;
    if (!accept_if_better(descend(best))) break;
  }
}

// Perfect correlations, probed where a quasi-Newton descent does not go
// (they are corners of the boundary): the random effect of diagonal entry
// i perfectly correlated with an earlier one of its term, its standard
// deviation (the norm of its row) moved to one entry left of it, either
// sign, the diagonal entry at its bound.
template <class Consider>
void OptimumSearch::probe_correlated_row(Eigen::Index i, Consider& consider) const {
  const std::vector<Eigen::Index>& left = space_.left[i];
  double sd2 = 0.0;
  for (Eigen::Index k : left) sd2 += x_[k] * x_[k];
  // the row in natural units of its diagonal entry
  const double d = (x_[i] - space_.lower[i]) * space_.unit_of(i);
  for (Eigen::Index j : left)
    for (int sign : {1, -1}) {
      Eigen::VectorXd t = x_;
      t[i] = space_.lower[i];
      for (Eigen::Index k : left) t[k] = 0.0;
      t[j] = sign * std::sqrt(sd2 + (d / space_.unit_of(j)) * (d / space_.unit_of(j)));
      consider(t);
    }
}

// From a zero diagonal entry i (its column flipped by sign): the random
// effects of the rows below it perfectly correlated with its own, each
// row's diagonal entry moved into column i, at a few small steps inside.
template <class Consider>
void OptimumSearch::probe_correlated_below(Eigen::Index i, int sign, Consider& consider) const {
  Eigen::VectorXd t = x_;
  bool moved = false;
  for (Eigen::Index k : space_.below[i]) {
    // the diagonal entry of k's row: the one with k left of it
    for (Eigen::Index r = 0; r < n_; ++r) {
      if (space_.role[r] != ParameterRole::diagonal || x_[r] == space_.lower[r]) continue;
      const std::vector<Eigen::Index>& left = space_.left[r];
      if (std::find(left.begin(), left.end(), k) == left.end()) continue;
      const double d = (x_[r] - space_.lower[r]) * space_.unit_of(r) / space_.unit_of(k);
      t[k] = sign * std::sqrt(x_[k] * x_[k] + d * d);
      t[r] = space_.lower[r];
      moved = true;
    }
  }
  if (!moved) return;
  for (double h : {1e-3, 1e-2, 1e-1, 1.0}) {
    if (h > ctl_.probe_reach) break;
    t[i] = space_.lower[i] + h / space_.unit_of(i);
    consider(t);
  }
}

// A singular fit is where separate basins meet the boundary: where
// evaluations are cheap, descend once more from the diagonal ray at 1, 10
// and 100 natural units and keep the best optimum. The probes above judge
// a ray point by its value alone, and a basin need not be lower than the
// current optimum at its entrance: with more random effects than rows, the
// deviance of a crossed design fell without bound (the residual variance
// to zero) only along a direction reached by the descent from 100 natural
// units, while the points on the ray, and the descents from 1 and 10,
// stayed above a local optimum (design fuzz seed 20261283).
void OptimumSearch::retry_singular_from_ray() {
  if (!ctl_.thorough || !std::isfinite(f_)) return;
  bool singular = false;
  for (Eigen::Index i = 0; i < n_; ++i) singular = singular || (bounded_diagonal(i) && x_[i] == space_.lower[i]);
  if (!singular) return;
  for (double d : {1.0, 10.0, 100.0})
    if (d <= ctl_.probe_reach) accept_if_better(descend(ray_point(d)));
}

// Newton steps with a Hessian from differences (of the analytic gradient
// when it is exact, else of the values) on the free parameters: they
// confirm the optimum and tighten it where the quasi-Newton model was
// loose. The last gradient and Hessian are kept for the check.
void OptimumSearch::polish() {
  for (int it = 0; it < 5; ++it) {
    Eigen::VectorXd g;
    Eigen::MatrixXd H;
    int fd_evals = 0;
    if (crit_.derivatives) {
      double f = 0.0;
      if (!crit_.derivatives(x_, f, g, H)) break;  // its evaluations are counted by the caller
      f_ = f - shift_;
      if (!std::isfinite(f_) || g.size() != n_) break;
    } else {
      if (value_and_gradient_)
        f_ = value_and_gradient_(x_, g);
      else
        g = fd_gradient(value_, x_, f_, space_.lower, optim_.step_rel, &fd_evals);
      if (!std::isfinite(f_) || g.size() != n_) break;
      if (value_and_gradient_ && crit_.exact_gradient)
        H = fd_hessian_from_gradient(value_and_gradient_, x_, g, space_.lower, 1e-5, &fd_evals);
      else
        H = fd_hessian(value_, x_, space_.lower, 1e-4, &fd_evals);
    }
    if (H.size() == 0 || !H.allFinite()) break;
    gradient_ = g;
    hessian_ = H;
    const std::vector<Eigen::Index> fr = free_set(x_, g, space_.lower);
    if (fr.empty()) break;
    Eigen::MatrixXd Hf;
    Eigen::VectorXd gf;
    restrict_to(H, g, fr, Hf, gf);
    Eigen::LLT<Eigen::MatrixXd> llt(Hf);
    if (llt.info() != Eigen::Success) break;
    const Eigen::VectorXd step = -llt.solve(gf);
    const double predicted = -0.5 * gf.dot(step);
    if (predicted < std::max(OptimumThresholds::polish_decrease * (1.0 + std::fabs(f_)), noise_)) break;
    Eigen::VectorXd t = x_;
    for (std::size_t a = 0; a < fr.size(); ++a) t[fr[a]] += step[static_cast<Eigen::Index>(a)];
    t = t.cwiseMax(space_.lower);
    const double ft = value_(t);
    if (!(ft < f_)) break;
    x_ = t;
    f_ = ft;
  }
}

bool OptimumSearch::least_curvature(Eigen::VectorXd& v, double& lambda, double& largest) const {
  if (hessian_.rows() != n_ || gradient_.size() != n_) return false;
  const std::vector<Eigen::Index> fr = free_set(x_, gradient_, space_.lower);
  if (fr.empty()) return false;
  Eigen::MatrixXd Hf;
  Eigen::VectorXd gf;
  restrict_to(hessian_, gradient_, fr, Hf, gf);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Hf);
  if (eig.info() != Eigen::Success) return false;
  v = Eigen::VectorXd::Zero(n_);
  for (std::size_t a = 0; a < fr.size(); ++a) v[fr[a]] = eig.eigenvectors()(static_cast<Eigen::Index>(a), 0);
  lambda = eig.eigenvalues()[0];
  largest = eig.eigenvalues().cwiseAbs().maxCoeff();
  return true;
}

// Does the criterion stay within flat_change over flat_step natural units
// along v, one way or the other (the other may meet a bound)?
bool OptimumSearch::flat_along(const Eigen::VectorXd& v) {
  double size = 0.0;
  for (Eigen::Index i = 0; i < n_; ++i) size = std::max(size, std::fabs(v[i]) * space_.unit_of(i));
  if (!(size > 0.0)) return false;
  const double change = std::max(OptimumThresholds::flat_change, noise_);
  for (double sign : {1.0, -1.0}) {
    const Eigen::VectorXd t = (x_ + sign * OptimumThresholds::flat_step / size * v).cwiseMax(space_.lower);
    if ((t - x_).cwiseAbs().maxCoeff() == 0.0) continue;
    if (std::fabs(value_(t) - f_) <= change) return true;
  }
  return false;
}

// The check that is reported. A point where the check failed but no new
// descent (from the point itself, along the direction of negative
// curvature, from the diagonal ray) could lower the criterion is a minimum
// within the criterion's resolution: the Hessian from differences erred
// along a direction where the criterion is (nearly) flat, as on the ridge
// of a model whose parameters are not all identified (a compound-symmetry
// correlation and a random intercept on the same groups) or of a
// parameter that tends to its limit (a CAR(1) correlation near zero).
OptimumCheck OptimumSearch::final_check(bool exhausted, std::vector<std::string>* warnings) {
  const OptimumCheck c = check(nullptr);
  if (exhausted && (c == OptimumCheck::saddle || c == OptimumCheck::step_left)) {
    Eigen::VectorXd v;
    double lambda = 0.0, largest = 0.0;
    return least_curvature(v, lambda, largest) && flat_along(v) ? OptimumCheck::flat : OptimumCheck::minimum;
  }
  return check(warnings);
}

// After a failed check, new descents: from the lowest point along the
// direction of negative curvature (a saddle point: with AR(1) on times
// two units apart the likelihood depends on phi^2 only and phi = 0, nlme's
// start, is one), from the point itself with a fresh quasi-Newton model
// (a point short of the minimum), and from the diagonal ray (another
// basin). True when one of them lowered the criterion.
bool OptimumSearch::recover(OptimumCheck failed) {
  std::vector<Eigen::VectorXd> starts;
  Eigen::VectorXd v;
  double lambda = 0.0, largest = 0.0;
  if (failed == OptimumCheck::saddle && least_curvature(v, lambda, largest)) {
    Eigen::VectorXd best;
    double fbest = f_;
    // Steps from large to small: the curvature may turn within a short
    // distance (a standard deviation whose optimum is just off zero).
    for (double t = 1.0; t > 3e-4; t *= 0.3)
      for (double sign : {1.0, -1.0}) {
        const Eigen::VectorXd x = (x_ + sign * t * v).cwiseMax(space_.lower);
        const double fx = value_(x);
        if (improves(fx, fbest)) {
          fbest = fx;
          best = x;
        }
      }
    if (best.size()) starts.push_back(best);
  }
  if (failed == OptimumCheck::step_left) starts.push_back(x_);
  for (double d : {1.0, 0.1, 10.0}) starts.push_back(ray_point(d));
  for (const Eigen::VectorXd& s : starts)
    if (accept_if_better(descend(s))) return true;
  return false;
}

OptimumResult OptimumSearch::result() {
  OptimumResult out;
  out.x = x_;
  out.f = f_ + shift_;
  out.gradient = gradient_;
  out.hessian = hessian_;
  out.descent = descent_;
  out.descent.x = x_;
  out.descent.f = out.f;
  out.descent.evals = evals_;
  return out;
}

}  // namespace

OptimumResult reach_optimum(const Criterion& criterion, const Eigen::VectorXd& start, const ParameterSpace& space,
                            const OptimumControl& control) {
  OptimumSearch search(criterion, space, control);
  if (!search.start_from(start)) return search.result();
  search.settle_boundary();
  search.probe_for_better_basins();
  search.retry_singular_from_ray();
  bool exhausted = false;  // no new descent could lower the criterion
  if (search.can_polish()) {
    search.polish();
    OptimumCheck check = search.check(nullptr);
    for (int k = 0; k < control.max_recoveries && (check == OptimumCheck::saddle || check == OptimumCheck::step_left);
         ++k) {
      if (!search.recover(check)) {
        exhausted = true;
        break;
      }
      search.polish();
      check = search.check(nullptr);
    }
  }
  std::vector<std::string> warnings;
  const OptimumCheck final = search.final_check(exhausted, &warnings);
  OptimumResult out = search.result();
  out.check = final;
  out.warnings = warnings;
  // A descent that stopped short is worth a warning only where no check
  // confirmed the point it led to (the polish and check were not run).
  if (final == OptimumCheck::not_checked && !out.descent.converged && !out.descent.message.empty())
    out.warnings.push_back("the optimiser did not converge: " + out.descent.message);
  return out;
}

}  // namespace mlm
