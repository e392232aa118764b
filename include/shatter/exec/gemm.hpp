// shatter: the matrix-product kernel behind dense layers (allocation-free, threaded in blocks).
#ifndef SHATTER_EXEC_GEMM_HPP
#define SHATTER_EXEC_GEMM_HPP

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>

#include "shatter/core/types.hpp"
#include "shatter/exec/pool.hpp"

/// Tuning of the threaded products: blocks per thread (more: a preempted thread holds up less;
/// fewer: less repacking of the shared operand) and the smallest block (rows or columns).
#ifndef SHATTER_BLOCKS_PER_THREAD
#define SHATTER_BLOCKS_PER_THREAD 1
#endif
#ifndef SHATTER_MIN_BLOCK
#define SHATTER_MIN_BLOCK 64
#endif

#ifdef SHATTER_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace shatter::detail {

#ifdef SHATTER_OPENBLAS
/// With EIGEN_USE_BLAS on OpenBLAS (CMake option SHATTER_USE_BLAS), products run inside the
/// blocks of shatter's own pool, so OpenBLAS must not start threads of its own (2 x 2 threads on
/// 2 cores ran 3-5x slower): set to one thread when the program starts.
inline const bool openblas_single_threaded = (openblas_set_num_threads(1), true);
#endif

/// Storage of a product operand: `plain` is the column-major matrix itself, `transposed` uses its
/// transpose (a column-major k x m matrix read as a row-major m x k one), without copying.
enum class operand { plain, transposed };

/// Scratch for the packed panels of a product on the calling thread (see thread_scratch): grows
/// to the largest size asked for and is then reused, so products allocate nothing in steady state.
template <class T>
T* gemm_scratch(std::size_t n) {
  scratch_buffer& b = thread_scratch();
  b.reserve(n * sizeof(T));
  return static_cast<T*>(b.p);
}

/// Eigen's cache blocking (the sizes Eigen itself would choose for one thread) on caller-owned
/// packing buffers.
template <class T>
class gemm_blocking final : public Eigen::internal::level3_blocking<T, T> {
 public:
  /// Block sizes for an m x n x k product; packing buffers only when `bind` is set: in `buffer`
  /// (at least scratch_size() scalars, 64-byte aligned) or else in the thread's gemm_scratch.
  gemm_blocking(index m, index n, index k, bool bind = true, T* buffer = nullptr) {
    this->m_mc = m;
    this->m_nc = n;
    this->m_kc = k;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, index>(this->m_kc, this->m_mc, this->m_nc,
                                                                 1);
    if (bind) {
      T* buf = buffer ? buffer : gemm_scratch<T>(scratch_size());
      this->m_blockA = buf;
      this->m_blockB = buf + size_a();
    }
  }
  /// Scalars of scratch the packed panels take (panel A rounded up to 64 bytes).
  std::size_t scratch_size() const { return std::size_t(size_a() + this->m_kc * this->m_nc); }

 private:
  index size_a() const {
    constexpr index align = 64 / index(sizeof(T));
    return (this->m_mc * this->m_kc + align - 1) / align * align;
  }
};

/// Scalars of per-thread scratch any block of an m x n x k product needs (at most what the
/// whole product needs). Reserving it on every thread before a parallel loop means no thread
/// allocates later, whichever blocks the scheduler hands it.
template <class T>
std::size_t gemm_scratch_size(index m, index n, index k) {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  return gemm_blocking<T>(m, n, k, false).scratch_size();
}

/// C += alpha op(A) op(B) on one thread, C column-major m x n with leading dimension ldc; A and B
/// given by pointer and leading dimension of their stored (column-major) matrices. Uses Eigen's
/// packing and micro-kernels (or the BLAS when EIGEN_USE_BLAS is defined) and allocates nothing
/// once the calling thread's scratch is large enough (or packs into `buffer`, see gemm_mapped).
template <operand OpA, operand OpB, class T>
void gemm_accumulate(index m, index n, index k, const T* a, index lda, const T* b, index ldb, T* c,
                     index ldc, T alpha, T* buffer = nullptr) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  constexpr int order_a = OpA == operand::plain ? Eigen::ColMajor : Eigen::RowMajor;
  constexpr int order_b = OpB == operand::plain ? Eigen::ColMajor : Eigen::RowMajor;
  gemm_blocking<T> blocking(m, n, k, true, buffer);
  Eigen::internal::general_matrix_matrix_product<index, T, order_a, false, T, order_b, false,
                                                 Eigen::ColMajor, 1>::run(m, n, k, a, lda, b, ldb,
                                                                          c, 1, ldc, alpha,
                                                                          blocking, nullptr);
}

