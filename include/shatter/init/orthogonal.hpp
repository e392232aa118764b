// shatter: (semi-)orthogonal initialisation.
#ifndef SHATTER_INIT_ORTHOGONAL_HPP
#define SHATTER_INIT_ORTHOGONAL_HPP

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/types.hpp"

namespace shatter::detail {
/// The factor Q (rows x cols, rows >= cols, orthonormal columns) of the QR factorisation
/// a = Q R, with the signs chosen so that R's diagonal is positive: for a Gaussian `a`, Q is
/// Haar-distributed. Unblocked Householder QR in double (H_k = I - tau_k v_k v_k^T, Eigen's
/// sign convention): O(rows cols^2), and a few loops that compile fast, where Eigen's blocked
/// QR would compile its whole matrix-product machinery in double into every program.
inline Eigen::MatrixXd orthonormal_columns(Eigen::MatrixXd a) {
  const index m = a.rows(), n = a.cols();
  std::vector<double> tau(std::size_t(n), 0.0), r_sign(std::size_t(n), 1.0);
  for (index k = 0; k < n; ++k) {
    auto v = a.col(k).tail(m - k);  // becomes the reflector v_k = x - R_kk e_1
    const double tail = v.tail(m - k - 1).squaredNorm();
    double r_kk = v(0);
    if (tail > 0) {
      r_kk = v(0) >= 0 ? -std::sqrt(v(0) * v(0) + tail) : std::sqrt(v(0) * v(0) + tail);
      v(0) -= r_kk;
      tau[std::size_t(k)] = 2.0 / v.squaredNorm();
    }
    r_sign[std::size_t(k)] = r_kk < 0 ? -1.0 : 1.0;
    for (index j = k + 1; j < n; ++j) {
      auto y = a.col(j).tail(m - k);
      y -= (tau[std::size_t(k)] * v.dot(y)) * v;
    }
  }
  // Q = H_0 H_1 ... H_{n-1} I, applied from the last reflector back; H_k leaves the columns
  // before k alone (they are zero in rows k and below).
  Eigen::MatrixXd q = Eigen::MatrixXd::Identity(m, n);
  for (index k = n - 1; k >= 0; --k) {
    const auto v = a.col(k).tail(m - k);
    for (index j = k; j < n; ++j) {
      auto y = q.col(j).tail(m - k);
      y -= (tau[std::size_t(k)] * v.dot(y)) * v;
    }
  }
  for (index j = 0; j < n; ++j) q.col(j) *= r_sign[std::size_t(j)];
  return q;
}
}  // namespace shatter::detail

namespace shatter::init {

/// Orthogonal (Saxe et al.): W = gain * Q, Q a Haar-random matrix with orthonormal rows when
/// rows <= cols (W W^T = gain^2 I) and orthonormal columns otherwise (W^T W = gain^2 I).
/// Drawn as the QR factor of a Gaussian matrix with the signs of R's diagonal folded in, in
/// double precision. Any non-empty shape.
template <class T>
void orthogonal(matrix<T>& w, rng& g, double gain = 1.0) {
  require<shape_error>(w.size() > 0, "orthogonal: empty weight matrix (", w.rows(), " x ", w.cols(),
                       ")");
  const index big = std::max(w.rows(), w.cols()), small = std::min(w.rows(), w.cols());
  Eigen::MatrixXd a(big, small);
  for (index j = 0; j < small; ++j)
    for (index i = 0; i < big; ++i) a(i, j) = g.normal();
  const Eigen::MatrixXd q = detail::orthonormal_columns(std::move(a));
  if (w.rows() >= w.cols())
    w = (gain * q).cast<T>();
  else
    w = (gain * q.transpose()).cast<T>();
}

/// Orthogonal init of a weighted layer's weight matrix (dense, conv2d: anything with weight()),
/// in the layer-first style of every initialiser (see he_normal).
template <class Layer>
auto orthogonal(Layer& layer, rng& g, double gain = 1.0) -> decltype(void(layer.weight().cols())) {
  orthogonal(layer.weight(), g, gain);
}

}  // namespace shatter::init

#endif  // SHATTER_INIT_ORTHOGONAL_HPP
