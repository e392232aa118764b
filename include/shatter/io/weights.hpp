// shatter: weights-only files (parameters and buffers, PyTorch's state_dict layout) and loading
// the weights of any shatter file, strictly or not.
#ifndef SHATTER_IO_WEIGHTS_HPP
#define SHATTER_IO_WEIGHTS_HPP

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/io/network_json.hpp"
#include "shatter/io/safetensors.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/version.hpp"

namespace shatter {

/// Weights file layout: a plain safetensors file holding a network's state_dict as PyTorch
/// names and shapes it (`nn.Sequential` names "<i>.weight", "<i>.branch.<j>.bias", ...):
/// dense weights [out, in], conv weights [out, in, kh, kw], biases, batch-norm scales, shifts and
/// running statistics 1-D [n], PReLU slopes 1-D "<i>.slope", and each batch norm's
/// "<i>.num_batches_tracked" (I64, shape []); F32 for float networks, F64 for double. Metadata:
/// "shatter.format" = weights_format, "shatter.version", "shatter.scalar", "shatter.architecture"
/// (the layers' describe(), "; "-separated, for people), "shatter.layers" (the structure, see
/// io/network_json.hpp), "shatter.model" when the caller gives one (how it was built, see
/// io/model_recipe.hpp), then the user's keys (which must not start with "shatter.").
/// python/shatter_torch.py reads and writes these files.
inline constexpr const char* weights_format = "shatter-weights-1";

/// What save_weights writes besides the tensors.
struct save_options {
  std::map<std::string, std::string> metadata;  ///< the user's keys (not starting "shatter.")
  std::string model;  ///< stored as "shatter.model" when not empty (see model_recipe)
};

/// How load_weights matches a file to a network.
struct load_weights_options {
  /// true: every tensor of the network must be in the file and every weight of the file in the
  /// network, and the file's structure ("shatter.layers") must match; false: tensors are
  /// matched by name, the others reported (load_report), the structure not compared.
  bool strict = true;
};

/// What load_weights did: the tensors it loaded, those of the file it skipped (no tensor of that
/// name in the network) and those of the network it did not find in the file (left as they
/// were), each in file or network order; and the file's metadata.
struct load_report {
  std::vector<std::string> loaded, skipped, missing;
  std::map<std::string, std::string> metadata;

  /// "loaded 12 tensors; skipped 2 ('x', 'y'); not found 1 ('7.weight')".
  std::string summary() const;
};

namespace detail {

/// One tensor of a network as stored in a file: its name, the matrix, the shape in the file
/// (4-D for conv weights, 2-D for dense weights) and, for "num_batches_tracked", the batch norm it
/// counts.
template <class T>
struct file_entry {
  std::string name;
  matrix<T>* value = nullptr;
  std::vector<std::int64_t> shape;
  batch_norm<T>* counter = nullptr;
};

/// The tensors of `net` in a file: parameters, buffers, then the batch norms' counters.
template <class T>
std::vector<file_entry<T>> file_entries(sequential<T>& net) {
  std::map<std::string, std::vector<std::int64_t>> conv;  // shapes other than shape_of
  std::vector<file_entry<T>> counters;
  for_each_leaf(static_cast<layer<T>&>(net), [&](layer<T>& l, const std::string& path) {
    const std::string prefix = path.empty() ? "" : path + ".";
    if (auto* c = dynamic_cast<conv2d<T>*>(&l))
      conv[prefix + "weight"] = {c->output_shape().channels, c->input_shape().channels, c->kernel(),
                                 c->kernel()};
    if (auto* d = dynamic_cast<dense<T>*>(&l))  // [out, in] even for one input
      conv[prefix + "weight"] = {d->out_size(), d->in_size()};
    if (auto* b = dynamic_cast<batch_norm<T>*>(&l))
      counters.push_back({prefix + "num_batches_tracked", nullptr, {}, b});
  });
  std::vector<file_entry<T>> out;
  auto add = [&](const tensor_ref<T>& r) {
    auto it = conv.find(r.name);
    out.push_back({r.name, r.value, it != conv.end() ? it->second : io::shape_of(*r.value)});
  };
  for (const auto& p : net.parameters()) add(p);
  for (const auto& b : net.buffers()) add(b);
  out.insert(out.end(), counters.begin(), counters.end());
  return out;
}

/// "'a', 'b', 'c' and 7 more".
inline std::string first_names(const std::vector<std::string>& names, std::size_t shown = 3) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < shown; ++i)
    s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > shown) s += cat(" and ", names.size() - shown, " more");
  return s;
}

