// shatter: CIFAR-style convolutional networks (resnet, plain ReLU, plain CReLU, looks-linear,
// PReLU looks-linear, TAT).
#ifndef SHATTER_NETWORK_CIFAR_HPP
#define SHATTER_NETWORK_CIFAR_HPP

#include <cmath>
#include <string>
#include <vector>

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tat.hpp"
#include "shatter/init/delta_orthogonal.hpp"
#include "shatter/init/he.hpp"
#include "shatter/init/looks_linear.hpp"
#include "shatter/init/looks_linear_conv.hpp"
#include "shatter/init/orthogonal.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/subsample_pad.hpp"
#include "shatter/network/branch_sum.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"

namespace shatter {

/// The CIFAR architectures compared in the paper's last experiment, and two skip-free
/// initialisations that followed it.
enum class cifar_arch {
  resnet,          ///< He et al. 2016 CIFAR ResNet: basic blocks, BN, option-A shortcuts, He init
  plain_relu,      ///< the same convolutions without shortcuts: conv-BN-ReLU, He init
  plain_crelu,     ///< conv-BN-CReLU (next conv takes 2C channels), He init
  plain_crelu_ll,  ///< conv-BN-CReLU with the mirrored looks-linear init [W0, -W0], W0 orthogonal
  plain_prelu_ll,  ///< conv-BN-PReLU, one slope per channel starting at 1: linear at init
  plain_tat        ///< conv-BN-leaky ReLU with TAT's slope for C_f(0) = tat_eta, output scaled
};

/// Every CIFAR architecture name, in enum order.
inline const std::vector<std::string>& cifar_arch_names() {
  static const std::vector<std::string> names{"resnet",         "plain_relu",     "plain_crelu",
                                              "plain_crelu_ll", "plain_prelu_ll", "plain_tat"};
  return names;
}

/// Parses a CIFAR architecture name; config_error listing the valid names otherwise.
inline cifar_arch parse_cifar_arch(const std::string& name) {
  const auto& names = cifar_arch_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<cifar_arch>(i);
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
  throw config_error(detail::cat("unknown CIFAR architecture '", name, "' (valid: ", all, ")"));
}

/// The name of a CIFAR architecture.
inline std::string to_string(cifar_arch a) {
  return cifar_arch_names().at(static_cast<std::size_t>(a));
}

// The deprecated `depth` field is read here only; its users get the warning.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/// Sizes and options of a CIFAR-style network. Three stages of `width`, 2 `width`, 4 `width`
/// channels at full, half and quarter resolution; `weighted_layers` = 6 n + 2 (1 + 6 n 3x3
/// convolutions and the linear classifier after global average pooling; a resnet has n
/// two-convolution blocks per stage). mlp_spec counts `hidden_layers` instead.
struct cifar_spec {
  index weighted_layers = 20;    ///< 6 n + 2 with n >= 1 (20, 56, 110, 200 = 6*33 + 2, ...)
  index classes = 10;            ///< outputs of the classifier
  image_shape input{3, 32, 32};  ///< input images (Fashion-MNIST: 1 x 28 x 28)
  index width = 16;              ///< channels of the first stage
  bool batch_norm = true;        ///< BN after every conv (without it convs get a zero bias)
  /// W0 of plain_crelu_ll, and the (unit-gain) kernels of plain_prelu_ll and plain_tat
  init::ll_base ll = init::ll_base::orthogonal;
  /// plain_crelu_ll: mirrored delta-orthogonal kernels instead of full W0; plain_prelu_ll and
  /// plain_tat: delta-orthogonal kernels
  bool delta = false;
  /// plain_tat: the network C-map value C_f(0) its slope is solved for, over the weighted_layers -
  /// 1 activations (unreachable below 14 weighted layers for 0.9: the slope is then 0, see tat_mlp)
  double tat_eta = 0.9;
  /// The former name of weighted_layers: when set (> 0) it is used instead.
  [[deprecated("cifar_spec::depth is now weighted_layers")]] index depth = 0;
};

namespace detail {
/// The spec with its deprecated `depth` folded into weighted_layers.
inline cifar_spec resolved(cifar_spec s) {
  if (s.depth > 0) s.weighted_layers = s.depth;
  s.depth = 0;
  return s;
}
}  // namespace detail

#pragma GCC diagnostic pop

namespace detail {
inline index cifar_blocks(const cifar_spec& s) {
  require<config_error>(
      s.weighted_layers >= 8 && (s.weighted_layers - 2) % 6 == 0,
      "CIFAR network: weighted_layers must be 6 n + 2 with n >= 1 (8, 14, 20, 56, 110, 200, "
      "...), got ",
      s.weighted_layers);
  require<config_error>(s.classes >= 1 && s.width >= 1,
                        "CIFAR network: classes and width must be "
                        ">= 1, got ",
                        s.classes, " and ", s.width);
  s.input.check("CIFAR network");
  return (s.weighted_layers - 2) / 6;
}

/// Whether architecture a uses unit-gain kernels (orthogonal, N(0, 1 / fan_in) or
/// delta-orthogonal, as cifar_spec says) instead of He's.
inline bool unit_gain_kernels(cifar_arch a) {
  return a == cifar_arch::plain_crelu_ll || a == cifar_arch::plain_prelu_ll ||
         a == cifar_arch::plain_tat;
}

/// Initialises the convolution of a plain unit: mirrored looks-linear after a CReLU
/// (plain_crelu_ll), unit gain for the other skip-free initialisations, He otherwise.
template <class T>
void cifar_init_conv(conv2d<T>& c, sequential<T>& net, cifar_arch a, const cifar_spec& s, rng& g) {
  if (a == cifar_arch::plain_crelu_ll && !net.empty()) {
    const std::string where = cat("cifar layer ", net.size(), ":");
    if (s.delta)
      init::looks_linear_delta_orthogonal(c, net[net.size() - 1], g, where);
    else
      init::looks_linear(c, net[net.size() - 1], g, s.ll, where);
  } else if (unit_gain_kernels(a)) {
    if (s.delta)
      init::delta_orthogonal(c, g);
    else if (s.ll == init::ll_base::orthogonal)
      init::orthogonal(c.weight(), g);
    else
      init::he_normal(c.weight(), g, c.fan_in(), 1.0);
  } else {
    init::he_normal(c.weight(), g, c.fan_in());
  }
}

/// Appends conv(3x3) -> [BN] -> activation to a plain network; returns the new image shape.
/// `slope` is plain_tat's leaky-ReLU slope.
template <class T>
image_shape cifar_plain_unit(sequential<T>& net, image_shape in, index out_c, index stride,
                             cifar_arch a, const cifar_spec& s, double slope, rng& g) {
  conv2d<T> c(in, out_c, 3, stride, 1, !s.batch_norm, no_init);
  cifar_init_conv(c, net, a, s, g);
  const image_shape out = c.output_shape();
  net.add(std::move(c));
  if (s.batch_norm) net.add(batch_norm<T>(out.channels, out.spatial()));
  switch (a) {
    case cifar_arch::plain_crelu:
    case cifar_arch::plain_crelu_ll:
      net.add(crelu<T>());
      return {2 * out.channels, out.height, out.width};
    case cifar_arch::plain_prelu_ll:
      net.add(prelu<T>(out.channels, T(1)));
      return out;
    case cifar_arch::plain_tat:
      net.add(tat_leaky_relu<T>(slope));
      return out;
    default:
      net.add(relu<T>());
      return out;
  }
}

/// Global average pooling and the linear classifier; looks-linear mirrors it ([W0, -W0] over
/// the pooled CReLU channels, which pooling keeps in CReLU order).
template <class T>
void cifar_head(sequential<T>& net, image_shape in, cifar_arch a, const cifar_spec& s, rng& g) {
  const bool mirrored = a == cifar_arch::plain_crelu_ll;
  require<shape_error>(!mirrored || dynamic_cast<const crelu<T>*>(&net[net.size() - 1]),
                       "cifar_head: the looks-linear classifier needs a CReLU before pooling");
  net.add(global_avg_pool<T>(in));
  dense<T> d(in.channels, s.classes, true, no_init);
  if (mirrored)
    init::looks_linear(d, net[net.size() - 1], g, s.ll, "cifar classifier");
  else if (unit_gain_kernels(a) && s.ll == init::ll_base::orthogonal)
    init::orthogonal(d.weight(), g);
  else
    init::he_normal(d.weight(), g, 0, 1.0);
  net.add(std::move(d));
}
}  // namespace detail

/// Builds CIFAR architecture `a`: see cifar_arch and cifar_spec. Plain nets are
/// conv-[BN]-act, then 2 n units per stage (the first of stages 2 and 3 with stride 2), global
/// average pooling and a linear classifier. plain_prelu_ll and plain_tat have unit-gain kernels
/// (orthogonal by default) and classifier; plain_tat's slope is tat_slope_or_relu(weighted_layers -
/// 1, s.tat_eta), its weighted_layers - 1 activations forming the chain. The resnet is conv-BN-ReLU
/// then n basic blocks per stage, x -> relu(S(x) + BN(conv(relu(BN(conv(x)))))), S the identity or,
/// where the shape changes, option A (stride-2 subsampling and zero channels: no parameters).
/// Classifier weights N(0, 1/fan_in), zero biases. Building allocates only the weights
/// (milliseconds at depth 200).
template <class T>
sequential<T> build_cifar(cifar_arch a, const cifar_spec& spec, rng& g) {
  const cifar_spec s = detail::resolved(spec);
  const index n = detail::cifar_blocks(s);
  sequential<T> net;
  if (a != cifar_arch::resnet) {
    const double slope =
        a == cifar_arch::plain_tat ? tat_slope_or_relu(s.weighted_layers - 1, s.tat_eta) : 0;
    image_shape shape = detail::cifar_plain_unit(net, s.input, s.width, 1, a, s, slope, g);
    for (index stage = 0; stage < 3; ++stage)
      for (index i = 0; i < 2 * n; ++i)
        shape = detail::cifar_plain_unit(net, shape, s.width << stage, stage > 0 && i == 0 ? 2 : 1,
                                         a, s, slope, g);
    detail::cifar_head(net, shape, a, s, g);
    return net;
  }
  auto conv = [&](image_shape in, index out_c, index stride) {
    conv2d<T> c(in, out_c, 3, stride, 1, !s.batch_norm, no_init);
    init::he_normal(c.weight(), g, c.fan_in());
    return c;
  };
  conv2d<T> first = conv(s.input, s.width, 1);
  image_shape shape = first.output_shape();
  net.add(std::move(first));
  if (s.batch_norm) net.add(batch_norm<T>(shape.channels, shape.spatial()));
  net.add(relu<T>());
  for (index stage = 0; stage < 3; ++stage)
    for (index b = 0; b < n; ++b) {
      const index out_c = s.width << stage, stride = stage > 0 && b == 0 ? 2 : 1;
      sequential<T> branch;
      conv2d<T> c1 = conv(shape, out_c, stride);
      const image_shape mid = c1.output_shape();
      branch.add(std::move(c1));
      if (s.batch_norm) branch.add(batch_norm<T>(mid.channels, mid.spatial()));
      branch.add(relu<T>());
      branch.add(conv(mid, out_c, 1));
      if (s.batch_norm) branch.add(batch_norm<T>(mid.channels, mid.spatial()));
      if (stride == 1 && out_c == shape.channels) {
        net.add(residual<T>(std::move(branch)));
      } else {
        sequential<T> shortcut;
        shortcut.add(subsample_pad<T>(shape, out_c, stride));
        net.add(branch_sum<T>(std::move(shortcut), std::move(branch)));
      }
      net.add(relu<T>());
      shape = mid;
    }
  detail::cifar_head(net, shape, a, s, g);
  return net;
}

/// Number of weighted layers (convolutions and dense layers, shortcuts excluded) in `net`,
/// descending into residual and branch_sum blocks: equals cifar_spec::weighted_layers for
/// build_cifar.
template <class T>
index count_weighted_layers(layer<T>& l) {
  index n = 0;
  for_each_leaf(l, [&n](layer<T>& leaf, const std::string&) {
    if (dynamic_cast<const conv2d<T>*>(&leaf) || dynamic_cast<const dense<T>*>(&leaf)) ++n;
  });
  return n;
}

}  // namespace shatter

#endif  // SHATTER_NETWORK_CIFAR_HPP