/// A matrix that exists only as offsets into one array: element (i, k) is base[i + offset[k]]
/// (`Order` = Eigen::ColMajor: one offset per column) or base[k + offset[i]] (Eigen::RowMajor: one
/// offset per row). With offsets c L + (u - p) Wp + (v - p) over a zero-padded image it is the
/// unfolded (im2col) matrix of a convolution, read straight from the image by the packing of
/// gemm_mapped instead of being written out first. Provides what Eigen's packing routines read.
template <class T, int Order>
struct offset_matrix {
  struct LinearMapper {};  ///< required by Eigen's packing routines, unused
  const T* base;
  const index* offset;

  const T* address(index i, index k) const {
    return Order == Eigen::ColMajor ? base + i + offset[k] : base + k + offset[i];
  }
  T operator()(index i, index k) const { return *address(i, k); }
  template <class Packet>
  Packet loadPacket(index i, index k) const {
    return Eigen::internal::ploadu<Packet>(address(i, k));
  }
  offset_matrix getSubMapper(index i, index k) const {
    return Order == Eigen::ColMajor ? offset_matrix{base + i, offset + k}
                                    : offset_matrix{base + k, offset + i};
  }
};

/// C += alpha A B on one thread for an m x k operand A and a k x n operand B given as Eigen data
/// mappers (an offset_matrix, or Eigen::internal::const_blas_data_mapper over stored matrices)
/// whose storage orders are LhsOrder and RhsOrder; C column-major with leading dimension ldc.
/// Eigen's sequential blocked product (packing + micro-kernel) on packing buffers in `buffer`
/// (gemm_scratch_size(m, n, k) scalars, 64-byte aligned) or the thread's gemm_scratch. Always
/// Eigen's own kernel, also when EIGEN_USE_BLAS is defined.
template <int LhsOrder, int RhsOrder, class T, class Lhs, class Rhs>
void gemm_mapped(index m, index n, index k, const Lhs& lhs, const Rhs& rhs, T* c, index ldc,
                 T alpha, T* buffer = nullptr) {
  namespace ei = Eigen::internal;
  if (m <= 0 || n <= 0 || k <= 0) return;
  using traits = ei::gebp_traits<T, T>;
  using res_mapper = ei::blas_data_mapper<T, index, Eigen::ColMajor, Eigen::Unaligned, 1>;
  ei::gemm_pack_lhs<T, index, Lhs, traits::mr, traits::LhsProgress,
                    typename traits::LhsPacket4Packing, LhsOrder>
      pack_lhs;
  ei::gemm_pack_rhs<T, index, Rhs, traits::nr, RhsOrder> pack_rhs;
  ei::gebp_kernel<T, T, index, res_mapper, traits::mr, traits::nr, false, false> gebp;
  gemm_blocking<T> blocking(m, n, k, true, buffer);
  const index kc = blocking.kc(), mc = std::min(m, blocking.mc()), nc = std::min(n, blocking.nc());
  T* block_a = blocking.blockA();
  T* block_b = blocking.blockB();
  const res_mapper res(c, ldc);
  const bool pack_rhs_once = mc != m && kc == k && nc == n;
  for (index i2 = 0; i2 < m; i2 += mc) {
    const index mcur = std::min(i2 + mc, m) - i2;
    for (index k2 = 0; k2 < k; k2 += kc) {
      const index kcur = std::min(k2 + kc, k) - k2;
      pack_lhs(block_a, lhs.getSubMapper(i2, k2), kcur, mcur);
      for (index j2 = 0; j2 < n; j2 += nc) {
        const index ncur = std::min(j2 + nc, n) - j2;
        if (!pack_rhs_once || i2 == 0) pack_rhs(block_b, rhs.getSubMapper(k2, j2), kcur, ncur);
        gebp(res.getSubMapper(i2, j2), block_a, block_b, mcur, kcur, ncur, alpha);
      }
    }
  }
}

