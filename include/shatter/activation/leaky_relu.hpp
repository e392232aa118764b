// shatter: leaky ReLU with a fixed negative slope.
#ifndef SHATTER_ACTIVATION_LEAKY_RELU_HPP
#define SHATTER_ACTIVATION_LEAKY_RELU_HPP

#include <cmath>
#include <string>

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// The leaky ReLU functor: f(z) = z for z > 0, a z otherwise, with a fixed slope a (a = 1 is the
/// identity, the looks-linear limit TAT approaches); f'(z) = 1[z > 0] + a 1[z <= 0] (a at 0).
template <class T>
struct leaky_relu_op {
  static constexpr const char* name = "leaky_relu";
  static constexpr derivative_from from = derivative_from::input;
  T slope = T(0.01);
  /// `a` is the negative-side slope; must be finite.
  leaky_relu_op(T a = T(0.01)) : slope(a) {  // NOLINT: converts from the slope on purpose
    require<config_error>(std::isfinite(a), "leaky_relu: slope must be finite, got ", a);
  }
  template <class A>
  auto value(const A& z) const {
    return (z > T(0)).select(z, slope * z);
  }
  template <class A, class G>
  auto derivative(const A& z, const G& g) const {
    return (z > T(0)).select(g, slope * g);
  }
  std::string args() const { return detail::cat(", slope ", slope); }
};

/// Leaky ReLU: y = z for z > 0, a z otherwise; `leaky_relu<T>(a)`. See leaky_relu_op.
template <class T>
using leaky_relu = activation<T, leaky_relu_op<T>>;

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_LEAKY_RELU_HPP
