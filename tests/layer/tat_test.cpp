// TAT's leaky ReLU: the C-map formula, the slope equation, the output gain, the layer.
#include <catch2/catch.hpp>

#include <cmath>

#include "shatter/activation/tat.hpp"
#include "shatter/core/rng.hpp"

using namespace shatter;
using Idx = shatter::index;

TEST_CASE("leaky_relu_cmap: known values and the Monte-Carlo correlation of f(u) and f(v)") {
  const double pi = 3.14159265358979323846;
  for (double c : {-0.7, 0.0, 0.3, 0.9}) CHECK(leaky_relu_cmap(c, 1.0) == Approx(c).margin(1e-15));
  for (double a : {0.0, 0.2, 0.6}) CHECK(leaky_relu_cmap(1.0, a) == Approx(1.0).epsilon(1e-14));
  CHECK(leaky_relu_cmap(0.0, 0.0) == Approx(1.0 / pi).epsilon(1e-14));
  CHECK(leaky_relu_cmap(0.0, 0.5) == Approx(0.25 / (pi * 1.25)).epsilon(1e-14));

  // E[f(u) f(v)] / E[f(u)^2] for unit Gaussians of correlation c, by sampling.
  rng g(11);
  const int n = 400000;
  for (double a : {0.0, 0.3, 0.7})
    for (double c : {-0.5, 0.0, 0.6}) {
      double uv = 0, uu = 0;
      const double s = std::sqrt(1 - c * c);
      for (int k = 0; k < n; ++k) {
        const double z1 = g.normal(), z2 = g.normal();
        const double u = z1, v = c * z1 + s * z2;
        const double fu = u > 0 ? u : a * u, fv = v > 0 ? v : a * v;
        uv += fu * fv;
        uu += fu * fu;
      }
      INFO("a = " << a << ", c = " << c);
      CHECK(uv / uu == Approx(leaky_relu_cmap(c, a)).margin(0.01));
    }
}

TEST_CASE("tat_gain makes the leaky ReLU variance-preserving") {
  // E[f(z)^2] = s^2 (1 + a^2) / 2 for z ~ N(0, 1).
  for (double a : {0.0, 0.18, 0.5, 1.0})
    CHECK(tat_gain(a) * tat_gain(a) * (1 + a * a) / 2 == Approx(1.0).epsilon(1e-15));
  CHECK(tat_gain(0.0) == Approx(std::sqrt(2.0)));
}

TEST_CASE("tat_slope solves C_f(0) = eta to 1e-10 at every reachable depth") {
  for (Idx layers : {13, 14, 20, 50, 100, 200, 1000})
    for (double eta : {0.5, 0.9}) {
      INFO(layers << " layers, eta = " << eta);
      const double a = tat_slope(layers, eta);
      CHECK(a > 0);
      CHECK(a < 1);
      CHECK(std::abs(tat_network_cmap(a, layers) - eta) < 1e-10);
    }
  // The values in the team's paper notes (section 6), from the same formula.
  CHECK(tat_slope(20) == Approx(0.18).margin(0.005));
  CHECK(tat_slope(50) == Approx(0.43).margin(0.005));
  CHECK(tat_slope(100) == Approx(0.57).margin(0.005));
  CHECK(tat_slope(200) == Approx(0.68).margin(0.005));
  // Deeper chains need a more linear activation.
  CHECK(tat_slope(200) > tat_slope(100));
}

TEST_CASE("tat_slope refuses an unreachable eta, builders then use plain ReLU") {
  CHECK_FALSE(tat_reachable(12));
  CHECK(tat_reachable(13));
  CHECK_THROWS_AS(tat_slope(12), config_error);
  CHECK_THROWS_WITH(tat_slope(8), Catch::Contains("unreachable") && Catch::Contains("8"));
  CHECK_THROWS_WITH(tat_slope(20, 1.0), Catch::Contains("(0, 1)"));
  CHECK_THROWS_WITH(tat_slope(20, std::nan("")), Catch::Contains("eta"));
  CHECK_THROWS_WITH(tat_slope(0), Catch::Contains(">= 1"));
  CHECK(tat_slope_or_relu(8) == 0.0);
  CHECK(tat_slope_or_relu(20) == tat_slope(20));
}

TEST_CASE("tat_leaky_relu computes s z and s a z, derivative included") {
  const double a = 0.25, s = tat_gain(a);
  auto l = tat_leaky_relu<double>(a);
  matrix<double> x(4, 1);
  x << 2.0, -2.0, 0.5, -1.0;
  const matrix<double> y = l.forward(x, mode::train);
  CHECK(y(0, 0) == Approx(2 * s));
  CHECK(y(1, 0) == Approx(-2 * a * s));
  CHECK(y(3, 0) == Approx(-a * s));
  const matrix<double> dx = l.backward(matrix<double>::Ones(4, 1));
  CHECK(dx(0, 0) == Approx(s));
  CHECK(dx(1, 0) == Approx(a * s));
  CHECK(l.describe().find("gain") != std::string::npos);
  CHECK_THROWS_AS(tat_leaky_relu<double>(1.5), config_error);
}
