// shatter: 2-D max pooling over channel-major image columns.
#ifndef SHATTER_LAYER_MAX_POOL2D_HPP
#define SHATTER_LAYER_MAX_POOL2D_HPP

#include <limits>

#include "shatter/core/shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Max pooling: y(c, i, j) = max_{0 <= u, v < k} x(c, i s + u, j s + v) over k x k windows with
/// stride s (no padding; output extent (H - k) / s + 1). The gradient (and the tangent) goes to
/// the first maximal entry of each window (ties broken by scan order, rows then columns).
/// Backward reads the input and finds the maxima again. Thread safety: see layer.
template <class T>
class max_pool2d final : public layer<T> {
 public:
  /// Pools `in`-shaped images with a `kernel` x `kernel` window (kernel <= H, W) and `stride`
  /// (default: kernel, non-overlapping windows).
  max_pool2d(image_shape in, index kernel, index stride = 0)
      : in_(in), k_(kernel), stride_(stride == 0 ? kernel : stride) {
    in.check("max_pool2d");
    require<config_error>(kernel >= 1 && stride >= 0,
                          "max_pool2d: need kernel >= 1 and stride >= 1, got kernel ", kernel,
                          ", stride ", stride);
    require<config_error>(kernel <= in.height && kernel <= in.width, "max_pool2d: a ", kernel,
                          " x ", kernel, " window does not fit a ", in.str(), " input");
    out_ = {in.channels, (in.height - k_) / stride_ + 1, (in.width - k_) / stride_ + 1};
  }

  std::string kind() const override { return "max_pool2d"; }
  /// Window size and stride.
  index kernel() const { return k_; }
  index stride() const { return stride_; }
  std::string describe() const override {
    return detail::cat("max_pool2d(", in_.str(), " -> ", out_.str(), ", ", k_, "x", k_, ", stride ",
                       stride_, ")");
  }
  image_shape input_shape() const override { return in_; }
  image_shape output_shape() const override { return out_; }
  backward_reads reads() const override { return {true, false}; }
  bool replayable() const override { return true; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode, const kernel_env<T>&) override {
    this->check_input(x.rows(), x.cols());
    for (index s = 0; s < x.cols(); ++s)
      for (index o = 0; o < out_.size(); ++o) y(o, s) = x(argmax(x.col(s).data(), o), s);
  }
  void backward_kernel(const_batch_view<T> x, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool, const kernel_env<T>&) override {
    if (dx.size() == 0) return;
    dx.setZero();
    for (index s = 0; s < dy.cols(); ++s)
      for (index o = 0; o < out_.size(); ++o) dx(argmax(x.col(s).data(), o), s) += dy(o, s);
  }
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>&) override {
    this->check_input(x.rows(), x.cols());
    for (index s = 0; s < x.cols(); ++s)
      for (index o = 0; o < out_.size(); ++o) {
        const index a = argmax(x.col(s).data(), o);
        y(o, s) = x(a, s);
        dy(o, s) = dx(a, s);
      }
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<max_pool2d>(*this); }

 private:
  /// Row of the first maximum of output o's window in the image img.
  index argmax(const T* img, index o) const {
    const index H = in_.height, W = in_.width, Ho = out_.height, Wo = out_.width;
    const index c = o / (Ho * Wo), i = (o / Wo) % Ho, j = o % Wo;
    T best = -std::numeric_limits<T>::infinity();
    index where = c * H * W + (i * stride_) * W + j * stride_;
    for (index u = 0; u < k_; ++u)
      for (index v = 0; v < k_; ++v) {
        const index p = c * H * W + (i * stride_ + u) * W + j * stride_ + v;
        if (img[p] > best) {
          best = img[p];
          where = p;
        }
      }
    return where;
  }

  image_shape in_, out_;
  index k_, stride_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_MAX_POOL2D_HPP
