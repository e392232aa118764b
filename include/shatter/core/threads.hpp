// shatter: how many threads the library's numerical kernels use.
#ifndef SHATTER_CORE_THREADS_HPP
#define SHATTER_CORE_THREADS_HPP

#include <Eigen/Core>

#include "shatter/core/error.hpp"

namespace shatter {

/// Sets the number of threads Eigen's matrix products use (effective when built with OpenMP,
/// which the CMake target enables by default). n = 1 is the single-thread mode in which
/// training is bitwise reproducible. Process-wide; call it before training, not concurrently.
inline void set_threads(int n) {
  require<config_error>(n >= 1, "set_threads: thread count must be >= 1, got ", n);
  Eigen::setNbThreads(n);
}

/// The number of threads Eigen's matrix products use.
inline int threads() {
  return Eigen::nbThreads();
}

}  // namespace shatter

#endif  // SHATTER_CORE_THREADS_HPP
