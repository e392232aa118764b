// shatter: training checkpoints (parameters, buffers, optimiser and RNG state) as safetensors.
#ifndef SHATTER_IO_CHECKPOINT_HPP
#define SHATTER_IO_CHECKPOINT_HPP

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/io/safetensors.hpp"
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

/// Checkpoint file layout (a plain safetensors file, so PyTorch's `safetensors.torch.load_file`
/// reads it; the network's names match an `nn.Sequential` state_dict):
/// - "<i>.weight", "<i>.bias", ... : the network's parameters (`net.parameters()`), dense weights
///   as [out, in] row-major, biases and other single-column tensors 1-D;
/// - "<i>.running_mean", "<i>.running_var": the buffers (`net.buffers()`);
/// - "optimizer.<name>": each optimiser state tensor, e.g. "optimizer.momentum.0.weight";
/// - "rng.state": U64 [6], the RNG's `state()`;
/// all in F32 (float networks) or F64 (double). Metadata: "shatter.format" =
/// checkpoint_format, "shatter.version", "shatter.architecture" (the layers' descriptions,
/// "; "-separated), "shatter.epoch", "shatter.step", "shatter.scalar", and with an optimiser
/// object "shatter.optimizer", "shatter.optimizer.steps", "shatter.optimizer.lr"; then the user's
/// own keys (which must not start with "shatter.").
inline constexpr const char* checkpoint_format = "shatter-checkpoint-1";

