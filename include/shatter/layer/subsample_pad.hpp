// shatter: the parameter-free downsampling shortcut of CIFAR resnets ("option A").
#ifndef SHATTER_LAYER_SUBSAMPLE_PAD_HPP
#define SHATTER_LAYER_SUBSAMPLE_PAD_HPP

#include "shatter/core/shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Identity shortcut that changes shape without parameters (He et al. 2016, option A):
/// y(c, i, j) = x(c, i s, j s) for c < C_in and 0 for the added channels C_in <= c < C_out.
/// Linear; backward reads nothing.
template <class T>
class subsample_pad final : public layer<T> {
 public:
  /// From `in`-shaped images to `out_channels >= in.channels` channels, keeping every
  /// `stride`-th row and column (output extent (H - 1) / s + 1, like a 1x1 stride-s conv).
  subsample_pad(image_shape in, index out_channels, index stride) : in_(in), stride_(stride) {
    in.check("subsample_pad");
    require<config_error>(stride >= 1 && out_channels >= in.channels,
                          "subsample_pad: need stride >= 1 and out_channels >= in channels, got "
                          "stride ",
                          stride, ", ", in.channels, " -> ", out_channels, " channels");
    out_ = {out_channels, (in.height - 1) / stride + 1, (in.width - 1) / stride + 1};
  }
  std::string kind() const override { return "subsample_pad"; }
  /// Keeps every stride()-th row and column.
  index stride() const { return stride_; }
  std::string describe() const override {
    return detail::cat("subsample_pad(", in_.str(), " -> ", out_.str(), ")");
  }
  image_shape input_shape() const override { return in_; }
  image_shape output_shape() const override { return out_; }
  backward_reads reads() const override { return {}; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode, const kernel_env<T>&) override {
    this->check_input(x.rows(), x.cols());
    y.setZero();
    for (index s = 0; s < x.cols(); ++s)
      for (index c = 0; c < in_.channels; ++c)
        for (index i = 0; i < out_.height; ++i)
          for (index j = 0; j < out_.width; ++j)
            y(at(out_, c, i, j), s) = x(at(in_, c, i * stride_, j * stride_), s);
  }
  void backward_kernel(const_batch_view<T>, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool, const kernel_env<T>&) override {
    if (dx.size() == 0) return;
    dx.setZero();
    for (index s = 0; s < dy.cols(); ++s)
      for (index c = 0; c < in_.channels; ++c)
        for (index i = 0; i < out_.height; ++i)
          for (index j = 0; j < out_.width; ++j)
            dx(at(in_, c, i * stride_, j * stride_), s) = dy(at(out_, c, i, j), s);
  }
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    forward_kernel(x, y, mode::eval, env);
    forward_kernel(dx, dy, mode::eval, env);
  }
  std::unique_ptr<layer<T>> clone() const override {
    return std::make_unique<subsample_pad>(*this);
  }

 private:
  static index at(const image_shape& s, index c, index i, index j) {
    return (c * s.height + i) * s.width + j;
  }
  image_shape in_, out_;
  index stride_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_SUBSAMPLE_PAD_HPP
