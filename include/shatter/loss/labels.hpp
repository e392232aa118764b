// shatter: checking a batch's class labels against a classes x samples output.
#ifndef SHATTER_LOSS_LABELS_HPP
#define SHATTER_LOSS_LABELS_HPP

#include <cstddef>
#include <cstdint>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

namespace detail {
/// Checks that `labels` has one entry per column of a k x n output and every entry is in [0, k).
template <class T>
void check_labels(const matrix<T>& out, const std::vector<std::int32_t>& labels, const char* who) {
  require<shape_error>(out.cols() >= 1, who, ": empty batch (0 columns)");
  require<shape_error>(static_cast<index>(labels.size()) == out.cols(), who, ": ", labels.size(),
                       " labels for a batch of ", out.cols(),
                       " samples (one sample per column of the ", out.rows(), " x ", out.cols(),
                       " output)");
  for (std::size_t j = 0; j < labels.size(); ++j)
    require<data_error>(labels[j] >= 0 && labels[j] < out.rows(), who, ": label ", labels[j],
                        " of sample ", j, " is outside [0, ", out.rows(), ") (the output has ",
                        out.rows(), " classes)");
}
}  // namespace detail

}  // namespace shatter

#endif  // SHATTER_LOSS_LABELS_HPP
