// shatter: Tailored Activation Transformation (TAT) for leaky ReLU (Zhang, Botev, Martens 2022).
#ifndef SHATTER_ACTIVATION_TAT_HPP
#define SHATTER_ACTIVATION_TAT_HPP

#include <algorithm>
#include <cmath>

#include "shatter/activation/leaky_relu.hpp"
#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// TAT's output scale of a leaky ReLU with negative slope a: sqrt(2 / (1 + a^2)), so that
/// E[f(z)^2] = E[z^2] for z ~ N(0, q) (the q-map is the identity with weights of variance
/// 1 / fan_in).
inline double tat_gain(double a) {
  return std::sqrt(2.0 / (1.0 + a * a));
}

/// The local correlation map (C-map) of the scaled leaky ReLU with negative slope a: the
/// correlation of f(u) and f(v) for (u, v) jointly Gaussian with equal variances and correlation c,
/// C(c) = [ (1-a)^2 (sqrt(1-c^2) + (pi - arccos c) c) / pi + 2 a c ] / (1 + a^2)
///      = c + k(a) (R(c) - c),  k(a) = (1-a)^2 / (1+a^2),  R the ReLU (arc-cosine) C-map.
/// C(c) = c for a = 1 (linear), C(1) = 1, C(0) = (1-a)^2 / (pi (1+a^2)). c is clamped to [-1, 1].
inline double leaky_relu_cmap(double c, double a) {
  c = std::clamp(c, -1.0, 1.0);
  const double pi = 3.14159265358979323846;
  const double relu = (std::sqrt(1.0 - c * c) + (pi - std::acos(c)) * c) / pi;
  return ((1.0 - a) * (1.0 - a) * relu + 2.0 * a * c) / (1.0 + a * a);
}

/// The C-map of a plain chain of `layers` scaled leaky ReLUs (weights of variance 1 / fan_in or
/// orthogonal, zero biases, in the infinite-width limit): C applied `layers` times to c.
inline double tat_network_cmap(double a, index layers, double c = 0.0) {
  require<config_error>(layers >= 0, "tat_network_cmap: layers must be >= 0, got ", layers);
  for (index l = 0; l < layers; ++l) c = leaky_relu_cmap(c, a);
  return c;
}

namespace detail {
inline void check_tat(index layers, double eta, const char* who) {
  require<config_error>(layers >= 1, who, ": the number of nonlinear layers must be >= 1, got ",
                        layers);
  require<config_error>(std::isfinite(eta) && eta > 0 && eta < 1, who,
                        ": eta (the network's C_f(0)) must be in (0, 1), got ", eta);
}
}  // namespace detail

/// Whether a chain of `layers` leaky ReLUs can reach C_f(0) = eta: the network C-map at 0
/// decreases with the slope from the ReLU chain's value (a = 0) to 0 (a = 1, linear), so eta is
/// reachable when the ReLU chain reaches it (for eta = 0.9: 13 layers or more).
inline bool tat_reachable(index layers, double eta = 0.9) {
  detail::check_tat(layers, eta, "tat_reachable");
  return tat_network_cmap(0.0, layers) >= eta;
}

/// TAT's negative slope a in [0, 1) for a plain chain of `layers` leaky ReLUs: the solution of
/// C_f(0) = tat_network_cmap(a, layers, 0) = eta (unique: C_f(0) decreases strictly in a), found
/// by bisection to the last bit of a. Throws config_error when eta is not in (0, 1) or not
/// reachable at this depth (the message gives the largest reachable C_f(0)).
inline double tat_slope(index layers, double eta = 0.9) {
  detail::check_tat(layers, eta, "tat_slope");
  const double top = tat_network_cmap(0.0, layers);
  require<config_error>(top >= eta, "tat_slope: C_f(0) = ", eta, " is unreachable with ", layers,
                        " leaky-ReLU layers (even a = 0, plain ReLU, gives only ", top,
                        "); use a deeper network or a smaller eta");
  double lo = 0.0, hi = 1.0;  // F(lo) >= eta > F(hi)
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (tat_network_cmap(mid, layers) >= eta ? lo : hi) = mid;
  }
  const double flo = tat_network_cmap(lo, layers) - eta, fhi = tat_network_cmap(hi, layers) - eta;
  return std::abs(flo) <= std::abs(fhi) ? lo : hi;
}

/// The slope the TAT network builders use: tat_slope(layers, eta) when eta is reachable, else 0
/// (plain ReLU scaled by sqrt 2, the nearest the family gets to eta in a shallow net).
inline double tat_slope_or_relu(index layers, double eta = 0.9) {
  return tat_reachable(layers, eta) ? tat_slope(layers, eta) : 0.0;
}

/// TAT's leaky ReLU layer for slope a: f(z) = sqrt(2 / (1 + a^2)) (z for z > 0, a z otherwise).
template <class T>
leaky_relu<T> tat_leaky_relu(double a) {
  require<config_error>(std::isfinite(a) && a >= 0 && a <= 1,
                        "tat_leaky_relu: slope must be in [0, 1], got ", a);
  return leaky_relu<T>(leaky_relu_op<T>(T(a), T(tat_gain(a))));
}

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_TAT_HPP
