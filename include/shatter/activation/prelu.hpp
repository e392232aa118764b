// shatter: parametric ReLU, a leaky ReLU whose negative slope is learned.
#ifndef SHATTER_ACTIVATION_PRELU_HPP
#define SHATTER_ACTIVATION_PRELU_HPP

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// PReLU: y_i = z_i for z_i > 0, a_k z_i otherwise, with trainable slopes a. `slopes == 1`
/// shares one slope across all features (PyTorch's default); otherwise there is one slope per
/// feature and `slopes` must equal the input size. Initial slope 1 gives the identity, a cheap
/// looks-linear start. dL/da_k = sum over z_i <= 0 of dy_i z_i (over the features sharing a_k).
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class prelu final : public elementwise<T> {
 public:
  prelu(index slopes = 1, T initial = T(0.25)) {
    require<config_error>(slopes >= 1, "prelu: number of slopes must be >= 1, got ", slopes);
    a_.setConstant(slopes, 1, initial);
    da_.setZero(slopes, 1);
    if (slopes > 1) this->n_ = slopes;
  }
  std::string kind() const override { return "prelu"; }
  std::string describe() const override {
    return detail::cat("prelu(", this->n_, ", ", a_.rows(),
                       a_.rows() == 1 ? " slope)" : " slopes)");
  }
  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->begin_forward(x);
    if (a_.rows() == 1) {
      this->y_.array() = (x.array() > T(0)).select(x.array(), a_(0, 0) * x.array());
    } else {
      this->y_.array() =
          (x.array() > T(0)).select(x.array(), x.array().colwise() * a_.col(0).array());
    }
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->begin_backward(dy);
    const auto& x = *this->x_;
    const auto neg = (x.array() > T(0)).select(T(0), dy.array() * x.array());
    if (a_.rows() == 1) {
      da_(0, 0) = neg.sum();
      this->dx_.array() = (x.array() > T(0)).select(dy.array(), a_(0, 0) * dy.array());
    } else {
      da_.col(0) = neg.rowwise().sum().matrix();
      this->dx_.array() =
          (x.array() > T(0)).select(dy.array(), dy.array().colwise() * a_.col(0).array());
    }
    return this->dx_;
  }
  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "slope", &a_, &da_});
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<prelu>(*this); }
  /// The slopes (slopes x 1).
  matrix<T>& slope() { return a_; }
  const matrix<T>& slope() const { return a_; }

 private:
  matrix<T> a_, da_;
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_PRELU_HPP
