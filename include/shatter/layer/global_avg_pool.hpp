// shatter: global average pooling of each channel of an image.
#ifndef SHATTER_LAYER_GLOBAL_AVG_POOL_HPP
#define SHATTER_LAYER_GLOBAL_AVG_POOL_HPP

#include "shatter/layer/image_shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Global average pooling: y(c) = (1 / (H W)) sum_{i, j} x(c, i, j), mapping C x H x W images
/// (channel-major columns) to C features. Linear, so it keeps a looks-linear network linear, and
/// it commutes with CReLU's channel stacking: pooling [relu(z); relu(-z)] gives the pooled halves.
template <class T>
class global_avg_pool final : public layer<T> {
 public:
  /// Pools `in`-shaped images (all extents >= 1).
  explicit global_avg_pool(image_shape in) : in_(in) { in.check("global_avg_pool"); }

  std::string kind() const override { return "global_avg_pool"; }
  std::string describe() const override {
    return detail::cat("global_avg_pool(", in_.str(), " -> ", in_.channels, ")");
  }
  index in_size() const override { return in_.size(); }
  index out_size() const override { return in_.channels; }
  const image_shape& input_shape() const { return in_; }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    const index P = in_.spatial();
    this->y_.resize(in_.channels, x.cols());
    for (index s = 0; s < x.cols(); ++s)
      this->y_.col(s) = Eigen::Map<const matrix<T>>(x.col(s).data(), P, in_.channels)
                            .colwise()
                            .mean()
                            .transpose();
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    const index P = in_.spatial();
    const T scale = T(1) / T(P);
    this->dx_.resize(in_.size(), dy.cols());
    for (index s = 0; s < dy.cols(); ++s)
      for (index c = 0; c < in_.channels; ++c)
        this->dx_.col(s).segment(c * P, P).setConstant(dy(c, s) * scale);
    return this->dx_;
  }

  std::unique_ptr<layer<T>> clone() const override {
    return std::make_unique<global_avg_pool>(*this);
  }

 private:
  image_shape in_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_GLOBAL_AVG_POOL_HPP
