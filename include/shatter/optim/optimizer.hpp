// shatter: the interface shared by the optimisers (bound parameters, learning rate, state).
#ifndef SHATTER_OPTIM_OPTIMIZER_HPP
#define SHATTER_OPTIM_OPTIMIZER_HPP

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/core/tensor_ref.hpp"

namespace shatter {

/// An optimiser bound to a list of parameters (`net.parameters()`): each `step()` updates every
/// parameter value from its gradient (the gradients the last backward wrote). All state buffers
/// are allocated at construction, so `step()` does not allocate. The parameters must outlive the
/// optimiser and keep their shapes. For checkpoints the whole state is `state()` (named tensors)
/// plus `steps()`. Thread safety: one thread at a time per optimiser, and not while its
/// parameters are used elsewhere; optimisers over distinct parameters may step concurrently.
template <class T>
class optimizer {
 public:
  virtual ~optimizer() = default;

  /// Short name: "sgd", "adam".
  virtual std::string kind() const = 0;

  /// Applies one update to every bound parameter and increments `steps()`.
  virtual void step() = 0;

  /// The optimiser's internal tensors (momentum buffers, Adam moments), named
  /// "<buffer>.<parameter name>", e.g. "momentum.3.weight", "adam.m.3.weight"; `grad` is null.
  /// Writing through the pointers restores a checkpoint. Empty when there is no state.
  virtual std::vector<tensor_ref<T>> state() = 0;

  /// Number of `step()` calls so far (Adam's bias correction uses it).
  std::int64_t steps() const { return steps_; }
  /// Sets the step counter (restoring a checkpoint); n >= 0.
  void set_steps(std::int64_t n) {
    require<config_error>(n >= 0, kind(), ": step counter must be >= 0, got ", n);
    steps_ = n;
  }

  /// The learning rate the next `step()` uses.
  double learning_rate() const { return lr_; }
  /// Sets the learning rate (schedules call this); must be finite and >= 0.
  void set_learning_rate(double lr) {
    require<config_error>(std::isfinite(lr) && lr >= 0, kind(),
                          ": learning rate must be finite and >= 0, got ", lr);
    lr_ = lr;
  }

  /// The bound parameters, in the order given at construction.
  const std::vector<tensor_ref<T>>& parameters() const { return params_; }

 protected:
  /// Binds `params` (each needs a value and a gradient of the same shape: config_error naming
  /// the parameter otherwise) and sets the learning rate.
  optimizer(std::vector<tensor_ref<T>> params, double lr, const char* who)
      : params_(std::move(params)) {
    require_scalar<T>();
    require<config_error>(std::isfinite(lr) && lr >= 0, who,
                          ": learning rate must be finite and >= 0, got ", lr);
    lr_ = lr;
    for (const auto& p : params_) {
      require<config_error>(p.value != nullptr && p.grad != nullptr, who, ": parameter '", p.name,
                            "' has no value or no gradient (buffers are not trainable)");
      require<shape_error>(p.value->rows() == p.grad->rows() && p.value->cols() == p.grad->cols(),
                           who, ": parameter '", p.name, "' is ", p.value->rows(), " x ",
                           p.value->cols(), " but its gradient is ", p.grad->rows(), " x ",
                           p.grad->cols());
    }
  }

  /// Throws shape_error if parameter k's value or gradient no longer matches its state buffer.
  void check_shapes(std::size_t k, const matrix<T>& buffer) const {
    const auto& p = params_[k];
    require<shape_error>(p.value->rows() == buffer.rows() && p.value->cols() == buffer.cols() &&
                             p.grad->rows() == buffer.rows() && p.grad->cols() == buffer.cols(),
                         kind(), ": parameter '", p.name, "' changed shape since construction (",
                         buffer.rows(), " x ", buffer.cols(), " expected)");
  }

  std::vector<tensor_ref<T>> params_;
  double lr_ = 0;
  std::int64_t steps_ = 0;
};

}  // namespace shatter

#endif  // SHATTER_OPTIM_OPTIMIZER_HPP
