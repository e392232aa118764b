// shatter: the hyperbolic tangent activation.
#ifndef SHATTER_ACTIVATION_TANH_HPP
#define SHATTER_ACTIVATION_TANH_HPP

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// tanh: y = tanh(z), dy/dz = 1 - y^2.
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class tanh_activation final : public elementwise<T> {
 public:
  tanh_activation() = default;
  std::string kind() const override { return "tanh"; }
  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->begin_forward(x);
    this->y_.array() = x.array().tanh();
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->begin_backward(dy);
    this->dx_.array() = dy.array() * (T(1) - this->y_.array().square());
    return this->dx_;
  }
  std::unique_ptr<layer<T>> clone() const override {
    return std::make_unique<tanh_activation>(*this);
  }
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_TANH_HPP
