// shatter: the identity activation.
#ifndef SHATTER_ACTIVATION_IDENTITY_HPP
#define SHATTER_ACTIVATION_IDENTITY_HPP

#include <string>

#include "shatter/activation/elementwise.hpp"

namespace shatter {

/// The identity functor: f(z) = z, f'(z) = 1 (a linear network, the reference looks-linear nets
/// match at initialisation).
template <class T>
struct identity_op {
  static constexpr const char* name = "identity";
  static constexpr derivative_from from = derivative_from::nothing;
  template <class A>
  auto value(const A& z) const {
    return z;
  }
  template <class A, class G>
  auto derivative(const A&, const G& g) const {
    return g;
  }
  std::string args() const { return ""; }
};

/// Identity activation: y = z. See identity_op.
template <class T>
using identity = activation<T, identity_op<T>>;

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_IDENTITY_HPP
