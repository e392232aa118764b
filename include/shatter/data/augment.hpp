// shatter: image augmentation for training (random crop with padding, horizontal flip).
#ifndef SHATTER_DATA_AUGMENT_HPP
#define SHATTER_DATA_AUGMENT_HPP

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/shape.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// The standard CIFAR augmentation, per image (column) of `src`, into `dst` (resized):
/// pad the image with `pad` zero pixels on every side, crop a random H x W window (offsets
/// uniform in [0, 2 pad]) and, when `flip`, mirror it left-right with probability 1/2.
/// Zero is the padding value of the data as given, i.e. the channel mean once the images are
/// normalised. Random numbers come from `g` only (3 draws per image: row offset, column offset,
/// flip), so a seed fixes the result on every platform. `dst` must not alias `src`.
template <class T>
void random_crop_flip(const matrix<T>& src, matrix<T>& dst, const image_shape& shape, index pad,
                      bool flip, rng& g) {
  require<shape_error>(src.rows() == shape.size(), "random_crop_flip: expected ", shape.size(),
                       " rows (", shape.str(), "), got ", src.rows());
  require<config_error>(pad >= 0, "random_crop_flip: padding must be >= 0, got ", pad);
  require<config_error>(&src != &dst, "random_crop_flip: dst must not alias src");
  const index H = shape.height, W = shape.width;
  dst.resize(src.rows(), src.cols());
  for (index s = 0; s < src.cols(); ++s) {
    const index dy = static_cast<index>(g.below(static_cast<std::uint64_t>(2 * pad + 1))) - pad;
    const index dx = static_cast<index>(g.below(static_cast<std::uint64_t>(2 * pad + 1))) - pad;
    const bool mirror = flip && g.below(2) == 1;
    const T* in = src.col(s).data();
    T* out = dst.col(s).data();
    for (index c = 0; c < shape.channels; ++c)
      for (index i = 0; i < H; ++i) {
        const index iy = i + dy;
        T* row = out + (c * H + i) * W;
        if (iy < 0 || iy >= H) {
          for (index j = 0; j < W; ++j) row[j] = T(0);
          continue;
        }
        const T* srow = in + (c * H + iy) * W;
        for (index j = 0; j < W; ++j) {
          const index ix = (mirror ? W - 1 - j : j) + dx;
          row[j] = ix >= 0 && ix < W ? srow[ix] : T(0);
        }
      }
  }
}

}  // namespace shatter

#endif  // SHATTER_DATA_AUGMENT_HPP