/// Columns per register tile of offset_gemm: 8 where the vector unit has 32 registers, else 4.
#ifdef EIGEN_VECTORIZE_AVX512
constexpr int offset_gemm_nr = 8;
#else
constexpr int offset_gemm_nr = 4;
#endif

/// Rows of one register tile of offset_gemm<T>: three SIMD packets.
template <class T>
constexpr index offset_gemm_mr() {
  return 3 * index(Eigen::internal::packet_traits<T>::size);
}

/// Packs the k x n matrix B(kk, j) = b[kk rs + j cs] for offset_gemm: panels of offset_gemm_nr
/// columns, each k x nr row-major. Precondition: n % offset_gemm_nr == 0; bp holds k n scalars.
template <class T>
void offset_gemm_pack(index k, index n, const T* b, index rs, index cs, T* bp) {
  constexpr int nr = offset_gemm_nr;
  for (index j0 = 0; j0 < n; j0 += nr)
    for (index kk = 0; kk < k; ++kk)
      for (int c = 0; c < nr; ++c) *bp++ = b[kk * rs + (j0 + c) * cs];
}

/// C = A B (overwritten, no accumulation) for A(i, kk) = a[i + offset[kk]] (an unfolded image in
/// a padded layout, see offset_matrix) and B packed by offset_gemm_pack, straight from the image:
/// no packing of A, a register tile of offset_gemm_mr<T>() x offset_gemm_nr outputs per pass over
/// k. C is column-major with leading dimension ldc. Computes the rows [0, m) rounded up to a
/// whole packet (the last rows in tiles of one packet), so a + offset[kk] + that many rows must
/// be readable and ldc at least that many. Preconditions: n % offset_gemm_nr == 0.
template <class T>
void offset_gemm(index m, index n, index k, const T* a, const index* offset, const T* bp, T* c,
                 index ldc) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  constexpr int nr = offset_gemm_nr;
  const index whole = m / (3 * ps) * (3 * ps);
  for (index j0 = 0; j0 < n; j0 += nr) {
    const T* bj = bp + j0 * k;
    for (index i = 0; i < whole; i += 3 * ps) {
      packet acc0[nr], acc1[nr], acc2[nr];
      for (int q = 0; q < nr; ++q) acc0[q] = acc1[q] = acc2[q] = ei::pset1<packet>(T(0));
      const T* ai = a + i;
      const T* bk = bj;
      for (index kk = 0; kk < k; ++kk, bk += nr) {
        const T* p = ai + offset[kk];
        const packet a0 = ei::ploadu<packet>(p), a1 = ei::ploadu<packet>(p + ps),
                     a2 = ei::ploadu<packet>(p + 2 * ps);
        for (int q = 0; q < nr; ++q) {
          const packet bq = ei::pset1<packet>(bk[q]);
          acc0[q] = ei::pmadd(a0, bq, acc0[q]);
          acc1[q] = ei::pmadd(a1, bq, acc1[q]);
          acc2[q] = ei::pmadd(a2, bq, acc2[q]);
        }
      }
      for (int q = 0; q < nr; ++q) {
        T* cq = c + (j0 + q) * ldc + i;
        ei::pstoreu(cq, acc0[q]);
        ei::pstoreu(cq + ps, acc1[q]);
        ei::pstoreu(cq + 2 * ps, acc2[q]);
      }
    }
    for (index i = whole; i < m; i += ps) {  // the last rows, a packet at a time
      packet acc[nr];
      for (int q = 0; q < nr; ++q) acc[q] = ei::pset1<packet>(T(0));
      const T* bk = bj;
      for (index kk = 0; kk < k; ++kk, bk += nr) {
        const packet a0 = ei::ploadu<packet>(a + i + offset[kk]);
        for (int q = 0; q < nr; ++q) acc[q] = ei::pmadd(a0, ei::pset1<packet>(bk[q]), acc[q]);
      }
      for (int q = 0; q < nr; ++q) ei::pstoreu(c + (j0 + q) * ldc + i, acc[q]);
    }
  }
}

