// shatter: per-channel normalisation of image data sets.
#ifndef SHATTER_DATA_NORMALIZE_HPP
#define SHATTER_DATA_NORMALIZE_HPP

#include <cmath>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/shape.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// Mean and standard deviation of each channel over all images and pixels.
struct channel_stats {
  std::vector<double> mean, stddev;
};

/// Per-channel mean and (population) standard deviation of the images in x (one `shape` image
/// per column), accumulated in double. Throws shape_error when x's rows are not shape.size().
template <class T>
channel_stats channel_statistics(const matrix<T>& x, const image_shape& shape) {
  require<shape_error>(x.rows() == shape.size() && x.cols() >= 1, "channel_statistics: expected ",
                       shape.str(), " = ", shape.size(), " rows and at least one image, got ",
                       x.rows(), " x ", x.cols());
  channel_stats s;
  const index P = shape.spatial();
  for (index c = 0; c < shape.channels; ++c) {
    const auto block = x.middleRows(c * P, P).template cast<double>();
    const double m = block.mean();
    const double var = (block.array() - m).square().mean();
    s.mean.push_back(m);
    s.stddev.push_back(std::sqrt(var));
  }
  return s;
}

/// x(c, ., .) <- (x(c, ., .) - mean_c) / stddev_c for every image in x. Use the training set's
/// statistics for the test set too. shape_error on mismatched sizes; config_error on a zero or
/// non-finite standard deviation.
template <class T>
void normalize_channels(matrix<T>& x, const image_shape& shape, const channel_stats& s) {
  require<shape_error>(x.rows() == shape.size(), "normalize_channels: expected ", shape.size(),
                       " rows (", shape.str(), "), got ", x.rows());
  require<shape_error>(
      static_cast<index>(s.mean.size()) == shape.channels && s.stddev.size() == s.mean.size(),
      "normalize_channels: statistics for ", s.mean.size(), " channels, images have ",
      shape.channels);
  const index P = shape.spatial();
  for (index c = 0; c < shape.channels; ++c) {
    require<config_error>(std::isfinite(s.stddev[c]) && s.stddev[c] > 0,
                          "normalize_channels: channel ", c, " has standard deviation ",
                          s.stddev[c]);
    x.middleRows(c * P, P).array() =
        (x.middleRows(c * P, P).array() - T(s.mean[c])) * T(1 / s.stddev[c]);
  }
}

}  // namespace shatter

#endif  // SHATTER_DATA_NORMALIZE_HPP
