// shatter: the radially averaged power spectrum of a 2-D map and its log-log slope (brown
// against white noise in two dimensions).
#ifndef SHATTER_PROBE_RADIAL_SPECTRUM_HPP
#define SHATTER_PROBE_RADIAL_SPECTRUM_HPP

#include <Eigen/Core>
#include <cmath>
#include <complex>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/probe/noise.hpp"

namespace shatter::probe {

namespace detail {
/// In-place forward DFT X_k = sum_n x_n exp(-2 pi i k n / N) of a complex sequence: radix-2 FFT
/// for powers of two, the direct O(N^2) sum otherwise.
inline void dft_complex(std::vector<std::complex<double>>& a) {
  const std::size_t n = a.size();
  if (n > 0 && (n & (n - 1)) == 0) {
    fft_radix2(a);
    return;
  }
  const double pi = 3.14159265358979323846;
  std::vector<std::complex<double>> out(n);
  for (std::size_t k = 0; k < n; ++k)
    for (std::size_t j = 0; j < n; ++j) {
      const double ang = -2 * pi * double((k * j) % n) / double(n);
      out[k] += a[j] * std::complex<double>(std::cos(ang), std::sin(ang));
    }
  a.swap(out);
}
}  // namespace detail

/// The 2-D DFT of a complex R x C matrix: X(u, v) = sum_{r, c} x(r, c) exp(-2 pi i (u r / R +
/// v c / C)) (rows, then columns). `inverse` gives the inverse transform (with the 1 / (R C)).
inline Eigen::MatrixXcd dft2(const Eigen::MatrixXcd& x, bool inverse = false) {
  Eigen::MatrixXcd y = inverse ? Eigen::MatrixXcd(x.conjugate()) : x;
  std::vector<std::complex<double>> buf;
  for (index r = 0; r < y.rows(); ++r) {
    buf.assign(std::size_t(y.cols()), 0.0);
    for (index c = 0; c < y.cols(); ++c) buf[std::size_t(c)] = y(r, c);
    detail::dft_complex(buf);
    for (index c = 0; c < y.cols(); ++c) y(r, c) = buf[std::size_t(c)];
  }
  for (index c = 0; c < y.cols(); ++c) {
    buf.assign(std::size_t(y.rows()), 0.0);
    for (index r = 0; r < y.rows(); ++r) buf[std::size_t(r)] = y(r, c);
    detail::dft_complex(buf);
    for (index r = 0; r < y.rows(); ++r) y(r, c) = buf[std::size_t(r)];
  }
  if (inverse) y = y.conjugate() / double(y.size());
  return y;
}

/// The ring-averaged periodogram of a 2-D map: ring k (k = 1..floor(min(R, C) / 2)) holds the
/// frequencies (f_r, f_c) (in cycles per sample, each in [-1/2, 1/2)) with
/// round(|f| min(R, C)) = k, and frequency[k - 1] = k / min(R, C). power = the mean of
/// |DFT(g - mean)|^2 / (R C) over the ring.
struct radial_spectrum {
  Eigen::VectorXd frequency;
  Eigen::VectorXd power;
  std::vector<index> counts;  ///< periodogram values averaged in each ring
};

/// The radially averaged power spectrum of g (R, C >= 4, finite values); see radial_spectrum.
inline radial_spectrum radial_power_spectrum(const Eigen::Ref<const Eigen::MatrixXd>& g) {
  const index rows = g.rows(), cols = g.cols();
  require<config_error>(rows >= 4 && cols >= 4,
                        "radial_power_spectrum: the map must be at least 4 x 4, got ", rows, " x ",
                        cols);
  require<numeric_error>(g.allFinite(), "radial_power_spectrum: the map has non-finite values");
  const Eigen::MatrixXcd x = (g.array() - g.mean()).matrix().cast<std::complex<double>>();
  const Eigen::MatrixXcd f = dft2(x);
  const index n = std::min(rows, cols), rings = n / 2;
  radial_spectrum s;
  s.frequency.resize(rings);
  s.power = Eigen::VectorXd::Zero(rings);
  s.counts.assign(std::size_t(rings), 0);
  for (index r = 0; r < rows; ++r)
    for (index c = 0; c < cols; ++c) {
      const double fr = double(r < (rows + 1) / 2 ? r : r - rows) / double(rows);
      const double fc = double(c < (cols + 1) / 2 ? c : c - cols) / double(cols);
      const auto k = index(std::lround(std::sqrt(fr * fr + fc * fc) * double(n)));
      if (k < 1 || k > rings) continue;
      s.power(k - 1) += std::norm(f(r, c)) / double(rows * cols);
      ++s.counts[std::size_t(k - 1)];
    }
  for (index k = 0; k < rings; ++k) {
    s.frequency(k) = double(k + 1) / double(n);
    if (s.counts[std::size_t(k)] > 0) s.power(k) /= double(s.counts[std::size_t(k)]);
  }
  return s;
}

/// Least-squares slope of log power against log frequency of the radially averaged spectrum over
/// the band [opt.band_low, opt.band_high] (default (0, 1/4] cycles per sample), rings without
/// power skipped. 2-D white noise gives about 0, a field with a 1/f^2 spectrum (brown noise in
/// two dimensions) about -2. Throws config_error when the band holds fewer than 2 rings,
/// numeric_error for a constant map (no power).
inline double radial_spectrum_slope(const Eigen::Ref<const Eigen::MatrixXd>& g,
                                    const noise_options& opt = {}) {
  const radial_spectrum s = radial_power_spectrum(g);
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  index n = 0, in_band = 0;
  for (index k = 0; k < s.frequency.size(); ++k) {
    const double f = s.frequency(k);
    if (f < opt.band_low || f > opt.band_high) continue;
    ++in_band;
    if (!(s.power(k) > 0)) continue;
    const double x = std::log(f), y = std::log(s.power(k));
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++n;
  }
  require<config_error>(in_band >= 2, "radial_spectrum_slope: the band [", opt.band_low, ", ",
                        opt.band_high, "] holds ", in_band, " rings of a ", g.rows(), " x ",
                        g.cols(), " map; need >= 2");
  require<numeric_error>(n >= 2,
                         "radial_spectrum_slope: the map has no power in the band "
                         "(constant?)");
  return (double(n) * sxy - sx * sy) / (double(n) * sxx - sx * sx);
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_RADIAL_SPECTRUM_HPP
