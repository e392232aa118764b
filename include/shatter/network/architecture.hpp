// shatter: the names of the paper's fully connected architectures (enum, names, parsing).
#ifndef SHATTER_NETWORK_ARCHITECTURE_HPP
#define SHATTER_NETWORK_ARCHITECTURE_HPP

#include <cstddef>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"

namespace shatter {

/// The architectures the paper compares, by the names the probe and benchmarks use, and two
/// skip-free initialisations that followed it: prelu_ll (PReLU with slopes 1 at initialisation,
/// linear there) and tat (TAT's leaky ReLU, Zhang, Botev and Martens 2022).
enum class architecture {
  fnn_relu,
  fnn_relu_bn,
  resnet,
  resnet_bn,
  crelu,
  crelu_ll,
  prelu_ll,
  tat
};

/// Every architecture name, in a fixed order.
inline const std::vector<std::string>& architecture_names() {
  static const std::vector<std::string> names{"fnn_relu", "fnn_relu_bn", "resnet",   "resnet_bn",
                                              "crelu",    "crelu_ll",    "prelu_ll", "tat"};
  return names;
}

/// Parses an architecture name; config_error listing the valid names otherwise.
inline architecture parse_architecture(const std::string& name) {
  const auto& names = architecture_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<architecture>(i);
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
  throw config_error(detail::cat("unknown architecture '", name, "' (valid: ", all, ")"));
}

/// The name of an architecture.
inline std::string to_string(architecture a) {
  return architecture_names().at(static_cast<std::size_t>(a));
}

}  // namespace shatter

#endif  // SHATTER_NETWORK_ARCHITECTURE_HPP
