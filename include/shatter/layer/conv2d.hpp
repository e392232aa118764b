// shatter: 2-D convolution over channel-major image columns (im2col + one GEMM per chunk).
#ifndef SHATTER_LAYER_CONV2D_HPP
#define SHATTER_LAYER_CONV2D_HPP

#include <algorithm>
#include <cstring>
#include <vector>

#include "shatter/layer/image_shape.hpp"
#include "shatter/layer/layer.hpp"

#ifdef _OPENMP
#include <omp.h>
#define SHATTER_CONV_OMP_FOR _Pragma("omp parallel for schedule(static) num_threads(conv_threads)")
#else
#define SHATTER_CONV_OMP_FOR
#endif

namespace shatter {

namespace detail {
/// Scratch memory shared by every conv2d<T> of one thread: the im2col matrix and the
/// transposed output of one chunk. Grows to the largest size needed and is then reused, so
/// training allocates nothing per step after the first.
template <class T>
struct conv_workspace {
  std::vector<T> cols, out;
  static T* grow(std::vector<T>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};
template <class T>
conv_workspace<T>& conv_scratch() {
  static thread_local conv_workspace<T> w;
  return w;
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
/// Implementation: the batch is processed in chunks of samples; each chunk is unfolded
/// (im2col, transposed: positions x in k k) and multiplied by W^T in one Eigen GEMM, which uses
/// Eigen's OpenMP threads (see set_threads). Backward recomputes the unfolding instead of
/// storing it, so memory per layer is its output plus the shared per-thread scratch.
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

  /// Upper bound on the elements of the per-chunk scratch matrices (default 2^17, so that
  /// one chunk's unfolding stays in a core's L2 cache between im2col and the product): the batch is
  /// split into chunks of samples whose unfolded input stays below it (at least one sample).
  static void set_chunk_elements(index n) {
    require<config_error>(n >= 1, "conv2d::set_chunk_elements: need n >= 1, got ", n);
    chunk_elements() = n;
  }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    this->check_input(x);
    this->x_ = &x;
    const index n = x.cols(), P = out_.spatial(), K = w_.cols(), O = w_.rows();
    this->y_.resize(out_.size(), n);
    auto& ws = detail::conv_scratch<T>();
    const index cs = chunk_samples(n);
    T* cols = detail::conv_workspace<T>::grow(ws.cols, std::size_t(cs * P * K));
    T* outp = detail::conv_workspace<T>::grow(ws.out, std::size_t(cs * P * O));
    for (index s0 = 0; s0 < n; s0 += cs) {
      const index nc = std::min(cs, n - s0), N = nc * P;
      im2col(x.data(), x.rows(), s0, nc, fwd_geometry(), cols);
      Eigen::Map<matrix<T>> c(cols, N, K), ot(outp, N, O);
      ot.noalias() = c * w_.transpose();
      for (index s = 0; s < nc; ++s)
        for (index o = 0; o < O; ++o) {
          auto dst = this->y_.col(s0 + s).segment(o * P, P);
          if (has_bias_)
            dst.array() = ot.col(o).segment(s * P, P).array() + b_(o, 0);
          else
            dst = ot.col(o).segment(s * P, P);
        }
    }
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    const matrix<T>& x = *this->x_;
    const index n = dy.cols(), P = out_.spatial(), K = w_.cols(), O = w_.rows();
    const index C = in_.channels, HW = in_.spatial(), kk = k_ * k_;
    dw_.setZero();
    if (has_bias_)
      for (index o = 0; o < O; ++o) db_(o, 0) = dy.middleRows(o * P, P).sum();
    const bool want_dx = this->input_gradient_;
    // Stride 1: dL/dx is itself a stride-1 convolution of dL/dy (padding k - 1 - p) with the
    // flipped, transposed kernel, so unfold dy (O k k per input pixel) instead of folding a
    // C k k unfolded gradient back (half the memory traffic when C = 2 O, no scatter-add).
    const bool transposed = want_dx && stride_ == 1 && pad_ <= k_ - 1;
    if (transposed) {
      this->dx_.resize(in_.size(), n);
      wt_.resize(O * kk, C);
      for (index o = 0; o < O; ++o)
        for (index c = 0; c < C; ++c)
          for (index u = 0; u < k_; ++u)
            for (index v = 0; v < k_; ++v)
              wt_(o * kk + (k_ - 1 - u) * k_ + (k_ - 1 - v), c) = w_(o, c * kk + u * k_ + v);
    } else if (want_dx) {
      this->dx_.setZero(in_.size(), n);
    } else {
      this->dx_.resize(0, 0);
    }
    auto& ws = detail::conv_scratch<T>();
    const index cs = chunk_samples(n);
    T* cols = detail::conv_workspace<T>::grow(
        ws.cols, std::size_t(cs * std::max(P * K, transposed ? HW * O * kk : index(0))));
    T* outp = detail::conv_workspace<T>::grow(
        ws.out, std::size_t(cs * std::max(P * O, transposed ? HW * C : index(0))));
    for (index s0 = 0; s0 < n; s0 += cs) {
      const index nc = std::min(cs, n - s0), N = nc * P;
      Eigen::Map<matrix<T>> c(cols, N, K), gt(outp, N, O);
      for (index s = 0; s < nc; ++s)
        for (index o = 0; o < O; ++o)
          gt.col(o).segment(s * P, P) = dy.col(s0 + s).segment(o * P, P);
      im2col(x.data(), x.rows(), s0, nc, fwd_geometry(), cols);
      dw_.noalias() += gt.transpose() * c;
      if (transposed) {
        const index M = nc * HW;
        im2col(dy.data(), dy.rows(), s0, nc, bwd_geometry(), cols);
        Eigen::Map<matrix<T>> cb(cols, M, O * kk), dxt(outp, M, C);
        dxt.noalias() = cb * wt_;
        for (index s = 0; s < nc; ++s)
          for (index ch = 0; ch < C; ++ch)
            this->dx_.col(s0 + s).segment(ch * HW, HW) = dxt.col(ch).segment(s * HW, HW);
      } else if (want_dx) {
        c.noalias() = gt * w_;  // the unfolded input gradient, reusing the im2col buffer
        col2im(cols, s0, nc, this->dx_);
      }
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
    static index n = index(1) << 17;
    return n;
  }
  index chunk_samples(index n) const {
    const index per = std::max(out_.spatial() * std::max(w_.cols(), w_.rows()),
                               in_.spatial() * std::max(w_.rows() * k_ * k_, in_.channels));
    return std::max<index>(1, std::min<index>(n, chunk_elements() / per));
  }

  /// Geometry of one unfolding: input and output images, kernel, stride, padding.
  struct geometry {
    image_shape in, out;
    index k, stride, pad;
  };
  geometry fwd_geometry() const { return {in_, out_, k_, stride_, pad_}; }
  /// dL/dx as a convolution of dL/dy (stride 1 only): padding k - 1 - p gives the input size.
  geometry bwd_geometry() const { return {out_, in_, k_, 1, k_ - 1 - pad_}; }

  /// Unfolds samples [s0, s0 + nc) of the images at xd (leading dimension ld, geometry g) into
  /// cols (N x C k k column-major, N = nc Ho Wo): entry (s Ho Wo + i Wo + j, c k k + u k + v) =
  /// x(c, i stride - pad + u, j stride - pad + v), or 0 outside the image.
  static void im2col(const T* xd, index ld, index s0, index nc, const geometry& g, T* cols) {
    const index H = g.in.height, W = g.in.width, Ho = g.out.height, Wo = g.out.width;
    const index P = Ho * Wo, N = nc * P, C = g.in.channels, k = g.k, st = g.stride, pad = g.pad;
    [[maybe_unused]] const int conv_threads = parallel_threads(N * C * k * k);
    SHATTER_CONV_OMP_FOR
    for (index c = 0; c < C; ++c) {
      for (index u = 0; u < k; ++u)
        for (index v = 0; v < k; ++v) {
          T* col = cols + ((c * k + u) * k + v) * N;
          // output columns j with 0 <= j st - pad + v < W
          const index jlo = valid_begin(Wo, v, st, pad);
          const index jhi = valid_end(W, Wo, v, jlo, st, pad);
          if (st == 1 && Wo == W) {
            // "Same" width, stride 1: entry q = i W + j reads flat input index q + d, so copy
            // the in-range flat span at once, zero the rest, then zero the columns that wrapped
            // around from a neighbouring row (j < jlo or j >= jhi).
            const index d = (u - pad) * W + (v - pad), HWi = H * W;
            const index qlo = std::min(P, std::max<index>(0, -d));
            const index qhi = std::max(qlo, std::min(P, HWi - d));
            for (index s = 0; s < nc; ++s) {
              const T* img = xd + (s0 + s) * ld + c * HWi;
              T* out = col + s * P;
              for (index q = 0; q < qlo; ++q) out[q] = T(0);
              std::memcpy(out + qlo, img + qlo + d, sizeof(T) * std::size_t(qhi - qlo));
              for (index q = qhi; q < P; ++q) out[q] = T(0);
              for (index i = 0; i < Ho; ++i) {
                T* dst = out + i * Wo;
                for (index j = 0; j < jlo; ++j) dst[j] = T(0);
                for (index j = jhi; j < Wo; ++j) dst[j] = T(0);
              }
            }
            continue;
          }
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
              if (st == 1) {
                if (jhi > jlo) std::memcpy(dst + jlo, row + jlo - pad + v, sizeof(T) * (jhi - jlo));
              } else {
                for (index j = jlo; j < jhi; ++j) dst[j] = row[j * st - pad + v];
              }
              std::fill(dst + jhi, dst + Wo, T(0));
            }
          }
        }
    }
  }

