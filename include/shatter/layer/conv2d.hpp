// shatter: 2-D convolution over channel-major image columns (products read a padded copy).
#ifndef SHATTER_LAYER_CONV2D_HPP
#define SHATTER_LAYER_CONV2D_HPP

#include <algorithm>
#include <cstring>
#include <vector>

#include "shatter/layer/gemm.hpp"
#include "shatter/layer/image_shape.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

namespace detail {
/// Per-chunk weight-gradient partial sums of the calling thread's conv2d<T> layers: grows to the
/// largest size needed and is then reused, so training allocates nothing per step after the first.
template <class T>
std::vector<T>& conv_partials() {
  static thread_local std::vector<T> v;
  return v;
}
}  // namespace detail

/// 2-D convolution (cross-correlation, as in PyTorch):
///   y(o, i, j) = b(o) + sum_{c, u, v} W(o, c, u, v) x(c, i s - p + u, j s - p + v),
/// with zero padding p, stride s and a square k x k kernel. Input and output are batches of
/// images flattened channel-major (see image_shape), one image per column.
///
/// The weight matrix is out_channels x (in_channels k k) with column c k k + u k + v (PyTorch's
/// (out, in, kh, kw) order), so matrix initialisers apply directly: its fan-in is its column
/// count, and its left and right column halves belong to the first and second half of the input
/// channels (the looks-linear mirror of a CReLU input). Weights start at zero.
///
/// Implementation: the batch is cut into chunks of samples, which run in parallel on the block
/// pool (see set_threads). A convolution with odd k, p = (k - 1) / 2 and image sides divisible
/// by the stride s (every CIFAR-style layer) copies its chunk once into a zero-padded layout in
/// which every tap (u, v) is a fixed offset: with stride s > 1 the input is first split into its
/// s x s phases (pixels (s i + a, s j + b)), each of the output's size, so that tap u reads phase
/// a(u) shifted by du(u) rows, where u - p = s du + a. The product with W then reads the unfolded
/// (im2col) matrix straight from the image: a register-tiled kernel for the outputs and dL/dx
/// (offset_gemm, when the channel counts fill its tiles, else Eigen's blocked product over an
/// offset_matrix), Eigen's for dL/dW. Other convolutions unfold their chunk (im2col) and
/// multiply. The backward pass recomputes the unfolding instead of storing it, sums the weight
/// gradient of each chunk in chunk order (the same bits for any thread count), and computes
/// dL/dx phase by phase as the convolution of dL/dy with that phase's mirrored taps.
template <class T>
class conv2d final : public layer<T> {
 public:
  /// Convolution of `in`-shaped images to `out_channels` channels; kernel >= 1, stride >= 1,
  /// padding >= 0 and the padded image at least one kernel wide.
  conv2d(image_shape in, index out_channels, index kernel, index stride = 1, index padding = 0,
         bool bias = true)
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
  }

  std::string kind() const override { return "conv2d"; }
  std::string describe() const override {
    return detail::cat("conv2d(", in_.str(), " -> ", out_.str(), ", ", k_, "x", k_, ", stride ",
                       stride_, ", pad ", pad_, has_bias_ ? ", bias)" : ")");
  }
  index in_size() const override { return in_.size(); }
  index out_size() const override { return out_.size(); }

  /// Input and output image shapes.
  const image_shape& input_shape() const { return in_; }
  const image_shape& output_shape() const { return out_; }
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

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    const index n = x.cols();
    this->y_.resize(out_.size(), n);
    const plan pl = make_plan(n, false);
    if (pl.direct_out) {  // W^T packed once for the direct product of every chunk
      packed_.resize(std::size_t(w_.size()));
      detail::offset_gemm_pack(w_.cols(), w_.rows(), w_.data(), w_.rows(), 1, packed_.data());
    }
    auto run = [&](index b) { forward_chunk(x, b, pl); };
    detail::parallel_blocks<T>(pl.chunks, pl.scratch, run);
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    const index n = dy.cols(), K = w_.cols(), O = w_.rows(), kk = k_ * k_;
    const index C = in_.channels;
    const bool want_dx = this->input_gradient_;
    if (want_dx)
      this->dx_.resize(in_.size(), n);
    else
      this->dx_.resize(0, 0);
    const plan pl = make_plan(n, true);
    if (offset_ && want_dx) {
      // W regrouped by input phase: row O start(ph) + o n(ph) + i holds the i-th tap of phase ph
      wt_.resize(O * kk, C);
      if (pl.direct_in) packed_.resize(std::size_t(wt_.size()));
      for (index ph = 0; ph + 1 < index(phase_start_.size()); ++ph) {
        const index start = phase_start_[std::size_t(ph)];
        const index taps = phase_start_[std::size_t(ph + 1)] - start;
        for (index o = 0; o < O; ++o)
          for (index i = 0; i < taps; ++i)
            for (index c = 0; c < C; ++c)
              wt_(O * start + o * taps + i, c) =
                  w_(o, c * kk + phase_taps_[std::size_t(start + i)]);
        if (pl.direct_in)
          detail::offset_gemm_pack(O * taps, C, wt_.data() + O * start, 1, O * kk,
                                   packed_.data() + C * O * start);
      }
    }
    std::vector<T>& partials = detail::conv_partials<T>();
    const index per = K * O + O;  // a chunk's dW (O x K, or K x O), then its bias gradient
    if (partials.size() < std::size_t(pl.chunks * per))
      partials.resize(std::size_t(pl.chunks * per));
    auto run = [&](index b) { backward_chunk(dy, b, pl, partials.data() + b * per); };
    detail::parallel_blocks<T>(pl.chunks, pl.scratch, run);
    if (pl.chunks == 0) {  // an empty batch
      dw_.setZero();
      if (has_bias_) db_.setZero();
      return this->dx_;
    }
    // dW = sum over chunks of the partial products (O x K, or K x O transposed), in chunk order.
    if (pl.direct_w) {
      dw_ = Eigen::Map<const matrix<T>>(partials.data(), O, K);
      for (index b = 1; b < pl.chunks; ++b)
        dw_ += Eigen::Map<const matrix<T>>(partials.data() + b * per, O, K);
    } else {
      dw_ = Eigen::Map<const matrix<T>>(partials.data(), K, O).transpose();
      for (index b = 1; b < pl.chunks; ++b)
        dw_ += Eigen::Map<const matrix<T>>(partials.data() + b * per, K, O).transpose();
    }
    if (has_bias_) {
      db_ = Eigen::Map<const matrix<T>>(partials.data() + K * O, O, 1);
      for (index b = 1; b < pl.chunks; ++b)
        db_ += Eigen::Map<const matrix<T>>(partials.data() + b * per + K * O, O, 1);
    }
    return this->dx_;
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

  /// Scalars, rounded up to whole 64-byte lines (keeps every sub-buffer aligned).
  static index lines(index n) {
    constexpr index a = 64 / index(sizeof(T));
    return (n + a - 1) / a * a;
  }

  /// The zero-padded layout of a chunk of nc H x W images (the output's size; inputs are split
  /// into phases of that size), side by side: strip row r holds row r of every image, each
  /// followed by p zeros (which are also the left padding of the next image), with p zero rows
  /// above and below and p zeros before and after. Pixel (s, r, j) sits at
  /// front + r R + s (W + p) + j with R = nc (W + p), so tap (u, v) reads at the fixed offset
  /// du R + dv from the output it feeds (|du|, |dv| <= p). One channel takes L scalars; products
  /// run over the M = H R rows from `front` on (the pixels and the zero columns between them).
  struct strip {
    index H, W, step, R, front, L, M;
    strip(index nc, index h, index w, index p)
        : H(h),
          W(w),
          step(w + p),
          R(nc * step),
          front(p * R + p),
          L(front + (h + p) * R + p),
          M(h * R) {}
  };
  strip layout(index nc) const { return strip(nc, out_.height, out_.width, q_); }
  /// Phase (a(u) s + a(v)) of the input that tap t = u k + v reads.
  index phase_of(index t) const {
    return tap_phase_[std::size_t(t / k_)] * stride_ + tap_phase_[std::size_t(t % k_)];
  }
  /// Offset of tap t = u k + v in layout g: du(u) R + dv(v).
  index tap_offset(index t, const strip& g) const {
    return tap_shift_[std::size_t(t / k_)] * g.R + tap_shift_[std::size_t(t % k_)];
  }

  /// How one pass cuts the batch: chunks, the samples of the largest, and the scratch each
  /// participant needs (its buffers, tap-offset tables and packing space). Chunk b holds samples
  /// [n b / chunks, n (b + 1) / chunks): sizes differ by at most one, and the count is even so
  /// that two threads share the work equally (and independent of the thread count, so are the
  /// results).
  struct plan {
    index n, cs, chunks;
    index begin(index b) const { return n * b / chunks; }
    index size(index b) const { return begin(b + 1) - begin(b); }
    bool direct_out, direct_in;  ///< y and dL/dx by offset_gemm (channel counts fit its tiles)
    bool direct_w;               ///< dL/dW by offset_gemm_tn (chunk partials are O x K, else K x O)
    std::size_t scratch;
  };
  /// n rounded up to whole register tiles of offset_gemm.
  static index tiles(index n) {
    constexpr index mr = detail::offset_gemm_mr<T>();
    return (n + mr - 1) / mr * mr;
  }
  plan make_plan(index n, bool backward) const {
    const index C = in_.channels, O = w_.rows(), K = w_.cols(), kk = k_ * k_;
    const index ss = stride_ * stride_;
    const index per = offset_ ? (C * ss + C + O) * (out_.height + q_) * (out_.width + q_)
                              : out_.spatial() * (K + O);
    plan pl{};
    pl.n = n;
    if (n == 0) return pl;  // no chunks
    pl.direct_out = offset_ && O % detail::offset_gemm_nr == 0;
    pl.direct_in = offset_ && C % detail::offset_gemm_nr == 0;
    pl.direct_w = offset_ && O % (2 * index(Eigen::internal::packet_traits<T>::size)) == 0;
    const index most = std::max<index>(1, std::min<index>(n, chunk_elements() / per));
    pl.chunks = (n + most - 1) / most;
    if (pl.chunks % 2 == 1 && pl.chunks < n) ++pl.chunks;
    pl.cs = (n + pl.chunks - 1) / pl.chunks;
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
  /// (out). Packing space for the products starts at `gemm`. make_plan sizes the scratch with it
  /// and the chunks find their buffers with it.
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
    const strip g = layout(cs);
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
  void tap_offsets(const strip& g, index* koff, index* koff_t) const {
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

  /// Copies `channels` channels of samples [s0, s0 + nc) of the images at src (leading
  /// dimension ld), each split into its st x st phases of g's image size (phase (a, b) of
  /// channel c: pixels (st r + a, st j + b), written as channel (c st + a) st + b), into layout g
  /// at dst (channel length g.L), zeros included.
  static void pad_images(const T* src, index ld, index s0, index nc, index channels, index st,
                         const strip& g, T* dst) {
    const index Ho = g.H, Wo = g.W, W = Wo * st, HW = Ho * st * W;
    for (index c = 0; c < channels; ++c)
      for (index a = 0; a < st; ++a)
        for (index b = 0; b < st; ++b) {
          T* d = dst + ((c * st + a) * st + b) * g.L;
          std::fill(d, d + g.front, T(0));
          for (index r = 0; r < Ho; ++r) {
            T* row = d + g.front + r * g.R;
            for (index s = 0; s < nc; ++s) {
              const T* in = src + (s0 + s) * ld + c * HW + (st * r + a) * W + b;
              T* out = row + s * g.step;
              if (st == 1)
                std::memcpy(out, in, sizeof(T) * std::size_t(Wo));
              else
                for (index j = 0; j < Wo; ++j) out[j] = in[st * j];
              std::fill(out + Wo, out + g.step, T(0));
            }
          }
          std::fill(d + g.front + g.M, d + g.L, T(0));
        }
  }

  /// Writes `channels` columns of src (leading dimension lds; pixel (s, r, j) at row
  /// s sample_step + r row_step + j) into samples [s0, s0 + nc) of the images at dst (leading
  /// dimension ld) as their H x W phase (a, b) of stride st (pixels (st r + a, st j + b) of an
  /// st H x st W image), adding bias[c] when bias is not null.
  static void unpad_images(const T* src, index lds, index sample_step, index row_step, index s0,
                           index nc, index channels, index H, index W, T* dst, index ld,
                           const T* bias, index st = 1, index a = 0, index pb = 0) {
    const index HW = H * W * st * st;
    for (index s = 0; s < nc; ++s)
      for (index c = 0; c < channels; ++c) {
        const T* sc = src + c * lds + s * sample_step;
        T* dc = dst + (s0 + s) * ld + c * HW;
        const T b = bias ? bias[c] : T(0);
        if (st > 1) {
          for (index r = 0; r < H; ++r)
            for (index j = 0; j < W; ++j)
              dc[(st * r + a) * st * W + st * j + pb] = sc[r * row_step + j] + b;
          continue;
        }
        if (row_step == W) {
          if (bias)
            for (index q = 0; q < HW; ++q) dc[q] = sc[q] + b;
          else
            std::memcpy(dc, sc, sizeof(T) * std::size_t(HW));
          continue;
        }
        for (index r = 0; r < H; ++r)
          for (index j = 0; j < W; ++j) dc[r * W + j] = sc[r * row_step + j] + b;
      }
  }

  void forward_chunk(const matrix<T>& x, index b, const plan& pl) {
    const index C = in_.channels, O = w_.rows(), K = w_.cols();
    const index s0 = pl.begin(b), nc = pl.size(b);
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    using rhs_t = Eigen::internal::const_blas_data_mapper<T, index, Eigen::RowMajor>;  // W^T
    const T* bias = has_bias_ ? b_.data() : nullptr;
    if (offset_) {
      const strip g = layout(nc);
      const chunk_space sp = space(pl.cs, false);
      const index ss = stride_ * stride_;
      index* koff = reinterpret_cast<index*>(ws + sp.koff);
      const index mr = detail::offset_gemm_mr<T>(), ldo = tiles(g.M);
      T* xp = ws + sp.xp;
      T* out = ws + sp.out;
      T* gbuf = ws + sp.gemm;
      tap_offsets(g, koff, nullptr);
      pad_images(x.data(), x.rows(), s0, nc, C, stride_, g, xp);
      if (pl.direct_out) {
        std::fill(xp + C * ss * g.L, xp + C * ss * g.L + mr, T(0));  // read by spare tile rows
        detail::offset_gemm(g.M, O, K, xp + g.front, koff, packed_.data(), out, ldo);
      } else {
        std::fill(out, out + ldo * O, T(0));
        detail::gemm_mapped<Eigen::ColMajor, Eigen::RowMajor>(
            g.M, O, K, detail::offset_matrix<T, Eigen::ColMajor>{xp + g.front, koff},
            rhs_t(w_.data(), O), out, ldo, T(1), gbuf);
      }
      unpad_images(out, ldo, g.step, g.R, s0, nc, O, out_.height, out_.width, this->y_.data(),
                   this->y_.rows(), bias);
    } else {
      const index P = out_.spatial(), N = nc * P;
      const chunk_space sp = space(pl.cs, false);
      T* cols = ws + sp.xp;
      T* out = ws + sp.out;
      T* gbuf = ws + sp.gemm;
      im2col(x.data(), x.rows(), s0, nc, cols);
      std::fill(out, out + N * O, T(0));
      detail::gemm_accumulate<detail::operand::plain, detail::operand::transposed>(
          N, O, K, cols, N, w_.data(), O, out, N, T(1), gbuf);
      unpad_images(out, N, P, out_.width, s0, nc, O, out_.height, out_.width, this->y_.data(),
                   this->y_.rows(), bias);
    }
  }

  void backward_chunk(const matrix<T>& dy, index b, const plan& pl, T* partial) {
    const matrix<T>& x = *this->x_;
    const index C = in_.channels, O = w_.rows(), K = w_.cols(), kk = k_ * k_;
    const index s0 = pl.begin(b), nc = pl.size(b);
    const bool want_dx = this->input_gradient_;
    T* ws = static_cast<T*>(detail::thread_scratch().p);
    using mat_t = Eigen::internal::const_blas_data_mapper<T, index, Eigen::ColMajor>;
    std::fill(partial, partial + K * O, T(0));
    if (has_bias_) {
      const index P = out_.spatial();
      for (index o = 0; o < O; ++o) {
        T sum(0);
        for (index s = s0; s < s0 + nc; ++s) sum += dy.col(s).segment(o * P, P).sum();
        partial[K * O + o] = sum;
      }
    }
    if (offset_) {
      const strip g = layout(nc);
      const chunk_space sp = space(pl.cs, true);
      const index ss = stride_ * stride_;
      index* koff = reinterpret_cast<index*>(ws + sp.koff);
      index* koff_t = reinterpret_cast<index*>(ws + sp.koff_t);
      const index mr = detail::offset_gemm_mr<T>(), ldd = tiles(g.M);
      T* xp = ws + sp.xp;
      T* dyp = ws + sp.dyp;
      T* dxo = ws + sp.dxo;
      T* dyt = ws + sp.dyt;  // dL/dy transposed: M x O row-major
      T* gbuf = ws + sp.gemm;
      tap_offsets(g, koff, koff_t);
      pad_images(x.data(), x.rows(), s0, nc, C, stride_, g, xp);
      pad_images(dy.data(), dy.rows(), s0, nc, O, 1, g, dyp);
      // dW = dy^T unfold(x) over the chunk's rows (dy is zero between pixels).
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
      if (want_dx) {
        // dL/dx one phase at a time: the product over that phase's taps, then scattered.
        if (pl.direct_in) std::fill(dyp + O * g.L, dyp + O * g.L + mr, T(0));
        for (index ph = 0; ph < ss; ++ph) {
          const index start = phase_start_[std::size_t(ph)];
          const index kd = O * (phase_start_[std::size_t(ph + 1)] - start);
          if (kd == 0) {
            std::fill(dxo, dxo + ldd * C, T(0));  // no tap reads this phase
          } else if (pl.direct_in) {
            detail::offset_gemm(g.M, C, kd, dyp + g.front, koff_t + O * start,
                                packed_.data() + C * O * start, dxo, ldd);
          } else {
            std::fill(dxo, dxo + ldd * C, T(0));
            detail::gemm_mapped<Eigen::ColMajor, Eigen::ColMajor>(
                g.M, C, kd,
                detail::offset_matrix<T, Eigen::ColMajor>{dyp + g.front, koff_t + O * start},
                mat_t(wt_.data() + O * start, O * kk), dxo, ldd, T(1), gbuf);
          }
          unpad_images(dxo, ldd, g.step, g.R, s0, nc, C, out_.height, out_.width, this->dx_.data(),
                       this->dx_.rows(), nullptr, stride_, ph / stride_, ph % stride_);
        }
      }
    } else {
      const index P = out_.spatial(), N = nc * P;
      const chunk_space sp = space(pl.cs, true);
      T* cols = ws + sp.xp;
      T* gt = ws + sp.out;
      T* gbuf = ws + sp.gemm;
      for (index s = 0; s < nc; ++s)
        for (index o = 0; o < O; ++o)
          std::memcpy(gt + o * N + s * P, dy.data() + (s0 + s) * dy.rows() + o * P,
                      sizeof(T) * std::size_t(P));
      im2col(x.data(), x.rows(), s0, nc, cols);
      detail::gemm_accumulate<detail::operand::transposed, detail::operand::plain>(
          K, O, N, cols, N, gt, N, partial, K, T(1), gbuf);
      if (want_dx) {
        std::fill(cols, cols + N * K, T(0));  // the unfolded input gradient, in the im2col buffer
        detail::gemm_accumulate<detail::operand::plain, detail::operand::plain>(
            N, K, O, gt, N, w_.data(), O, cols, N, T(1), gbuf);
        col2im(cols, s0, nc, this->dx_);
      }
    }
  }

  /// Unfolds samples [s0, s0 + nc) of the images at xd (leading dimension ld) into cols
  /// (N x C k k column-major, N = nc Ho Wo): entry (s Ho Wo + i Wo + j, c k k + u k + v) =
  /// x(c, i stride - pad + u, j stride - pad + v), or 0 outside the image.
  void im2col(const T* xd, index ld, index s0, index nc, T* cols) const {
    const index H = in_.height, W = in_.width, Ho = out_.height, Wo = out_.width;
    const index P = Ho * Wo, N = nc * P, C = in_.channels, k = k_, st = stride_, pad = pad_;
    for (index c = 0; c < C; ++c)
      for (index u = 0; u < k; ++u)
        for (index v = 0; v < k; ++v) {
          T* col = cols + ((c * k + u) * k + v) * N;
          // output columns j with 0 <= j st - pad + v < W
          const index jlo = valid_begin(Wo, v, st, pad);
          const index jhi = valid_end(W, Wo, v, jlo, st, pad);
          for (index s = 0; s < nc; ++s) {
            const T* img = xd + (s0 + s) * ld + c * H * W;
            T* out = col + s * P;
            for (index i = 0; i < Ho; ++i) {
              T* dst = out + i * Wo;
              const index iy = i * st - pad + u;
              if (iy < 0 || iy >= H) {
                std::fill(dst, dst + Wo, T(0));
                continue;
              }
              const T* row = img + iy * W;
              std::fill(dst, dst + jlo, T(0));
              for (index j = jlo; j < jhi; ++j) dst[j] = row[j * st - pad + v];
              std::fill(dst + jhi, dst + Wo, T(0));
            }
          }
        }
  }

  /// Writes the folded (transposed im2col) cols into samples [s0, s0 + nc) of dx.
  void col2im(const T* cols, index s0, index nc, matrix<T>& dx) const {
    const index H = in_.height, W = in_.width, Ho = out_.height, Wo = out_.width;
    const index P = Ho * Wo, N = nc * P, C = in_.channels, k = k_, st = stride_, pad = pad_;
    const index ld = dx.rows();
    T* xd = dx.data();
    for (index s = 0; s < nc; ++s) std::fill(xd + (s0 + s) * ld, xd + (s0 + s + 1) * ld, T(0));
    for (index c = 0; c < C; ++c)
      for (index u = 0; u < k; ++u)
        for (index v = 0; v < k; ++v) {
          const T* col = cols + ((c * k + u) * k + v) * N;
          const index jlo = valid_begin(Wo, v, st, pad);
          const index jhi = valid_end(W, Wo, v, jlo, st, pad);
          for (index s = 0; s < nc; ++s) {
            T* img = xd + (s0 + s) * ld + c * H * W;
            const T* in = col + s * P;
            for (index i = 0; i < Ho; ++i) {
              const index iy = i * st - pad + u;
              if (iy < 0 || iy >= H) continue;
              const T* src = in + i * Wo;
              T* row = img + iy * W;
              for (index j = jlo; j < jhi; ++j) row[j * st - pad + v] += src[j];
            }
          }
        }
  }

  /// First output column j whose input column j st - pad + v is >= 0.
  static index valid_begin(index Wo, index v, index st, index pad) {
    const index num = pad - v;
    return num <= 0 ? 0 : std::min(Wo, (num + st - 1) / st);
  }
  /// One past the last output column whose input column is < W (at least `lo`).
  static index valid_end(index W, index Wo, index v, index lo, index st, index pad) {
    const index num = W - 1 + pad - v;
    return num < 0 ? lo : std::max(lo, std::min(Wo, num / st + 1));
  }

  image_shape in_, out_;
  index k_, stride_, pad_;
  bool has_bias_;
  bool offset_ = false;  ///< odd k, p = (k - 1) / 2, sides divisible by s: the offset path
  index q_ = 0;          ///< largest tap shift |du| (the padding of the strip layout)
  std::vector<index> tap_shift_, tap_phase_;     ///< du(u) and a(u) for u < k
  std::vector<index> phase_taps_, phase_start_;  ///< taps t grouped by the phase they read
  matrix<T> w_, dw_, b_, db_;
  matrix<T> wt_;                      ///< W regrouped by input phase for dL/dx (see backward)
  std::vector<T> packed_;             ///< W^T or wt_ packed for offset_gemm (see plan)
  std::vector<index> koff_, koff_t_;  ///< tap offsets in the padded layout (see tap_offsets)
};

}  // namespace shatter

#endif  // SHATTER_LAYER_CONV2D_HPP
