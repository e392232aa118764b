// shatter: the names of the paper's fully connected architectures (enum, names, parsing).
#ifndef SHATTER_NETWORK_ARCHITECTURE_HPP
#define SHATTER_NETWORK_ARCHITECTURE_HPP

#include <cstddef>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"

namespace shatter {

/// The fully connected architectures the paper compares, named as the CIFAR family names its
/// convnets (cifar_arch): plain_* nets have no skip connections, a _bn suffix adds batch norm
/// after every hidden dense layer (resnets: in the branch), _ll is the mirrored looks-linear
/// initialisation. plain_prelu_ll (PReLU with slopes 1 at initialisation, linear there) and
/// plain_tat (TAT's leaky ReLU, Zhang, Botev and Martens 2022) are two skip-free
/// initialisations that followed the paper. The former names (fnn_relu, fnn_relu_bn, crelu,
/// crelu_ll) remain as deprecated enumerators and are still parsed, as are prelu_ll and tat.
enum class architecture {
  plain_relu,      ///< dense-ReLU, He init
  plain_relu_bn,   ///< dense-BN-ReLU, He init
  resnet,          ///< x + beta F(x) blocks, F = ReLU-dense
  resnet_bn,       ///< x + beta F(x) blocks, F = BN-ReLU-dense
  plain_crelu,     ///< dense-CReLU, He init
  plain_crelu_ll,  ///< dense-CReLU, looks-linear init [W0, -W0], W0 orthogonal
  plain_prelu_ll,  ///< dense-PReLU, slopes 1 and looks-linear weights at initialisation
  plain_tat,       ///< dense-leaky ReLU with TAT's slope for the depth, orthogonal weights
  fnn_relu [[deprecated("architecture::fnn_relu is now plain_relu")]] = plain_relu,
  fnn_relu_bn [[deprecated("architecture::fnn_relu_bn is now plain_relu_bn")]] = plain_relu_bn,
  crelu [[deprecated("architecture::crelu is now plain_crelu")]] = plain_crelu,
  crelu_ll [[deprecated("architecture::crelu_ll is now plain_crelu_ll")]] = plain_crelu_ll
};

/// Every architecture name, in enum order (the former names are not listed).
inline const std::vector<std::string>& architecture_names() {
  static const std::vector<std::string> names{
      "plain_relu",  "plain_relu_bn",  "resnet",         "resnet_bn",
      "plain_crelu", "plain_crelu_ll", "plain_prelu_ll", "plain_tat"};
  return names;
}

/// Parses an architecture name, or one of the former names (fnn_relu, fnn_relu_bn, crelu,
/// crelu_ll, prelu_ll, tat); config_error listing the valid names otherwise.
inline architecture parse_architecture(const std::string& name) {
  const auto& names = architecture_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<architecture>(i);
  static const char* const former[] = {"fnn_relu", "fnn_relu_bn", nullptr,    nullptr,
                                       "crelu",    "crelu_ll",    "prelu_ll", "tat"};
  for (std::size_t i = 0; i < names.size(); ++i)
    if (former[i] != nullptr && name == former[i]) return static_cast<architecture>(i);
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
