// shatter: Winograd's minimal filtering F(2x2, 3x3) for 3x3 convolutions with stride 1 and
// padding 1: the transforms of inputs, filters, outputs and their gradients, on the strip layout.
#ifndef SHATTER_EXEC_WINOGRAD_HPP
#define SHATTER_EXEC_WINOGRAD_HPP

#include <Eigen/Core>

#include "shatter/core/types.hpp"
#include "shatter/exec/conv_layout.hpp"
#include "shatter/exec/gemm.hpp"

namespace shatter::detail {

// F(2x2, 3x3) (Lavin and Gray, 2016). A 2 x 2 tile of outputs of a 3 x 3 correlation is
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A
// for the 4 x 4 input tile d around it and the filter g, with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// Summed over input channels, the products .* become 16 matrix products, one per position
// xi = 4 i + j of the transformed tile: M_xi (tiles x out) = V_xi (tiles x in) U_xi (in x out),
// 16 multiply-adds per 4 outputs and channel pair where the direct sum takes 36. The weight
// gradient is dg = G^T [ sum over tiles of (B^T d B) .* (A dY A^T) ] G, 16 products again.
//
// Layout: a chunk of images is split into its 2 x 2 phases (pad_images with stride 2) in the
// strip layout g of the tile grid (H / 2 x W / 2 tiles, padding 1). Tile row i of an input tile
// then reads phase row a(i) shifted by du(i) rows, (a, du) = (1, -1), (0, 0), (1, 0), (0, 1), and
// the same for columns, so every transform runs over whole packets of tiles t in [0, g.M): the
// tiles of all images side by side, with one extra tile per image and tile row (over the zero
// column between images) whose outputs are dropped.

/// Phase and shift of row (or column) i of an input tile (see above).
inline constexpr int winograd_phase[4] = {1, 0, 1, 0};
inline constexpr int winograd_shift[4] = {-1, 0, 0, 1};

/// Index of B(kk, j) in a k x n matrix packed by offset_gemm_pack.
inline index packed_at(index k, index kk, index j) {
  constexpr index nr = offset_gemm_nr;
  return (j / nr) * k * nr + kk * nr + j % nr;
}

/// Transformed filters U_xi = G g G^T of out x in filters g(o, c, u, v), for the outputs o in
/// [o0, o1), written packed for offset_gemm: U_xi (in x out) at u + xi in out.
/// Precondition: out % offset_gemm_nr == 0.
template <class T, class Filter>
void winograd_filters(index o0, index o1, index out, index in, Filter g, T* u) {
  const T h(0.5);
  for (index o = o0; o < o1; ++o)
    for (index c = 0; c < in; ++c) {
      T gg[4][3], m[4][4];  // G g, then (G g) G^T
      for (int v = 0; v < 3; ++v) {
        const T g0 = g(o, c, 0, v), g1 = g(o, c, 1, v), g2 = g(o, c, 2, v);
        gg[0][v] = g0;
        gg[1][v] = h * (g0 + g1 + g2);
        gg[2][v] = h * (g0 - g1 + g2);
        gg[3][v] = g2;
      }
      for (int i = 0; i < 4; ++i) {
        m[i][0] = gg[i][0];
        m[i][1] = h * (gg[i][0] + gg[i][1] + gg[i][2]);
        m[i][2] = h * (gg[i][0] - gg[i][1] + gg[i][2]);
        m[i][3] = gg[i][2];
      }
      for (int xi = 0; xi < 16; ++xi) u[xi * in * out + packed_at(in, c, o)] = m[xi / 4][xi % 4];
    }
}

/// The filter gradient G^T dU G: adds sum_xi G(i, u) G(j, v) dU_xi(o, c) to dw(o, c k k + 3 u
/// + v) (column-major, leading dimension out) from dU_xi at du + xi out in (out x in,
/// column-major).
template <class T>
void winograd_filter_grads(index out, index in, const T* du, T* dw) {
  const T h(0.5);
  for (index c = 0; c < in; ++c)
    for (index o = 0; o < out; ++o) {
      T q[4][4], r[3][4];
      for (int xi = 0; xi < 16; ++xi) q[xi / 4][xi % 4] = du[xi * out * in + c * out + o];
      for (int j = 0; j < 4; ++j) {  // G^T q: rows u = 0..2
        r[0][j] = q[0][j] + h * (q[1][j] + q[2][j]);
        r[1][j] = h * (q[1][j] - q[2][j]);
        r[2][j] = h * (q[1][j] + q[2][j]) + q[3][j];
      }
      for (int u = 0; u < 3; ++u) {  // (G^T q) G: columns v = 0..2
        T* w = dw + (c * 9 + 3 * u) * out + o;
        w[0] += r[u][0] + h * (r[u][1] + r[u][2]);
        w[out] += h * (r[u][1] - r[u][2]);
        w[2 * out] += h * (r[u][1] + r[u][2]) + r[u][3];
      }
    }
}

/// e[j] = src[2 j], o[j] = src[2 j + 1]: splits a row of 2 n pixels into its even and odd
/// columns.
template <class T>
void split_columns(index n, const T* __restrict src, T* __restrict e, T* __restrict o) {
  for (index j = 0; j < n; ++j) {
    e[j] = src[2 * j];
    o[j] = src[2 * j + 1];
  }
}

/// row[2 j] = e[j] + b, row[2 j + 1] = o[j] + b: joins even and odd columns into a row.
template <class T>
void join_columns(index n, const T* __restrict e, const T* __restrict o, T b, T* __restrict row) {
  for (index j = 0; j < n; ++j) {
    row[2 * j] = e[j] + b;
    row[2 * j + 1] = o[j] + b;
  }
}

/// The 2 x 2 phases of `channels` channels of samples [s0, s0 + nc) of src (2 g.H x 2 g.W
/// images, leading dimension ld) in layout g at dst: phase (a, b) of channel c (pixels (2 r + a,
/// 2 j + b)) at dst + (4 c + 2 a + b) g.L, zeros included, and `margin` zeros after the last.
template <class T>
void winograd_phases(const T* src, index ld, index s0, index nc, index channels, const strip& g,
                     index margin, T* dst) {
  const index W = 2 * g.W, HW = 4 * g.H * g.W;
  for (index c = 0; c < channels; ++c) {
    T* ph = dst + 4 * c * g.L;
    for (index q = 0; q < 4; ++q) {  // the zeros around and between the images
      T* d = ph + q * g.L;
      std::fill(d, d + g.front, T(0));
      for (index r = 0; r < g.H; ++r)
        for (index s = 0; s < nc; ++s) d[g.front + r * g.R + s * g.step + g.W] = T(0);
      std::fill(d + g.front + g.M, d + g.L, T(0));
    }
    for (index s = 0; s < nc; ++s) {
      const T* img = src + (s0 + s) * ld + c * HW;
      for (index r = 0; r < g.H; ++r)
        for (index a = 0; a < 2; ++a) {
          T* e = ph + 2 * a * g.L + g.front + r * g.R + s * g.step;
          split_columns(g.W, img + (2 * r + a) * W, e, e + g.L);
        }
    }
  }
  T* end = dst + 4 * channels * g.L;
  std::fill(end, end + margin, T(0));
}

/// Writes the output phases Y_ab of `out` channels (layout g: Y_ab(t, o) at y[(2 a + b) yp +
/// o ldy + t]) into samples [s0, s0 + nc) of dst (2 g.H x 2 g.W images, leading dimension
/// ld), adding bias[o] unless bias is null.
template <class T>
void winograd_unphase(const T* y, index ldy, index yp, const strip& g, index s0, index nc,
                      index out, T* dst, index ld, const T* bias) {
  const index W = 2 * g.W, HW = 4 * g.H * g.W;
  for (index s = 0; s < nc; ++s)
    for (index o = 0; o < out; ++o) {
      T* img = dst + (s0 + s) * ld + o * HW;
      const T b = bias ? bias[o] : T(0);
      for (index r = 0; r < g.H; ++r)
        for (index a = 0; a < 2; ++a) {
          const T* e = y + 2 * a * yp + o * ldy + r * g.R + s * g.step;
          join_columns(g.W, e, e + yp, b, img + (2 * r + a) * W);
        }
    }
}

/// V_xi = B^T d B for the tiles t in [t0, t1) rounded up to a packet (t0 a whole number of
/// packets) and each of `channels` channels whose phases winograd_phases wrote to xp (channel
/// length g.L): V_xi(t, c) at v[xi vp + c ldv + t - t0]. Reads up to g.R + 1 + a packet past
/// the last channel's phases.
template <class T>
void winograd_inputs(const strip& g, index channels, const T* xp, index t0, index t1, T* v,
                     index ldv, index vp) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  index shift[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      shift[i][j] = (2 * winograd_phase[i] + winograd_phase[j]) * g.L + g.front +
                    winograd_shift[i] * g.R + winograd_shift[j];
  for (index c = 0; c < channels; ++c) {
    const T* x = xp + 4 * c * g.L;
    T* vc = v + c * ldv;
    for (index t = t0; t < t1; t += ps) {
      packet e[4][4];
      for (int j = 0; j < 4; ++j) {  // B^T d, down the columns of the tile
        const packet d0 = ei::ploadu<packet>(x + shift[0][j] + t),
                     d1 = ei::ploadu<packet>(x + shift[1][j] + t),
                     d2 = ei::ploadu<packet>(x + shift[2][j] + t),
                     d3 = ei::ploadu<packet>(x + shift[3][j] + t);
        e[0][j] = ei::psub(d0, d2);
        e[1][j] = ei::padd(d1, d2);
        e[2][j] = ei::psub(d2, d1);
        e[3][j] = ei::psub(d1, d3);
      }
      for (int a = 0; a < 4; ++a) {  // (B^T d) B, along the rows
        T* va = vc + 4 * a * vp + (t - t0);
        ei::pstoreu(va, ei::psub(e[a][0], e[a][2]));
        ei::pstoreu(va + vp, ei::padd(e[a][1], e[a][2]));
        ei::pstoreu(va + 2 * vp, ei::psub(e[a][2], e[a][1]));
        ei::pstoreu(va + 3 * vp, ei::psub(e[a][1], e[a][3]));
      }
    }
  }
}

/// Y = A^T M A for every tile t in [0, m) rounded up to a packet and each of `out` channels:
/// M_xi(t, o) at mm[xi mp + o ldm + t], the 2 x 2 outputs Y_ab(t, o) at y[(2 a + b) yp + o ldy
/// + t] (the output's phases in the strip layout).
template <class T>
void winograd_outputs(index m, index out, const T* mm, index ldm, index mp, T* y, index ldy,
                      index yp) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  for (index o = 0; o < out; ++o)
    for (index t = 0; t < m; t += ps) {
      const T* q = mm + o * ldm + t;
      packet r[2][4];
      for (int j = 0; j < 4; ++j) {  // A^T M, down the columns
        const packet q0 = ei::ploadu<packet>(q + j * mp), q1 = ei::ploadu<packet>(q + (4 + j) * mp),
                     q2 = ei::ploadu<packet>(q + (8 + j) * mp),
                     q3 = ei::ploadu<packet>(q + (12 + j) * mp);
        r[0][j] = ei::padd(ei::padd(q0, q1), q2);
        r[1][j] = ei::psub(ei::psub(q1, q2), q3);
      }
      T* yo = y + o * ldy + t;
      for (int a = 0; a < 2; ++a) {  // (A^T M) A, along the rows
        ei::pstoreu(yo + 2 * a * yp, ei::padd(ei::padd(r[a][0], r[a][1]), r[a][2]));
        ei::pstoreu(yo + (2 * a + 1) * yp, ei::psub(ei::psub(r[a][1], r[a][2]), r[a][3]));
      }
    }
}

