// shatter: the elementwise activation layer, one layer for every activation functor.
#ifndef SHATTER_ACTIVATION_ELEMENTWISE_HPP
#define SHATTER_ACTIVATION_ELEMENTWISE_HPP

#include <string>
#include <utility>

#include "shatter/exec/pool.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// What an activation's derivative f'(z) is computed from.
enum class derivative_from {
  input,   ///< z (leaky ReLU: the sign of z)
  output,  ///< y = f(z) (ReLU: y > 0; tanh: 1 - y^2), so a plan may keep y alone
  nothing  ///< a constant (identity)
};

/// An activation applied to every feature: y = f(z). `Op` is a functor written like Eigen's
/// unary functors, over Eigen array expressions so the compiler vectorises and fuses it:
///   static constexpr const char* name;            // "relu"
///   static constexpr derivative_from from;        // what derivative() reads
///   auto value(const A& z) const;                 // f(z), elementwise
///   auto derivative(const A& zy, const G& g) const;  // f'(z) g from z or y (see `from`)
///   std::string args() const;                     // extra text for describe() ("" or ", ...")
/// Backward is dL/dz = f'(z) dL/dy, the tangent dy = f'(z) dz (a diagonal Jacobian). The layer
/// keeps the sample shape of its input: it adopts the shape it is connected to (or the first
/// batch's row count). Replayable: a plan may recompute y from z instead of keeping it.
template <class T, class Op>
class activation final : public layer<T> {
 public:
  /// An activation of the functor `op` (its constructor validates its parameters).
  explicit activation(Op op = Op{}) : op_(std::move(op)) {}

  std::string kind() const override { return Op::name; }
  std::string describe() const override {
    if (shape_.size() == 0 && op_.args().empty()) return Op::name;
    return detail::cat(Op::name, "(", shape_.size(), op_.args(), ")");
  }
  image_shape input_shape() const override { return shape_; }
  image_shape output_shape() const override { return shape_; }
  void connect(const image_shape& in, const std::string& where) override {
    require<shape_error>(in.size() >= 1, where, " ", kind(), ": input size must be >= 1, got ",
                         in.size());
    if (shape_.size() == 0 || shape_.size() == in.size())
      shape_ = in;
    else
      layer<T>::connect(in, where);
  }
  backward_reads reads() const override {
    return {Op::from == derivative_from::input, Op::from == derivative_from::output};
  }
  bool replayable() const override { return true; }
  bool in_place() const override { return true; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode,
                      const kernel_env<T>& env) override {
    adopt(x.rows());
    this->check_input(x.rows(), x.cols());
    detail::parallel_columns(env.exec, x.rows(), x.cols(), [&](index c0, index c1) {
      y.middleCols(c0, c1 - c0).array() = op_.value(x.middleCols(c0, c1 - c0).array());
    });
  }
  void backward_kernel(const_batch_view<T> x, const_batch_view<T> y, const_batch_view<T> dy,
                       batch_view<T> dx, bool, const kernel_env<T>& env) override {
    if (dx.size() == 0) return;
    const_batch_view<T> zy = Op::from == derivative_from::input ? x : y;
    detail::parallel_columns(env.exec, dy.rows(), dy.cols(),
                             [&](index c0, index c1) { derivative(zy, dy, dx, c0, c1); });
  }
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    forward_kernel(x, y, mode::train, env);
    const_batch_view<T> zy(Op::from == derivative_from::input ? x.data() : y.data(), x.rows(),
                           x.cols());
    derivative(zy, dx, dy, 0, x.cols());
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<activation>(*this); }

  /// The functor (its parameters, e.g. a leaky ReLU's slope).
  const Op& op() const { return op_; }

 private:
  void adopt(index rows) {
    if (shape_.size() == 0) shape_ = {rows, 1, 1};
  }
  /// out = f'(z) g over columns [c0, c1).
  void derivative(const_batch_view<T> zy, const_batch_view<T> g, batch_view<T> out, index c0,
                  index c1) const {
    const index m = c1 - c0;
    if constexpr (Op::from == derivative_from::nothing) {
      (void)zy;
      out.middleCols(c0, m).array() =
          op_.derivative(g.middleCols(c0, m).array(), g.middleCols(c0, m).array());
    } else {
      out.middleCols(c0, m).array() =
          op_.derivative(zy.middleCols(c0, m).array(), g.middleCols(c0, m).array());
    }
  }

  Op op_;
  image_shape shape_{0, 1, 1};
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_ELEMENTWISE_HPP
