// shatter: 2-D convolution over channel-major image columns (products read a padded copy).
#ifndef SHATTER_LAYER_CONV2D_HPP
#define SHATTER_LAYER_CONV2D_HPP

#include <algorithm>
#include <cstring>
#include <vector>

#include "shatter/core/shape.hpp"
#include "shatter/exec/conv_layout.hpp"
#include "shatter/exec/gemm.hpp"
#include "shatter/exec/winograd.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// 2-D convolution (cross-correlation, as in PyTorch):
///   y(o, i, j) = b(o) + sum_{c, u, v} W(o, c, u, v) x(c, i s - p + u, j s - p + v),
/// with zero padding p, stride s and a square k x k kernel. Input and output are batches of
/// images flattened channel-major (see image_shape), one image per column.
///
/// The weight matrix is out_channels x (in_channels k k) with column c k k + u k + v (PyTorch's
/// (out, in, kh, kw) order), so matrix initialisers apply directly: its fan-in is its column
/// count, and its left and right column halves belong to the first and second half of the input
/// channels (the looks-linear mirror of a CReLU input). Initialised when constructed: W He-normal
/// N(0, 2 / (in_channels k k)) from construction_rng(), b = 0.
///
/// Implementation: the batch is cut into chunks of samples, which run in parallel on the block
/// pool (the threads of the plan that runs it). A convolution with odd k, p = (k - 1) / 2 and image
/// sides divisible by the stride s (every CIFAR-style layer) copies its chunk once into a
/// zero-padded layout in which every tap (u, v) is a fixed offset: with stride s > 1 the input is
/// first split into its s x s phases (pixels (s i + a, s j + b)), each of the output's size, so
/// that tap u reads phase a(u) shifted by du(u) rows, where u - p = s du + a. The product with W
/// then reads the unfolded (im2col) matrix straight from the image: a register-tiled kernel for the
/// outputs and dL/dx (offset_gemm, when the channel counts fill its tiles, else Eigen's blocked
/// product over an offset_matrix), Eigen's for dL/dW. Other convolutions unfold their chunk
/// (im2col) and multiply. The backward pass recomputes the unfolding instead of storing it, sums
/// the weight gradient of each chunk in chunk order (the same bits for any thread count), and
/// computes dL/dx phase by phase as the convolution of dL/dy with that phase's mirrored taps.
/// A 3 x 3 convolution with stride 1, padding 1, even image sides and channel counts that fill
/// the kernel's register tiles (multiples of 8 with AVX-512, else 4) runs all three products by
/// Winograd's F(2x2, 3x3) instead (exec/winograd.hpp: 16 multiply-adds per 4 outputs and
/// channel pair where the direct sum takes 36; results differ from it by rounding).
template <class T>
class conv2d final : public layer<T> {
 public:
  /// Convolution of `in`-shaped images to `out_channels` channels; kernel >= 1, stride >= 1,
  /// padding >= 0 and the padded image at least one kernel wide.
  conv2d(image_shape in, index out_channels, index kernel, index stride = 1, index padding = 0,
         bool bias = true)
      : conv2d(in, out_channels, kernel, stride, padding, bias, no_init) {
    this->he_initialise(w_, w_.cols());
  }
  /// The same layer with W = 0, for a caller that initialises W next (see no_init).
  conv2d(image_shape in, index out_channels, index kernel, index stride, index padding, bool bias,
         no_init_t)
      : in_(in), k_(kernel), stride_(stride), pad_(padding), has_bias_(bias) {
    in.check("conv2d");
    require<config_error>(out_channels >= 1 && kernel >= 1 && stride >= 1 && padding >= 0,
                          "conv2d: need out_channels, kernel, stride >= 1 and padding >= 0, got ",
                          out_channels, ", ", kernel, ", ", stride, ", ", padding);
    require<config_error>(in.height + 2 * padding >= kernel && in.width + 2 * padding >= kernel,
                          "conv2d: a ", kernel, " x ", kernel, " kernel does not fit a ", in.str(),
                          " input with padding ", padding);
    out_ = {out_channels, (in.height + 2 * padding - kernel) / stride + 1,
            (in.width + 2 * padding - kernel) / stride + 1};
    w_.setZero(out_channels, in.channels * kernel * kernel);
    dw_.setZero(out_channels, in.channels * kernel * kernel);
    if (has_bias_) {
      b_.setZero(out_channels, 1);
      db_.setZero(out_channels, 1);
    }
    // The offset path: odd k, p = (k - 1) / 2 and image sides divisible by the stride. Input
    // row i s - p + u = s (i + du) + a: tap u reads row i + du of phase a of the input.
    offset_ = kernel % 2 == 1 && 2 * padding == kernel - 1 && in.height % stride == 0 &&
              in.width % stride == 0;
    if (offset_) {
      const index kk = kernel * kernel, ss = stride * stride;
      tap_shift_.resize(std::size_t(kernel));
      tap_phase_.resize(std::size_t(kernel));
      for (index u = 0; u < kernel; ++u) {
        const index r = u - padding, d = r >= 0 ? r / stride : -((-r + stride - 1) / stride);
        tap_shift_[std::size_t(u)] = d;
        tap_phase_[std::size_t(u)] = r - stride * d;
        q_ = std::max(q_, d < 0 ? -d : d);
      }
      phase_start_.assign(std::size_t(ss + 1), 0);
      for (index ph = 0; ph < ss; ++ph) {
        phase_start_[std::size_t(ph + 1)] = phase_start_[std::size_t(ph)];
        for (index t = 0; t < kk; ++t)
          if (phase_of(t) == ph) {
            phase_taps_.push_back(t);
            ++phase_start_[std::size_t(ph + 1)];
          }
      }
    }
    const index nr = detail::offset_gemm_nr;
    winograd_ = kernel == 3 && stride == 1 && padding == 1 && in.height % 2 == 0 &&
                in.width % 2 == 0 && in.channels % nr == 0 && out_channels % nr == 0;
  }

