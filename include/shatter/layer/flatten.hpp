// shatter: flatten, the identity between image layers and dense layers.
#ifndef SHATTER_LAYER_FLATTEN_HPP
#define SHATTER_LAYER_FLATTEN_HPP

#include "shatter/layer/image_shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Flatten: views C x H x W images as C H W features. Because shatter already stores every image
/// as one channel-major column, this is the identity (y = x, dx = dy); a dense layer may follow a
/// convolution directly. The layer exists to document that step and to check the image size.
template <class T>
class flatten final : public layer<T> {
 public:
  /// Flattens `in`-shaped images.
  explicit flatten(image_shape in) : in_(in) { in.check("flatten"); }

  std::string kind() const override { return "flatten"; }
  std::string describe() const override {
    return detail::cat("flatten(", in_.str(), " -> ", in_.size(), ")");
  }
  index in_size() const override { return in_.size(); }
  index out_size() const override { return in_.size(); }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    this->y_ = x;
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    this->dx_ = dy;
    return this->dx_;
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<flatten>(*this); }

 private:
  image_shape in_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_FLATTEN_HPP
