// shatter: synthetic reference signals: brown, white and power-law (pink) noise.
#ifndef SHATTER_PROBE_SYNTHETIC_HPP
#define SHATTER_PROBE_SYNTHETIC_HPP

#include <Eigen/Core>
#include <cmath>
#include <complex>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/types.hpp"
#include "shatter/probe/noise.hpp"

namespace shatter::probe {

/// White noise: M independent N(0, 1) draws (flat spectrum, lag-1 ~ 0). M >= 1.
inline Eigen::VectorXd white_noise(index m, rng& g) {
  require<config_error>(m >= 1, "white_noise: length must be >= 1, got ", m);
  Eigen::VectorXd x(m);
  for (index i = 0; i < m; ++i) x(i) = g.normal();
  return x;
}

/// Brown noise: the cumulative sum of M independent N(0, 1) steps, a random walk (spectrum
/// ~ 1/f^2, lag-1 ~ 1). M >= 1.
inline Eigen::VectorXd brown_noise(index m, rng& g) {
  Eigen::VectorXd x = white_noise(m, g);
  for (index i = 1; i < m; ++i) x(i) += x(i - 1);
  return x;
}

/// Gaussian noise with power spectrum ~ 1/f^alpha (alpha = 1: pink), by spectral synthesis:
/// complex Gaussian Fourier coefficients scaled by f^(-alpha/2) on a grid of N = the power of
/// two >= 4 M points, inverse FFT, first M samples (the long grid keeps the lowest frequencies of
/// the M-point window random rather than periodic). M >= 1, alpha >= 0.
inline Eigen::VectorXd power_law_noise(index m, double alpha, rng& g) {
  require<config_error>(m >= 1 && alpha >= 0 && std::isfinite(alpha),
                        "power_law_noise: need length >= 1 and finite alpha >= 0, got ", m, ", ",
                        alpha);
  std::size_t n = 1;
  while (n < std::size_t(4 * m)) n <<= 1;
  std::vector<std::complex<double>> a(n, 0.0);
  for (std::size_t k = 1; k <= n / 2; ++k) {
    const double amp = std::pow(double(k) / double(n), -alpha / 2);
    const double re = g.normal() * amp, im = k == n / 2 ? 0.0 : g.normal() * amp;
    a[k] = {re, im};
    if (k != n / 2) a[n - k] = {re, -im};
  }
  // Inverse transform via the forward one: ifft(a) = conj(fft(conj(a))) / n (real here).
  for (auto& c : a) c = std::conj(c);
  detail::fft_radix2(a);
  Eigen::VectorXd x(m);
  for (index i = 0; i < m; ++i) x(i) = a[std::size_t(i)].real();
  return x / x.norm() * std::sqrt(double(m));
}

/// Pink noise: power_law_noise with alpha = 1 (spectrum ~ 1/f).
inline Eigen::VectorXd pink_noise(index m, rng& g) {
  return power_law_noise(m, 1.0, g);
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_SYNTHETIC_HPP
