// shatter: the rectified linear unit.
#ifndef SHATTER_ACTIVATION_RELU_HPP
#define SHATTER_ACTIVATION_RELU_HPP

#include "shatter/activation/elementwise.hpp"
#include "shatter/layer/parallel.hpp"

namespace shatter {

/// ReLU: y = max(z, 0). Derivative 1[z > 0]; at z = 0 it is 0 (PyTorch's convention).
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class relu final : public elementwise<T> {
 public:
  relu() = default;
  std::string kind() const override { return "relu"; }
  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->begin_forward(x);
    detail::parallel_columns(x.rows(), x.cols(), [&](index c0, index c1) {
      this->y_.middleCols(c0, c1 - c0).array() = x.middleCols(c0, c1 - c0).array().max(T(0));
    });
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->begin_backward(dy);
    const matrix<T>& x = *this->x_;
    detail::parallel_columns(dy.rows(), dy.cols(), [&](index c0, index c1) {
      const index m = c1 - c0;
      this->dx_.middleCols(c0, m).array() =
          (x.middleCols(c0, m).array() > T(0)).select(dy.middleCols(c0, m).array(), T(0));
    });
    return this->dx_;
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<relu>(*this); }
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_RELU_HPP
