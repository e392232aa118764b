// shatter: the residual wrapper x + beta * F(x).
#ifndef SHATTER_LAYER_RESIDUAL_HPP
#define SHATTER_LAYER_RESIDUAL_HPP

#include <cmath>

#include "shatter/network/sequential.hpp"

namespace shatter {

/// Residual block: y = x + beta F(x), with F a sequential branch mapping n features to n.
/// dL/dx = dL/dy + beta J_F^T dL/dy. The paper's resnets use beta = 1 or small beta (0.1),
/// which decorrelates gradients more slowly with depth.
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class residual final : public layer<T> {
 public:
  /// `branch` must be non-empty with equal input and output sizes; `beta` finite.
  explicit residual(sequential<T> branch, T beta = T(1)) : f_(std::move(branch)), beta_(beta) {
    require<config_error>(!f_.empty(), "residual: empty branch");
    require<shape_error>(f_.in_size() == f_.out_size() && f_.in_size() > 0,
                         "residual: branch must map n features to n, got ", f_.describe());
    require<config_error>(std::isfinite(beta), "residual: beta must be finite, got ", beta);
  }
  std::string kind() const override { return "residual"; }
  std::string describe() const override {
    return detail::cat("residual(", f_.in_size(), ", beta ", beta_, ", ", f_.size(),
                       "-layer branch)");
  }
  index in_size() const override { return f_.in_size(); }
  index out_size() const override { return f_.out_size(); }

  const matrix<T>& forward(const matrix<T>& x, mode m) override {
    this->check_input(x);
    this->x_ = &x;
    const matrix<T>& fx = f_.forward(x, m);
    this->y_.resize(x.rows(), x.cols());
    this->y_.noalias() = x + beta_ * fx;
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    scaled_.resize(dy.rows(), dy.cols());
    scaled_.noalias() = beta_ * dy;
    f_.set_input_gradient(true);
    const matrix<T>& df = f_.backward(scaled_);
    this->dx_.resize(dy.rows(), dy.cols());
    this->dx_.noalias() = dy + df;
    return this->dx_;
  }
  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    f_.collect_parameters(prefix + "branch.", out);
  }
  void collect_buffers(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    f_.collect_buffers(prefix + "branch.", out);
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
  matrix<T> scaled_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_RESIDUAL_HPP
