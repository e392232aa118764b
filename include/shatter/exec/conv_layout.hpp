// shatter: the memory layouts of convolution kernels: unfolding (im2col), folding, and the
// zero-padded strip layout in which every tap of a kernel is a fixed offset.
#ifndef SHATTER_EXEC_CONV_LAYOUT_HPP
#define SHATTER_EXEC_CONV_LAYOUT_HPP

#include <algorithm>
#include <cstring>

#include "shatter/core/shape.hpp"
#include "shatter/core/types.hpp"

namespace shatter::detail {

/// The geometry of a 2-D convolution: input and output image shapes, a square k x k kernel,
/// stride and zero padding (output extent (H + 2 pad - k) / stride + 1).
struct conv_geometry {
  image_shape in, out;
  index k = 1, stride = 1, pad = 0;
};

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

/// Copies `channels` channels of samples [s0, s0 + nc) of the images at src (leading
/// dimension ld), each split into its st x st phases of g's image size (phase (a, b) of
/// channel c: pixels (st r + a, st j + b), written as channel (c st + a) st + b), into layout g
/// at dst (channel length g.L), zeros included.
template <class T>
void pad_images(const T* src, index ld, index s0, index nc, index channels, index st,
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
template <class T>
void unpad_images(const T* src, index lds, index sample_step, index row_step, index s0, index nc,
                  index channels, index H, index W, T* dst, index ld, const T* bias, index st = 1,
                  index a = 0, index pb = 0) {
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

/// First output column j whose input column j st - pad + v is >= 0.
inline index valid_begin(index Wo, index v, index st, index pad) {
  const index num = pad - v;
  return num <= 0 ? 0 : std::min(Wo, (num + st - 1) / st);
}
/// One past the last output column whose input column is < W (at least `lo`).
inline index valid_end(index W, index Wo, index v, index lo, index st, index pad) {
  const index num = W - 1 + pad - v;
  return num < 0 ? lo : std::max(lo, std::min(Wo, num / st + 1));
}

/// Unfolds samples [s0, s0 + nc) of the images at xd (leading dimension ld) into cols
/// (N x C k k column-major, N = nc Ho Wo): entry (s Ho Wo + i Wo + j, c k k + u k + v) =
/// x(c, i stride - pad + u, j stride - pad + v), or 0 outside the image.
template <class T>
void im2col(const conv_geometry& cg, const T* xd, index ld, index s0, index nc, T* cols) {
  const index H = cg.in.height, W = cg.in.width, Ho = cg.out.height, Wo = cg.out.width;
  const index P = Ho * Wo, N = nc * P, C = cg.in.channels, k = cg.k, st = cg.stride, pad = cg.pad;
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
template <class T>
void col2im(const conv_geometry& cg, const T* cols, index s0, index nc, T* xd, index ld) {
  const index H = cg.in.height, W = cg.in.width, Ho = cg.out.height, Wo = cg.out.width;
  const index P = Ho * Wo, N = nc * P, C = cg.in.channels, k = cg.k, st = cg.stride, pad = cg.pad;
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

}  // namespace shatter::detail

#endif  // SHATTER_EXEC_CONV_LAYOUT_HPP