/// One register tile of offset_gemm_tn: rows [k0, k0 + KR) of C^T, NP packets of columns.
template <int KR, int NP, class T>
void offset_gemm_tn_tile(index m, index n, index k0, index j0, const T* a, const index* offset,
                         const T* bt, T* ct, index ldct, bool accumulate) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  const T* ak[KR];
  packet acc[KR][NP];
  for (int r = 0; r < KR; ++r) {
    ak[r] = a + offset[k0 + r];
    for (int q = 0; q < NP; ++q)
      acc[r][q] = accumulate ? ei::ploadu<packet>(ct + (k0 + r) * ldct + j0 + q * ps)
                             : ei::pset1<packet>(T(0));
  }
  const T* bi = bt + j0;
  for (index i = 0; i < m; ++i, bi += n) {
    packet b[NP];
    for (int q = 0; q < NP; ++q) b[q] = ei::ploadu<packet>(bi + q * ps);
    for (int r = 0; r < KR; ++r) {
      const packet x = ei::pset1<packet>(ak[r][i]);
      for (int q = 0; q < NP; ++q) acc[r][q] = ei::pmadd(x, b[q], acc[r][q]);
    }
  }
  for (int r = 0; r < KR; ++r)
    for (int q = 0; q < NP; ++q) ei::pstoreu(ct + (k0 + r) * ldct + j0 + q * ps, acc[r][q]);
}

/// C^T = B^T A (overwritten, or added to C^T when `accumulate`), i.e. C = A^T B, for the m x k
/// offset matrix A(i, kk) =
/// a[i + offset[kk]] and B given transposed: bt row-major m x n (bt[i n + j]). The result is
/// C^T, n x k column-major with leading dimension ldct (ct[kk ldct + j]): a convolution's weight
/// gradient dW (out x in k k) as the sum over positions i of dL/dy(i, :) times the unfolded input
/// row, read straight from the padded image (broadcasts of A against packets of B, register tiles
/// of up to 24 rows of A), so neither operand is packed. Reads exactly rows [0, m).
/// Preconditions: n % (SIMD packet size of T) == 0.
template <class T>
void offset_gemm_tn(index m, index n, index k, const T* a, const index* offset, const T* bt, T* ct,
                    index ldct, bool accumulate = false) {
  constexpr index ps = Eigen::internal::packet_traits<T>::size;
#ifdef EIGEN_VECTORIZE_AVX512
  constexpr int kr = 24;
#else
  constexpr int kr = 12;
#endif
  index j0 = 0;
  for (; j0 + 2 * ps <= n; j0 += 2 * ps) {  // two packets of columns: rows in kr / 2, 8, 4
    index k0 = 0;
    for (; k0 + kr / 2 <= k; k0 += kr / 2)
      offset_gemm_tn_tile<kr / 2, 2>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    if constexpr (kr >= 24)  // 16 accumulators fit 32 registers
      for (; k0 + 8 <= k; k0 += 8)
        offset_gemm_tn_tile<8, 2>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    for (; k0 + 4 <= k; k0 += 4)
      offset_gemm_tn_tile<4, 2>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    for (; k0 < k; ++k0)
      offset_gemm_tn_tile<1, 2>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
  }
  for (; j0 < n; j0 += ps) {  // one packet: rows in kr, 16, 8, 4
    index k0 = 0;
    for (; k0 + kr <= k; k0 += kr)
      offset_gemm_tn_tile<kr, 1>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    if constexpr (kr >= 24)
      for (; k0 + 16 <= k; k0 += 16)
        offset_gemm_tn_tile<16, 1>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    for (; k0 + 8 <= k; k0 += 8)
      offset_gemm_tn_tile<8, 1>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    for (; k0 + 4 <= k; k0 += 4)
      offset_gemm_tn_tile<4, 1>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
    for (; k0 < k; ++k0)
      offset_gemm_tn_tile<1, 1>(m, n, k0, j0, a, offset, bt, ct, ldct, accumulate);
  }
}

/// The sum of a packet's lanes (Eigen's predux; GCC 12 warns falsely about an undefined
/// operand inside the AVX-512 intrinsic it uses for double).
template <class Packet>
auto packet_sum(const Packet& p) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  return Eigen::internal::predux(p);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}

