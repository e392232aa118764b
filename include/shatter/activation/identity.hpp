// shatter: the identity activation.
#ifndef SHATTER_ACTIVATION_IDENTITY_HPP
#define SHATTER_ACTIVATION_IDENTITY_HPP

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// Identity: y = z, dy/dz = 1 (a linear network, the reference looks-linear nets match at init).
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class identity final : public elementwise<T> {
 public:
  identity() = default;
  std::string kind() const override { return "identity"; }
  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->begin_forward(x);
    this->y_ = x;
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->begin_backward(dy);
    this->dx_ = dy;
    return this->dx_;
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<identity>(*this); }
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_IDENTITY_HPP
