// shatter: how a network was built (builder family, architecture name, sizes) as JSON.
#ifndef SHATTER_IO_MODEL_RECIPE_HPP
#define SHATTER_IO_MODEL_RECIPE_HPP

#include <cstdio>
#include <string>

#include "shatter/core/error.hpp"
#include "shatter/network/architecture.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"

namespace shatter {

namespace detail {
inline std::string recipe_number(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}
inline const char* recipe_bool(bool b) {
  return b ? "true" : "false";
}
inline const char* recipe_base(init::ll_base b) {
  return b == init::ll_base::orthogonal ? "orthogonal" : "he";
}
}  // namespace detail

/// The recipe of a fully connected network built by build(a, s, g), as JSON for
/// save_options::model (stored as "shatter.model"; python/shatter_torch.py reads it):
/// {"family": "mlp", "name": "<architecture>", "in", "width", "depth" (hidden layers), "out",
/// "bias", "bias_std", "batch_norm" (as the name decides), "beta"}.
inline std::string model_recipe(architecture a, const mlp_spec& spec) {
  const mlp_spec s = detail::resolved(spec);
  const bool bn = a == architecture::plain_relu_bn || a == architecture::resnet_bn;
  return detail::cat("{\"family\":\"mlp\",\"name\":\"", to_string(a), "\",\"in\":", s.in,
                     ",\"width\":", s.width, ",\"depth\":", s.hidden_layers, ",\"out\":", s.out,
                     ",\"bias\":", detail::recipe_bool(s.bias),
                     ",\"bias_std\":", detail::recipe_number(s.bias_std),
                     ",\"batch_norm\":", detail::recipe_bool(bn),
                     ",\"beta\":", detail::recipe_number(s.beta), "}");
}

/// The recipe of a CIFAR-style network built by build_cifar(a, s, g), as JSON:
/// {"family": "cifar", "name": "<cifar_arch>", "depth" (weighted layers), "classes", "input": [C, H, W], "width",
/// "batch_norm", "ll" ("orthogonal" or "he"), "delta", "tat_eta"}.
inline std::string model_recipe(cifar_arch a, const cifar_spec& spec) {
  const cifar_spec s = detail::resolved(spec);
  return detail::cat("{\"family\":\"cifar\",\"name\":\"", to_string(a), "\",\"depth\":",
                     s.weighted_layers,
                     ",\"classes\":", s.classes, ",\"input\":[", s.input.channels, ",",
                     s.input.height, ",", s.input.width, "],\"width\":", s.width,
                     ",\"batch_norm\":", detail::recipe_bool(s.batch_norm), ",\"ll\":\"",
                     detail::recipe_base(s.ll), "\",\"delta\":", detail::recipe_bool(s.delta),
                     ",\"tat_eta\":", detail::recipe_number(s.tat_eta), "}");
}

}  // namespace shatter

#endif  // SHATTER_IO_MODEL_RECIPE_HPP
