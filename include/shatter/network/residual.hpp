// shatter: the residual wrapper x + beta * F(x).
#ifndef SHATTER_NETWORK_RESIDUAL_HPP
#define SHATTER_NETWORK_RESIDUAL_HPP

#include <cmath>

#include "shatter/network/container.hpp"
#include "shatter/network/sequential.hpp"

namespace shatter {

/// Residual block: y = x + beta F(x), with F a sequential branch mapping samples of one shape to
/// the same shape. dL/dx = dL/dy + beta J_F^T dL/dy. The paper's resnets use beta = 1 or small
/// beta (0.1), which decorrelates gradients more slowly with depth. Thread safety: see layer.
template <class T>
class residual final : public container<T> {
 public:
  /// `branch` must be non-empty with equal input and output shapes; `beta` finite.
  explicit residual(sequential<T> branch, T beta = T(1)) : f_(std::move(branch)), beta_(beta) {
    require<config_error>(!f_.empty(), "residual: empty branch");
    require<shape_error>(f_.input_shape() == f_.output_shape() && f_.in_size() > 0,
                         "residual: branch must map samples of one shape to the same shape, got ",
                         f_.describe(), " (", f_.input_shape().str(), " -> ",
                         f_.output_shape().str(), ")");
    require<config_error>(std::isfinite(beta), "residual: beta must be finite, got ", beta);
  }
  residual(const residual& other) : container<T>(other), f_(other.f_), beta_(other.beta_) {}

  std::string kind() const override { return "residual"; }
  std::string describe() const override {
    return detail::cat("residual(", f_.in_size(), ", beta ", beta_, ", ", f_.size(),
                       "-layer branch)");
  }
  image_shape input_shape() const override { return f_.input_shape(); }
  image_shape output_shape() const override { return f_.output_shape(); }
  void connect(const image_shape& in, const std::string& where) override {
    f_.connect(in, where);
    this->invalidate();
  }

  int emit(program<T>& p, int input) override {
    const int f = f_.emit(p, input);
    return p.sum(input, f, beta_);
  }
  void for_each_child(const std::function<void(const std::string&, layer<T>&)>& f) override {
    f("branch", f_);
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<residual>(*this); }

  /// The branch F.
  sequential<T>& branch() { return f_; }
  const sequential<T>& branch() const { return f_; }
  /// The branch scale beta.
  T beta() const { return beta_; }

 private:
  sequential<T> f_;
  T beta_;
};

}  // namespace shatter

#endif  // SHATTER_NETWORK_RESIDUAL_HPP