  std::string kind() const override { return "conv2d"; }
  std::string describe() const override {
    return detail::cat("conv2d(", in_.str(), " -> ", out_.str(), ", ", k_, "x", k_, ", stride ",
                       stride_, ", pad ", pad_, has_bias_ ? ", bias)" : ")");
  }
  image_shape input_shape() const override { return in_; }
  image_shape output_shape() const override { return out_; }
  index kernel() const { return k_; }
  index stride() const { return stride_; }
  index padding() const { return pad_; }
  /// Inputs feeding one output: in_channels k k (the weight's column count).
  index fan_in() const { return w_.cols(); }

  /// Upper bound on the scalars of one chunk's working buffers (default 2^18, so that a chunk
  /// stays in a core's L2 cache between copying and multiplying): the batch is split into chunks
  /// of samples below it (at least one sample). Process-wide; set it before training.
  static void set_chunk_elements(index n) {
    require<config_error>(n >= 1, "conv2d::set_chunk_elements: need n >= 1, got ", n);
    chunk_elements() = n;
  }
  /// Whether layers that can run by Winograd's F(2x2, 3x3) do (default true); false: the direct
  /// products everywhere, to compare the two. Process-wide; set it before running.
  static void set_winograd(bool on) { winograd_enabled() = on; }
  /// True when this layer's products run by F(2x2, 3x3).
  bool uses_winograd() const { return winograd_ && winograd_enabled(); }

