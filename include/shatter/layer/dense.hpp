// shatter: the fully connected (dense, affine) layer.
#ifndef SHATTER_LAYER_DENSE_HPP
#define SHATTER_LAYER_DENSE_HPP

#include <algorithm>

#include "shatter/exec/gemm.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// Fully connected layer: Y = W X + b (b broadcast over the batch), W of shape out x in. Takes
/// samples of any shape with `in` values (images are flattened channel-major).
/// Initialised when constructed: W He-normal N(0, 2 / in) from construction_rng(), b = 0
/// (network builders and init/ re-initialise as they need). Without bias, b is absent.
/// Backward reads the input (for dL/dW). Thread safety: see layer.
template <class T>
class dense final : public layer<T> {
 public:
  /// A layer from `in` to `out` features; both must be >= 1.
  dense(index in, index out, bool bias = true) : dense(in, out, bias, no_init) {
    this->he_initialise(w_, in);
  }
  /// The same layer with W = 0, for a caller that initialises W next (see no_init).
  dense(index in, index out, bool bias, no_init_t) : has_bias_(bias) {
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
    return detail::cat("dense(", w_.cols(), " -> ", w_.rows(), has_bias_ ? ", bias)" : ")");
  }
  image_shape input_shape() const override { return {w_.cols(), 1, 1}; }
  image_shape output_shape() const override { return {w_.rows(), 1, 1}; }
  /// Accepts any sample shape with in_size() values (a dense layer flattens images).
  void connect(const image_shape& in, const std::string& where) override {
    require<shape_error>(in.size() == w_.cols(), where, " ", describe(), " takes ", w_.cols(),
                         " features per sample but its input has ", in.size(), " (", in.str(), ")");
  }
  backward_reads reads() const override { return {true, false}; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode,
                      const kernel_env<T>& env) override {
    this->check_input(x.rows(), x.cols());
    affine(x, y, has_bias_, env);
  }

  void backward_kernel(const_batch_view<T> x, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool param_grads, const kernel_env<T>& env) override {
    const index m = w_.rows(), k = w_.cols(), n = dy.cols();
    const bool want_dx = dx.size() > 0;
    // dW = dY X^T in blocks of columns of dW, dX = W^T dY in blocks of rows of dX: independent
    // tasks, scheduled together.
    const index wb = param_grads ? product_blocks(k, env) : 0;
    const index xb = want_dx ? product_blocks(k, env) : 0;
    std::size_t scratch = 0;
    if (wb) scratch = detail::gemm_scratch_size<T>(m, k, n);
    if (xb) scratch = std::max(scratch, detail::gemm_scratch_size<T>(k, n, m));
    detail::parallel_blocks<T>(env.exec, wb + xb, scratch, [&](index i) {
      if (i < wb) {
        const index c0 = detail::block_start(i, wb, k), c1 = detail::block_start(i + 1, wb, k);
        dw_.middleCols(c0, c1 - c0).setZero();
        detail::gemm_accumulate<detail::operand::plain, detail::operand::transposed>(
            m, c1 - c0, n, dy.data(), m, x.data() + c0, k, dw_.data() + c0 * m, m, T(1));
      } else {
        i -= wb;
        const index r0 = detail::block_start(i, xb, k, row_tile()),
                    r1 = detail::block_start(i + 1, xb, k, row_tile());
        dx.middleRows(r0, r1 - r0).setZero();
        detail::gemm_accumulate<detail::operand::transposed, detail::operand::plain>(
            r1 - r0, n, m, w_.data() + r0 * m, m, dy.data(), m, dx.data() + r0, k, T(1));
      }
    });
    if (param_grads && has_bias_) db_.noalias() = dy.rowwise().sum();
  }

  /// Y = W X + b and dY = W dX; one product over [X | dX] when the two are adjacent in memory.
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    this->check_input(x.rows(), x.cols());
    const index n = x.cols();
    if (dx.data() == x.data() + x.size() && dy.data() == y.data() + y.size()) {
      affine(const_batch_view<T>(x.data(), x.rows(), 2 * n),
             batch_view<T>(y.data(), y.rows(), 2 * n), false, env);
      if (has_bias_) y.colwise() += b_.col(0);
      return;
    }
    affine(x, y, has_bias_, env);
    affine(dx, dy, false, env);
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
  /// Y = W X (+ b when `bias`), in blocks of rows of Y (one block per thread-task): the bias
  /// initialises the block the product then accumulates into, so there is no separate pass.
  void affine(const_batch_view<T> x, batch_view<T> y, bool bias, const kernel_env<T>& env) const {
    const index m = w_.rows(), k = w_.cols(), n = x.cols();
    const index blocks = product_blocks(m, env);
    const std::size_t scratch = detail::gemm_scratch_size<T>(m, n, k);
    detail::parallel_blocks<T>(env.exec, blocks, scratch, [&](index i) {
      const index r0 = detail::block_start(i, blocks, m, row_tile()),
                  r1 = detail::block_start(i + 1, blocks, m, row_tile());
      auto yb = y.middleRows(r0, r1 - r0);
      if (bias)
        yb.colwise() = b_.col(0).segment(r0, r1 - r0);
      else
        yb.setZero();
      detail::gemm_accumulate<detail::operand::plain, detail::operand::plain>(
          r1 - r0, n, k, w_.data() + r0, m, x.data(), k, y.data() + r0, m, T(1));
    });
  }

  /// Rows of the GEMM micro-kernel's register tile: blocks of rows start on a multiple of it,
  /// so every row goes through the same kernel panel, and sums in the same order, whatever the
  /// number of blocks (results bitwise independent of the thread count).
  static constexpr index row_tile() { return index(Eigen::internal::gebp_traits<T, T>::mr); }

  /// Blocks to cut a product's output into: 1 on one thread; with EIGEN_USE_BLAS the BLAS
  /// threads each product itself.
  static index product_blocks(index extent, const kernel_env<T>& env) {
#ifdef EIGEN_USE_BLAS
    (void)extent;
    (void)env;
    return 1;
#else
    return detail::block_count(extent, detail::loop_threads(env.exec));
#endif
  }

  bool has_bias_;
  matrix<T> w_, dw_, b_, db_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_DENSE_HPP
