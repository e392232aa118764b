// shatter: the paper's predicted decay of gradient correlation with depth.
#ifndef SHATTER_PROBE_THEORY_HPP
#define SHATTER_PROBE_THEORY_HPP

#include <algorithm>
#include <cmath>
#include <optional>

#include "shatter/activation/tat.hpp"
#include "shatter/core/error.hpp"
#include "shatter/network/architecture.hpp"

namespace shatter::probe::theory {

// Correlation R between the gradients at two inputs after L layers, under the idealisation that
// a unit is active for half of the inputs and co-active for a quarter of input pairs (which batch
// norm enforces). Guides beside measurements, not exact oracles: the paper states the rates
// 2^-L and ~1/sqrt(L); the constants and the no-BN resnet rate follow from the same per-layer
// argument.

namespace detail {
inline void check_depth(double depth, const char* who) {
  require<config_error>(depth >= 0 && std::isfinite(depth), "theory::", who,
                        ": depth must be finite and >= 0, got ", depth);
}
}  // namespace detail

/// Feedforward ReLU net with He init: R = 2^-L.
inline double feedforward(double depth) {
  detail::check_depth(depth, "feedforward");
  return std::pow(2.0, -depth);
}

/// Resnet x + beta W relu(x) without batch norm: R = ((1 + beta^2 / 2) / (1 + beta^2))^L,
/// (3/4)^L at beta = 1.
inline double resnet(double depth, double beta = 1.0) {
  detail::check_depth(depth, "resnet");
  const double b2 = beta * beta;
  return std::pow((1 + b2 / 2) / (1 + b2), depth);
}

/// Resnet with batch norm in the branch: R ~ 1 / (beta sqrt(L)) (sublinear decay), capped at 1.
inline double resnet_bn(double depth, double beta = 1.0) {
  detail::check_depth(depth, "resnet_bn");
  require<config_error>(beta > 0, "theory::resnet_bn: beta must be > 0, got ", beta);
  if (depth < 1) return 1.0;
  return std::min(1.0, 1.0 / (beta * std::sqrt(depth)));
}

/// CReLU with the looks-linear init: the net is linear at initialisation, R = 1 at any depth.
inline double looks_linear(double depth) {
  detail::check_depth(depth, "looks_linear");
  return 1.0;
}

/// Leaky ReLU with negative slope a (and any output gain): per layer the derivatives at two
/// inputs correlate by E[f'(z_i) f'(z_j)] / E[f'(z)^2] = (1 + a)^2 / (2 (1 + a^2)) under the same
/// idealisation, so R = ((1 + a)^2 / (2 (1 + a^2)))^L: 2^-L at a = 0 (ReLU), 1 at a = 1 (linear,
/// as PReLU with the looks-linear initialisation, whose R is 1 at initialisation).
inline double leaky_relu(double depth, double slope) {
  detail::check_depth(depth, "leaky_relu");
  require<config_error>(std::isfinite(slope) && slope >= 0 && slope <= 1,
                        "theory::leaky_relu: slope must be in [0, 1], got ", slope);
  return std::pow((1 + slope) * (1 + slope) / (2 * (1 + slope * slope)), depth);
}

/// TAT's leaky ReLU chain of L >= 1 layers (an integer): leaky_relu(L, a) with a the slope the
/// builders use, tat_slope_or_relu(L, eta).
inline double tat(double depth, double eta = 0.9) {
  detail::check_depth(depth, "tat");
  require<config_error>(depth >= 1 && depth == std::floor(depth),
                        "theory::tat: depth must be a whole number of layers >= 1, got ", depth);
  return leaky_relu(depth, tat_slope_or_relu(index(depth), eta));
}

/// The prediction for one of the probe's architectures at depth L (hidden layers or residual
/// blocks) and branch scale beta; empty for `plain_crelu` (plain CReLU with He init), for which the
/// paper gives no rate. plain_prelu_ll: 1 (linear at initialisation); plain_tat: tat(L).
inline std::optional<double> predicted(architecture a, double depth, double beta = 1.0) {
  switch (a) {
    case architecture::plain_relu:
    case architecture::plain_relu_bn:
      return feedforward(depth);
    case architecture::resnet:
      return resnet(depth, beta);
    case architecture::resnet_bn:
      return resnet_bn(depth, beta);
    case architecture::plain_crelu_ll:
    case architecture::plain_prelu_ll:
      return looks_linear(depth);
    case architecture::plain_tat:
      return depth >= 1 && depth == std::floor(depth) ? std::optional<double>(tat(depth))
                                                      : std::nullopt;
    case architecture::plain_crelu:
      return std::nullopt;
  }
  return std::nullopt;
}

/// The formula behind predicted(a, ...), for tables: "2^-L", "((1+b^2/2)/(1+b^2))^L", ...
inline const char* formula(architecture a) {
  switch (a) {
    case architecture::plain_relu:
    case architecture::plain_relu_bn:
      return "2^-L";
    case architecture::resnet:
      return "((1+b^2/2)/(1+b^2))^L";
    case architecture::resnet_bn:
      return "1/(b sqrt L)";
    case architecture::plain_crelu_ll:
    case architecture::plain_prelu_ll:
      return "1";
    case architecture::plain_tat:
      return "((1+a)^2/(2(1+a^2)))^L";
    case architecture::plain_crelu:
      return "-";
  }
  return "-";
}

}  // namespace shatter::probe::theory

#endif  // SHATTER_PROBE_THEORY_HPP
