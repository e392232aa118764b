// shatter: builders for the paper's network families (plain ReLU, CReLU, looks-linear, resnet)
// and the skip-free initialisations that followed (PReLU looks-linear, TAT leaky ReLU).
#ifndef SHATTER_NETWORK_BUILDERS_HPP
#define SHATTER_NETWORK_BUILDERS_HPP

#include <string>
#include <type_traits>
#include <vector>

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tat.hpp"
#include "shatter/init/he.hpp"
#include "shatter/init/looks_linear.hpp"
#include "shatter/init/orthogonal.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/network/architecture.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"

namespace shatter {

// The deprecated `depth` fields of the specs are read here only; their users get the warning.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/// Sizes and options of a fully connected network. `hidden_layers` counts hidden layers (one
/// dense layer plus activation each; a resnet counts residual blocks), so the net has
/// hidden_layers + 1 weighted layers (resnets: hidden_layers + 2); cifar_spec counts
/// `weighted_layers` instead, and each field says which by its name. A CReLU layer of `width`
/// units outputs 2 width features.
struct mlp_spec {
  index in = 1;             ///< input features (>= 1)
  index width = 200;        ///< hidden units per layer (>= 1)
  index hidden_layers = 1;  ///< hidden layers or residual blocks (>= 1)
  index out = 1;            ///< output features (>= 1)
  bool bias = true;         ///< dense layers have biases
  double bias_std = 0.0;    ///< biases ~ N(0, bias_std^2) (0: zero biases)
  bool batch_norm = false;  ///< batch norm after each hidden dense layer (resnet: in the branch)
  double beta = 1.0;        ///< resnet branch scale: x + beta F(x)
  /// The former name of hidden_layers: when set (> 0) it is used instead.
  [[deprecated("mlp_spec::depth is now hidden_layers")]] index depth = 0;
};

namespace detail {
/// The spec with its deprecated `depth` folded into hidden_layers.
inline mlp_spec resolved(mlp_spec s) {
  if (s.depth > 0) s.hidden_layers = s.depth;
  s.depth = 0;
  return s;
}
}  // namespace detail

#pragma GCC diagnostic pop

namespace detail {
inline void check_spec(const mlp_spec& s, const char* who) {
  require<config_error>(s.in >= 1 && s.width >= 1 && s.hidden_layers >= 1 && s.out >= 1, who,
                        ": in, width, hidden_layers and out must all be >= 1, got in = ", s.in,
                        ", width = ", s.width, ", hidden_layers = ", s.hidden_layers,
                        ", out = ", s.out);
  require<config_error>(s.bias_std >= 0 && std::isfinite(s.bias_std), who,
                        ": bias_std must be finite and >= 0, got ", s.bias_std);
  require<config_error>(std::isfinite(s.beta), who, ": beta must be finite, got ", s.beta);
}
template <class T>
dense<T> make_dense(index in, index out, const mlp_spec& s, rng& g) {
  dense<T> d(in, out, s.bias, no_init);  // initialised by the caller
  if (s.bias && s.bias_std > 0)
    for (index i = 0; i < out; ++i) d.bias()(i, 0) = T(g.normal() * s.bias_std);
  return d;
}
}  // namespace detail

namespace detail {
/// [dense -> (batch_norm) -> act] x hidden_layers -> dense, He init (hidden N(0, 2/fan_in), output
/// N(0, 1/fan_in)); Act is relu or crelu (each later layer then takes 2 width inputs).
template <class T, class Act>
sequential<T> plain_mlp(const mlp_spec& spec, rng& g, const char* who) {
  const mlp_spec s = resolved(spec);
  check_spec(s, who);
  constexpr index widen = std::is_same_v<Act, crelu<T>> ? 2 : 1;
  sequential<T> net;
  index prev = s.in;
  for (index l = 0; l < s.hidden_layers; ++l) {
    auto& d = net.add(make_dense<T>(prev, s.width, s, g));
    init::he_normal(d.weight(), g);
    if (s.batch_norm) net.add(batch_norm<T>(s.width));
    net.add(Act());
    prev = widen * s.width;
  }
  auto& o = net.add(make_dense<T>(prev, s.out, s, g));
  init::he_normal(o.weight(), g, 0, 1.0);
  return net;
}
}  // namespace detail

/// Plain feedforward ReLU net with He init: [dense -> (batch_norm) -> relu] x hidden_layers ->
/// dense. Hidden weights N(0, 2/fan_in), output weights N(0, 1/fan_in).
template <class T>
sequential<T> plain_relu_mlp(const mlp_spec& s, rng& g) {
  return detail::plain_mlp<T, relu<T>>(s, g, "plain_relu_mlp");
}

/// Plain feedforward CReLU net with He init (no mirroring):
/// [dense -> (batch_norm) -> crelu] x hidden_layers -> dense; layers after the first take 2 width
/// inputs.
template <class T>
sequential<T> plain_crelu_mlp(const mlp_spec& s, rng& g) {
  return detail::plain_mlp<T, crelu<T>>(s, g, "plain_crelu_mlp");
}

/// Applies the looks-linear initialisation to every dense layer of `net`: the first dense layer
/// (fed by the raw input) gets an ordinary W0 of the chosen base, every later one must be fed by a
/// CReLU of matching width (or by a global average pooling of a CReLU output) and gets
/// [W0, -W0]; otherwise shape_error names the layer and sizes.
template <class T>
void apply_looks_linear(sequential<T>& net, rng& g,
                        init::ll_base base = init::ll_base::orthogonal) {
  bool first = true;
  for (std::size_t i = 0; i < net.size(); ++i) {
    auto* d = dynamic_cast<dense<T>*>(&net[i]);
    if (!d) continue;
    if (first) {
      if (base == init::ll_base::orthogonal)
        init::orthogonal(d->weight(), g);
      else
        init::he_normal(d->weight(), g, 0, 1.0);
      first = false;
    } else {
      require<shape_error>(i > 0, "apply_looks_linear: layer ", i, " has no producer");
      const bool pooled = dynamic_cast<const global_avg_pool<T>*>(&net[i - 1]) != nullptr;
      require<shape_error>(!pooled || (i > 1 && dynamic_cast<const crelu<T>*>(&net[i - 2])),
                           "apply_looks_linear: layer ", i, " ", d->describe(),
                           " is fed by a global average pooling of ",
                           i > 1 ? net[i - 2].describe() : std::string("the input"),
                           ", not of a CReLU output");
      init::looks_linear(*d, net[i - 1], g, base, detail::cat("apply_looks_linear: layer ", i));
    }
  }
}

/// Plain CReLU net with the mirrored looks-linear init: the same layers as plain_crelu_mlp, W0
/// orthogonal (or He-normal). Exactly linear at initialisation (affine with biases): f(x) = A x +
/// c with A the product of the W0s (and batch-norm scalings).
template <class T>
sequential<T> looks_linear_mlp(const mlp_spec& spec, rng& g,
                               init::ll_base base = init::ll_base::orthogonal) {
  const mlp_spec s = detail::resolved(spec);
  detail::check_spec(s, "looks_linear_mlp");
  sequential<T> net = plain_crelu_mlp<T>(s, g);
  apply_looks_linear(net, g, base);
  return net;
}

/// Residual MLP: dense(in -> width) -> [x + beta F(x)] x hidden_layers -> dense(width -> out), with
/// branch F = (batch_norm) -> relu -> dense(width -> width), He init.
template <class T>
sequential<T> resnet_mlp(const mlp_spec& spec, rng& g) {
  const mlp_spec s = detail::resolved(spec);
  detail::check_spec(s, "resnet_mlp");
  sequential<T> net;
  auto& first = net.add(detail::make_dense<T>(s.in, s.width, s, g));
  init::he_normal(first.weight(), g, 0, 1.0);
  for (index l = 0; l < s.hidden_layers; ++l) {
    sequential<T> branch;
    if (s.batch_norm) branch.add(batch_norm<T>(s.width));
    branch.add(relu<T>());
    auto& d = branch.add(detail::make_dense<T>(s.width, s.width, s, g));
    init::he_normal(d.weight(), g);
    branch.connect({s.width, 1, 1}, detail::cat("resnet_mlp block ", l, ":"));
    net.add(residual<T>(std::move(branch), T(s.beta)));
  }
  auto& o = net.add(detail::make_dense<T>(s.width, s.out, s, g));
  init::he_normal(o.weight(), g, 0, 1.0);
  return net;
}

namespace detail {
/// Gain-1 weights of the chosen base: orthogonal, or N(0, 1 / fan_in).
template <class T>
void init_unit_gain(matrix<T>& w, rng& g, init::ll_base base) {
  if (base == init::ll_base::orthogonal)
    init::orthogonal(w, g);
  else
    init::he_normal(w, g, 0, 1.0);
}
/// [dense -> (batch_norm) -> make_act()] x hidden_layers -> dense, every weight of unit gain (see
/// init_unit_gain): the chain of a variance-preserving activation.
template <class T, class MakeAct>
sequential<T> unit_gain_mlp(const mlp_spec& spec, rng& g, init::ll_base base, MakeAct make_act,
                            const char* who) {
  const mlp_spec s = resolved(spec);
  check_spec(s, who);
  sequential<T> net;
  index prev = s.in;
  for (index l = 0; l < s.hidden_layers; ++l) {
    auto& d = net.add(make_dense<T>(prev, s.width, s, g));
    init_unit_gain(d.weight(), g, base);
    if (s.batch_norm) net.add(batch_norm<T>(s.width));
    net.add(make_act());
    prev = s.width;
  }
  auto& o = net.add(make_dense<T>(prev, s.out, s, g));
  init_unit_gain(o.weight(), g, base);
  return net;
}
}  // namespace detail

/// Plain PReLU net with the looks-linear initialisation: [dense -> (batch_norm) -> prelu] x
/// hidden_layers
/// -> dense, one learnable slope per unit initialised to 1 (the identity), weights orthogonal (or
/// N(0, 1 / fan_in)). Exactly linear at initialisation (affine with biases: f(x) = A x + c, A
/// the product of the weight matrices and batch-norm scalings) like looks_linear_mlp, without
/// doubling the width; the slopes move away from 1 with the first update that sees negative
/// pre-activations.
template <class T>
sequential<T> prelu_ll_mlp(const mlp_spec& s, rng& g,
                           init::ll_base base = init::ll_base::orthogonal) {
  return detail::unit_gain_mlp<T>(
      s, g, base, [&s] { return prelu<T>(s.width, T(1)); }, "prelu_ll_mlp");
}

/// Plain leaky-ReLU net with TAT (Zhang, Botev, Martens 2022): [dense -> (batch_norm) ->
/// tat_leaky_relu(a)] x hidden_layers -> dense, weights orthogonal (or N(0, 1 / fan_in)), with the
/// slope a = tat_slope(hidden_layers, eta) chosen so that the network's C-map satisfies C_f(0) =
/// eta (default 0.9: two orthogonal inputs give outputs of correlation 0.9 in the wide limit). When
/// eta is unreachable at this depth (fewer than 13 hidden layers for 0.9), a = 0: a plain ReLU net
/// with He-equivalent scaling. The C-map assumes zero biases and no batch norm; `s.bias_std` and
/// `s.batch_norm` are honoured but change it.
template <class T>
sequential<T> tat_mlp(const mlp_spec& spec, rng& g, double eta = 0.9,
                      init::ll_base base = init::ll_base::orthogonal) {
  const mlp_spec s = detail::resolved(spec);
  detail::check_spec(s, "tat_mlp");
  const double a = tat_slope_or_relu(s.hidden_layers, eta);
  return detail::unit_gain_mlp<T>(
      s, g, base, [a] { return tat_leaky_relu<T>(a); }, "tat_mlp");
}

/// Builds architecture `a` with the sizes of `s`; the name decides batch norm (plain_relu_bn and
/// resnet_bn have it, the others not), overriding `s.batch_norm`. plain_prelu_ll and plain_tat
/// are prelu_ll_mlp and tat_mlp (eta 0.9) with orthogonal weights.
template <class T>
sequential<T> build(architecture a, mlp_spec s, rng& g) {
  s.batch_norm = false;
  switch (a) {
    case architecture::plain_relu:
      return plain_relu_mlp<T>(s, g);
    case architecture::plain_relu_bn:
      s.batch_norm = true;
      return plain_relu_mlp<T>(s, g);
    case architecture::resnet:
      return resnet_mlp<T>(s, g);
    case architecture::resnet_bn:
      s.batch_norm = true;
      return resnet_mlp<T>(s, g);
    case architecture::plain_crelu:
      return plain_crelu_mlp<T>(s, g);
    case architecture::plain_crelu_ll:
      return looks_linear_mlp<T>(s, g);
    case architecture::plain_prelu_ll:
      return prelu_ll_mlp<T>(s, g);
    case architecture::plain_tat:
      return tat_mlp<T>(s, g);
  }
  throw config_error("build: invalid architecture value");
}

}  // namespace shatter

#endif  // SHATTER_NETWORK_BUILDERS_HPP
