// shatter: scalar, matrix and index aliases, and the batch layout used everywhere.
#ifndef SHATTER_CORE_TYPES_HPP
#define SHATTER_CORE_TYPES_HPP

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

namespace shatter {

/// Signed index type for sizes and loops (Eigen's).
using index = Eigen::Index;

/// A batch or a weight matrix. **Batch layout:** one sample per column, features along the
/// rows, so a batch of n samples with d features is a d x n matrix and a dense layer computes
/// Y = W X + b. Image samples are flattened channel-major (c, then row, then column) into one
/// column. Column-major storage keeps each sample contiguous in memory.
template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

/// A column vector (biases, per-feature statistics, one sample).
template <class T>
using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

/// A row vector (one value per sample, e.g. per-sample losses or probe gradients).
template <class T>
using row_vector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

/// A batch in memory the caller owns (an activation or gradient buffer of a plan), writable.
/// Kernels take their inputs and outputs as views, so a layer never owns or keeps them.
template <class T>
using batch_view = Eigen::Map<matrix<T>>;

/// A read-only batch view.
template <class T>
using const_batch_view = Eigen::Map<const matrix<T>>;

/// A read-only view of a whole matrix.
template <class T>
const_batch_view<T> view_of(const matrix<T>& m) {
  return const_batch_view<T>(m.data(), m.rows(), m.cols());
}

/// A view of no data (0 x 0): what a kernel receives for a buffer it did not ask for.
template <class T>
batch_view<T> no_batch() {
  return batch_view<T>(nullptr, 0, 0);
}

/// Checks at compile time that T is a floating-point scalar shatter supports.
template <class T>
constexpr void require_scalar() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "shatter: the scalar type must be float or double");
}

static_assert(EIGEN_VERSION_AT_LEAST(3, 4, 0),
              "shatter needs Eigen 3.4 or newer (its kernels use Eigen 3.4's product internals)");

/// Whether a layer runs for training (batch statistics, caches for backward) or evaluation.
enum class mode { train, eval };

}  // namespace shatter

#endif  // SHATTER_CORE_TYPES_HPP
