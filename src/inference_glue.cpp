// Entry points for inference on fitted linear mixed models that need the
// rows: the Kenward-Roger terms, leverages, and the relative covariance
// factors T at theta (the one conversion of theta into T, for R too).
#include <RcppEigen.h>

#include <stdexcept>
#include <string>

#include "engine/kenward_roger.h"
#include "engine/leverage.h"
#include "glue_convert.h"

using Rcpp::List;
using Rcpp::Named;
using Rcpp::NumericVector;

// T of each block at theta (q x q, lower triangular).
// [[Rcpp::export(rng = false)]]
List relative_factors_cpp(const List& spec, const NumericVector& theta) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec, mlm_glue::Rows::none);
  const std::vector<Eigen::MatrixXd> T = mlm_glue::relative_factors(m, Rcpp::as<Eigen::VectorXd>(theta));
  List out(T.size());
  for (std::size_t f = 0; f < T.size(); ++f) out[f] = Rcpp::wrap(T[f]);
  return out;
}

// P, Q and the trace matrix K of the Kenward-Roger adjustment. params: an
// integer matrix with rows block (1-based), a, b (1-based columns of the block).
// [[Rcpp::export(rng = false)]]
List kenward_roger_terms_cpp(const List& spec, const NumericVector& theta, double sigma2,
                             const Rcpp::IntegerMatrix& params, double max_component) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  const std::vector<Eigen::MatrixXd> T = mlm_glue::relative_factors(m, Rcpp::as<Eigen::VectorXd>(theta));
  std::vector<mlm::CovParameter> pars;
  for (int k = 0; k < params.ncol(); ++k) {
    mlm::CovParameter cp;
    cp.block = params(0, k) - 1;
    cp.a = params(1, k) - 1;
    cp.b = params(2, k) - 1;
    if (cp.block < 0 || cp.block >= static_cast<int>(T.size()) || cp.a < 0 || cp.b < 0 ||
        cp.a >= T[cp.block].rows() || cp.b >= T[cp.block].rows())
      Rcpp::stop("internal: a covariance parameter refers outside its block");
    pars.push_back(cp);
  }
  mlm::KenwardRogerTerms kr;
  try {
    kr = mlm::kenward_roger_terms(m.data, T, sigma2, pars, static_cast<Eigen::Index>(max_component));
  } catch (const std::length_error& e) {
    return List::create(Named("error") = std::string(e.what()));
  }
  const int ng = static_cast<int>(kr.P.size());
  List P(ng), Q(static_cast<R_xlen_t>(ng) * ng);
  for (int r = 0; r < ng; ++r) P[r] = Rcpp::wrap(kr.P[r]);
  for (int k = 0; k < ng * ng; ++k) Q[k] = Rcpp::wrap(kr.Q[k]);
  return List::create(Named("P") = P, Named("Q") = Q, Named("K") = Rcpp::wrap(kr.K),
                      Named("largest_component") = static_cast<double>(kr.largest_component));
}

// Diagonal of the hat matrix of the conditional fitted values at theta.
// [[Rcpp::export(rng = false)]]
NumericVector leverages_cpp(const List& spec, const NumericVector& theta) {
  const mlm_glue::SpecModel m = mlm_glue::model_from_spec(spec);
  return Rcpp::wrap(mlm::leverages(m.data, mlm_glue::relative_factors(m, Rcpp::as<Eigen::VectorXd>(theta))));
}