/// "<path>: 2 tensors of the network are missing from the file: '3.bias', ...; 1 tensor of the
/// file is not in the network: '7.weight'" (the parts that apply), then `hint`.
inline std::string mismatch_message(const std::string& path,
                                    const std::vector<std::string>& missing,
                                    const std::vector<std::string>& extra,
                                    const std::string& hint) {
  std::string s = path + ": ";
  if (!missing.empty())
    s += cat(missing.size(),
             missing.size() == 1 ? " tensor of the network is" : " tensors of the network are",
             " missing from the file: ", first_names(missing));
  if (!extra.empty())
    s += cat(missing.empty() ? "" : "; ", extra.size(),
             extra.size() == 1 ? " tensor of the file is" : " tensors of the file are",
             " not in the network: ", first_names(extra));
  return s + hint;
}

/// Whether the file is one of the formats shatter writes; `old` for shatter-checkpoint-1 (conv
/// weights 2-D, no num_batches_tracked, rng state U64).
inline bool known_format(const std::map<std::string, std::string>& md, bool& old) {
  auto f = md.find("shatter.format");
  if (f == md.end()) return false;
  old = f->second == "shatter-checkpoint-1";
  return old || f->second == weights_format || f->second == "shatter-checkpoint-2";
}

/// The layers' describe(), "; "-separated.
template <class T>
std::string architecture_of(const sequential<T>& net) {
  std::string s;
  for (std::size_t i = 0; i < net.size(); ++i) s += (i ? "; " : "") + net[i].describe();
  return s;
}

/// Refuses a file written for another network: compares "shatter.layers" when the file has it,
/// else the older "shatter.architecture" text. data_error naming the first layer that differs,
/// with both descriptions.
template <class T>
void check_structure(const std::map<std::string, std::string>& md, sequential<T>& net,
                     const std::string& path) {
  auto l = md.find("shatter.layers");
  if (l == md.end()) {
    auto a = md.find("shatter.architecture");
    require<data_error>(a != md.end(), path,
                        ": the file describes no network (no \"shatter.layers\")");
    const std::string arch = architecture_of(net);
    if (a->second == arch) return;
    std::size_t i = 0, layer = 0;
    for (; i < arch.size() && i < a->second.size() && arch[i] == a->second[i]; ++i)
      if (arch[i] == ';') ++layer;
    throw data_error(cat(path,
                         ": the file was written for another network (first difference at layer ",
                         layer, "):\n  file:    ", a->second, "\n  network: ", arch));
  }
  io::json_options o;
  o.context = path + ": invalid \"shatter.layers\"";
  const io::json_value file = io::parse_json(l->second.data(), l->second.size(), o);
  const std::string mine = io::describe_network(net);
  const io::json_value want = io::parse_json(mine.data(), mine.size());
  const std::string d = io::first_difference(file, want);
  if (d.empty()) return;
  // The top-level layer the difference is in, and its description on both sides.
  std::size_t layer = 0;
  std::string theirs = "?", ours = "?";
  if (d.rfind("layers.", 0) == 0) {
    layer = std::strtoul(d.c_str() + 7, nullptr, 10);
    if (layer < net.size()) ours = net[layer].describe();
    const io::json_value* ls = nullptr;
    for (std::size_t i = 0; i < file.keys.size(); ++i)
      if (file.keys[i] == "layers") ls = &file.items[i];
    if (ls && layer < ls->items.size())
      for (std::size_t i = 0; i < ls->items[layer].keys.size(); ++i)
        if (ls->items[layer].keys[i] == "describe") theirs = ls->items[layer].items[i].text;
  }
  throw data_error(cat(path,
                       ": the file was written for another network (first difference at layer ",
                       layer, ", ", d, "):\n  file:    ", theirs, "\n  network: ", ours));
}

