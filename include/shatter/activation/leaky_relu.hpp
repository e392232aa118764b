// shatter: leaky ReLU with a fixed negative slope.
#ifndef SHATTER_ACTIVATION_LEAKY_RELU_HPP
#define SHATTER_ACTIVATION_LEAKY_RELU_HPP

#include <cmath>
#include <string>

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// The leaky ReLU functor: f(z) = s z for z > 0, s a z otherwise, with a fixed slope a (a = 1 is
/// the identity, the looks-linear limit TAT approaches) and output gain s (1 by default; TAT uses
/// sqrt(2 / (1 + a^2)), see activation/tat.hpp); f'(z) = s (1[z > 0] + a 1[z <= 0]) (s a at 0).
template <class T>
struct leaky_relu_op {
  static constexpr const char* name = "leaky_relu";
  static constexpr derivative_from from = derivative_from::input;
  T slope = T(0.01);
  T gain = T(1);
  /// `a` is the negative-side slope, `s` the output gain; both must be finite.
  leaky_relu_op(T a = T(0.01), T s = T(1))  // NOLINT: converts from the slope on purpose
      : slope(a), gain(s) {
    require<config_error>(std::isfinite(a), "leaky_relu: slope must be finite, got ", a);
    require<config_error>(std::isfinite(s), "leaky_relu: gain must be finite, got ", s);
  }
  template <class A>
  auto value(const A& z) const {
    return (z > T(0)).select(gain * z, (gain * slope) * z);
  }
  template <class A, class G>
  auto derivative(const A& z, const G& g) const {
    return (z > T(0)).select(gain * g, (gain * slope) * g);
  }
  std::string args() const {
    return gain == T(1) ? detail::cat(", slope ", slope)
                        : detail::cat(", slope ", slope, ", gain ", gain);
  }
};

/// Leaky ReLU: y = s z for z > 0, s a z otherwise; `leaky_relu<T>(a)` (s = 1) or
/// `leaky_relu<T>(leaky_relu_op<T>(a, s))`. See leaky_relu_op.
template <class T>
using leaky_relu = activation<T, leaky_relu_op<T>>;

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_LEAKY_RELU_HPP
