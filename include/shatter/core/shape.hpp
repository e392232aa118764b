// shatter: the shape of one sample (channels x height x width) in a batch column.
#ifndef SHATTER_CORE_SHAPE_HPP
#define SHATTER_CORE_SHAPE_HPP

#include <string>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// Shape of an image sample stored as one batch column, flattened channel-major: entry
/// (c, y, x) sits at row c * height * width + y * width + x. Used by convolution and pooling.
struct image_shape {
  index channels = 1;
  index height = 1;
  index width = 1;

  /// Rows one sample occupies: channels * height * width.
  index size() const { return channels * height * width; }
  /// Positions per channel: height * width.
  index spatial() const { return height * width; }
  /// "C x H x W".
  std::string str() const { return detail::cat(channels, " x ", height, " x ", width); }
  /// Throws config_error naming `who` unless every extent is >= 1.
  void check(const std::string& who) const {
    require<config_error>(channels >= 1 && height >= 1 && width >= 1, who,
                          ": image extents must be >= 1, got ", str());
  }
};

inline bool operator==(const image_shape& a, const image_shape& b) {
  return a.channels == b.channels && a.height == b.height && a.width == b.width;
}
inline bool operator!=(const image_shape& a, const image_shape& b) {
  return !(a == b);
}

}  // namespace shatter

#endif  // SHATTER_CORE_SHAPE_HPP
