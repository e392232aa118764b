// shatter: parametric ReLU, a leaky ReLU whose negative slope is learned.
#ifndef SHATTER_ACTIVATION_PRELU_HPP
#define SHATTER_ACTIVATION_PRELU_HPP

#include "shatter/exec/pool.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// PReLU: y_i = z_i for z_i > 0, a_k z_i otherwise, with trainable slopes a. `slopes == 1`
/// shares one slope across all features (PyTorch's default); otherwise there is one slope per
/// channel (`slopes` equals the input's channel count: slope k covers the H W values of channel
/// k, as nn.PReLU(C) does for images) or one per feature (`slopes` equals the input size). Initial
/// slope 1 gives the identity, a cheap looks-linear start (see prelu_ll_mlp). dL/da_k = sum over
/// z_i <= 0 of dy_i z_i (over the values sharing a_k). Backward reads the input. Thread safety:
/// see layer.
template <class T>
class prelu final : public layer<T> {
 public:
  prelu(index slopes = 1, T initial = T(0.25)) {
    require<config_error>(slopes >= 1, "prelu: number of slopes must be >= 1, got ", slopes);
    a_.setConstant(slopes, 1, initial);
    da_.setZero(slopes, 1);
    if (slopes > 1) shape_ = {slopes, 1, 1};
  }
  std::string kind() const override { return "prelu"; }
  std::string describe() const override {
    return detail::cat("prelu(", shape_.size(), ", ", a_.rows(),
                       a_.rows() == 1 ? " slope)" : " slopes)");
  }
  image_shape input_shape() const override { return shape_; }
  image_shape output_shape() const override { return shape_; }
  /// Adopts `in` when the slopes fit it: one slope, one per channel or one per feature.
  void connect(const image_shape& in, const std::string& where) override {
    require<shape_error>(in.size() >= 1, where, " prelu: input size must be >= 1, got ", in.size());
    const index k = a_.rows();
    if (k == 1 && (shape_.size() == 0 || shape_.size() == in.size())) {
      shape_ = in;
      return;
    }
    require<shape_error>(k > 1, where, " ", describe(), " takes samples of shape ", shape_.str(),
                         " but its input has shape ", in.str());
    require<shape_error>(in.channels == k || in.size() == k, where, " ", describe(), ": ", k,
                         " slopes fit neither the channels (", in.channels, ") nor the features (",
                         in.size(), ") of its input ", in.str());
    shape_ = in;
  }
  backward_reads reads() const override { return {true, false}; }
  bool replayable() const override { return true; }
  bool in_place() const override { return true; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode, const kernel_env<T>&) override {
    if (shape_.size() == 0) shape_ = {x.rows(), 1, 1};
    this->check_input(x.rows(), x.cols());
    slope_times(x, x, y);
  }
  void backward_kernel(const_batch_view<T> x, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool param_grads, const kernel_env<T>&) override {
    if (param_grads) {
      const auto neg = (x.array() > T(0)).select(T(0), dy.array() * x.array());
      const index k = a_.rows(), g = group();
      if (k == 1)
        da_(0, 0) = neg.sum();
      else if (g == 1)
        da_.col(0) = neg.rowwise().sum().matrix();
      else
        for (index c = 0; c < k; ++c) da_(c, 0) = neg.middleRows(c * g, g).sum();
    }
    if (dx.size() > 0) slope_times(x, dy, dx);
  }
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    forward_kernel(x, y, mode::train, env);
    slope_times(x, dx, dy);
  }
  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "slope", &a_, &da_});
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<prelu>(*this); }

  /// The slopes (slopes x 1).
  matrix<T>& slope() { return a_; }
  const matrix<T>& slope() const { return a_; }

 private:
  /// Values per slope: the input size (one slope), H W (per channel) or 1 (per feature).
  index group() const { return a_.rows() == 1 ? shape_.size() : shape_.size() / a_.rows(); }
  /// out = f'(x) g: g where x > 0, a g elsewhere (out may be g or x itself: elementwise).
  void slope_times(const_batch_view<T> x, const_batch_view<T> g, batch_view<T> out) const {
    const index k = a_.rows(), n = group();
    if (k == 1) {
      out.array() = (x.array() > T(0)).select(g.array(), a_(0, 0) * g.array());
    } else if (n == 1) {
      out.array() = (x.array() > T(0)).select(g.array(), g.array().colwise() * a_.col(0).array());
    } else {
      for (index c = 0; c < k; ++c)
        out.middleRows(c * n, n).array() =
            (x.middleRows(c * n, n).array() > T(0))
                .select(g.middleRows(c * n, n).array(), a_(c, 0) * g.middleRows(c * n, n).array());
    }
  }

  matrix<T> a_, da_;
  image_shape shape_{0, 1, 1};
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_PRELU_HPP
