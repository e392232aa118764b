// shatter: the sum of two parallel branches, y = A(x) + B(x).
#ifndef SHATTER_LAYER_BRANCH_SUM_HPP
#define SHATTER_LAYER_BRANCH_SUM_HPP

#include "shatter/network/sequential.hpp"

namespace shatter {

/// Two branches applied to the same input and added: y = A(x) + B(x), dL/dx = J_A^T dy + J_B^T dy.
/// A resnet block whose shortcut changes the shape (a downsampling block, A = the shortcut, B =
/// the residual branch) is one of these; `residual` covers the identity shortcut.
template <class T>
class branch_sum final : public layer<T> {
 public:
  /// Both branches non-empty with equal input sizes and equal output sizes.
  branch_sum(sequential<T> a, sequential<T> b) : a_(std::move(a)), b_(std::move(b)) {
    require<config_error>(!a_.empty() && !b_.empty(), "branch_sum: empty branch");
    require<shape_error>(a_.in_size() == b_.in_size() && a_.out_size() == b_.out_size(),
                         "branch_sum: branches must have equal shapes, got ", a_.describe(),
                         " and ", b_.describe());
  }
  std::string kind() const override { return "branch_sum"; }
  std::string describe() const override {
    return detail::cat("branch_sum(", in_size(), " -> ", out_size(), ", ", a_.size(), " + ",
                       b_.size(), " layers)");
  }
  index in_size() const override { return a_.in_size(); }
  index out_size() const override { return a_.out_size(); }

  const matrix<T>& forward(const matrix<T>& x, mode m) override {
    this->check_input(x);
    this->x_ = &x;
    const matrix<T>& ya = a_.forward(x, m);
    const matrix<T>& yb = b_.forward(x, m);
    this->y_.resize(ya.rows(), ya.cols());
    this->y_.noalias() = ya + yb;
    return this->y_;
  }
  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    a_.set_input_gradient(this->input_gradient_);
    b_.set_input_gradient(this->input_gradient_);
    const matrix<T>& da = a_.backward(dy);
    const matrix<T>& db = b_.backward(dy);
    if (this->input_gradient_) {
      this->dx_.resize(da.rows(), da.cols());
      this->dx_.noalias() = da + db;
    } else {
      this->dx_.resize(0, 0);
    }
    return this->dx_;
  }
  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    a_.collect_parameters(prefix + "a.", out);
    b_.collect_parameters(prefix + "b.", out);
  }
  void collect_buffers(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    a_.collect_buffers(prefix + "a.", out);
    b_.collect_buffers(prefix + "b.", out);
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<branch_sum>(*this); }

  /// The branches.
  sequential<T>& first() { return a_; }
  sequential<T>& second() { return b_; }
  const sequential<T>& first() const { return a_; }
  const sequential<T>& second() const { return b_; }

 private:
  sequential<T> a_, b_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_BRANCH_SUM_HPP
