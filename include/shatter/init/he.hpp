// shatter: He (Kaiming) normal initialisation.
#ifndef SHATTER_INIT_HE_HPP
#define SHATTER_INIT_HE_HPP

#include <cmath>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/types.hpp"

namespace shatter::init {

/// He normal: w_ij ~ N(0, gain^2 / fan_in), gain = sqrt(2) for ReLU, which keeps the forward
/// signal variance (and the gradient norm) constant with depth. fan_in defaults to W.cols();
/// pass it explicitly for convolutions (in_channels x k x k).
template <class T>
void he_normal(matrix<T>& w, rng& g, index fan_in = 0, double gain = std::sqrt(2.0)) {
  if (fan_in == 0) fan_in = w.cols();
  require<shape_error>(w.size() > 0 && fan_in > 0, "he_normal: empty weight matrix (", w.rows(),
                       " x ", w.cols(), ")");
  const double sd = gain / std::sqrt(double(fan_in));
  for (index j = 0; j < w.cols(); ++j)
    for (index i = 0; i < w.rows(); ++i) w(i, j) = T(g.normal() * sd);
}

/// He normal for a weighted layer (dense, conv2d: anything with weight()): the same draw with
/// fan_in = the weight matrix's columns (in_features, or in_channels x k x k for a convolution).
/// Every initialiser takes the layer first, then (looks_linear) its producer, then the rng, then
/// its options: init::he_normal(layer, g, gain), init::orthogonal(layer, g, gain),
/// init::glorot_*(layer, g, gain), init::looks_linear(layer, producer, g, base),
/// init::delta_orthogonal(conv, g, gain). The matrix overloads remain for raw weights.
template <class Layer>
auto he_normal(Layer& layer, rng& g, double gain = std::sqrt(2.0))
    -> decltype(void(layer.weight().cols())) {
  he_normal(layer.weight(), g, layer.weight().cols(), gain);
}

}  // namespace shatter::init

#endif  // SHATTER_INIT_HE_HPP
