// shatter: a named view of one tensor a layer owns (a parameter with its gradient, or a buffer).
#ifndef SHATTER_CORE_TENSOR_REF_HPP
#define SHATTER_CORE_TENSOR_REF_HPP

#include <string>

#include "shatter/core/types.hpp"

namespace shatter {

/// A named view of one tensor a layer owns: a trainable parameter (with its gradient) or a
/// buffer such as batch-norm running statistics (`grad == nullptr`). Names are paths like
/// "3.weight" when collected from a network.
template <class T>
struct tensor_ref {
  std::string name;
  matrix<T>* value = nullptr;
  matrix<T>* grad = nullptr;
};

}  // namespace shatter

#endif  // SHATTER_CORE_TENSOR_REF_HPP
