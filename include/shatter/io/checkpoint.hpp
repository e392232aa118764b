// shatter: training checkpoints (weights, optimiser and RNG state, epoch, step) as safetensors.
#ifndef SHATTER_IO_CHECKPOINT_HPP
#define SHATTER_IO_CHECKPOINT_HPP

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/io/safetensors.hpp"
#include "shatter/io/weights.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/version.hpp"

namespace shatter {

/// What a checkpoint records besides the tensors: where training was, and all metadata (the
/// user's keys plus shatter's own, "shatter.version", "shatter.architecture", ...).
struct checkpoint_info {
  std::int64_t epoch = 0;
  std::int64_t step = 0;
  std::map<std::string, std::string> metadata;
};

/// Checkpoint file layout: a weights file (see weights_format: the network's state_dict under
/// PyTorch's names and shapes, conv weights [out, in, kh, kw], batch norms' num_batches_tracked,
/// the structure in "shatter.layers") plus
/// - "optimizer.<name>": each optimiser state tensor, e.g. "optimizer.momentum.0.weight";
/// - "rng.state": I64 [6], the RNG's `state()` words bit for bit (torch 1.13 reads I64, not U64);
/// and the metadata "shatter.format" = checkpoint_format, "shatter.epoch", "shatter.step", and
/// with an optimiser object "shatter.optimizer" (its kind), "shatter.optimizer.steps",
/// "shatter.optimizer.lr". Files of the previous format, "shatter-checkpoint-1" (conv weights
/// 2-D, no num_batches_tracked, rng state U64), still load. load_weights reads the weights of
/// a checkpoint without its optimiser.
inline constexpr const char* checkpoint_format = "shatter-checkpoint-2";

namespace detail {

/// Parses a decimal int64 metadata value; data_error naming the key and file otherwise.
inline std::int64_t metadata_int(const std::map<std::string, std::string>& m,
                                 const std::string& key, const std::string& path) {
  auto it = m.find(key);
  require<data_error>(it != m.end(), path, ": checkpoint metadata has no \"", key, "\"");
  const std::string& s = it->second;
  const bool negative = !s.empty() && s[0] == '-';
  std::size_t i = negative ? 1 : 0;
  bool ok = i < s.size() && s.size() - i <= 18;
  std::int64_t v = 0;
  for (; ok && i < s.size(); ++i) {
    ok = s[i] >= '0' && s[i] <= '9';
    v = v * 10 + (s[i] - '0');
  }
  require<data_error>(ok, path, ": checkpoint metadata \"", key, "\" = \"", s,
                      "\" is not an integer");
  return negative ? -v : v;
}

/// The optimiser state as file entries ("optimizer.<name>", 2-D or 1-D like any matrix).
template <class T>
std::vector<file_entry<T>> optimizer_entries(const std::vector<tensor_ref<T>>& state) {
  std::vector<file_entry<T>> out;
  for (const auto& s : state) {
    require<config_error>(s.value != nullptr, "checkpoint: optimizer state '", s.name,
                          "' has no value");
    out.push_back({"optimizer." + s.name, s.value, io::shape_of(*s.value)});
  }
  return out;
}

template <class T>
void save_checkpoint_impl(const std::string& path, sequential<T>& net,
                          const std::vector<tensor_ref<T>>& optimizer_state, const rng& g,
                          std::int64_t epoch, std::int64_t step,
                          const std::map<std::string, std::string>& user_metadata,
                          const std::map<std::string, std::string>& extra) {
  require<config_error>(epoch >= 0 && step >= 0,
                        "save_checkpoint: epoch and step must be >= 0, got ", epoch, " and ", step);
  io::safetensors_file f;
  put_network(f, net, checkpoint_format, user_metadata, "save_checkpoint");
  f.metadata["shatter.epoch"] = std::to_string(epoch);
  f.metadata["shatter.step"] = std::to_string(step);
  for (const auto& kv : extra) f.metadata[kv.first] = kv.second;
  for (const auto& e : optimizer_entries(optimizer_state)) {
    io::tensor t = io::to_tensor(*e.value);
    require<config_error>(e.name != "rng.state" && f.tensors.emplace(e.name, std::move(t)).second,
                          "checkpoint: two tensors named '", e.name, "'");
  }
  const auto st = g.state();
  std::vector<std::int64_t> words(st.size());
  for (std::size_t i = 0; i < st.size(); ++i) std::memcpy(&words[i], &st[i], sizeof st[i]);
  f.tensors["rng.state"] = io::to_tensor(words);
  io::write_safetensors(path, f);
}

/// The RNG words of a checkpoint's "rng.state" (I64 [6], or U64 [6] in older files).
inline std::array<std::uint64_t, 6> rng_words(const io::safetensors_file& f,
                                              const std::string& path) {
  auto r = f.tensors.find("rng.state");
  require<data_error>(r != f.tensors.end(), path, ": tensor 'rng.state' is missing");
  const io::tensor& t = r->second;
  require<data_error>((t.type == io::dtype::I64 || t.type == io::dtype::U64) &&
                          t.shape == std::vector<std::int64_t>{6},
                      path, ": tensor 'rng.state' must be I64 [6] (U64 [6] in older files), is ",
                      io::dtype_name(t.type), " ", io::detail::shape_text(t.shape));
  std::array<std::uint64_t, 6> st{};
  for (std::size_t i = 0; i < 6; ++i) st[i] = io::detail::get_le<std::uint64_t>(&t.data[8 * i]);
  return st;
}

template <class T>
checkpoint_info load_checkpoint_impl(const io::safetensors_file& f, const std::string& path,
                                     sequential<T>& net,
                                     const std::vector<tensor_ref<T>>& optimizer_state, rng& g) {
  const auto& md = f.metadata;
  bool old = false;
  auto fmt = md.find("shatter.format");
  require<data_error>(known_format(md, old) && fmt->second != weights_format, path,
                      ": not a shatter checkpoint (metadata \"shatter.format\" is ",
                      fmt == md.end() ? "missing" : "\"" + fmt->second + "\"", ", expected \"",
                      checkpoint_format, "\"",
                      fmt != md.end() && fmt->second == weights_format
                          ? "; a weights file: load it with load_weights)"
                          : ")");
  check_structure(md, net, path);
  checkpoint_info info;
  info.epoch = metadata_int(md, "shatter.epoch", path);
  info.step = metadata_int(md, "shatter.step", path);
  require<data_error>(info.epoch >= 0 && info.step >= 0, path, ": checkpoint metadata \"shatter.",
                      info.epoch < 0 ? "epoch\" = " : "step\" = ",
                      info.epoch < 0 ? info.epoch : info.step, " is negative");
  info.metadata = md;

  // Check everything first, so that a refused file leaves the network untouched.
  auto entries = file_entries(net);
  const auto opt = optimizer_entries(optimizer_state);
  entries.insert(entries.end(), opt.begin(), opt.end());
  const auto m = match_entries(f, path, entries, /*exact_dtype=*/true, old);
  const auto st = rng_words(f, path);
  std::vector<std::string> extra;
  bool optimizer_extra = false;
  for (const auto& name : m.unmatched)
    if (name != "rng.state") {
      extra.push_back(name);
      optimizer_extra = optimizer_extra || name.rfind("optimizer.", 0) == 0;
    }
  require<data_error>(m.missing.empty() && extra.empty(),
                      mismatch_message(path, m.missing, extra,
                                       optimizer_extra && optimizer_state.empty()
                                           ? " (to load the weights alone use load_weights)"
                                           : ""));
  assign_entries(m);
  g.set_state(st);
  return info;
}

/// Whether O looks like a shatter optimiser (state(), steps(), set_steps(), kind()).
template <class O, class = void>
struct is_optimizer : std::false_type {};
template <class O>
struct is_optimizer<
    O, std::void_t<decltype(std::declval<O&>().state()),
                   decltype(std::declval<O&>().set_steps(std::int64_t{})),
                   decltype(std::declval<O&>().steps()), decltype(std::declval<O&>().kind())>>
    : std::true_type {};

}  // namespace detail

/// Saves a training checkpoint to `path` atomically (a temporary file in the same directory,
/// flushed and fsynced, renamed over `path`, the directory fsynced), so a crash at any moment
/// leaves either the previous checkpoint or the new one. Stores the parameters and buffers of
/// `net`, each tensor of `optimizer_state` (as "optimizer.<name>"), the state of `g`, `epoch`,
/// `step` (both >= 0), and `metadata` (keys must not start with "shatter."; config_error
/// otherwise). See checkpoint_format for the layout. Throws data_error naming the path when the
/// write fails.
/// Thread safety: reads `net`, the state tensors and `g`, which must not change meanwhile;
/// checkpoints of distinct networks to distinct paths may be saved concurrently.
template <class T>
void save_checkpoint(const std::string& path, sequential<T>& net,
                     const std::vector<tensor_ref<T>>& optimizer_state, const rng& g,
                     std::int64_t epoch, std::int64_t step,
                     const std::map<std::string, std::string>& metadata = {}) {
  detail::save_checkpoint_impl(path, net, optimizer_state, g, epoch, step, metadata, {});
}

/// Restores a checkpoint written by save_checkpoint into `net` (parameters and buffers), the
/// tensors of `optimizer_state` and `g`; returns epoch, step and metadata. Everything is checked
/// before anything is written, so a refused file leaves all arguments unchanged: the file must be
/// a valid safetensors file (see io::decode_safetensors: header, dtypes, shapes and byte ranges,
/// truncation), a shatter checkpoint of the same network (its structure, "shatter.layers", matches)
/// with an epoch and a step that are not negative, and hold exactly the tensors of the network, the
/// optimiser state and the RNG, each with the network's dtype and shape. Any mismatch throws
/// data_error naming the file and the tensor (missing, extra, wrong dtype or shape). Thread safety:
/// writes all its arguments.
template <class T>
checkpoint_info load_checkpoint(const std::string& path, sequential<T>& net,
                                const std::vector<tensor_ref<T>>& optimizer_state, rng& g) {
  return detail::load_checkpoint_impl(io::read_safetensors(path), path, net, optimizer_state, g);
}

/// save_checkpoint with an optimiser object (shatter::sgd, shatter::adam, ...): saves its
/// `state()` and also its kind, step counter and learning rate, which the matching
/// load_checkpoint restores (Adam's bias correction depends on the step counter).
template <class T, class Optimizer,
          class = std::enable_if_t<detail::is_optimizer<Optimizer>::value>>
void save_checkpoint(const std::string& path, sequential<T>& net, Optimizer& opt, const rng& g,
                     std::int64_t epoch, std::int64_t step,
                     const std::map<std::string, std::string>& metadata = {}) {
  char lr[40];
  std::snprintf(lr, sizeof lr, "%.17g", opt.learning_rate());
  detail::save_checkpoint_impl(path, net, opt.state(), g, epoch, step, metadata,
                               {{"shatter.optimizer", opt.kind()},
                                {"shatter.optimizer.steps", std::to_string(opt.steps())},
                                {"shatter.optimizer.lr", lr}});
}

/// load_checkpoint with an optimiser object: also checks the optimiser's kind and restores its
/// step counter and learning rate (data_error when the checkpoint has none or another kind).
template <class T, class Optimizer,
          class = std::enable_if_t<detail::is_optimizer<Optimizer>::value>>
checkpoint_info load_checkpoint(const std::string& path, sequential<T>& net, Optimizer& opt,
                                rng& g) {
  // Validate the optimiser metadata before touching anything.
  const io::safetensors_file f = io::read_safetensors(path);
  auto kind = f.metadata.find("shatter.optimizer");
  require<data_error>(kind != f.metadata.end(), path,
                      ": checkpoint has no optimiser record (saved without an optimiser object)");
  require<data_error>(kind->second == opt.kind(), path, ": checkpoint was saved with optimiser '",
                      kind->second, "', not '", opt.kind(),
                      "' (the state of one kind does not fit the other)");
  const std::int64_t steps = detail::metadata_int(f.metadata, "shatter.optimizer.steps", path);
  require<data_error>(steps >= 0, path, ": negative optimiser step counter ", steps);
  auto lr_it = f.metadata.find("shatter.optimizer.lr");
  require<data_error>(lr_it != f.metadata.end(), path, ": no \"shatter.optimizer.lr\"");
  char* end = nullptr;
  const double lr = std::strtod(lr_it->second.c_str(), &end);
  require<data_error>(end && *end == '\0' && !lr_it->second.empty() && std::isfinite(lr) && lr >= 0,
                      path, ": invalid learning rate \"", lr_it->second, "\"");
  checkpoint_info info = detail::load_checkpoint_impl(f, path, net, opt.state(), g);
  opt.set_steps(steps);
  opt.set_learning_rate(lr);
  return info;
}

}  // namespace shatter

#endif  // SHATTER_IO_CHECKPOINT_HPP
