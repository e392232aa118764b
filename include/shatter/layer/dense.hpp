// shatter: the fully connected (dense, affine) layer.
#ifndef SHATTER_LAYER_DENSE_HPP
#define SHATTER_LAYER_DENSE_HPP

#include <algorithm>

#include "shatter/layer/gemm.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Fully connected layer: Y = W X + b (b broadcast over the batch), W of shape out x in.
/// Weights start at zero: initialise them with an initialiser from init/ (network builders do).
/// Without bias, b is absent and not trained.
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class dense final : public layer<T> {
 public:
  /// A layer from `in` to `out` features; both must be >= 1.
  dense(index in, index out, bool bias = true) : has_bias_(bias) {
    require<config_error>(in >= 1 && out >= 1, "dense: sizes must be >= 1, got in = ", in,
                          ", out = ", out);
    w_.setZero(out, in);
    dw_.setZero(out, in);
    if (has_bias_) {
      b_.setZero(out, 1);
      db_.setZero(out, 1);
    }
  }

  std::string kind() const override { return "dense"; }
  std::string describe() const override {
    return detail::cat("dense(", in_size(), " -> ", out_size(), has_bias_ ? ", bias)" : ")");
  }
  index in_size() const override { return w_.cols(); }
  index out_size() const override { return w_.rows(); }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    const index m = w_.rows(), k = w_.cols(), n = x.cols();
    this->y_.resize(m, n);
    // Y = b 1^T + W X, in blocks of rows of Y (one block per thread-task): the bias initialises
    // the block the product then accumulates into, so there is no separate pass over Y.
    const index blocks = product_blocks(m);
    const std::size_t scratch = detail::gemm_scratch_size<T>(m, n, k);
    detail::parallel_blocks<T>(blocks, scratch, [&](index i) {
      const index r0 = detail::block_start(i, blocks, m),
                  r1 = detail::block_start(i + 1, blocks, m);
      auto yb = this->y_.middleRows(r0, r1 - r0);
      if (has_bias_)
        yb.colwise() = b_.col(0).segment(r0, r1 - r0);
      else
        yb.setZero();
      detail::gemm_accumulate<detail::operand::plain, detail::operand::plain>(
          r1 - r0, n, k, w_.data() + r0, m, x.data(), k, this->y_.data() + r0, m, T(1));
    });
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    const matrix<T>& x = *this->x_;
    const index m = w_.rows(), k = w_.cols(), n = dy.cols();
    if (this->input_gradient_)
      this->dx_.resize(k, n);
    else
      this->dx_.resize(0, 0);
    // dW = dY X^T in blocks of columns of dW, dX = W^T dY in blocks of rows of dX: independent
    // tasks, scheduled together.
    const index wb = product_blocks(k);
    const index xb = this->input_gradient_ ? product_blocks(k) : 0;
    std::size_t scratch = detail::gemm_scratch_size<T>(m, k, n);
    if (xb) scratch = std::max(scratch, detail::gemm_scratch_size<T>(k, n, m));
    detail::parallel_blocks<T>(wb + xb, scratch, [&](index i) {
      if (i < wb) {
        const index c0 = detail::block_start(i, wb, k), c1 = detail::block_start(i + 1, wb, k);
        dw_.middleCols(c0, c1 - c0).setZero();
        detail::gemm_accumulate<detail::operand::plain, detail::operand::transposed>(
            m, c1 - c0, n, dy.data(), m, x.data() + c0, k, dw_.data() + c0 * m, m, T(1));
      } else {
        i -= wb;
        const index r0 = detail::block_start(i, xb, k), r1 = detail::block_start(i + 1, xb, k);
        this->dx_.middleRows(r0, r1 - r0).setZero();
        detail::gemm_accumulate<detail::operand::transposed, detail::operand::plain>(
            r1 - r0, n, m, w_.data() + r0 * m, m, dy.data(), m, this->dx_.data() + r0, k, T(1));
      }
    });
    if (has_bias_) db_.noalias() = dy.rowwise().sum();
    return this->dx_;
  }

  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "weight", &w_, &dw_});
    if (has_bias_) out.push_back({prefix + "bias", &b_, &db_});
  }

  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<dense>(*this); }

  /// The weight matrix W (out x in).
  matrix<T>& weight() { return w_; }
  const matrix<T>& weight() const { return w_; }
  /// The bias b (out x 1); precondition: has_bias().
  matrix<T>& bias() {
    require<config_error>(has_bias_, describe(), " has no bias");
    return b_;
  }
  const matrix<T>& bias() const {
    require<config_error>(has_bias_, describe(), " has no bias");
    return b_;
  }
  bool has_bias() const { return has_bias_; }
  /// dL/dW and dL/db from the last backward.
  const matrix<T>& weight_grad() const { return dw_; }
  const matrix<T>& bias_grad() const { return db_; }

 private:
  /// Blocks to cut a product's output into: 1 on one thread; with EIGEN_USE_BLAS the BLAS
  /// threads each product itself.
  static index product_blocks(index extent) {
#ifdef EIGEN_USE_BLAS
    (void)extent;
    return 1;
#else
    return detail::block_count(extent, detail::loop_threads());
#endif
  }

  bool has_bias_;
  matrix<T> w_, dw_, b_, db_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_DENSE_HPP
