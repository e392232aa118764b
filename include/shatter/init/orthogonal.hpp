// shatter: (semi-)orthogonal initialisation.
#ifndef SHATTER_INIT_ORTHOGONAL_HPP
#define SHATTER_INIT_ORTHOGONAL_HPP

#include <Eigen/QR>
#include <algorithm>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/types.hpp"

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
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(big, small);
  const Eigen::MatrixXd r = qr.matrixQR().topRows(small).template triangularView<Eigen::Upper>();
  for (index j = 0; j < small; ++j)
    if (r(j, j) < 0) q.col(j) = -q.col(j);
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