/// The file's tensors matched to `entries`: pairs (entry, tensor) to assign, the entries not in
/// the file (`missing`) and the file's tensors no entry names (`unmatched`, file order). Checks
/// dtype (F32/F64 for matrices, exactly dtype_of<T> when `exact_dtype`; I64 for counters) and
/// shape (conv weights 4-D, or 2-D in an `old` file) and throws data_error naming the tensor.
template <class T>
struct matched {
  std::vector<std::pair<const file_entry<T>*, const io::tensor*>> assign;
  std::vector<std::string> missing, unmatched;
};

template <class T>
void check_entry(const file_entry<T>& e, const io::tensor& t, const std::string& path, bool exact,
                 bool old) {
  if (e.counter) {
    require<data_error>(t.type == io::dtype::I64 && t.element_count() == 1 && t.shape.size() <= 1,
                        path, ": tensor '", e.name, "' must be an I64 scalar, is ",
                        io::dtype_name(t.type), " ", io::detail::shape_text(t.shape));
    return;
  }
  const io::dtype dt = io::dtype_of<T>();
  require<data_error>(
      t.type == dt || (!exact && (t.type == io::dtype::F32 || t.type == io::dtype::F64)), path,
      ": tensor '", e.name, "' is stored as ", io::dtype_name(t.type), " but the network uses ",
      io::dtype_name(dt));
  const bool flat_conv = old && t.shape == io::shape_of(*e.value);  // older layouts
  require<data_error>(t.shape == e.shape || flat_conv, path, ": tensor '", e.name, "' has shape ",
                      io::detail::shape_text(t.shape), " in the file but ",
                      io::detail::shape_text(e.shape), " in the network");
}

template <class T>
matched<T> match_entries(const io::safetensors_file& f, const std::string& path,
                         const std::vector<file_entry<T>>& entries, bool exact_dtype, bool old) {
  matched<T> m;
  std::set<std::string> used;
  for (const auto& e : entries) {
    auto it = f.tensors.find(e.name);
    if (it == f.tensors.end()) {
      if (!(old && e.counter)) m.missing.push_back(e.name);  // old files have no counters
      continue;
    }
    check_entry(e, it->second, path, exact_dtype, old);
    used.insert(e.name);
    m.assign.emplace_back(&e, &it->second);
  }
  for (const auto& kv : f.tensors)
    if (!used.count(kv.first)) m.unmatched.push_back(kv.first);
  return m;
}

/// Writes the matched tensors into the network (and counters).
template <class T>
void assign_entries(const matched<T>& m) {
  for (const auto& a : m.assign) {
    if (a.first->counter)
      a.first->counter->set_batches_tracked(
          std::max<std::int64_t>(0, io::detail::get_le<std::int64_t>(a.second->data.data())));
    else
      *a.first->value = io::to_matrix<T>(*a.second, a.first->name);
  }
}

/// The tensors and shatter's metadata of `net` in `f`.
template <class T>
void put_network(io::safetensors_file& f, sequential<T>& net, const char* format,
                 const std::map<std::string, std::string>& user, const char* who) {
  for (const auto& kv : user) {
    require<config_error>(kv.first.rfind("shatter.", 0) != 0, who, ": metadata key '", kv.first,
                          "' is reserved (keys starting with \"shatter.\" are the library's)");
    f.metadata[kv.first] = kv.second;
  }
  f.metadata["shatter.format"] = format;
  f.metadata["shatter.version"] = version;
  f.metadata["shatter.architecture"] = architecture_of(net);
  f.metadata["shatter.layers"] = io::describe_network(net);
  f.metadata["shatter.scalar"] = std::is_same_v<T, float> ? "float" : "double";
  for (const auto& e : file_entries(net)) {
    io::tensor t;
    if (e.counter) {
      t = io::to_tensor(std::vector<std::int64_t>{e.counter->batches_tracked()});
      t.shape.clear();  // a scalar, as PyTorch stores it
    } else {
      t = io::to_tensor(*e.value);
      t.shape = e.shape;
    }
    require<config_error>(f.tensors.emplace(e.name, std::move(t)).second, who,
                          ": two tensors named '", e.name, "'");
  }
}

}  // namespace detail

