// shatter: softmax cross-entropy loss on class labels, and classification accuracy.
#ifndef SHATTER_LOSS_SOFTMAX_CROSS_ENTROPY_HPP
#define SHATTER_LOSS_SOFTMAX_CROSS_ENTROPY_HPP

#include <cmath>
#include <cstdint>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/loss/labels.hpp"

namespace shatter {

/// Softmax cross-entropy on integer class labels, averaged over the batch:
///   L = (1/n) sum_j [ logsumexp(z_j) - z_j[y_j] ],   dL/dz_j = (softmax(z_j) - onehot(y_j)) / n,
/// for logits Z (classes x n, one sample per column) and labels y_j in [0, classes).
/// Numerically stable (the column maximum is subtracted before exponentiation), so logits of any
/// finite size give a finite loss. `forward` returns L and stores dL/dZ in a buffer reused across
/// calls of the same shape (no allocation in steady state). Thread safety: one thread at a time per
/// instance; distinct instances may run concurrently.
/// Errors: label count != columns -> shape_error; a label outside [0, classes) -> data_error.
template <class T>
class softmax_cross_entropy {
 public:
  softmax_cross_entropy() { require_scalar<T>(); }

  /// Mean loss over the batch; also computes `gradient()`.
  T forward(const matrix<T>& logits, const std::vector<std::int32_t>& labels) {
    detail::check_labels(logits, labels, "softmax_cross_entropy");
    const index n = logits.cols();
    grad_.resize(logits.rows(), n);
    double total = 0;
    for (index j = 0; j < n; ++j) {
      const T m = logits.col(j).maxCoeff();
      grad_.col(j) = (logits.col(j).array() - m).exp();
      const T s = grad_.col(j).sum();
      total += static_cast<double>(std::log(s) + m - logits(labels[j], j));
      grad_.col(j) *= T(1) / (s * T(n));
      grad_(labels[j], j) -= T(1) / T(n);
    }
    return static_cast<T>(total / static_cast<double>(n));
  }

  /// dL/dlogits of the last `forward` (classes x n).
  const matrix<T>& gradient() const { return grad_; }

 private:
  matrix<T> grad_;
};

/// Number of columns of `outputs` with a NaN or infinite entry (outputs that predict nothing).
template <class T>
index nonfinite_count(const matrix<T>& outputs) {
  index n = 0;
  for (index j = 0; j < outputs.cols(); ++j) n += !outputs.col(j).allFinite();
  return n;
}

/// Number of columns whose largest entry (first one on ties) is at the row given by its label.
/// A column with a NaN or infinite entry is never counted: it is no prediction (an argmax over
/// all-NaN logits would otherwise pick class 0).
template <class T>
index correct_count(const matrix<T>& logits, const std::vector<std::int32_t>& labels) {
  detail::check_labels(logits, labels, "correct_count");
  index correct = 0;
  for (index j = 0; j < logits.cols(); ++j) {
    if (!logits.col(j).allFinite()) continue;
    index arg = 0;
    logits.col(j).maxCoeff(&arg);
    correct += arg == labels[j];
  }
  return correct;
}

/// Fraction of samples classified correctly (argmax of the column equals the label; a column
/// with a non-finite entry counts as wrong), in [0, 1].
template <class T>
double accuracy(const matrix<T>& logits, const std::vector<std::int32_t>& labels) {
  return static_cast<double>(correct_count(logits, labels)) / static_cast<double>(logits.cols());
}

}  // namespace shatter

#endif  // SHATTER_LOSS_SOFTMAX_CROSS_ENTROPY_HPP
