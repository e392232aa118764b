// Noise statistics against signals with known answers.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "shatter/probe/noise.hpp"
#include "shatter/probe/synthetic.hpp"

using namespace shatter;
using namespace shatter::probe;
using idx = shatter::index;

namespace {

struct moments {
  double mean = 0, sd = 0, se = 0;  // mean, per-seed standard deviation, standard error
};

template <class F>
moments over_seeds(int n, F f) {
  std::vector<double> v;
  for (int s = 0; s < n; ++s) v.push_back(f(s));
  moments m;
  for (double x : v) m.mean += x;
  m.mean /= n;
  for (double x : v) m.sd += (x - m.mean) * (x - m.mean);
  m.sd = std::sqrt(m.sd / (n - 1));
  m.se = m.sd / std::sqrt(double(n));
  return m;
}

// Each synthetic signal is analysed for `seeds` independent draws of M = 256 points. The
// tolerance on a mean is the estimator's known finite-size bias bound plus 5 standard errors
// measured from the same seeds (a false failure has probability < 1e-6 under normality).
constexpr int seeds = 200;
constexpr idx m = 256;

}  // namespace

TEST_CASE("brown noise: spectral slope about -2, lag-1 near 1, verdict brown", "[probe][noise]") {
  std::vector<noise_verdict> verdicts;
  const auto slope = over_seeds(seeds, [&](int s) {
    rng g(1000 + s);
    const auto st = analyse(brown_noise(m, g));
    verdicts.push_back(st.verdict);
    return st.slope;
  });
  const auto lag1 = over_seeds(seeds, [&](int s) {
    rng g(1000 + s);
    return analyse(brown_noise(m, g)).lag1;
  });
  // A discrete random walk has spectrum 1/(4 sin^2(pi f)), which bends above 1/f^2 towards
  // f = 1/4: the band's expected slope is ~ -1.94, a bias of up to 0.1.
  CHECK(std::abs(slope.mean + 2) < 0.1 + 5 * slope.se);
  CHECK(slope.sd < 0.3);
  // lag-1 of a 256-step walk: 1 - O(1/M) with the mean removed; ~0.97.
  CHECK(lag1.mean > 0.95);
  CHECK(lag1.mean < 1.0);
  std::size_t brown = 0;
  for (auto v : verdicts) brown += v == noise_verdict::brown;
  CHECK(brown >= verdicts.size() * 95 / 100);
}

TEST_CASE("white noise: spectral slope about 0, lag-1 near 0, verdict white", "[probe][noise]") {
  const auto slope = over_seeds(seeds, [](int s) {
    rng g(2000 + s);
    return analyse(white_noise(m, g)).slope;
  });
  const auto lag1 = over_seeds(seeds, [](int s) {
    rng g(2000 + s);
    return analyse(white_noise(m, g)).lag1;
  });
  // The log-periodogram has a constant bias (Euler's gamma), which does not move the slope.
  CHECK(std::abs(slope.mean) < 0.05 + 5 * slope.se);
  // The sample autocorrelation of white noise has mean -1/M and sd 1/sqrt(M).
  CHECK(std::abs(lag1.mean + 1.0 / m) < 5 * lag1.se);
  CHECK(lag1.sd == Approx(1 / std::sqrt(double(m))).epsilon(0.2));
}

TEST_CASE("pink noise: spectral slope about -1, verdict between", "[probe][noise]") {
  std::size_t between = 0;
  const auto slope = over_seeds(seeds, [&](int s) {
    rng g(3000 + s);
    const auto st = analyse(pink_noise(m, g));
    between += st.verdict == noise_verdict::between;
    return st.slope;
  });
  CHECK(std::abs(slope.mean + 1) < 0.05 + 5 * slope.se);
  CHECK(between >= seeds * 90 / 100);
}

TEST_CASE("autocorrelation and spectrum on exact sequences", "[probe][noise]") {
  // Alternating +-1: mean 0, r_k = (-1)^k (M - k) / M.
  Eigen::VectorXd alt(8);
  for (idx i = 0; i < 8; ++i) alt(i) = i % 2 ? -1 : 1;
  const auto r = autocorrelation(alt, 3);
  CHECK(r(0) == Approx(1));
  CHECK(r(1) == Approx(-7.0 / 8));
  CHECK(r(2) == Approx(6.0 / 8));
  CHECK(r(3) == Approx(-5.0 / 8));
  // All power at the Nyquist frequency: P_4 = |sum (-1)^n (-1)^n|^2 / 8 = 8.
  const auto p = power_spectrum(alt);
  CHECK(p(4) == Approx(8));
  CHECK(p.head(4).cwiseAbs().maxCoeff() < 1e-12);

  // The FFT (power-of-two length) and the direct DFT (other lengths) agree with the definition.
  for (idx n : {16, 12, 7}) {
    rng g(n);
    const Eigen::VectorXd x = white_noise(n, g);
    const auto f = dft(x);
    for (idx k = 0; k < n; ++k) {
      std::complex<double> s = 0;
      for (idx j = 0; j < n; ++j)
        s += x(j) * std::polar(1.0, -2 * 3.14159265358979323846 * double(k * j) / double(n));
      CHECK(std::abs(f[std::size_t(k)] - s) < 1e-10);
    }
  }

  // The documented verdict thresholds.
  CHECK(classify(-1.6, 0.9) == noise_verdict::brown);
  CHECK(classify(-1.5, 0.5) == noise_verdict::brown);
  CHECK(classify(-1.6, 0.3) == noise_verdict::between);
  CHECK(classify(-1.0, 0.7) == noise_verdict::between);
  CHECK(classify(-0.5, 0.1) == noise_verdict::white);
  CHECK(classify(0.3, -0.1) == noise_verdict::white);
  CHECK(classify(-0.4, 0.55) == noise_verdict::between);
}