/// One register tile of offset_gemm_dot: outputs (j0 .. j0 + NB) x (k0 .. k0 + KB).
template <int NB, int KB, class T>
void offset_gemm_dot_tile(index m, index j0, index k0, const T* a, const index* offset, const T* b,
                          index ldb, T* c, index ldc, bool accumulate) {
  namespace ei = Eigen::internal;
  using packet = typename ei::packet_traits<T>::type;
  constexpr index ps = ei::packet_traits<T>::size;
  const T* bj[NB];
  const T* ak[KB];
  packet acc[NB][KB];
  for (int q = 0; q < NB; ++q) bj[q] = b + (j0 + q) * ldb;
  for (int r = 0; r < KB; ++r) ak[r] = a + offset[k0 + r];
  for (int q = 0; q < NB; ++q)
    for (int r = 0; r < KB; ++r) acc[q][r] = ei::pset1<packet>(T(0));
  const index whole = m / ps * ps;
  for (index i = 0; i < whole; i += ps) {
    packet x[KB];
    for (int r = 0; r < KB; ++r) x[r] = ei::ploadu<packet>(ak[r] + i);
    for (int q = 0; q < NB; ++q) {
      const packet y = ei::ploadu<packet>(bj[q] + i);
      for (int r = 0; r < KB; ++r) acc[q][r] = ei::pmadd(y, x[r], acc[q][r]);
    }
  }
  for (int q = 0; q < NB; ++q)
    for (int r = 0; r < KB; ++r) {
      T sum = packet_sum(acc[q][r]);
      for (index i = whole; i < m; ++i) sum += bj[q][i] * ak[r][i];
      T& out = c[(k0 + r) * ldc + j0 + q];
      out = accumulate ? out + sum : sum;
    }
}

/// C = B^T A (overwritten, or added to C when `accumulate`) for the m x k offset matrix
/// A(i, kk) = a[i + offset[kk]] and B m x n
/// column-major with leading dimension ldb; C is n x k column-major with leading dimension ldc.
/// Dot products along i, a packet of rows at a time, in register tiles of 4 x 6 outputs summed
/// across the packet at the end: for any n, with both operands read in place (a weight
/// gradient from its padded operands). Reads exactly rows [0, m).
template <class T>
void offset_gemm_dot(index m, index n, index k, const T* a, const index* offset, const T* b,
                     index ldb, T* c, index ldc, bool accumulate = false) {
  constexpr int nb = 4, kb = 6;
  index j0 = 0;
  for (; j0 + nb <= n; j0 += nb) {
    index k0 = 0;
    for (; k0 + kb <= k; k0 += kb)
      offset_gemm_dot_tile<nb, kb>(m, j0, k0, a, offset, b, ldb, c, ldc, accumulate);
    for (; k0 < k; ++k0)
      offset_gemm_dot_tile<nb, 1>(m, j0, k0, a, offset, b, ldb, c, ldc, accumulate);
  }
  for (; j0 < n; ++j0) {
    index k0 = 0;
    for (; k0 + kb <= k; k0 += kb)
      offset_gemm_dot_tile<1, kb>(m, j0, k0, a, offset, b, ldb, c, ldc, accumulate);
    for (; k0 < k; ++k0)
      offset_gemm_dot_tile<1, 1>(m, j0, k0, a, offset, b, ldb, c, ldc, accumulate);
  }
}

/// How many blocks to cut `extent` rows or columns into for `threads` threads: one block on one
/// thread (no repacking), otherwise SHATTER_BLOCKS_PER_THREAD per thread (default 1: measured
/// best here, the shared operand is repacked per block) of at least `min_block` each.
inline index block_count(index extent, int threads, index min_block = SHATTER_MIN_BLOCK) {
  if (threads <= 1) return 1;
  index blocks = SHATTER_BLOCKS_PER_THREAD * index(threads);
  while (blocks > 1 && extent / blocks < min_block) --blocks;
  return blocks;
}

/// Start of block `i` of `blocks` over `extent` (block i spans [start(i), start(i + 1))), rounded
/// up to a multiple of `align` so blocks keep the kernels' vector alignment.
inline index block_start(index i, index blocks, index extent, index align = 16) {
  if (i <= 0) return 0;
  if (i >= blocks) return extent;
  const index s = (extent * i / blocks + align - 1) / align * align;
  return s < extent ? s : extent;
}

}  // namespace shatter::detail

#endif  // SHATTER_EXEC_GEMM_HPP