/// dM = A dY A^T for the tiles t in [t0, t1) rounded up to a packet (t0 a whole number of
/// packets) and each of `out` channels of dL/dy, whose phases winograd_phases wrote to dyp:
/// dM_xi(t, o) at dm[xi mp + o ldm + t - t0]. The zero columns of the layout give the extra
/// tiles dM = 0.
template <class T>
void winograd_output_grads(const strip& g, index out, const T* dyp, index t0, index t1, T* dm,
                           index ldm, index mp) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  for (index o = 0; o < out; ++o) {
    const T* y = dyp + 4 * o * g.L + g.front;
    for (index t = t0; t < t1; t += ps) {
      packet c[4][2];  // A dY: rows i from the two output rows a
      for (int b = 0; b < 2; ++b) {
        const packet y0 = ei::ploadu<packet>(y + b * g.L + t),
                     y1 = ei::ploadu<packet>(y + (2 + b) * g.L + t);
        c[0][b] = y0;
        c[1][b] = ei::padd(y0, y1);
        c[2][b] = ei::psub(y0, y1);
        c[3][b] = ei::pnegate(y1);
      }
      T* d = dm + o * ldm + (t - t0);
      for (int i = 0; i < 4; ++i) {  // (A dY) A^T: columns j from the two output columns b
        ei::pstoreu(d + 4 * i * mp, c[i][0]);
        ei::pstoreu(d + (4 * i + 1) * mp, ei::padd(c[i][0], c[i][1]));
        ei::pstoreu(d + (4 * i + 2) * mp, ei::psub(c[i][0], c[i][1]));
        ei::pstoreu(d + (4 * i + 3) * mp, ei::pnegate(c[i][1]));
      }
    }
  }
}

/// Transposes 16 planes of `out` x m (channel rows ldm apart, planes mp apart, m rounded up to
/// a packet) into m x out row-major planes at dst (planes mp apart), a packet square at a time.
/// Precondition: out % (SIMD packet size of T) == 0.
template <class T>
void winograd_transpose(index m, index out, const T* src, index ldm, index mp, T* dst) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  for (int xi = 0; xi < 16; ++xi)
    for (index o0 = 0; o0 < out; o0 += ps)
      for (index t = 0; t < m; t += ps) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // a vector type as template argument
#endif
        ei::PacketBlock<packet, int(ps)> block;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
        for (index l = 0; l < ps; ++l)
          block.packet[l] = ei::ploadu<packet>(src + xi * mp + (o0 + l) * ldm + t);
        ei::ptranspose(block);
        for (index l = 0; l < ps; ++l)
          ei::pstoreu(dst + xi * mp + (t + l) * out + o0, block.packet[l]);
      }
}

}  // namespace shatter::detail

#endif  // SHATTER_EXEC_WINOGRAD_HPP
