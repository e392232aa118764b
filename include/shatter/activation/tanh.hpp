// shatter: the hyperbolic tangent activation.
#ifndef SHATTER_ACTIVATION_TANH_HPP
#define SHATTER_ACTIVATION_TANH_HPP

#include <string>

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// The tanh functor: f(z) = tanh(z), f'(z) = 1 - y^2 from the output y.
template <class T>
struct tanh_op {
  static constexpr const char* name = "tanh";
  static constexpr derivative_from from = derivative_from::output;
  template <class A>
  auto value(const A& z) const {
    return z.tanh();
  }
  template <class A, class G>
  auto derivative(const A& y, const G& g) const {
    return g * (T(1) - y.square());
  }
  std::string args() const { return ""; }
};

/// tanh activation: y = tanh(z). See tanh_op.
template <class T>
using tanh_activation = activation<T, tanh_op<T>>;

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_TANH_HPP
