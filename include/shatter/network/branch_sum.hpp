// shatter: the sum of two parallel branches, y = A(x) + B(x).
#ifndef SHATTER_NETWORK_BRANCH_SUM_HPP
#define SHATTER_NETWORK_BRANCH_SUM_HPP

#include "shatter/network/container.hpp"
#include "shatter/network/sequential.hpp"

namespace shatter {

/// Two branches applied to the same input and added: y = A(x) + B(x), dL/dx = J_A^T dy + J_B^T dy.
/// A resnet block whose shortcut changes the shape (a downsampling block, A = the shortcut, B =
/// the residual branch) is one of these; `residual` covers the identity shortcut.
template <class T>
class branch_sum final : public container<T> {
 public:
  /// Both branches non-empty with equal input shapes and equal output shapes.
  branch_sum(sequential<T> a, sequential<T> b) : a_(std::move(a)), b_(std::move(b)) {
    require<config_error>(!a_.empty() && !b_.empty(), "branch_sum: empty branch");
    require<shape_error>(
        a_.input_shape() == b_.input_shape() && a_.output_shape() == b_.output_shape(),
        "branch_sum: branches must have equal shapes, got ", a_.describe(), " and ", b_.describe());
  }
  branch_sum(const branch_sum& other) : container<T>(other), a_(other.a_), b_(other.b_) {}

  std::string kind() const override { return "branch_sum"; }
  std::string describe() const override {
    return detail::cat("branch_sum(", this->in_size(), " -> ", this->out_size(), ", ", a_.size(),
                       " + ", b_.size(), " layers)");
  }
  image_shape input_shape() const override { return a_.input_shape(); }
  image_shape output_shape() const override { return a_.output_shape(); }
  void connect(const image_shape& in, const std::string& where) override {
    a_.connect(in, where);
    b_.connect(in, where);
    this->invalidate();
  }

  int emit(program<T>& p, int input) override {
    const int a = a_.emit(p, input);
    const int b = b_.emit(p, input);
    return p.sum(a, b, T(1));
  }
  void for_each_child(const std::function<void(const std::string&, layer<T>&)>& f) override {
    f("a", a_);
    f("b", b_);
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

#endif  // SHATTER_NETWORK_BRANCH_SUM_HPP