TEST_CASE("a constant sequence: lag-1 exactly 1, no slope, no NaN", "[probe][noise]") {
  const Eigen::VectorXd c = Eigen::VectorXd::Constant(256, 0.7);
  const auto st = analyse(c);
  CHECK(st.verdict == noise_verdict::constant);
  CHECK(st.lag1 == 1.0);
  CHECK(st.acf.size() == 65);
  CHECK(st.acf.allFinite());
  CHECK((st.acf.array() == 1.0).all());
  CHECK_FALSE(st.has_slope);
  CHECK(std::isfinite(st.slope));
  CHECK(st.stddev < 1e-12);
  CHECK(autocorrelation(c, 5).allFinite());
  CHECK_THROWS_AS(spectral_slope(c), numeric_error);

  // Float rounding noise far below the tolerance still counts as constant.
  Eigen::VectorXd nearly = c;
  nearly(17) += 1e-7;
  CHECK(analyse(nearly).verdict == noise_verdict::constant);
  CHECK(analyse(nearly).lag1 == 1.0);
  // The all-zero sequence too.
  CHECK(analyse(Eigen::VectorXd::Zero(10)).verdict == noise_verdict::constant);
}

TEST_CASE("a two-valued sequence is reported as degenerate", "[probe][noise]") {
  Eigen::VectorXd g(256);
  for (idx i = 0; i < 256; ++i) g(i) = i < 128 ? -0.3 : 1.1;
  g(200) += 1e-7;  // rounding noise
  const auto st = analyse(g);
  CHECK(st.distinct == 2);
  CHECK(st.verdict == noise_verdict::two_valued);
  CHECK(std::isfinite(st.lag1));
  CHECK(to_string(st.verdict) == "two-valued");
  // Three values are not degenerate.
  g(0) = 0.5;
  CHECK(analyse(g).verdict != noise_verdict::two_valued);
}

TEST_CASE("summaries over seeds", "[probe][noise]") {
  std::vector<noise_stats> all;
  for (int s = 0; s < 20; ++s) {
    rng g(40 + s);
    all.push_back(analyse(white_noise(256, g)));
  }
  const auto sum = summarise(all);
  CHECK(sum.seeds == 20);
  CHECK(sum.slope_seeds == 20);
  CHECK(sum.verdict == noise_verdict::white);
  double m = 0;
  for (auto& s : all) m += s.lag1;
  CHECK(sum.lag1_mean == Approx(m / 20));
  CHECK(sum.lag1_std > 0);
  CHECK(sum.acf_mean(0) == Approx(1));
  CHECK(sum.acf_std(0) == Approx(0).margin(1e-12));

  // Constant sequences: verdict constant, no slope, finite numbers everywhere.
  std::vector<noise_stats> flat(5, analyse(Eigen::VectorXd::Constant(64, 2.0)));
  const auto fs = summarise(flat);
  CHECK(fs.verdict == noise_verdict::constant);
  CHECK(fs.lag1_mean == 1.0);
  CHECK(fs.lag1_std == 0.0);
  CHECK(fs.slope_seeds == 0);
  CHECK(std::isfinite(fs.slope_mean));
}

TEST_CASE("bad sequences give clear errors", "[probe][noise]") {
  CHECK_THROWS_AS(analyse(Eigen::VectorXd::Zero(1)), config_error);
  Eigen::VectorXd g = Eigen::VectorXd::Ones(8);
  g(3) = std::nan("");
  CHECK_THROWS_AS(analyse(g), numeric_error);
  CHECK_THROWS_WITH(analyse(g), Catch::Contains("value 3"));
  CHECK_THROWS_AS(autocorrelation(Eigen::VectorXd::Ones(8), 8), config_error);
  noise_options narrow;
  narrow.band_low = 0.3;
  narrow.band_high = 0.31;
  rng r(1);
  CHECK_THROWS_AS(spectral_slope(white_noise(16, r), narrow), config_error);
  CHECK_THROWS_AS(summarise({}), config_error);
}
