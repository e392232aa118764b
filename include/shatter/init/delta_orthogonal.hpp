// shatter: the delta-orthogonal convolution initialisation (Xiao et al. 2018) and its mirror.
#ifndef SHATTER_INIT_DELTA_ORTHOGONAL_HPP
#define SHATTER_INIT_DELTA_ORTHOGONAL_HPP

#include <string>

#include "shatter/init/looks_linear_conv.hpp"
#include "shatter/init/orthogonal.hpp"
#include "shatter/layer/conv2d.hpp"

namespace shatter::init {

/// Delta-orthogonal: every kernel tap zero except the centre one, which is gain Q with Q
/// (out x in channels) orthogonal, so a stride-1 "same" convolution maps each pixel's channel
/// vector by Q (norm-preserving when out >= in). Precondition: odd kernel size.
template <class T>
void delta_orthogonal(conv2d<T>& conv, rng& g, double gain = 1.0,
                      const std::string& where = "delta_orthogonal") {
  const index k = conv.kernel(), C = conv.input_shape().channels;
  require<shape_error>(k % 2 == 1, where, " ", conv.describe(),
                       ": delta-orthogonal init needs an odd kernel size");
  matrix<T> q(conv.weight().rows(), C);
  orthogonal(q, g, gain);
  matrix<T>& w = conv.weight();
  w.setZero();
  const index centre = (k / 2) * k + k / 2;
  for (index c = 0; c < C; ++c) w.col(c * k * k + centre) = q.col(c);
}

/// Mirrored delta-orthogonal for a convolution fed by a CReLU of its 2C input channels: the
/// centre tap is [Q, -Q] with Q (out x C) orthogonal, all other taps zero, so the layer computes
/// Q z at every pixel at initialisation. Throws shape_error like looks_linear(conv2d&, ...).
template <class T>
void looks_linear_delta_orthogonal(conv2d<T>& conv, const layer<T>& producer, rng& g,
                                   const std::string& where = "looks_linear_delta_orthogonal") {
  shatter::detail::require_crelu_producer(conv, producer, where, "mirrored delta-orthogonal init");
  const index k = conv.kernel(), C = conv.input_shape().channels / 2;
  require<shape_error>(k % 2 == 1, where, " ", conv.describe(),
                       ": delta-orthogonal init needs an odd kernel size");
  matrix<T> q(conv.weight().rows(), C);
  orthogonal(q, g);
  matrix<T>& w = conv.weight();
  w.setZero();
  const index centre = (k / 2) * k + k / 2;
  for (index c = 0; c < C; ++c) {
    w.col(c * k * k + centre) = q.col(c);
    w.col((c + C) * k * k + centre) = -q.col(c);
  }
}

}  // namespace shatter::init

#endif  // SHATTER_INIT_DELTA_ORTHOGONAL_HPP
