// shatter: an in-memory labelled data set (features x samples matrix plus class labels).
#ifndef SHATTER_DATA_DATASET_HPP
#define SHATTER_DATA_DATASET_HPP

#include <cstdint>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// Class labels, one per sample, each in [0, classes).
using label_vector = std::vector<std::int32_t>;

/// A labelled data set held in memory: `x` is features x samples (one sample per column, the
/// library's batch layout) and `labels[j]` is the class of column j, in [0, classes).
/// Invariant (checked by `validate`): labels.size() == x.cols() and every label in range.
template <class T>
struct dataset {
  matrix<T> x;          ///< features x samples
  label_vector labels;  ///< one class per column of x
  index classes = 10;   ///< number of classes (labels lie in [0, classes))

  /// Number of samples.
  index size() const { return x.cols(); }
  /// Features per sample.
  index features() const { return x.rows(); }
  bool empty() const { return x.cols() == 0; }

  /// Throws data_error naming `what` unless the invariant holds.
  void validate(const std::string& what = "dataset") const {
    require<data_error>(classes >= 1, what, ": number of classes must be >= 1, got ", classes);
    require<data_error>(static_cast<index>(labels.size()) == x.cols(), what, ": ", labels.size(),
                        " labels for ", x.cols(), " samples (columns)");
    for (std::size_t j = 0; j < labels.size(); ++j)
      require<data_error>(labels[j] >= 0 && labels[j] < classes, what, ": label ", labels[j],
                          " of sample ", j, " is outside [0, ", classes, ")");
  }

  /// The first n samples (all if n >= size()), e.g. for quick runs.
  dataset head(index n) const {
    require<config_error>(n >= 0, "dataset::head: n must be >= 0, got ", n);
    if (n >= size()) return *this;
    dataset d;
    d.x = x.leftCols(n);
    d.labels.assign(labels.begin(), labels.begin() + n);
    d.classes = classes;
    return d;
  }
};

}  // namespace shatter

#endif  // SHATTER_DATA_DATASET_HPP
