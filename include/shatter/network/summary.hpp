// shatter: a model summary table (layer, output shape, parameters, total) that prints with <<.
#ifndef SHATTER_NETWORK_SUMMARY_HPP
#define SHATTER_NETWORK_SUMMARY_HPP

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "shatter/core/shape.hpp"
#include "shatter/core/tensor_ref.hpp"
#include "shatter/core/types.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// One row of a model summary: a layer with kernels (a leaf of the network).
struct summary_row {
  std::string path;      ///< its name in parameter paths ("3", "7.branch.1"; "" for a lone layer)
  std::string layer;     ///< its description, e.g. "dense(512 -> 10, bias)"
  image_shape output;    ///< the shape of one output sample
  index parameters = 0;  ///< trainable scalars it owns
};

/// A network's layers in forward order with their output shapes and parameter counts, and the
/// total. Prints as a table with operator<<.
struct model_summary {
  std::vector<summary_row> rows;  ///< one per leaf layer, depth-first through containers
  index total_parameters = 0;     ///< sum of rows[i].parameters
  index buffer_scalars = 0;       ///< non-trainable state (batch-norm running statistics)
};

/// The summary of `net`: every leaf in forward order (for_each_leaf), its output shape, and its
/// trainable scalars (the sizes of the parameters it collects); the total is their sum, equal to
/// the number of scalars in net.parameters(). Shortcut layers of branch_sum blocks appear with
/// their paths; containers themselves own no parameters and get no row.
template <class T>
model_summary summary(layer<T>& net) {
  model_summary s;
  for_each_leaf(net, [&s](layer<T>& l, const std::string& path) {
    std::vector<tensor_ref<T>> params, buffers;
    l.collect_parameters("", params);
    l.collect_buffers("", buffers);
    summary_row r{path, l.describe(), l.output_shape(), 0};
    for (const auto& p : params) r.parameters += p.value->size();
    for (const auto& b : buffers) s.buffer_scalars += b.value->size();
    s.total_parameters += r.parameters;
    s.rows.push_back(std::move(r));
  });
  return s;
}

namespace detail {
/// "10" for a feature vector (n x 1 x 1), "16 x 32 x 32" (channels x height x width) for images.
inline std::string shape_text(const image_shape& s) {
  return s.height == 1 && s.width == 1 ? std::to_string(s.channels) : s.str();
}
/// n with thousands separated by commas: 1234567 -> "1,234,567".
inline std::string grouped(index n) {
  std::string d = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return n < 0 ? "-" + out : out;
}
}  // namespace detail

/// The table: a header line, one line per layer (name, layer, output shape, parameters; columns
/// as wide as their longest entry, two spaces apart, numbers right-aligned), and the totals:
///   name  layer                output  parameters
///   0     dense(4 -> 3, bias)       3          15
///   ...
///   total parameters: 29 (buffers: 0 scalars)
inline std::ostream& operator<<(std::ostream& os, const model_summary& s) {
  std::vector<std::vector<std::string>> cells{{"name", "layer", "output", "parameters"}};
  for (const auto& r : s.rows)
    cells.push_back({r.path.empty() ? "-" : r.path, r.layer, detail::shape_text(r.output),
                     detail::grouped(r.parameters)});
  std::size_t w[4] = {0, 0, 0, 0};
  for (const auto& row : cells)
    for (std::size_t c = 0; c < 4; ++c) w[c] = std::max(w[c], row[c].size());
  for (const auto& row : cells) {
    std::string line;
    for (std::size_t c = 0; c < 4; ++c) {
      const std::string pad(w[c] - row[c].size(), ' ');
      line += c < 2 ? row[c] + pad : pad + row[c];
      if (c < 3) line += "  ";
    }
    os << line << '\n';
  }
  return os << "total parameters: " << detail::grouped(s.total_parameters)
            << " (buffers: " << detail::grouped(s.buffer_scalars) << " scalars)\n";
}

}  // namespace shatter

#endif  // SHATTER_NETWORK_SUMMARY_HPP
