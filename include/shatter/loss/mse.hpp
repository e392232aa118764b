// shatter: mean squared error loss (against target vectors or one-hot labels).
#ifndef SHATTER_LOSS_MSE_HPP
#define SHATTER_LOSS_MSE_HPP

#include <cstdint>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/loss/labels.hpp"

namespace shatter {

/// Squared error, summed over the features of a sample and averaged over the batch:
///   L = (1/n) sum_j 0.5 ||y_j - t_j||^2,   dL/dY = (Y - T) / n,
/// for outputs Y and targets T (d x n, one sample per column). Convention: this is
/// d/2 times PyTorch's `MSELoss(reduction='mean')`, which divides by n*d and omits the 1/2; the
/// per-sample sum keeps the gradient scale independent of the output size. With class labels the
/// target is the one-hot vector of the label. `forward` returns L and stores dL/dY in a reused
/// buffer. Thread safety: one thread at a time per instance (forward writes the gradient
/// buffer); distinct instances may run concurrently. Errors: shape mismatch -> shape_error; label
/// out of range -> data_error.
template <class T>
class mse {
 public:
  mse() { require_scalar<T>(); }

  /// Mean loss against target vectors; also computes `gradient()`.
  T forward(const matrix<T>& y, const matrix<T>& target) {
    require<shape_error>(y.cols() >= 1, "mse: empty batch (0 columns)");
    require<shape_error>(y.rows() == target.rows() && y.cols() == target.cols(), "mse: output is ",
                         y.rows(), " x ", y.cols(), " but the target is ", target.rows(), " x ",
                         target.cols());
    grad_.resize(y.rows(), y.cols());
    grad_ = y - target;
    const T loss = T(0.5) * grad_.squaredNorm() / T(y.cols());
    grad_ *= T(1) / T(y.cols());
    return loss;
  }

  /// Mean loss against one-hot targets of class labels (label k -> e_k); also `gradient()`.
  T forward(const matrix<T>& y, const std::vector<std::int32_t>& labels) {
    detail::check_labels(y, labels, "mse");
    grad_.resize(y.rows(), y.cols());
    grad_ = y;
    for (index j = 0; j < y.cols(); ++j) grad_(labels[j], j) -= T(1);
    const T loss = T(0.5) * grad_.squaredNorm() / T(y.cols());
    grad_ *= T(1) / T(y.cols());
    return loss;
  }

  /// dL/dY of the last `forward` (d x n).
  const matrix<T>& gradient() const { return grad_; }

 private:
  matrix<T> grad_;
};

}  // namespace shatter

#endif  // SHATTER_LOSS_MSE_HPP
