// shatter: global average pooling of each channel of an image.
#ifndef SHATTER_LAYER_GLOBAL_AVG_POOL_HPP
#define SHATTER_LAYER_GLOBAL_AVG_POOL_HPP

#include "shatter/core/shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Global average pooling: y(c) = (1 / (H W)) sum_{i, j} x(c, i, j), mapping C x H x W images
/// (channel-major columns) to C features. Linear, so it keeps a looks-linear network linear, and
/// it commutes with CReLU's channel stacking: pooling [relu(z); relu(-z)] gives the pooled halves.
/// Backward reads nothing. Thread safety: see layer.
template <class T>
class global_avg_pool final : public layer<T> {
 public:
  /// Pools `in`-shaped images (all extents >= 1).
  explicit global_avg_pool(image_shape in) : in_(in) { in.check("global_avg_pool"); }

  std::string kind() const override { return "global_avg_pool"; }
  std::string describe() const override {
    return detail::cat("global_avg_pool(", in_.str(), " -> ", in_.channels, ")");
  }
  image_shape input_shape() const override { return in_; }
  image_shape output_shape() const override { return {in_.channels, 1, 1}; }
  backward_reads reads() const override { return {}; }
  bool replayable() const override { return true; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode, const kernel_env<T>&) override {
    this->check_input(x.rows(), x.cols());
    const index P = in_.spatial();
    for (index s = 0; s < x.cols(); ++s)
      y.col(s) = Eigen::Map<const matrix<T>>(x.col(s).data(), P, in_.channels)
                     .colwise()
                     .mean()
                     .transpose();
  }
  void backward_kernel(const_batch_view<T>, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool, const kernel_env<T>&) override {
    if (dx.size() == 0) return;
    const index P = in_.spatial();
    const T scale = T(1) / T(P);
    for (index s = 0; s < dy.cols(); ++s)
      for (index c = 0; c < in_.channels; ++c)
        dx.col(s).segment(c * P, P).setConstant(dy(c, s) * scale);
  }
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    forward_kernel(x, y, mode::eval, env);
    forward_kernel(dx, dy, mode::eval, env);
  }
  std::unique_ptr<layer<T>> clone() const override {
    return std::make_unique<global_avg_pool>(*this);
  }

 private:
  image_shape in_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_GLOBAL_AVG_POOL_HPP
