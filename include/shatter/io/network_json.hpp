// shatter: a network's structure as JSON (layer kinds, sizes and options), and back.
#ifndef SHATTER_IO_NETWORK_JSON_HPP
#define SHATTER_IO_NETWORK_JSON_HPP

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/identity.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tanh.hpp"
#include "shatter/core/error.hpp"
#include "shatter/io/json.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/flatten.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/max_pool2d.hpp"
#include "shatter/layer/subsample_pad.hpp"
#include "shatter/network/branch_sum.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"

/// The structure of a network as a JSON object, written into checkpoints and weights files as
/// the metadata "shatter.layers" so that another program (python/shatter_torch.py, or
/// build_network below) can rebuild the same network without knowing how it was made:
///   {"input": [C, H, W], "layers": [<layer>, ...]}
/// where each <layer> is an object with "kind", "in" ([C, H, W] of its input), "describe" (the
/// layer's describe(), for messages only) and, by kind:
///   dense: "out", "bias";   conv2d: "out" ([C, H, W]), "kernel", "stride", "padding", "bias";
///   batch_norm: "channels", "spatial", "eps", "momentum";   relu, crelu, identity, tanh: -;
///   leaky_relu: "slope", "gain" (f(z) = gain z for z > 0, gain slope z otherwise);
///   prelu: "slopes" (the number of learned slopes: 1, the channels or the features);
///   global_avg_pool, flatten: -;   max_pool2d: "kernel", "stride";
///   subsample_pad: "out" ([C, H, W]), "stride";
///   residual: "beta", "branch" ([<layer>, ...]);   branch_sum: "a", "b" ([<layer>, ...]).
/// Parameters keep their state_dict names ("<i>.weight", "<i>.branch.<j>.weight", ...).
namespace shatter::io {

namespace detail {

using shatter::detail::cat;

/// The shortest decimal text (up to 17 digits) that reads back as the same T.
template <class T>
std::string json_number(T v) {
  char b[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(b, sizeof b, "%.*g", digits, double(v));
    if (T(std::strtod(b, nullptr)) == v) break;
  }
  return b;
}
inline std::string json_shape(const image_shape& s) {
  return cat("[", s.channels, ",", s.height, ",", s.width, "]");
}

template <class T>
std::string layer_json(layer<T>& l);

template <class T>
std::string layers_json(sequential<T>& net) {
  std::string s = "[";
  for (std::size_t i = 0; i < net.size(); ++i) s += (i ? "," : "") + layer_json(net[i]);
  return s + "]";
}

/// The kind-specific members of a leaf (after "kind", "in", "describe"), "" if none; false for
/// a layer this format does not describe.
template <class T>
bool leaf_members(layer<T>& l, std::string& m) {
  if (auto* d = dynamic_cast<dense<T>*>(&l)) {
    m = cat(",\"out\":", d->out_size(), ",\"bias\":", d->has_bias() ? "true" : "false");
  } else if (auto* c = dynamic_cast<conv2d<T>*>(&l)) {
    m = cat(",\"out\":", json_shape(c->output_shape()), ",\"kernel\":", c->kernel(),
            ",\"stride\":", c->stride(), ",\"padding\":", c->padding(),
            ",\"bias\":", c->has_bias() ? "true" : "false");
  } else if (auto* b = dynamic_cast<batch_norm<T>*>(&l)) {
    m = cat(",\"channels\":", b->channels(), ",\"spatial\":", b->spatial(),
            ",\"eps\":", json_number(b->eps()), ",\"momentum\":", json_number(b->momentum()));
  } else if (auto* k = dynamic_cast<leaky_relu<T>*>(&l)) {
    m = cat(",\"slope\":", json_number(k->op().slope), ",\"gain\":", json_number(k->op().gain));
  } else if (auto* p = dynamic_cast<prelu<T>*>(&l)) {
    m = cat(",\"slopes\":", p->slope().rows());
  } else if (auto* q = dynamic_cast<max_pool2d<T>*>(&l)) {
    m = cat(",\"kernel\":", q->kernel(), ",\"stride\":", q->stride());
  } else if (auto* s = dynamic_cast<subsample_pad<T>*>(&l)) {
    m = cat(",\"out\":", json_shape(s->output_shape()), ",\"stride\":", s->stride());
  } else {
    m.clear();
    return dynamic_cast<relu<T>*>(&l) || dynamic_cast<crelu<T>*>(&l) ||
           dynamic_cast<identity<T>*>(&l) || dynamic_cast<tanh_activation<T>*>(&l) ||
           dynamic_cast<global_avg_pool<T>*>(&l) || dynamic_cast<flatten<T>*>(&l);
  }
  return true;
}

template <class T>
std::string layer_json(layer<T>& l) {
  std::string s = "{\"kind\":";
  append_json_string(s, l.kind());
  s += ",\"in\":" + json_shape(l.input_shape()) + ",\"describe\":";
  append_json_string(s, l.describe());
  if (auto* r = dynamic_cast<residual<T>*>(&l)) {
    s += ",\"beta\":" + json_number(r->beta()) + ",\"branch\":" + layers_json(r->branch());
  } else if (auto* b = dynamic_cast<branch_sum<T>*>(&l)) {
    s += ",\"a\":" + layers_json(b->first()) + ",\"b\":" + layers_json(b->second());
  } else if (auto* q = dynamic_cast<sequential<T>*>(&l)) {
    s += ",\"layers\":" + layers_json(*q);
  } else {
    std::string m;
    require<config_error>(leaf_members(l, m), "network description: layer ", l.describe(),
                          " (kind \"", l.kind(), "\") cannot be described");
    s += m;
  }
  return s + "}";
}

}  // namespace detail

/// The JSON description of `net` (see the format above). config_error for a layer type the format
/// does not cover (a user-defined layer). Empty networks give {"input": [0, 1, 1], "layers": []}.
template <class T>
std::string describe_network(sequential<T>& net) {
  return detail::cat("{\"input\":", detail::json_shape(net.input_shape()),
                     ",\"layers\":", detail::layers_json(net), "}");
}

namespace detail {

/// Where a description is read from, for messages: "<source>: layer <path>".
struct json_reader {
  std::string source;

