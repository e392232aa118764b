// The convolution kernels offset_gemm_tn and offset_gemm against a naive triple loop, for every
// register-tile size and remainder (column counts of one to four packets, row counts 1 to 64).
#include <catch2/catch.hpp>

#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/exec/gemm.hpp"

using namespace shatter;
using ix = Eigen::Index;

namespace {

/// An integer in [-4, 4], as a float or double.
double small_int(rng& g) {
  return double(int(g.uniform() * 9) - 4);
}

/// A(i, kk) = a[i + offset[kk]] with columns 3 m + 1 apart (an offset matrix with gaps), filled
/// with small integers so that every sum is exact in float.
template <class T>
struct offset_operand {
  std::vector<T> a;
  std::vector<ix> offset;
  offset_operand(ix m, ix k, rng& g) : a(std::size_t((3 * m + 1) * k + m + 64)) {
    for (auto& v : a) v = T(small_int(g));
    for (ix kk = 0; kk < k; ++kk) offset.push_back(kk * (3 * m + 1) + (kk % 3));
  }
  T operator()(ix i, ix kk) const { return a[std::size_t(i + offset[std::size_t(kk)])]; }
};

template <class T>
void check_tn(ix m, ix n, ix k, rng& g) {
  const offset_operand<T> A(m, k, g);
  std::vector<T> bt(std::size_t(m * n));
  for (auto& v : bt) v = T(small_int(g));
  const ix ldct = n + 3;
  std::vector<T> ct(std::size_t(ldct * k), T(77));
  detail::offset_gemm_tn(m, n, k, A.a.data(), A.offset.data(), bt.data(), ct.data(), ldct);
  int wrong = 0;
  for (ix kk = 0; kk < k; ++kk)
    for (ix j = 0; j < n; ++j) {
      T want = 0;
      for (ix i = 0; i < m; ++i) want += A(i, kk) * bt[std::size_t(i * n + j)];
      wrong += ct[std::size_t(kk * ldct + j)] != want;
    }
  INFO("m " << m << ", n " << n << ", k " << k);
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("offset_gemm_tn equals the naive product for every tile size and remainder") {
  rng g(5);
  for (ix packets = 1; packets <= 4; ++packets)
    for (ix k = 1; k <= 64; k += (k < 30 ? 1 : 11)) {
      check_tn<float>(37, packets * Eigen::internal::packet_traits<float>::size, k, g);
      check_tn<double>(37, packets * Eigen::internal::packet_traits<double>::size, k, g);
    }
  check_tn<float>(5, 2 * Eigen::internal::packet_traits<float>::size, 128, g);
}

TEST_CASE("offset_gemm equals the naive product, the last rows included") {
  rng g(6);
  constexpr ix nr = detail::offset_gemm_nr;
  for (ix m : {1, 16, 47, 48, 49, 100})
    for (ix k : {1, 5, 24}) {
      const ix n = 2 * nr;
      const offset_operand<float> A(m, k, g);
      std::vector<float> b(std::size_t(k * n)), bp(b.size());
      for (auto& v : b) v = float(small_int(g));
      detail::offset_gemm_pack(k, n, b.data(), n, 1, bp.data());  // B(kk, j) = b[kk n + j]
      const ix ldc = m + 64;
      std::vector<float> c(std::size_t(ldc * n), 77.f);
      detail::offset_gemm(m, n, k, A.a.data(), A.offset.data(), bp.data(), c.data(), ldc);
      int wrong = 0;
      for (ix j = 0; j < n; ++j)
        for (ix i = 0; i < m; ++i) {
          float want = 0;
          for (ix kk = 0; kk < k; ++kk) want += A(i, kk) * b[std::size_t(kk * n + j)];
          wrong += c[std::size_t(j * ldc + i)] != want;
        }
      INFO("m " << m << ", k " << k);
      CHECK(wrong == 0);
    }
}
