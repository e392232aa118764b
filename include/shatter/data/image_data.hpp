// shatter: what the image loaders (Fashion-MNIST, CIFAR-10) take and return.
#ifndef SHATTER_DATA_IMAGE_DATA_HPP
#define SHATTER_DATA_IMAGE_DATA_HPP

#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/shape.hpp"
#include "shatter/core/types.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/data/normalize.hpp"

namespace shatter {

/// How a loader normalises the images.
enum class normalization {
  none,        ///< raw values, pixels in [0, 1]
  standardize  ///< per channel: (x - mean_c) / stddev_c with the training set's statistics
};

/// Options every image loader takes.
struct load_options {
  index train_limit = -1;  ///< read only the first N training images (-1: all)
  index test_limit = -1;   ///< read only the first N test images (-1: all)
  normalization normalize = normalization::none;  ///< applied to both sets
};

/// A labelled image data set as the loaders return it: training and test sets (one flattened
/// image per column, channel-major), the image shape, the class names and the per-channel
/// statistics of the training images (computed whether or not they were applied).
template <class T>
struct image_data {
  dataset<T> train, test;
  image_shape shape;                 ///< one image: channels x height x width
  std::vector<std::string> classes;  ///< class names, one per label
  channel_stats statistics;          ///< per-channel mean and stddev of the training images
};

namespace detail {
/// Checks the options' limits (config_error naming `who` for one below -1).
inline void check_load_options(const load_options& o, const char* who) {
  require<config_error>(o.train_limit >= -1 && o.test_limit >= -1, who,
                        ": train_limit and test_limit must be >= 0 (or -1: all), got ",
                        o.train_limit, " and ", o.test_limit);
}
/// Computes the training statistics and applies the options' normalisation to both sets.
template <class T>
void finish_image_data(image_data<T>& d, const load_options& o) {
  if (d.train.empty()) return;
  d.statistics = channel_statistics(d.train.x, d.shape);
  if (o.normalize == normalization::standardize) {
    normalize_channels(d.train.x, d.shape, d.statistics);
    if (!d.test.empty()) normalize_channels(d.test.x, d.shape, d.statistics);
  }
}
}  // namespace detail

}  // namespace shatter

#endif  // SHATTER_DATA_IMAGE_DATA_HPP
