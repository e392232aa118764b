// shatter: the rectified linear unit.
#ifndef SHATTER_ACTIVATION_RELU_HPP
#define SHATTER_ACTIVATION_RELU_HPP

#include <string>

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// The ReLU functor: f(z) = max(z, 0), f'(z) = 1[z > 0] (0 at z = 0, PyTorch's convention),
/// read from the output (y > 0 exactly when z > 0).
template <class T>
struct relu_op {
  static constexpr const char* name = "relu";
  static constexpr derivative_from from = derivative_from::output;
  template <class A>
  auto value(const A& z) const {
    return z.max(T(0));
  }
  template <class A, class G>
  auto derivative(const A& y, const G& g) const {
    return (y > T(0)).select(g, T(0));
  }
  std::string args() const { return ""; }
};

/// ReLU: y = max(z, 0). See relu_op and activation.
template <class T>
using relu = activation<T, relu_op<T>>;

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_RELU_HPP