  backward_reads reads() const override { return {true, false}; }
  /// Workspace of a kernel call on n samples: W packed for the direct products, W regrouped by
  /// input phase (dL/dx), and each chunk's weight and bias gradient (summed in chunk order).
  index workspace_size(index n) const override {
    const workspace ws = work_layout(n);
    return ws.end;
  }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode,
                      const kernel_env<T>& env) override {
    this->check_input(x.rows(), x.cols());
    convolve(x, y, has_bias_, env);
  }

  void backward_kernel(const_batch_view<T> x, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool param_grads, const kernel_env<T>& env) override {
    const index n = dy.cols();
    const bool want_dx = dx.size() > 0;
    if (!want_dx && !param_grads) return;
    const chunking pl = make_chunking(n, true);
    const workspace ws = work_layout(n);
    if (pl.winograd && want_dx)
      winograd_filters(true, env.work + ws.packed, env.exec);
    else if (offset_ && want_dx)
      regroup_by_phase(pl, env.work + ws.wt, env.work + ws.packed);
    T* partials = env.work + ws.partials;
    const index per = w_.size() + w_.rows();  // a part's dW (O x K, or K x O), then its db
    auto run = [&](index p) {
      for (index b = pl.part_begin(p); b < pl.part_begin(p + 1); ++b)
        backward_chunk(x, dy, dx, param_grads, b, pl, partials + p * per, b == pl.part_begin(p),
                       env.work + ws.wt, env.work + ws.packed);
    };
    detail::parallel_blocks<T>(env.exec, pl.parts, pl.scratch, run);
    if (param_grads) sum_partials(pl, partials, env.exec);
  }

  /// y = conv(x) + b and dy = conv(dx) (the convolution is linear in its input).
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats, const kernel_env<T>& env) override {
    this->check_input(x.rows(), x.cols());
    convolve(x, y, has_bias_, env);
    convolve(dx, dy, false, env);
  }

  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "weight", &w_, &dw_});
    if (has_bias_) out.push_back({prefix + "bias", &b_, &db_});
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<conv2d>(*this); }

  /// The weight matrix W (out_channels x in_channels k k).
  matrix<T>& weight() { return w_; }
  const matrix<T>& weight() const { return w_; }
  /// The bias b (out_channels x 1); precondition: has_bias().
  matrix<T>& bias() {
    require<config_error>(has_bias_, describe(), " has no bias");
    return b_;
  }
  bool has_bias() const { return has_bias_; }
  /// dL/dW and dL/db from the last backward.
  const matrix<T>& weight_grad() const { return dw_; }
  const matrix<T>& bias_grad() const { return db_; }

 private:
  static index& chunk_elements() {
    static index n = index(1) << 18;
    return n;
  }
  /// Scalars of the transformed inputs and products of one block of tiles (512 KiB of floats).
  static index winograd_block_scalars() { return index(1) << 17; }
  static bool& winograd_enabled() {
    static bool on = true;
    return on;
  }

  /// Scalars, rounded up to whole 64-byte lines (keeps every sub-buffer aligned).
  static index lines(index n) {
    constexpr index a = 64 / index(sizeof(T));
    return (n + a - 1) / a * a;
  }

  detail::strip layout(index nc) const { return detail::strip(nc, out_.height, out_.width, q_); }
  /// Phase (a(u) s + a(v)) of the input that tap t = u k + v reads.
  index phase_of(index t) const {
    return tap_phase_[std::size_t(t / k_)] * stride_ + tap_phase_[std::size_t(t % k_)];
  }
  /// Offset of tap t = u k + v in layout g: du(u) R + dv(v).
  index tap_offset(index t, const detail::strip& g) const {
    return tap_shift_[std::size_t(t / k_)] * g.R + tap_shift_[std::size_t(t % k_)];
  }

  /// How one pass cuts the batch: chunks, the samples of the largest, and the scratch each
  /// participant needs (its buffers, tap-offset tables and packing space). Chunk b holds samples
  /// [n b / chunks, n (b + 1) / chunks): sizes differ by at most one, and the count is even so
  /// that two threads share the work equally (and independent of the thread count, so are the
  /// results).
  struct chunking {
    index n, cs, chunks;
    index parts;  ///< backward: runs of chunks that add up one dW partial each, in chunk order
    index begin(index b) const { return n * b / chunks; }
    index size(index b) const { return begin(b + 1) - begin(b); }
    index part_begin(index p) const { return chunks * p / parts; }
    bool direct_out, direct_in;  ///< y and dL/dx by offset_gemm (channel counts fit its tiles)
    bool direct_w;               ///< dL/dW by offset_gemm_tn (chunk partials are O x K, else K x O)
    bool winograd;               ///< all three by F(2x2, 3x3) (chunk partials are O x K)
    std::size_t scratch;
  };
  /// n rounded up to whole register tiles of offset_gemm.
  static index tiles(index n) {
    constexpr index mr = detail::offset_gemm_mr<T>();
    return (n + mr - 1) / mr * mr;
  }
  chunking make_chunking(index n, bool backward) const {
    return make_chunking(n, backward, uses_winograd());
  }
  chunking make_chunking(index n, bool backward, bool winograd) const {
    const index C = in_.channels, O = w_.rows(), K = w_.cols(), kk = k_ * k_;
    const index ss = stride_ * stride_;
    const index per = winograd  ? 8 * std::max(C, O) * (in_.height / 2) * (in_.width / 2 + 1)
                      : offset_ ? (C * ss + C + O) * (out_.height + q_) * (out_.width + q_)
                                : out_.spatial() * (K + O);
    chunking pl{};
    pl.n = n;
    if (n == 0) return pl;  // no chunks
    if (winograd) {         // about chunk_elements() transformed inputs V per chunk
      const index most = std::max<index>(1, std::min<index>(n, chunk_elements() / per));
      pl.chunks = (n + most - 1) / most;
      // dW sums over at most 8 parts of whole chunks; a whole number of chunks per part keeps
      // the parts (the units the threads share) of equal size
      if (pl.chunks > 8)
        pl.chunks = std::min(n, (pl.chunks + 7) / 8 * 8);
      else if (pl.chunks % 2 == 1 && pl.chunks < n)
        ++pl.chunks;
      pl.cs = (n + pl.chunks - 1) / pl.chunks;
      pl.parts = std::min<index>(pl.chunks, 8);
      pl.winograd = pl.direct_w = true;
      pl.scratch = std::size_t(winograd_space_of(pl.cs).end);
      return pl;
    }
    pl.direct_out = offset_ && O % detail::offset_gemm_nr == 0;
    pl.direct_in = offset_ && C % detail::offset_gemm_nr == 0;
    pl.direct_w = offset_ && O % (2 * index(Eigen::internal::packet_traits<T>::size)) == 0;
    const index most = std::max<index>(1, std::min<index>(n, chunk_elements() / per));
    pl.chunks = (n + most - 1) / most;
    if (pl.chunks % 2 == 1 && pl.chunks < n) ++pl.chunks;
    pl.cs = (n + pl.chunks - 1) / pl.chunks;
    pl.parts = pl.chunks;
    std::size_t gemm = 0;
    for (index nc : {pl.cs, n / pl.chunks}) {
      const index M = offset_ ? layout(nc).M : nc * out_.spatial();
      const index kd = offset_ ? O * kk : O;  // (largest) depth of the input-gradient product
      gemm =
          std::max(gemm, backward ? std::max(detail::gemm_scratch_size<T>(K, O, M),
                                             detail::gemm_scratch_size<T>(M, offset_ ? C : K, kd))
                                  : detail::gemm_scratch_size<T>(M, O, K));
    }
    pl.scratch = std::size_t(space(pl.cs, backward).gemm) + gemm;
    return pl;
  }
  /// Where a chunk's buffers sit in its thread's scratch (offsets in scalars of T, each on a
  /// 64-byte line), for chunks of at most cs samples. Offset path: tap offsets (koff, koff_t),
  /// the padded input (xp, with a margin the spare rows of the last register tile read), then the
  /// output (out, forward) or the padded dL/dy, one phase of dL/dx and dL/dy transposed (dyp,
  /// dxo, dyt; backward). im2col path: the unfolded input (xp) and the output or gathered dL/dy
  /// (out). Packing space for the products starts at `gemm`. make_chunking sizes the scratch with
  /// it and the chunks find their buffers with it.
  struct chunk_space {
    index koff = 0, koff_t = 0, xp = 0, out = 0, dyp = 0, dxo = 0, dyt = 0, gemm = 0;
  };
  chunk_space space(index cs, bool backward) const {
    const index C = in_.channels, O = w_.rows(), K = w_.cols(), kk = k_ * k_;
    chunk_space sp;
    if (!offset_) {
      const index N = cs * out_.spatial();
      sp.out = lines(N * K);
      sp.gemm = sp.out + lines(N * O);
      return sp;
    }
    const detail::strip g = layout(cs);
    const index mr = detail::offset_gemm_mr<T>();
    sp.koff_t = lines(index_scalars(K));
    sp.xp = sp.koff_t + lines(index_scalars(O * kk));
    const index after_xp = sp.xp + lines(C * stride_ * stride_ * g.L + mr);
    if (!backward) {
      sp.out = after_xp;
      sp.gemm = sp.out + lines(tiles(g.M) * O);
      return sp;
    }
    sp.dyp = after_xp;
    sp.dxo = sp.dyp + lines(O * g.L + mr);
    sp.dyt = sp.dxo + lines(tiles(g.M) * C);
    sp.gemm = sp.dyt + lines(g.M * O);
    return sp;
  }
  /// Scalars of T that hold n indices.
  static index index_scalars(index n) {
    return (n * index(sizeof(index)) + index(sizeof(T)) - 1) / index(sizeof(T));
  }

  /// Writes the tap offsets of layout g into koff (K entries: c k k + t -> phase channel
  /// (c s s + phase(t)) L + du R + dv, the unfolded input) and, unless null, koff_t (O k k
  /// entries, grouped by phase: O start(ph) + o n(ph) + i -> o L - du R - dv for the i-th tap of
  /// phase ph, dL/dy unfolded with the mirrored taps for that phase of dL/dx).
  void tap_offsets(const detail::strip& g, index* koff, index* koff_t) const {
    const index C = in_.channels, O = w_.rows(), kk = k_ * k_, ss = stride_ * stride_;
    for (index t = 0; t < kk; ++t) {
      const index d = tap_offset(t, g), ph = phase_of(t);
      for (index c = 0; c < C; ++c) koff[c * kk + t] = (c * ss + ph) * g.L + d;
    }
    if (!koff_t) return;
    for (index ph = 0; ph < ss; ++ph) {
      const index start = phase_start_[std::size_t(ph)],
                  taps = phase_start_[std::size_t(ph + 1)] - start;
      for (index i = 0; i < taps; ++i) {
        const index d = tap_offset(phase_taps_[std::size_t(start + i)], g);
        for (index o = 0; o < O; ++o) koff_t[O * start + o * taps + i] = o * g.L - d;
      }
    }
  }

  /// Where the parts of a kernel call's workspace start (scalars of T, 64-byte lines).
  struct workspace {
    index packed = 0, wt = 0, partials = 0, end = 0;
  };
  workspace work_layout(index n) const {
    const index O = w_.rows(), C = in_.channels, kk = k_ * k_;
    index chunks = n == 0 ? 0 : make_chunking(n, true, false).parts;
    if (winograd_ && n > 0) chunks = std::max(chunks, make_chunking(n, true, true).parts);
    workspace ws;
    ws.wt = lines(std::max({w_.size(), O * kk * C, winograd_ ? 16 * O * C : index(0)}));
    ws.partials = ws.wt + (offset_ ? lines(O * kk * C) : 0);
    ws.end = ws.partials + lines(chunks * (w_.size() + O));
    return ws;
  }

  /// y = conv(x) (+ b when `bias`), chunk by chunk on the pool.
  void convolve(const_batch_view<T> x, batch_view<T> y, bool bias, const kernel_env<T>& env) {
    const chunking pl = make_chunking(x.cols(), false);
    T* packed = env.work + work_layout(x.cols()).packed;
    if (pl.winograd)
      winograd_filters(false, packed, env.exec);
    else if (pl.direct_out)  // W^T packed once for the direct product of every chunk
      detail::offset_gemm_pack(w_.cols(), w_.rows(), w_.data(), w_.rows(), 1, packed);
    const T* b = bias && has_bias_ ? b_.data() : nullptr;
    auto run = [&](index c) { forward_chunk(x, y, b, c, pl, packed); };
    detail::parallel_blocks<T>(env.exec, pl.chunks, pl.scratch, run);
  }

  /// W regrouped by input phase into wt (row O start(ph) + o n(ph) + i holds the i-th tap of
  /// phase ph), and packed for the direct product when the chunking uses it.
  void regroup_by_phase(const chunking& pl, T* wt, T* packed) const {
    const index O = w_.rows(), C = in_.channels, kk = k_ * k_;
    Eigen::Map<matrix<T>> w(wt, O * kk, C);
    for (index ph = 0; ph + 1 < index(phase_start_.size()); ++ph) {
      const index start = phase_start_[std::size_t(ph)];
      const index taps = phase_start_[std::size_t(ph + 1)] - start;
      for (index o = 0; o < O; ++o)
        for (index i = 0; i < taps; ++i)
          for (index c = 0; c < C; ++c)
            w(O * start + o * taps + i, c) = w_(o, c * kk + phase_taps_[std::size_t(start + i)]);
      if (pl.direct_in)
        detail::offset_gemm_pack(O * taps, C, wt + O * start, 1, O * kk, packed + C * O * start);
    }
  }

  /// dW and db as the sums over parts of their partial products (O x K, or K x O transposed),
  /// in part order (parts are fixed runs of chunks: the same bits for any thread count).
  void sum_partials(const chunking& pl, const T* partials, const exec::context& ctx) {
    const index O = w_.rows(), K = w_.cols(), per = K * O + O;
    if (pl.parts == 0) {  // an empty batch
      dw_.setZero();
      if (has_bias_) db_.setZero();
      return;
    }
    if (pl.direct_w) {  // columns in blocks on the pool; each sum in part order
      detail::parallel_columns(ctx, O, K, [&](index k0, index k1) {
        auto cols = dw_.middleCols(k0, k1 - k0);
        cols = Eigen::Map<const matrix<T>>(partials, O, K).middleCols(k0, k1 - k0);
        for (index b = 1; b < pl.parts; ++b)
          cols += Eigen::Map<const matrix<T>>(partials + b * per, O, K).middleCols(k0, k1 - k0);
      });
    } else {
      dw_ = Eigen::Map<const matrix<T>>(partials, K, O).transpose();
      for (index b = 1; b < pl.parts; ++b)
        dw_ += Eigen::Map<const matrix<T>>(partials + b * per, K, O).transpose();
    }
    if (has_bias_) {
      db_ = Eigen::Map<const matrix<T>>(partials + K * O, O, 1);
      for (index b = 1; b < pl.parts; ++b)
        db_ += Eigen::Map<const matrix<T>>(partials + b * per + K * O, O, 1);
    }
  }

  void forward_chunk(const_batch_view<T> x, batch_view<T> y, const T* bias, index b,
                     const chunking& pl, const T* packed) const {
    const index C = in_.channels, O = w_.rows(), K = w_.cols();
    const index s0 = pl.begin(b), nc = pl.size(b);
    if (pl.winograd) {
      winograd_forward_chunk(x, y, bias, s0, nc, packed);
      return;
    }
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    using rhs_t = Eigen::internal::const_blas_data_mapper<T, index, Eigen::RowMajor>;  // W^T
    const chunk_space sp = space(pl.cs, false);
    T* gbuf = ws + sp.gemm;
    if (!offset_) {
      const index P = out_.spatial(), N = nc * P;
      T* cols = ws + sp.xp;
      T* out = ws + sp.out;
      detail::im2col(geometry(), x.data(), x.rows(), s0, nc, cols);
      std::fill(out, out + N * O, T(0));
      detail::gemm_accumulate<detail::operand::plain, detail::operand::transposed>(
          N, O, K, cols, N, w_.data(), O, out, N, T(1), gbuf);
      detail::unpad_images(out, N, P, out_.width, s0, nc, O, out_.height, out_.width, y.data(),
                           y.rows(), bias);
      return;
    }
    const detail::strip g = layout(nc);
    const index ss = stride_ * stride_;
    index* koff = reinterpret_cast<index*>(ws + sp.koff);
    const index mr = detail::offset_gemm_mr<T>(), ldo = tiles(g.M);
    T* xp = ws + sp.xp;
    T* out = ws + sp.out;
    tap_offsets(g, koff, nullptr);
    detail::pad_images(x.data(), x.rows(), s0, nc, C, stride_, g, xp);
    if (pl.direct_out) {
      std::fill(xp + C * ss * g.L, xp + C * ss * g.L + mr, T(0));  // read by spare tile rows
      detail::offset_gemm(g.M, O, K, xp + g.front, koff, packed, out, ldo);
    } else {
      std::fill(out, out + ldo * O, T(0));
      detail::gemm_mapped<Eigen::ColMajor, Eigen::RowMajor>(
          g.M, O, K, detail::offset_matrix<T, Eigen::ColMajor>{xp + g.front, koff},
          rhs_t(w_.data(), O), out, ldo, T(1), gbuf);
    }
    detail::unpad_images(out, ldo, g.step, g.R, s0, nc, O, out_.height, out_.width, y.data(),
                         y.rows(), bias);
  }

  /// Adds one chunk's dW and db to its part's partial sums (when `params`; zeroed first when
  /// `first`) and computes its columns of dL/dx (when dx is not
  /// empty). `wt` and `packed` hold W regrouped by phase and packed for dL/dx.
  void backward_chunk(const_batch_view<T> x, const_batch_view<T> dy, batch_view<T> dx, bool params,
                      index b, const chunking& pl, T* partial, bool first, const T* wt,
                      const T* packed) const {
    const index O = w_.rows(), K = w_.cols();
    const index s0 = pl.begin(b), nc = pl.size(b);
    if (params) {
      if (first) std::fill(partial, partial + K * O + O, T(0));
      if (has_bias_) {
        const index P = out_.spatial();
        for (index o = 0; o < O; ++o) {
          T sum(0);
          for (index s = s0; s < s0 + nc; ++s) sum += dy.col(s).segment(o * P, P).sum();
          partial[K * O + o] += sum;
        }
      }
    }
    if (pl.winograd)
      winograd_backward_chunk(x, dy, dx, params, s0, nc, partial, packed);
    else if (offset_)
      backward_chunk_offset(x, dy, dx, params, s0, nc, pl, partial, wt, packed);
    else
      backward_chunk_im2col(x, dy, dx, params, s0, nc, pl, partial);
  }

  void backward_chunk_offset(const_batch_view<T> x, const_batch_view<T> dy, batch_view<T> dx,
                             bool params, index s0, index nc, const chunking& pl, T* partial,
                             const T* wt, const T* packed) const {
    const index C = in_.channels, O = w_.rows(), kk = k_ * k_;
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    using mat_t = Eigen::internal::const_blas_data_mapper<T, index, Eigen::ColMajor>;
    const detail::strip g = layout(nc);
    const chunk_space sp = space(pl.cs, true);
    const index ss = stride_ * stride_;
    index* koff = reinterpret_cast<index*>(ws + sp.koff);
    index* koff_t = reinterpret_cast<index*>(ws + sp.koff_t);
    const index mr = detail::offset_gemm_mr<T>(), ldd = tiles(g.M);
    T* xp = ws + sp.xp;
    T* dyp = ws + sp.dyp;
    T* dxo = ws + sp.dxo;
    T* gbuf = ws + sp.gemm;
    tap_offsets(g, koff, koff_t);
    detail::pad_images(dy.data(), dy.rows(), s0, nc, O, 1, g, dyp);
    if (params) {
      detail::pad_images(x.data(), x.rows(), s0, nc, C, stride_, g, xp);
      weight_grad_offset(g, pl, xp, dyp, koff, ws + sp.dyt, partial, gbuf);
    }
    if (dx.size() == 0) return;
    // dL/dx one phase at a time: the product over that phase's taps, then scattered.
    if (pl.direct_in) std::fill(dyp + O * g.L, dyp + O * g.L + mr, T(0));
    for (index ph = 0; ph < ss; ++ph) {
      const index start = phase_start_[std::size_t(ph)];
      const index kd = O * (phase_start_[std::size_t(ph + 1)] - start);
      if (kd == 0) {
        std::fill(dxo, dxo + ldd * C, T(0));  // no tap reads this phase
      } else if (pl.direct_in) {
        detail::offset_gemm(g.M, C, kd, dyp + g.front, koff_t + O * start, packed + C * O * start,
                            dxo, ldd);
      } else {
        std::fill(dxo, dxo + ldd * C, T(0));
        detail::gemm_mapped<Eigen::ColMajor, Eigen::ColMajor>(
            g.M, C, kd,
            detail::offset_matrix<T, Eigen::ColMajor>{dyp + g.front, koff_t + O * start},
            mat_t(wt + O * start, O * kk), dxo, ldd, T(1), gbuf);
      }
      detail::unpad_images(dxo, ldd, g.step, g.R, s0, nc, C, out_.height, out_.width, dx.data(),
                           dx.rows(), static_cast<const T*>(nullptr), stride_, ph / stride_,
                           ph % stride_);
    }
  }

  /// dW += dy^T unfold(x) over a chunk's rows of the strip layout (dy is zero between pixels):
  /// by the broadcast kernel against dy transposed (dyt) or Eigen's product.
  void weight_grad_offset(const detail::strip& g, const chunking& pl, const T* xp, const T* dyp,
                          const index* koff, T* dyt, T* partial, T* gbuf) const {
    const index O = w_.rows(), K = w_.cols();
    using mat_t = Eigen::internal::const_blas_data_mapper<T, index, Eigen::ColMajor>;
    if (pl.direct_w) {
      for (index i0 = 0; i0 < g.M; i0 += 16) {  // transposed in blocks of 16 rows
        const index i1 = std::min(g.M, i0 + 16);
        for (index o = 0; o < O; ++o) {
          const T* src = dyp + g.front + o * g.L;
          for (index i = i0; i < i1; ++i) dyt[i * O + o] = src[i];
        }
      }
      detail::offset_gemm_tn(g.M, O, K, xp + g.front, koff, dyt, partial, O);
    } else {
      detail::gemm_mapped<Eigen::RowMajor, Eigen::ColMajor>(
          K, O, g.M, detail::offset_matrix<T, Eigen::RowMajor>{xp + g.front, koff},
          mat_t(dyp + g.front, g.L), partial, K, T(1), gbuf);
    }
  }

  void backward_chunk_im2col(const_batch_view<T> x, const_batch_view<T> dy, batch_view<T> dx,
                             bool params, index s0, index nc, const chunking& pl,
                             T* partial) const {
    const index O = w_.rows(), K = w_.cols();
    const index P = out_.spatial(), N = nc * P;
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    const chunk_space sp = space(pl.cs, true);
    T* cols = ws + sp.xp;
    T* gt = ws + sp.out;
    T* gbuf = ws + sp.gemm;
    for (index s = 0; s < nc; ++s)
      for (index o = 0; o < O; ++o)
        std::memcpy(gt + o * N + s * P, dy.data() + (s0 + s) * dy.rows() + o * P,
                    sizeof(T) * std::size_t(P));
    if (params) {
      detail::im2col(geometry(), x.data(), x.rows(), s0, nc, cols);
      detail::gemm_accumulate<detail::operand::transposed, detail::operand::plain>(
          K, O, N, cols, N, gt, N, partial, K, T(1), gbuf);
    }
    if (dx.size() == 0) return;
    std::fill(cols, cols + N * K, T(0));  // the unfolded input gradient, in the im2col buffer
    detail::gemm_accumulate<detail::operand::plain, detail::operand::plain>(
        N, K, O, gt, N, w_.data(), O, cols, N, T(1), gbuf);
    detail::col2im(geometry(), cols, s0, nc, dx.data(), dx.rows());
  }

  /// The strip layout of the tile grid of nc images (their 2 x 2 phases, padding 1).
  detail::strip winograd_strip(index nc) const {
    return detail::strip(nc, in_.height / 2, in_.width / 2, 1);
  }
  /// Where a chunk's F(2x2, 3x3) buffers sit in its scratch (scalars of T, 64-byte lines): the
  /// phases of x and of dL/dy (each with a zeroed margin that the input transform reads), then
  /// for one block of `bt` tiles the transformed inputs V (16 planes vp apart, rows ldb apart),
  /// the products M and M transposed (16 planes mp apart), then the output phases Y of the whole
  /// chunk (4 planes yp apart, rows ldy apart), the transformed filter gradient dU and the row
  /// offsets. Tiles go through the transforms and products a block at a time, so that V and M
  /// stay in the core's L2 cache between being written and being read. Planes are an odd number
  /// of lines apart, so that the 16 streams a transform writes do not share their 4 KiB page
  /// offsets (which stalls the stores).
  struct winograd_buffers {
    index bt, ldb, vp, mp, ldy, yp, xp, dyp, v, m, mt, y, du, offsets, end, margin;
  };
  winograd_buffers winograd_space_of(index nc) const {
    const index C = in_.channels, O = w_.rows(), P = std::max(C, O);
    const detail::strip g = winograd_strip(nc);
    const index ps = Eigen::internal::packet_traits<T>::size;
    const index rows = 3 * ps;  // offset_gemm's register tile
    auto staggered = [](index n) {
      return lines(n) / lines(1) % 2 == 0 ? lines(n) + lines(1) : lines(n);
    };
    winograd_buffers b{};
    // V, M and M^T of a block: about winograd_block_scalars, at least two register tiles
    const index fit = winograd_block_scalars() / (16 * (C + 2 * O)) / rows * rows;
    b.bt = std::min(std::max(fit, 2 * rows), (g.M + rows - 1) / rows * rows);
    b.ldb = lines(b.bt + ps);
    b.vp = staggered(P * b.ldb);
    b.mp = b.vp;
    b.ldy = lines(g.M + ps);
    b.yp = staggered(P * b.ldy);
    b.margin = g.R + 2 + 2 * ps;
    b.xp = 0;
    b.dyp = b.xp + lines(4 * C * g.L + b.margin);
    b.v = b.dyp + lines(4 * O * g.L + b.margin);
    b.m = b.v + 16 * b.vp;
    b.mt = b.m + 16 * b.mp;
    b.y = b.mt + 16 * b.mp;
    b.du = b.y + 4 * b.yp;
    b.offsets = b.du + lines(16 * C * O);
    b.end = b.offsets + lines(index_scalars(P));
    return b;
  }

  /// The filters transformed for F(2x2, 3x3) into u: W itself, or for dL/dx (the transposed
  /// convolution) W mirrored with in and out channels swapped.
  void winograd_filters(bool transposed, T* u, const exec::context& ctx) const {
    const index O = w_.rows(), C = in_.channels;
    const index out = transposed ? C : O, in = transposed ? O : C;
    const matrix<T>& w = w_;
    auto mirrored = [&](index c, index o, index a, index b) {
      return w(o, c * 9 + (2 - a) * 3 + (2 - b));
    };
    auto plain = [&](index o, index c, index a, index b) { return w(o, c * 9 + a * 3 + b); };
    detail::parallel_columns(ctx, 16 * in, out, [&](index o0, index o1) {
      if (transposed)
        detail::winograd_filters(o0, o1, out, in, mirrored, u);
      else
        detail::winograd_filters(o0, o1, out, in, plain, u);
    });
  }

  /// to (channels `out`) = conv(phases at xp, `in` channels) by F(2x2, 3x3), plus bias.
  void winograd_product(const detail::strip& g, const winograd_buffers& sb, T* ws, index in,
                        index out, const T* xp, const T* u, index s0, index nc, T* to, index ld,
                        const T* bias) const {
    index* offsets = reinterpret_cast<index*>(ws + sb.offsets);
    for (index c = 0; c < in; ++c) offsets[c] = c * sb.ldb;
    for (index t0 = 0; t0 < g.M; t0 += sb.bt) {
      const index m = std::min(sb.bt, g.M - t0);
      detail::winograd_inputs(g, in, xp, t0, t0 + m, ws + sb.v, sb.ldb, sb.vp);
      for (int xi = 0; xi < 16; ++xi)
        detail::offset_gemm(m, out, in, ws + sb.v + xi * sb.vp, offsets, u + xi * in * out,
                            ws + sb.m + xi * sb.mp, sb.ldb);
      detail::winograd_outputs(m, out, ws + sb.m, sb.ldb, sb.mp, ws + sb.y + t0, sb.ldy, sb.yp);
    }
    detail::winograd_unphase(ws + sb.y, sb.ldy, sb.yp, g, s0, nc, out, to, ld, bias);
  }

  void winograd_forward_chunk(const_batch_view<T> x, batch_view<T> y, const T* bias, index s0,
                              index nc, const T* u) const {
    const detail::strip g = winograd_strip(nc);
    const winograd_buffers sb = winograd_space_of(nc);
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    detail::winograd_phases(x.data(), x.rows(), s0, nc, in_.channels, g, sb.margin, ws + sb.xp);
    winograd_product(g, sb, ws, in_.channels, w_.rows(), ws + sb.xp, u, s0, nc, y.data(), y.rows(),
                     bias);
  }

  /// dU_xi = sum over the chunk's tiles of V_xi^T dM_xi (O x C each, at du), a block of tiles at
  /// a time, from the phases of x and dL/dy in the chunk's scratch.
  void winograd_filter_products(const detail::strip& g, const winograd_buffers& sb, T* ws) const {
    const index C = in_.channels, O = w_.rows();
    const index ps = Eigen::internal::packet_traits<T>::size;
    index* offsets = reinterpret_cast<index*>(ws + sb.offsets);
    for (index c = 0; c < C; ++c) offsets[c] = c * sb.ldb;
    for (index t0 = 0; t0 < g.M; t0 += sb.bt) {
      const index m = std::min(sb.bt, g.M - t0);
      const bool add = t0 > 0;
      detail::winograd_inputs(g, C, ws + sb.xp, t0, t0 + m, ws + sb.v, sb.ldb, sb.vp);
      detail::winograd_output_grads(g, O, ws + sb.dyp, t0, t0 + m, ws + sb.m, sb.ldb, sb.mp);
      if (O % ps == 0) {  // broadcast kernel against dM transposed: no sums across packets
        detail::winograd_transpose(m, O, ws + sb.m, sb.ldb, sb.mp, ws + sb.mt);
        for (int xi = 0; xi < 16; ++xi)
          detail::offset_gemm_tn(m, O, C, ws + sb.v + xi * sb.vp, offsets, ws + sb.mt + xi * sb.mp,
                                 ws + sb.du + xi * O * C, O, add);
      } else {
        for (int xi = 0; xi < 16; ++xi)
          detail::offset_gemm_dot(m, O, C, ws + sb.v + xi * sb.vp, offsets, ws + sb.m + xi * sb.mp,
                                  sb.ldb, ws + sb.du + xi * O * C, O, add);
      }
    }
  }

  /// Adds one chunk's dW to its part's partial (O x K, when `params`) and computes its columns of
  /// dL/dx (unless dx is empty) by F(2x2, 3x3); u holds the filters transformed for dL/dx.
  void winograd_backward_chunk(const_batch_view<T> x, const_batch_view<T> dy, batch_view<T> dx,
                               bool params, index s0, index nc, T* partial, const T* u) const {
    const index C = in_.channels, O = w_.rows();
    const detail::strip g = winograd_strip(nc);
    const winograd_buffers sb = winograd_space_of(nc);
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    detail::winograd_phases(dy.data(), dy.rows(), s0, nc, O, g, sb.margin, ws + sb.dyp);
    if (params) {
      detail::winograd_phases(x.data(), x.rows(), s0, nc, C, g, sb.margin, ws + sb.xp);
      winograd_filter_products(g, sb, ws);
      detail::winograd_filter_grads(O, C, ws + sb.du, partial);
    }
    if (dx.size() > 0)
      winograd_product(g, sb, ws, O, C, ws + sb.dyp, u, s0, nc, dx.data(), dx.rows(), nullptr);
  }

  detail::conv_geometry geometry() const { return {in_, out_, k_, stride_, pad_}; }

  image_shape in_, out_;
  index k_, stride_, pad_;
  bool has_bias_;
  bool winograd_ = false;  ///< 3 x 3, stride 1, padding 1, even sides, whole register tiles
  bool offset_ = false;    ///< odd k, p = (k - 1) / 2, sides divisible by s: the offset path
  index q_ = 0;            ///< largest tap shift |du| (the padding of the strip layout)
  std::vector<index> tap_shift_, tap_phase_;     ///< du(u) and a(u) for u < k
  std::vector<index> phase_taps_, phase_start_;  ///< taps t grouped by the phase they read
  matrix<T> w_, dw_, b_, db_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_CONV2D_HPP
