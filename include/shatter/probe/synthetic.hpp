// shatter: synthetic reference signals: brown, white and power-law (pink) noise, in one and two
// dimensions.
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
#include "shatter/probe/radial_spectrum.hpp"

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

/// 2-D white noise: an R x C map of independent N(0, 1) draws (flat radial spectrum, slope ~ 0).
inline Eigen::MatrixXd white_noise_2d(index rows, index cols, rng& g) {
  require<config_error>(rows >= 1 && cols >= 1, "white_noise_2d: need a size >= 1 x 1, got ", rows,
                        " x ", cols);
  Eigen::MatrixXd x(rows, cols);
  for (index i = 0; i < x.size(); ++i) x(i) = g.normal();
  return x;
}

/// An R x C Gaussian field with isotropic power spectrum ~ 1/|f|^alpha (alpha = 2: brown noise in
/// two dimensions, radial spectrum slope ~ -2), by spectral synthesis: complex Gaussian
/// coefficients scaled by |f|^(-alpha/2) (zero at f = 0), inverse 2-D DFT, real part, scaled to
/// unit variance. The field is periodic. R, C >= 2, finite alpha >= 0.
inline Eigen::MatrixXd power_law_noise_2d(index rows, index cols, double alpha, rng& g) {
  require<config_error>(rows >= 2 && cols >= 2 && alpha >= 0 && std::isfinite(alpha),
                        "power_law_noise_2d: need a size >= 2 x 2 and finite alpha >= 0, got ",
                        rows, " x ", cols, ", ", alpha);
  Eigen::MatrixXcd a(rows, cols);
  for (index r = 0; r < rows; ++r)
    for (index c = 0; c < cols; ++c) {
      const double fr = double(r < (rows + 1) / 2 ? r : r - rows) / double(rows);
      const double fc = double(c < (cols + 1) / 2 ? c : c - cols) / double(cols);
      const double f = std::sqrt(fr * fr + fc * fc);
      const double amp = f > 0 ? std::pow(f, -alpha / 2) : 0.0;
      a(r, c) = {g.normal() * amp, g.normal() * amp};
    }
  Eigen::MatrixXd x = dft2(a, true).real();
  x.array() -= x.mean();
  return x / std::sqrt(x.squaredNorm() / double(x.size()));
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_SYNTHETIC_HPP