namespace detail {

/// "dense(1 -> 8, bias); crelu(8 -> 16); ..." for the top-level layers of a network.
template <class T>
std::string architecture_of(const sequential<T>& net) {
  std::string s;
  for (std::size_t i = 0; i < net.size(); ++i) s += (i ? "; " : "") + net[i].describe();
  return s;
}

/// The tensors a checkpoint of (net, optimizer state) holds, with their file names.
template <class T>
std::vector<std::pair<std::string, matrix<T>*>> checkpoint_tensors(
    sequential<T>& net, const std::vector<tensor_ref<T>>& optimizer_state) {
  std::vector<std::pair<std::string, matrix<T>*>> out;
  for (auto& p : net.parameters()) out.emplace_back(p.name, p.value);
  for (auto& b : net.buffers()) out.emplace_back(b.name, b.value);
  for (const auto& s : optimizer_state) {
    require<config_error>(s.value != nullptr, "checkpoint: optimizer state '", s.name,
                          "' has no value");
    out.emplace_back("optimizer." + s.name, s.value);
  }
  std::set<std::string> seen{"rng.state"};
  for (const auto& t : out)
    require<config_error>(seen.insert(t.first).second, "checkpoint: two tensors named '", t.first,
                          "'");
  return out;
}

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

template <class T>
void save_checkpoint_impl(const std::string& path, sequential<T>& net,
                          const std::vector<tensor_ref<T>>& optimizer_state, const rng& g,
                          std::int64_t epoch, std::int64_t step,
                          const std::map<std::string, std::string>& user_metadata,
                          const std::map<std::string, std::string>& extra) {
  require<config_error>(epoch >= 0 && step >= 0,
                        "save_checkpoint: epoch and step must be >= 0, got ", epoch, " and ", step);
  io::safetensors_file f;
  for (const auto& kv : user_metadata) {
    require<config_error>(kv.first.rfind("shatter.", 0) != 0, "save_checkpoint: metadata key '",
                          kv.first,
                          "' is reserved (keys starting with \"shatter.\" are the "
                          "library's)");
    f.metadata[kv.first] = kv.second;
  }
  f.metadata["shatter.format"] = checkpoint_format;
  f.metadata["shatter.version"] = version;
  f.metadata["shatter.architecture"] = architecture_of(net);
  f.metadata["shatter.scalar"] = std::is_same_v<T, float> ? "float" : "double";
  f.metadata["shatter.epoch"] = std::to_string(epoch);
  f.metadata["shatter.step"] = std::to_string(step);
  for (const auto& kv : extra) f.metadata[kv.first] = kv.second;
  for (const auto& t : checkpoint_tensors(net, optimizer_state))
    f.tensors[t.first] = io::to_tensor(*t.second);
  const auto st = g.state();
  f.tensors["rng.state"] = io::to_tensor(std::vector<std::uint64_t>(st.begin(), st.end()));
  io::write_safetensors(path, f);
}

template <class T>
checkpoint_info load_checkpoint_impl(const io::safetensors_file& f, const std::string& path,
                                     sequential<T>& net,
                                     const std::vector<tensor_ref<T>>& optimizer_state, rng& g) {
  const auto& md = f.metadata;
  auto fmt = md.find("shatter.format");
  require<data_error>(fmt != md.end() && fmt->second == checkpoint_format, path,
                      ": not a shatter checkpoint (metadata \"shatter.format\" is ",
                      fmt == md.end() ? "missing" : "\"" + fmt->second + "\"", ", expected \"",
                      checkpoint_format, "\")");
  const std::string arch = architecture_of(net);
  auto a = md.find("shatter.architecture");
  require<data_error>(a != md.end(), path, ": checkpoint has no \"shatter.architecture\"");
  if (a->second != arch) {
    // Name the first layer that differs.
    std::size_t i = 0, layer = 0;
    while (i < arch.size() && i < a->second.size() && arch[i] == a->second[i]) {
      if (arch[i] == ';') ++layer;
      ++i;
    }
    throw data_error(cat(path,
                         ": checkpoint was written for another network (first difference at "
                         "layer ",
                         layer, "):\n  checkpoint: ", a->second, "\n  network:    ", arch));
  }
  checkpoint_info info;
  info.epoch = metadata_int(md, "shatter.epoch", path);
  info.step = metadata_int(md, "shatter.step", path);
  require<data_error>(info.epoch >= 0 && info.step >= 0, path, ": checkpoint metadata \"shatter.",
                      info.epoch < 0 ? "epoch\" = " : "step\" = ",
                      info.epoch < 0 ? info.epoch : info.step, " is negative");
  info.metadata = md;

  // Check everything first, so that a refused file leaves the network untouched.
  const auto wanted = checkpoint_tensors(net, optimizer_state);
  const io::dtype dt = io::dtype_of<T>();
  for (const auto& w : wanted) {
    auto it = f.tensors.find(w.first);
    require<data_error>(it != f.tensors.end(), path, ": tensor '", w.first,
                        "' is missing from the checkpoint");
    const io::tensor& t = it->second;
    require<data_error>(t.type == dt, path, ": tensor '", w.first, "' is stored as ",
                        io::dtype_name(t.type), " but the network uses ", io::dtype_name(dt));
    const auto shape = io::shape_of(*w.second);
    require<data_error>(t.shape == shape, path, ": tensor '", w.first, "' has shape ",
                        io::detail::shape_text(t.shape), " in the checkpoint but ",
                        io::detail::shape_text(shape), " in the network");
  }
  auto r = f.tensors.find("rng.state");
  require<data_error>(r != f.tensors.end(), path, ": tensor 'rng.state' is missing");
  require<data_error>(
      r->second.type == io::dtype::U64 && r->second.shape == std::vector<std::int64_t>{6}, path,
      ": tensor 'rng.state' must be U64 [6], is ", io::dtype_name(r->second.type), " ",
      io::detail::shape_text(r->second.shape));
  require<data_error>(f.tensors.size() == wanted.size() + 1, [&] {
    std::set<std::string> known{"rng.state"};
    for (const auto& w : wanted) known.insert(w.first);
    std::string extra;
    for (const auto& kv : f.tensors)
      if (!known.count(kv.first)) extra += (extra.empty() ? "'" : ", '") + kv.first + "'";
    return cat(path, ": the checkpoint has tensors the network and optimiser do not: ", extra);
  }());

  for (const auto& w : wanted) *w.second = io::to_matrix<T>(f.tensors.at(w.first), w.first);
  const auto words = io::to_vector<std::uint64_t>(r->second, "rng.state");
  std::array<std::uint64_t, 6> st{};
  for (std::size_t i = 0; i < 6; ++i) st[i] = words[i];
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
/// truncation), a shatter checkpoint for the same architecture (the layers' descriptions match)
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
                      kind->second, "', not '", opt.kind(), "'");
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
