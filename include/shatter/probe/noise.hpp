// shatter: noise statistics of a gradient sequence (autocorrelation, spectral slope, verdict).
#ifndef SHATTER_PROBE_NOISE_HPP
#define SHATTER_PROBE_NOISE_HPP

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter::probe {

/// What a gradient sequence looks like. `brown`: smooth, random-walk-like (spectral slope
/// <= brown_below); `white`: uncorrelated, shattered (slope >= white_above); `between` otherwise.
/// Two degenerate cases are reported instead of a misleading colour: `constant` (zero variance,
/// e.g. a looks-linear net, which is linear at initialisation) and `two_valued` (the sequence
/// takes exactly two values, e.g. a bias-free ReLU net on a 1-D input, which is positively
/// homogeneous: f(x) = x f(sign x)).
enum class noise_verdict { brown, between, white, constant, two_valued };

/// The verdict's name: "brown", "between", "white", "constant", "two-valued".
inline std::string to_string(noise_verdict v) {
  switch (v) {
    case noise_verdict::brown:
      return "brown";
    case noise_verdict::between:
      return "between";
    case noise_verdict::white:
      return "white";
    case noise_verdict::constant:
      return "constant";
    case noise_verdict::two_valued:
      return "two-valued";
  }
  return "?";
}

/// Settings of the noise analysis; the defaults are the documented ones.
struct noise_options {
  /// Largest autocorrelation lag K (the ACF holds lags 0..K); 0 means min(M - 1, 64).
  index max_lag = 0;
  /// Spectral band (in cycles per sample) over which the log-log slope is fitted: every
  /// periodogram frequency f_k = k / M with band_low <= f_k <= band_high, k >= 1. The default
  /// (0, 1/4] skips the top half of the spectrum, where a discrete random walk's spectrum
  /// 1 / (4 sin^2(pi f)) bends away from the 1/f^2 law (the slope over (0, 1/4] is ~ -1.9).
  double band_low = 0.0;
  double band_high = 0.25;
  /// Verdict thresholds: brown if slope <= brown_below and lag-1 >= lag1_split, white if slope
  /// >= white_above and lag-1 < lag1_split, between otherwise. The slope thresholds are the
  /// midpoints between brown (-2), pink (-1) and white (0) noise; the lag-1 condition keeps a
  /// sequence whose neighbours are still clearly correlated from being called white (white noise
  /// has lag-1 ~ 0 +- 1/sqrt(M), a random walk ~ 1 - O(1/M)).
  double brown_below = -1.5;
  double white_above = -0.5;
  double lag1_split = 0.5;
  /// Relative tolerance for the degenerate cases: a sequence is constant when its standard
  /// deviation is <= tolerance * max|g|, and two values count as equal when they differ by <=
  /// tolerance * max|g| (float rounding in a deep net's gradient is ~1e-6 relative).
  double tolerance = 1e-4;
};

/// The noise statistics of one sequence g_0..g_{M-1}.
struct noise_stats {
  index points = 0;        ///< M
  double mean = 0;         ///< mean of g
  double stddev = 0;       ///< standard deviation of g (biased, 1/M)
  Eigen::VectorXd acf;     ///< autocorrelation at lags 0..K (all 1 for a constant sequence)
  double lag1 = 0;         ///< acf(1): ~1 for brown noise, ~0 for white noise
  double slope = 0;        ///< log-log power-spectrum slope; 0 when !has_slope
  bool has_slope = false;  ///< false for a constant sequence (no power outside f = 0)
  index distinct = 0;      ///< number of distinct values (clusters within the tolerance)
  noise_verdict verdict = noise_verdict::between;
};

namespace detail {
inline void check_sequence(const Eigen::Ref<const Eigen::VectorXd>& g, const char* who) {
  require<config_error>(g.size() >= 2, who, ": need a sequence of at least 2 values, got ",
                        g.size());
  for (index i = 0; i < g.size(); ++i)
    require<numeric_error>(std::isfinite(g(i)), who, ": value ", i, " of ", g.size(),
                           " is not finite (", g(i), ")");
}

/// In-place iterative radix-2 FFT; a.size() must be a power of two.
inline void fft_radix2(std::vector<std::complex<double>>& a) {
  const std::size_t n = a.size();
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  const double pi = 3.14159265358979323846;
  for (std::size_t len = 2; len <= n; len <<= 1) {
    const double ang = -2 * pi / double(len);
    for (std::size_t i = 0; i < n; i += len)
      for (std::size_t k = 0; k < len / 2; ++k) {
        const std::complex<double> w(std::cos(ang * double(k)), std::sin(ang * double(k)));
        const std::complex<double> u = a[i + k], v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
      }
  }
}
}  // namespace detail

/// The discrete Fourier transform X_k = sum_n x_n exp(-2 pi i k n / M), k = 0..M-1. Radix-2
/// FFT when M is a power of two, a direct O(M^2) sum otherwise (fine for probe sizes, M <= a
/// few thousand).
inline std::vector<std::complex<double>> dft(const Eigen::Ref<const Eigen::VectorXd>& x) {
  const index m = x.size();
  std::vector<std::complex<double>> out(static_cast<std::size_t>(m));
  if (m > 0 && (m & (m - 1)) == 0) {
    for (index i = 0; i < m; ++i) out[std::size_t(i)] = x(i);
    detail::fft_radix2(out);
    return out;
  }
  const double pi = 3.14159265358979323846;
  for (index k = 0; k < m; ++k) {
    std::complex<double> s = 0;
    for (index n = 0; n < m; ++n) {
      const double a = -2 * pi * double((k * n) % m) / double(m);
      s += x(n) * std::complex<double>(std::cos(a), std::sin(a));
    }
    out[std::size_t(k)] = s;
  }
  return out;
}

/// Sample autocorrelation r_k = sum_{i < M-k} (g_i - m)(g_{i+k} - m) / sum_i (g_i - m)^2 for
/// k = 0..max_lag (the standard biased estimator, so |r_k| <= 1). A constant sequence has
/// r_k = 1 for every k (perfectly correlated; the limit of a vanishing common perturbation).
/// Preconditions: M >= 2, 0 <= max_lag < M, finite values.
inline Eigen::VectorXd autocorrelation(const Eigen::Ref<const Eigen::VectorXd>& g, index max_lag) {
  detail::check_sequence(g, "autocorrelation");
  require<config_error>(max_lag >= 0 && max_lag < g.size(),
                        "autocorrelation: max_lag must be in "
                        "[0, ",
                        g.size() - 1, "], got ", max_lag);
  const Eigen::VectorXd c = g.array() - g.mean();
  const double var = c.squaredNorm();
  Eigen::VectorXd r(max_lag + 1);
  if (!(var > 0)) return r.setOnes();
  const index m = g.size();
  for (index k = 0; k <= max_lag; ++k) r(k) = c.head(m - k).dot(c.tail(m - k)) / var;
  return r;
}

/// Periodogram P_k = |DFT(g - mean)_k|^2 / M at frequencies f_k = k / M, k = 0..floor(M/2).
inline Eigen::VectorXd power_spectrum(const Eigen::Ref<const Eigen::VectorXd>& g) {
  detail::check_sequence(g, "power_spectrum");
  const Eigen::VectorXd c = g.array() - g.mean();
  const auto x = dft(c);
  const index m = g.size();
  Eigen::VectorXd p(m / 2 + 1);
  for (index k = 0; k <= m / 2; ++k) p(k) = std::norm(x[std::size_t(k)]) / double(m);
  return p;
}

/// Least-squares slope of log P_k against log f_k over the band of `opt` (see noise_options),
/// skipping frequencies with zero power. Brown noise gives about -2, pink -1, white 0.
/// Throws config_error if the band holds fewer than 2 usable frequencies, numeric_error for a
/// constant sequence (no power to fit; analyse() reports such a sequence as constant instead).
inline double spectral_slope(const Eigen::Ref<const Eigen::VectorXd>& g,
                             const noise_options& opt = {}) {
  const Eigen::VectorXd p = power_spectrum(g);
  const index m = g.size();
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  index n = 0, in_band = 0;
  for (index k = 1; k < p.size(); ++k) {
    const double f = double(k) / double(m);
    if (f < opt.band_low || f > opt.band_high) continue;
    ++in_band;
    if (!(p(k) > 0)) continue;
    const double x = std::log(f), y = std::log(p(k));
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++n;
  }
  require<config_error>(in_band >= 2, "spectral_slope: the band [", opt.band_low, ", ",
                        opt.band_high, "] cycles/sample holds ", in_band,
                        " periodogram frequencies of a ", m, "-point sequence; need >= 2");
  require<numeric_error>(n >= 2,
                         "spectral_slope: the sequence has no power in the band (constant?)");
  const double den = double(n) * sxx - sx * sx;
  return (double(n) * sxy - sx * sy) / den;
}

/// Number of distinct values of g, counting values within tol * max|g| of their sorted
/// neighbour as equal (one cluster may thus span more than tol * max|g|).
inline index distinct_values(const Eigen::Ref<const Eigen::VectorXd>& g, double tol) {
  if (g.size() == 0) return 0;
  std::vector<double> v(g.data(), g.data() + g.size());
  std::sort(v.begin(), v.end());
  const double eps = tol * g.cwiseAbs().maxCoeff();
  index n = 1;
  for (std::size_t i = 1; i < v.size(); ++i)
    if (v[i] - v[i - 1] > eps) ++n;
  return n;
}

/// The verdict for a spectral slope and lag-1 autocorrelation under the thresholds of `opt`.
inline noise_verdict classify(double slope, double lag1, const noise_options& opt = {}) {
  if (slope <= opt.brown_below && lag1 >= opt.lag1_split) return noise_verdict::brown;
  if (slope >= opt.white_above && lag1 < opt.lag1_split) return noise_verdict::white;
  return noise_verdict::between;
}

/// All statistics of one sequence: ACF up to opt.max_lag, lag-1, spectral slope and verdict.
/// A constant sequence (stddev <= tolerance * scale) gets acf = 1, lag1 = 1 exactly, no slope
/// and the verdict `constant`; a sequence with exactly two distinct values (within tolerance *
/// scale) gets its ACF and slope computed but the verdict `two_valued`. `scale` is the size of
/// the terms the values were summed from, which sets their rounding error (a gradient that is a
/// near-cancelling sum of large terms carries a large relative rounding error); 0 means max|g|.
/// sweep_result provides it (see probe/sweep.hpp). Never returns NaN for finite input.
/// Preconditions: M >= 2 finite values (config_error / numeric_error otherwise).
inline noise_stats analyse(const Eigen::Ref<const Eigen::VectorXd>& g,
                           const noise_options& opt = {}, double scale = 0) {
  detail::check_sequence(g, "analyse");
  require<config_error>(opt.tolerance >= 0 && opt.brown_below <= opt.white_above,
                        "analyse: need tolerance >= 0 and brown_below <= white_above");
  noise_stats s;
  s.points = g.size();
  s.mean = g.mean();
  s.stddev = std::sqrt((g.array() - s.mean).square().mean());
  const index k =
      opt.max_lag > 0 ? std::min(opt.max_lag, g.size() - 1) : std::min<index>(g.size() - 1, 64);
  const double gmax = g.cwiseAbs().maxCoeff();
  if (!(scale > gmax)) scale = gmax;
  s.distinct = distinct_values(g, opt.tolerance * scale / (gmax > 0 ? gmax : 1.0));
  if (s.stddev <= opt.tolerance * scale || s.distinct == 1) {
    s.acf = Eigen::VectorXd::Ones(k + 1);
    s.lag1 = 1;
    s.has_slope = false;
    s.verdict = noise_verdict::constant;
    return s;
  }
  s.acf = autocorrelation(g, k);
  s.lag1 = k >= 1 ? s.acf(1) : 1.0;
  s.slope = spectral_slope(g, opt);
  s.has_slope = true;
  s.verdict = s.distinct == 2 ? noise_verdict::two_valued : classify(s.slope, s.lag1, opt);
  return s;
}

/// Statistics over seeds (independent networks or signals): means and sample standard
/// deviations (1/(n-1); 0 for one seed) of lag-1 and slope, the mean and spread of the ACF, and
/// an overall verdict: the degenerate verdict shared by a majority of seeds if there is one,
/// otherwise the verdict of the mean slope and mean lag-1.
struct noise_summary {
  index seeds = 0;
  double lag1_mean = 0, lag1_std = 0;
  double slope_mean = 0, slope_std = 0;
  index slope_seeds = 0;  ///< seeds that had a slope (not constant)
  Eigen::VectorXd acf_mean, acf_std;
  noise_verdict verdict = noise_verdict::between;
};

/// Summarises per-seed statistics (all with the same ACF length); see noise_summary.
inline noise_summary summarise(const std::vector<noise_stats>& all, const noise_options& opt = {}) {
  require<config_error>(!all.empty(), "summarise: no statistics to summarise");
  noise_summary r;
  r.seeds = index(all.size());
  const index k = all.front().acf.size();
  r.acf_mean = Eigen::VectorXd::Zero(k);
  r.acf_std = Eigen::VectorXd::Zero(k);
  index constant = 0, two = 0;
  for (const auto& s : all) {
    require<config_error>(s.acf.size() == k, "summarise: ACF lengths differ (", s.acf.size(),
                          " vs ", k, ")");
    r.lag1_mean += s.lag1;
    r.acf_mean += s.acf;
    if (s.has_slope) r.slope_mean += s.slope, ++r.slope_seeds;
    constant += s.verdict == noise_verdict::constant;
    two += s.verdict == noise_verdict::two_valued;
  }
  const double n = double(all.size());
  r.lag1_mean /= n;
  r.acf_mean /= n;
  if (r.slope_seeds > 0) r.slope_mean /= double(r.slope_seeds);
  for (const auto& s : all) {
    r.lag1_std += (s.lag1 - r.lag1_mean) * (s.lag1 - r.lag1_mean);
    r.acf_std.array() += (s.acf - r.acf_mean).array().square();
    if (s.has_slope) r.slope_std += (s.slope - r.slope_mean) * (s.slope - r.slope_mean);
  }
  if (all.size() > 1) {
    r.lag1_std = std::sqrt(r.lag1_std / (n - 1));
    r.acf_std = (r.acf_std / (n - 1)).array().sqrt();
  } else {
    r.lag1_std = 0;
    r.acf_std.setZero();
  }
  r.slope_std = r.slope_seeds > 1 ? std::sqrt(r.slope_std / double(r.slope_seeds - 1)) : 0.0;
  if (2 * constant > r.seeds)
    r.verdict = noise_verdict::constant;
  else if (2 * two > r.seeds)
    r.verdict = noise_verdict::two_valued;
  else
    r.verdict = classify(r.slope_mean, r.lag1_mean, opt);
  return r;
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_NOISE_HPP