inline std::string load_report::summary() const {
  std::string s =
      detail::cat("loaded ", loaded.size(), loaded.size() == 1 ? " tensor" : " tensors");
  s += detail::cat("; skipped ", skipped.size());
  if (!skipped.empty()) s += " (" + detail::first_names(skipped) + ")";
  s += detail::cat("; not found ", missing.size());
  if (!missing.empty()) s += " (" + detail::first_names(missing) + ")";
  return s;
}

/// Saves the weights of `net` (parameters, buffers, batch-norm counters; no optimiser, RNG,
/// epoch or step) to `path` atomically, in the layout of weights_format. config_error for a
/// reserved metadata key or a layer the structure format cannot describe; data_error naming the
/// path when the write fails.
template <class T>
void save_weights(const std::string& path, sequential<T>& net, const save_options& o = {}) {
  io::safetensors_file f;
  detail::put_network(f, net, weights_format, o.metadata, "save_weights");
  if (!o.model.empty()) f.metadata["shatter.model"] = o.model;
  io::write_safetensors(path, f);
}

/// Loads the weights of a shatter file (save_weights, save_checkpoint, or
/// python/shatter_torch.py's save_module) into `net`; a checkpoint's optimiser and RNG state
/// are ignored. F32 and F64 tensors convert to the network's scalar. Strict (the default): the
/// file's structure must match the network (the first difference is named), and the file must
/// hold exactly the network's tensors; otherwise data_error naming the path, the first few
/// differing names and their count. Not strict: tensors are matched by name, the rest reported.
/// Either way a tensor of the wrong shape or dtype is refused (data_error naming it), and
/// everything is checked before anything is written, so a refused file leaves `net` unchanged.
template <class T>
load_report load_weights(const std::string& path, sequential<T>& net, const load_weights_options& o = {}) {
  const io::safetensors_file f = io::read_safetensors(path);
  bool old = false;
  require<data_error>(detail::known_format(f.metadata, old), path,
                      ": not a shatter weights file or checkpoint (metadata \"shatter.format\" ",
                      f.metadata.count("shatter.format")
                          ? "is \"" + f.metadata.at("shatter.format") + "\")"
                          : "is missing)");
  if (o.strict) detail::check_structure(f.metadata, net, path);
  const auto entries = detail::file_entries(net);
  auto m = detail::match_entries(f, path, entries, /*exact_dtype=*/false, old);
  load_report r;
  for (const auto& name : m.unmatched)
    if (name != "rng.state" && name.rfind("optimizer.", 0) != 0) r.skipped.push_back(name);
  r.missing = m.missing;
  if (o.strict)
    require<data_error>(r.missing.empty() && r.skipped.empty(),
                        detail::mismatch_message(path, r.missing, r.skipped,
                                                 " (load_weights_options::strict = false loads the "
                                                 "tensors that match)"));
  detail::assign_entries(m);
  for (const auto& a : m.assign) r.loaded.push_back(a.first->name);
  r.metadata = f.metadata;
  return r;
}

/// Builds the network a shatter file describes ("shatter.layers") and loads its weights
/// strictly: inference from a file alone. data_error when the file has no description.
template <class T>
sequential<T> load_network(const std::string& path) {
  const io::safetensors_file f = io::read_safetensors(path);
  auto l = f.metadata.find("shatter.layers");
  require<data_error>(l != f.metadata.end(), path,
                      ": the file describes no network (no \"shatter.layers\"); build the network "
                      "and call load_weights");
  sequential<T> net = io::build_network<T>(l->second, path);
  load_weights(path, net);
  return net;
}

}  // namespace shatter

#endif  // SHATTER_IO_WEIGHTS_HPP
