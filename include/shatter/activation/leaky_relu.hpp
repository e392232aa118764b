// shatter: leaky ReLU with a fixed negative slope.
#ifndef SHATTER_ACTIVATION_LEAKY_RELU_HPP
#define SHATTER_ACTIVATION_LEAKY_RELU_HPP

#include <cmath>

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// Leaky ReLU: y = z for z > 0, a z otherwise (a fixed; a = 1 is the identity, the
/// looks-linear limit used by TAT). Derivative at 0 is a.
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class leaky_relu final : public elementwise<T> {
 public:
  /// `slope` is the negative-side slope a; must be finite.
  explicit leaky_relu(T slope = T(0.01)) : a_(slope) {
    require<config_error>(std::isfinite(slope), "leaky_relu: slope must be finite, got ", slope);
  }
  std::string kind() const override { return "leaky_relu"; }
  std::string describe() const override {
    return detail::cat("leaky_relu(", this->n_, ", slope ", a_, ")");
  }
  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->begin_forward(x);
    this->y_.array() = (x.array() > T(0)).select(x.array(), a_ * x.array());
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->begin_backward(dy);
    this->dx_.array() = (this->x_->array() > T(0)).select(dy.array(), a_ * dy.array());
    return this->dx_;
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<leaky_relu>(*this); }
  /// The negative-side slope a.
  T slope() const { return a_; }

 private:
  T a_;
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_LEAKY_RELU_HPP
