// shatter: the concatenated rectified linear unit (CReLU).
#ifndef SHATTER_ACTIVATION_CRELU_HPP
#define SHATTER_ACTIVATION_CRELU_HPP

#include "shatter/exec/pool.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// CReLU: y = [relu(z); relu(-z)], stacked along the channel axis, so C x H x W samples give
/// 2C x H x W (n features give 2n: rows 0..n-1 hold relu(z), rows n..2n-1 hold relu(-z)). Since
/// relu(z) - relu(-z) = z, a following layer with weights [W0, -W0] computes W0 z: the
/// looks-linear identity, and a plan may recompute z (and so y) from what it keeps.
///
/// Derivative at z = 0: the gradient flows through the first half only, dy/dz = (1[z >= 0],
/// -1[z < 0]). Exactly one half passes it for every z, so d(relu(z) - relu(-z))/dz = 1
/// everywhere, including 0, and a looks-linear network's input gradient is exactly constant.
/// PyTorch's torch.cat([relu(z), relu(-z)]) differs there alone: relu'(0) = 0 on both halves,
/// so a unit with z exactly 0 passes no gradient (README, "Differences from PyTorch").
/// Backward reads the input. Thread safety: see layer.
template <class T>
class crelu final : public layer<T> {
 public:
  crelu() = default;
  std::string kind() const override { return "crelu"; }
  std::string describe() const override {
    const index n = in_.size();
    return n ? detail::cat("crelu(", n, " -> ", 2 * n, ")") : "crelu";
  }
  image_shape input_shape() const override { return in_; }
  image_shape output_shape() const override { return {2 * in_.channels, in_.height, in_.width}; }
  void connect(const image_shape& in, const std::string& where) override {
    require<shape_error>(in.size() >= 1, where, " crelu: input size must be >= 1, got ", in.size());
    if (in_.size() == 0 || in_.size() == in.size())
      in_ = in;
    else
      layer<T>::connect(in, where);
  }
  backward_reads reads() const override { return {true, false}; }
  bool replayable() const override { return true; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode,
                      const kernel_env<T>& env) override {
    if (in_.size() == 0) in_ = {x.rows(), 1, 1};
    this->check_input(x.rows(), x.cols());
    const index n = x.rows();
    detail::parallel_columns(env.exec, 2 * n, x.cols(), [&](index c0, index c1) {
      for (index c = c0; c < c1; ++c) {
        const auto z = x.col(c).array();
        y.col(c).head(n).array() = z.max(T(0));
        y.col(c).tail(n).array() = (-z).max(T(0));
      }
    });
  }

  void backward_kernel(const_batch_view<T> x, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool, const kernel_env<T>& env) override {
    if (dx.size() == 0) return;
    detail::parallel_columns(env.exec, dy.rows(), dy.cols(), [&](index c0, index c1) {
      for (index c = c0; c < c1; ++c) pull(x, dy, dx, c);
    });
  }

  /// y = CReLU(x), dy = [1[x >= 0] dx; -1[x < 0] dx].
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    forward_kernel(x, y, mode::train, env);
    const index n = x.rows();
    for (index c = 0; c < x.cols(); ++c) {
      const auto z = x.col(c).array();
      const auto d = dx.col(c).array();
      dy.col(c).head(n).array() = (z >= T(0)).select(d, T(0));
      dy.col(c).tail(n).array() = (z < T(0)).select(-d, T(0));
    }
  }

  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<crelu>(*this); }

 private:
  /// Column c of dL/dz: dL/dy's first half where z >= 0, minus its second half elsewhere.
  static void pull(const_batch_view<T> x, const_batch_view<T> dy, batch_view<T> dx, index c) {
    const index n = x.rows();
    dx.col(c).array() =
        (x.col(c).array() >= T(0)).select(dy.col(c).head(n).array(), -dy.col(c).tail(n).array());
  }

  image_shape in_{0, 1, 1};
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_CRELU_HPP
