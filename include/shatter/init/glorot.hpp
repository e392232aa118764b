// shatter: Glorot (Xavier) initialisation.
#ifndef SHATTER_INIT_GLOROT_HPP
#define SHATTER_INIT_GLOROT_HPP

#include <cmath>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/types.hpp"

namespace shatter::init {

/// Glorot uniform: w_ij ~ U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)), so that
/// Var(w) = 2 / (fan_in + fan_out). Fans default to W.cols() and W.rows().
template <class T>
void glorot_uniform(matrix<T>& w, rng& g, double gain = 1.0, index fan_in = 0, index fan_out = 0) {
  if (fan_in == 0) fan_in = w.cols();
  if (fan_out == 0) fan_out = w.rows();
  require<shape_error>(w.size() > 0, "glorot_uniform: empty weight matrix");
  const double a = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  for (index j = 0; j < w.cols(); ++j)
    for (index i = 0; i < w.rows(); ++i) w(i, j) = T(g.uniform(-a, a));
}

/// Glorot normal: w_ij ~ N(0, gain^2 2 / (fan_in + fan_out)).
template <class T>
void glorot_normal(matrix<T>& w, rng& g, double gain = 1.0, index fan_in = 0, index fan_out = 0) {
  if (fan_in == 0) fan_in = w.cols();
  if (fan_out == 0) fan_out = w.rows();
  require<shape_error>(w.size() > 0, "glorot_normal: empty weight matrix");
  const double sd = gain * std::sqrt(2.0 / double(fan_in + fan_out));
  for (index j = 0; j < w.cols(); ++j)
    for (index i = 0; i < w.rows(); ++i) w(i, j) = T(g.normal() * sd);
}

/// Glorot uniform for a weighted layer (fans from its weight matrix), layer-first as every
/// initialiser (see he_normal).
template <class Layer>
auto glorot_uniform(Layer& layer, rng& g, double gain = 1.0)
    -> decltype(void(layer.weight().cols())) {
  glorot_uniform(layer.weight(), g, gain);
}

/// Glorot normal for a weighted layer (fans from its weight matrix), layer-first.
template <class Layer>
auto glorot_normal(Layer& layer, rng& g, double gain = 1.0)
    -> decltype(void(layer.weight().cols())) {
  glorot_normal(layer.weight(), g, gain);
}

}  // namespace shatter::init

#endif  // SHATTER_INIT_GLOROT_HPP
