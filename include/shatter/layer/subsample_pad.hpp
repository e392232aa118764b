// shatter: the parameter-free downsampling shortcut of CIFAR resnets ("option A").
#ifndef SHATTER_LAYER_SUBSAMPLE_PAD_HPP
#define SHATTER_LAYER_SUBSAMPLE_PAD_HPP

#include "shatter/layer/image_shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Identity shortcut that changes shape without parameters (He et al. 2016, option A):
/// y(c, i, j) = x(c, i s, j s) for c < C_in and 0 for the added channels C_in <= c < C_out.
template <class T>
class subsample_pad final : public layer<T> {
 public:
  /// From `in`-shaped images to `out_channels >= in.channels` channels, keeping every
  /// `stride`-th row and column (output extent (H - 1) / s + 1, like a 1x1 stride-s conv).
  subsample_pad(image_shape in, index out_channels, index stride) : in_(in), stride_(stride) {
    in.check("subsample_pad");
    require<config_error>(stride >= 1 && out_channels >= in.channels,
                          "subsample_pad: need stride "
                          ">= 1 and out_channels >= in channels, got stride ",
                          stride, ", ", in.channels, " -> ", out_channels, " channels");
    out_ = {out_channels, (in.height - 1) / stride + 1, (in.width - 1) / stride + 1};
  }
  std::string kind() const override { return "subsample_pad"; }
  std::string describe() const override {
    return detail::cat("subsample_pad(", in_.str(), " -> ", out_.str(), ")");
  }
  index in_size() const override { return in_.size(); }
  index out_size() const override { return out_.size(); }
  const image_shape& input_shape() const { return in_; }
  const image_shape& output_shape() const { return out_; }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    this->y_.setZero(out_.size(), x.cols());
    for (index s = 0; s < x.cols(); ++s)
      for (index c = 0; c < in_.channels; ++c)
        for (index i = 0; i < out_.height; ++i)
          for (index j = 0; j < out_.width; ++j)
            this->y_((c * out_.height + i) * out_.width + j, s) =
                x((c * in_.height + i * stride_) * in_.width + j * stride_, s);
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    this->dx_.setZero(in_.size(), dy.cols());
    for (index s = 0; s < dy.cols(); ++s)
      for (index c = 0; c < in_.channels; ++c)
        for (index i = 0; i < out_.height; ++i)
          for (index j = 0; j < out_.width; ++j)
            this->dx_((c * in_.height + i * stride_) * in_.width + j * stride_, s) =
                dy((c * out_.height + i) * out_.width + j, s);
    return this->dx_;
  }
  std::unique_ptr<layer<T>> clone() const override {
    return std::make_unique<subsample_pad>(*this);
  }

 private:
  image_shape in_, out_;
  index stride_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_SUBSAMPLE_PAD_HPP
