// shatter: the paper's predicted decay of gradient correlation with depth.
#ifndef SHATTER_PROBE_THEORY_HPP
#define SHATTER_PROBE_THEORY_HPP

#include <algorithm>
#include <cmath>
#include <optional>

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

/// The prediction for one of the probe's architectures at depth L (hidden layers or residual
/// blocks) and branch scale beta; empty for `crelu` (plain CReLU with He init), for which the
/// paper gives no rate.
inline std::optional<double> predicted(architecture a, double depth, double beta = 1.0) {
  switch (a) {
    case architecture::fnn_relu:
    case architecture::fnn_relu_bn:
      return feedforward(depth);
    case architecture::resnet:
      return resnet(depth, beta);
    case architecture::resnet_bn:
      return resnet_bn(depth, beta);
    case architecture::crelu_ll:
      return looks_linear(depth);
    case architecture::crelu:
      return std::nullopt;
  }
  return std::nullopt;
}

/// The formula behind predicted(a, ...), for tables: "2^-L", "((1+b^2/2)/(1+b^2))^L", ...
inline const char* formula(architecture a) {
  switch (a) {
    case architecture::fnn_relu:
    case architecture::fnn_relu_bn:
      return "2^-L";
    case architecture::resnet:
      return "((1+b^2/2)/(1+b^2))^L";
    case architecture::resnet_bn:
      return "1/(b sqrt L)";
    case architecture::crelu_ll:
      return "1";
    case architecture::crelu:
      return "-";
  }
  return "-";
}

}  // namespace shatter::probe::theory

#endif  // SHATTER_PROBE_THEORY_HPP