  /// Adds the folded (transposed im2col) of cols into samples [s0, s0 + nc) of dx.
  void col2im(const T* cols, index s0, index nc, matrix<T>& dx) const {
    const index H = in_.height, W = in_.width, Ho = out_.height, Wo = out_.width;
    const index P = Ho * Wo, N = nc * P, C = in_.channels, k = k_, st = stride_, pad = pad_;
    T* xd = dx.data();
    const index ld = dx.rows();
    [[maybe_unused]] const int conv_threads = parallel_threads(N * w_.cols());
    SHATTER_CONV_OMP_FOR
    for (index c = 0; c < C; ++c) {
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
              if (st == 1) {
                T* r = row - pad + v;
                for (index j = jlo; j < jhi; ++j) r[j] += src[j];
              } else {
                for (index j = jlo; j < jhi; ++j) row[j * st - pad + v] += src[j];
              }
            }
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

  static int parallel_threads(index work) {
#ifdef _OPENMP
    return work >= (index(1) << 18) ? Eigen::nbThreads() : 1;
#else
    (void)work;
    return 1;
#endif
  }

  image_shape in_, out_;
  index k_, stride_, pad_;
  bool has_bias_;
  matrix<T> w_, dw_, b_, db_;
  matrix<T> wt_;  ///< flipped, transposed kernel for the stride-1 input gradient
};

}  // namespace shatter

#undef SHATTER_CONV_OMP_FOR

#endif  // SHATTER_LAYER_CONV2D_HPP
