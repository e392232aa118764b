// shatter: the fully connected (dense, affine) layer.
#ifndef SHATTER_LAYER_DENSE_HPP
#define SHATTER_LAYER_DENSE_HPP

#include "shatter/layer/layer.hpp"

namespace shatter {

/// Fully connected layer: Y = W X + b (b broadcast over the batch), W of shape out x in.
/// Weights start at zero: initialise them with an initialiser from init/ (network builders do).
/// Without bias, b is absent and not trained.
template <class T>
class dense final : public layer<T> {
 public:
  /// A layer from `in` to `out` features; both must be >= 1.
  dense(index in, index out, bool bias = true) : has_bias_(bias) {
    require<config_error>(in >= 1 && out >= 1, "dense: sizes must be >= 1, got in = ", in,
                          ", out = ", out);
    w_.setZero(out, in);
    dw_.setZero(out, in);
    if (has_bias_) {
      b_.setZero(out, 1);
      db_.setZero(out, 1);
    }
  }

  std::string kind() const override { return "dense"; }
  std::string describe() const override {
    return detail::cat("dense(", in_size(), " -> ", out_size(), has_bias_ ? ", bias)" : ")");
  }
  index in_size() const override { return w_.cols(); }
  index out_size() const override { return w_.rows(); }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    this->y_.resize(w_.rows(), x.cols());
    this->y_.noalias() = w_ * x;
    if (has_bias_) this->y_.colwise() += b_.col(0);
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    const matrix<T>& x = *this->x_;
    dw_.noalias() = dy * x.transpose();
    if (has_bias_) db_.noalias() = dy.rowwise().sum();
    if (this->input_gradient_) {
      this->dx_.resize(w_.cols(), dy.cols());
      this->dx_.noalias() = w_.transpose() * dy;
    } else {
      this->dx_.resize(0, 0);
    }
    return this->dx_;
  }

  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "weight", &w_, &dw_});
    if (has_bias_) out.push_back({prefix + "bias", &b_, &db_});
  }

  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<dense>(*this); }

  /// The weight matrix W (out x in).
  matrix<T>& weight() { return w_; }
  const matrix<T>& weight() const { return w_; }
  /// The bias b (out x 1); precondition: has_bias().
  matrix<T>& bias() {
    require<config_error>(has_bias_, describe(), " has no bias");
    return b_;
  }
  const matrix<T>& bias() const {
    require<config_error>(has_bias_, describe(), " has no bias");
    return b_;
  }
  bool has_bias() const { return has_bias_; }
  /// dL/dW and dL/db from the last backward.
  const matrix<T>& weight_grad() const { return dw_; }
  const matrix<T>& bias_grad() const { return db_; }

 private:
  bool has_bias_;
  matrix<T> w_, dw_, b_, db_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_DENSE_HPP
