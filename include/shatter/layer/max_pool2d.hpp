// shatter: 2-D max pooling over channel-major image columns.
#ifndef SHATTER_LAYER_MAX_POOL2D_HPP
#define SHATTER_LAYER_MAX_POOL2D_HPP

#include <limits>
#include <vector>

#include "shatter/layer/image_shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Max pooling: y(c, i, j) = max_{0 <= u, v < k} x(c, i s + u, j s + v) over k x k windows with
/// stride s (no padding; output extent (H - k) / s + 1). The gradient goes to the first maximal
/// entry of each window (ties broken by scan order, rows then columns).
template <class T>
class max_pool2d final : public layer<T> {
 public:
  /// Pools `in`-shaped images with a `kernel` x `kernel` window (kernel <= H, W) and `stride`
  /// (default: kernel, non-overlapping windows).
  max_pool2d(image_shape in, index kernel, index stride = 0)
      : in_(in), k_(kernel), stride_(stride == 0 ? kernel : stride) {
    in.check("max_pool2d");
    require<config_error>(kernel >= 1 && stride >= 0,
                          "max_pool2d: need kernel >= 1 and stride "
                          ">= 1, got kernel ",
                          kernel, ", stride ", stride);
    require<config_error>(kernel <= in.height && kernel <= in.width, "max_pool2d: a ", kernel,
                          " x ", kernel, " window does not fit a ", in.str(), " input");
    out_ = {in.channels, (in.height - k_) / stride_ + 1, (in.width - k_) / stride_ + 1};
  }

  std::string kind() const override { return "max_pool2d"; }
  std::string describe() const override {
    return detail::cat("max_pool2d(", in_.str(), " -> ", out_.str(), ", ", k_, "x", k_, ", stride ",
                       stride_, ")");
  }
  index in_size() const override { return in_.size(); }
  index out_size() const override { return out_.size(); }
  const image_shape& input_shape() const { return in_; }
  const image_shape& output_shape() const { return out_; }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    const index n = x.cols(), H = in_.height, W = in_.width, Ho = out_.height, Wo = out_.width;
    this->y_.resize(out_.size(), n);
    arg_.resize(std::size_t(out_.size() * n));
    for (index s = 0; s < n; ++s) {
      const T* img = x.col(s).data();
      T* out = this->y_.col(s).data();
      index* arg = arg_.data() + s * out_.size();
      for (index c = 0; c < in_.channels; ++c)
        for (index i = 0; i < Ho; ++i)
          for (index j = 0; j < Wo; ++j) {
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
            const index o = (c * Ho + i) * Wo + j;
            out[o] = best;
            arg[o] = where;
          }
    }
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    this->dx_.setZero(in_.size(), dy.cols());
    for (index s = 0; s < dy.cols(); ++s) {
      const index* arg = arg_.data() + s * out_.size();
      for (index o = 0; o < out_.size(); ++o) this->dx_(arg[o], s) += dy(o, s);
    }
    return this->dx_;
  }

  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<max_pool2d>(*this); }

 private:
  image_shape in_, out_;
  index k_, stride_;
  std::vector<index> arg_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_MAX_POOL2D_HPP
