// shatter: flatten, the identity between image layers and dense layers.
#ifndef SHATTER_LAYER_FLATTEN_HPP
#define SHATTER_LAYER_FLATTEN_HPP

#include "shatter/core/shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Flatten: views C x H x W images as C H W features. Because shatter already stores every image
/// as one channel-major column, this is the identity (y = x, dx = dy) on values; it changes the
/// sample shape to C H W x 1 x 1 and checks the image shape. Backward reads nothing.
template <class T>
class flatten final : public layer<T> {
 public:
  /// Flattens `in`-shaped images.
  explicit flatten(image_shape in) : in_(in) { in.check("flatten"); }

  std::string kind() const override { return "flatten"; }
  std::string describe() const override {
    return detail::cat("flatten(", in_.str(), " -> ", in_.size(), ")");
  }
  image_shape input_shape() const override { return in_; }
  image_shape output_shape() const override { return {in_.size(), 1, 1}; }
  backward_reads reads() const override { return {}; }
  bool replayable() const override { return true; }
  bool in_place() const override { return true; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode, const kernel_env<T>&) override {
    this->check_input(x.rows(), x.cols());
    y = x;
  }
  void backward_kernel(const_batch_view<T>, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool, const kernel_env<T>&) override {
    if (dx.size() > 0) dx = dy;
  }
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>&) override {
    y = x;
    dy = dx;
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<flatten>(*this); }

 private:
  image_shape in_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_FLATTEN_HPP