  const json_value& member(const json_value& v, const char* key, const std::string& at) const {
    require<data_error>(v.kind == json_value::object_v, source, ": ", at, " is not a JSON object");
    for (std::size_t i = 0; i < v.keys.size(); ++i)
      if (v.keys[i] == key) return v.items[i];
    throw data_error(cat(source, ": ", at, " has no \"", key, "\""));
  }
  index integer(const json_value& v, const char* key, const std::string& at) const {
    std::uint64_t x = 0;
    require<data_error>(json_nonnegative_integer(member(v, key, at), x) && x < (1u << 30), source,
                        ": ", at, ".", key, " is not a non-negative integer");
    return static_cast<index>(x);
  }
  double number(const json_value& v, const char* key, const std::string& at) const {
    const json_value& n = member(v, key, at);
    char* end = nullptr;
    const double x = n.kind == json_value::number_v ? std::strtod(n.text.c_str(), &end) : NAN;
    require<data_error>(end && *end == '\0' && std::isfinite(x), source, ": ", at, ".", key,
                        " is not a finite number");
    return x;
  }
  bool boolean(const json_value& v, const char* key, const std::string& at) const {
    const json_value& b = member(v, key, at);
    require<data_error>(b.kind == json_value::bool_v, source, ": ", at, ".", key,
                        " is not true or false");
    return b.boolean;
  }
  image_shape shape(const json_value& v, const char* key, const std::string& at) const {
    const json_value& a = member(v, key, at);
    require<data_error>(a.kind == json_value::array_v && a.items.size() == 3, source, ": ", at, ".",
                        key, " is not [C, H, W]");
    index d[3];
    for (int i = 0; i < 3; ++i) {
      std::uint64_t x = 0;
      require<data_error>(json_nonnegative_integer(a.items[i], x) && x < (1u << 30), source, ": ",
                          at, ".", key, " is not [C, H, W]");
      d[i] = static_cast<index>(x);
    }
    return {d[0], d[1], d[2]};
  }
};

template <class T>
sequential<T> build_layers(const json_reader& r, const json_value& list, const std::string& at);

template <class T>
std::unique_ptr<layer<T>> build_leaf(const json_reader& r, const json_value& v,
                                     const std::string& kind, const image_shape& in,
                                     const std::string& at) {
  // a description read from a file must not make us allocate without bound
  const double weights = kind == "dense" ? double(in.size()) * double(r.integer(v, "out", at))
                         : kind == "conv2d"
                             ? double(in.channels) * double(r.shape(v, "out", at).channels) *
                                   double(r.integer(v, "kernel", at)) *
                                   double(r.integer(v, "kernel", at))
                             : 0.0;
  require<data_error>(weights <= double(index(1) << 28), r.source, ": ", at, " has ", weights,
                      " weights, more than the 2^28 accepted");
  if (kind == "dense")
    return std::make_unique<dense<T>>(in.size(), r.integer(v, "out", at), r.boolean(v, "bias", at),
                                      no_init);
  if (kind == "conv2d")
    return std::make_unique<conv2d<T>>(
        in, r.shape(v, "out", at).channels, r.integer(v, "kernel", at), r.integer(v, "stride", at),
        r.integer(v, "padding", at), r.boolean(v, "bias", at), no_init);
  if (kind == "batch_norm")
    return std::make_unique<batch_norm<T>>(r.integer(v, "channels", at),
                                           r.integer(v, "spatial", at), T(r.number(v, "eps", at)),
                                           T(r.number(v, "momentum", at)));
  if (kind == "relu") return std::make_unique<relu<T>>();
  if (kind == "crelu") return std::make_unique<crelu<T>>();
  if (kind == "identity") return std::make_unique<identity<T>>();
  if (kind == "tanh") return std::make_unique<tanh_activation<T>>();
  if (kind == "leaky_relu")
    return std::make_unique<leaky_relu<T>>(
        leaky_relu_op<T>(T(r.number(v, "slope", at)), T(r.number(v, "gain", at))));
  if (kind == "prelu") return std::make_unique<prelu<T>>(r.integer(v, "slopes", at), T(1));
  if (kind == "global_avg_pool") return std::make_unique<global_avg_pool<T>>(in);
  if (kind == "flatten") return std::make_unique<flatten<T>>(in);
  if (kind == "max_pool2d")
    return std::make_unique<max_pool2d<T>>(in, r.integer(v, "kernel", at),
                                           r.integer(v, "stride", at));
  if (kind == "subsample_pad")
    return std::make_unique<subsample_pad<T>>(in, r.shape(v, "out", at).channels,
                                              r.integer(v, "stride", at));
  throw data_error(cat(r.source, ": ", at, " has the unknown kind \"", kind, "\""));
}

template <class T>
std::unique_ptr<layer<T>> build_layer(const json_reader& r, const json_value& v,
                                      const std::string& at) {
  const json_value& k = r.member(v, "kind", at);
  require<data_error>(k.kind == json_value::string_v, r.source, ": ", at, ".kind is not a string");
  const image_shape in = r.shape(v, "in", at);
  require<data_error>(in.size() >= 1, r.source, ": ", at, ".in is empty");
  std::unique_ptr<layer<T>> l;
  if (k.text == "residual") {
    sequential<T> b = build_layers<T>(r, r.member(v, "branch", at), at + ".branch");
    b.connect(in, at + ":");
    l = std::make_unique<residual<T>>(std::move(b), T(r.number(v, "beta", at)));
  } else if (k.text == "branch_sum") {
    sequential<T> a = build_layers<T>(r, r.member(v, "a", at), at + ".a");
    sequential<T> b = build_layers<T>(r, r.member(v, "b", at), at + ".b");
    a.connect(in, at + ".a:");
    b.connect(in, at + ".b:");
    l = std::make_unique<branch_sum<T>>(std::move(a), std::move(b));
  } else if (k.text == "sequential") {
    sequential<T> s = build_layers<T>(r, r.member(v, "layers", at), at);
    s.connect(in, at + ":");
    l = std::make_unique<sequential<T>>(std::move(s));
  } else {
    l = build_leaf<T>(r, v, k.text, in, at);
    if (l->in_size() == 0) l->connect(in, at + ":");
  }
  return l;
}

template <class T>
sequential<T> build_layers(const json_reader& r, const json_value& list, const std::string& at) {
  require<data_error>(list.kind == json_value::array_v && !list.items.empty(), r.source, ": ", at,
                      " is not a non-empty array of layers");
  sequential<T> net;
  for (std::size_t i = 0; i < list.items.size(); ++i)
    net.add(build_layer<T>(r, list.items[i], cat(at, ".", i)));
  return net;
}

}  // namespace detail

/// Builds the network a description (describe_network's JSON) describes, its weights zero and
/// its batch-norm statistics at their initial values (load them next, e.g. with load_weights).
/// data_error naming `source` and the layer ("layers.3.branch.0") for an invalid description;
/// config_error or shape_error from a layer's constructor for inconsistent sizes.
template <class T>
sequential<T> build_network(const std::string& json, const std::string& source = "description") {
  json_options o;
  o.context = source + ": invalid network description";
  const json_value root = parse_json(json.data(), json.size(), o);
  const detail::json_reader r{source};
  sequential<T> net = detail::build_layers<T>(r, r.member(root, "layers", "description"), "layers");
  net.connect(r.shape(root, "input", "description"), "layers:");
  return net;
}

/// The first difference between two network descriptions, "" when they describe the same
/// network: the path of the member ("layers.3.out") and both values. "describe" members are
/// ignored (text for people); numbers compare equal within a relative 1e-6 (a file written by
/// another program may round them).
inline std::string first_difference(const json_value& a, const json_value& b,
                                    const std::string& at = "") {
  auto text = [](const json_value& v) {
    switch (v.kind) {
      case json_value::number_v:
        return v.text;
      case json_value::string_v:
        return "\"" + v.text + "\"";
      case json_value::bool_v:
        return std::string(v.boolean ? "true" : "false");
      case json_value::array_v:
        return detail::cat("an array of ", v.items.size());
      case json_value::object_v:
        return std::string("an object");
      default:
        return std::string("null");
    }
  };
  const std::string here = at.empty() ? "description" : at;
  if (a.kind != b.kind || (a.kind == json_value::array_v && a.items.size() != b.items.size()) ||
      (a.kind == json_value::string_v && a.text != b.text) ||
      (a.kind == json_value::bool_v && a.boolean != b.boolean))
    return detail::cat(here, ": ", text(a), " against ", text(b));
  if (a.kind == json_value::number_v) {
    const double x = std::strtod(a.text.c_str(), nullptr), y = std::strtod(b.text.c_str(), nullptr);
    if (std::abs(x - y) > 1e-6 * std::max(std::abs(x), std::abs(y)))
      return detail::cat(here, ": ", a.text, " against ", b.text);
  }
  if (a.kind == json_value::array_v)
    for (std::size_t i = 0; i < a.items.size(); ++i) {
      std::string d =
          first_difference(a.items[i], b.items[i], detail::cat(at, at.empty() ? "" : ".", i));
      if (!d.empty()) return d;
    }
  if (a.kind == json_value::object_v) {
    auto find = [](const json_value& o, const std::string& key) -> const json_value* {
      for (std::size_t i = 0; i < o.keys.size(); ++i)
        if (o.keys[i] == key) return &o.items[i];
      return nullptr;
    };
    for (const json_value* o : {&a, &b})
      for (std::size_t i = 0; i < o->keys.size(); ++i) {
        const std::string& key = o->keys[i];
        if (key == "describe") continue;
        const json_value* x = find(a, key);
        const json_value* y = find(b, key);
        const std::string path = at.empty() ? key : at + "." + key;
        if (!x || !y)
          return detail::cat(path, ": ", x ? "present" : "absent", " against ",
                             y ? "present" : "absent");
        if (o == &a) {
          std::string d = first_difference(*x, *y, path);
          if (!d.empty()) return d;
        }
      }
  }
  return "";
}

}  // namespace shatter::io

#endif  // SHATTER_IO_NETWORK_JSON_HPP
