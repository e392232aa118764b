// The idealised gradient-correlation rate of leaky-ReLU chains (TAT, PReLU looks-linear).
#include <catch2/catch.hpp>

#include <cmath>

#include "shatter/core/rng.hpp"
#include "shatter/probe/theory.hpp"

using namespace shatter::probe;

TEST_CASE("theory::leaky_relu: 2^-L for ReLU, 1 for the identity, the sampled per-layer factor") {
  for (double depth : {1.0, 7.0, 50.0}) {
    CHECK(theory::leaky_relu(depth, 0.0) == Approx(theory::feedforward(depth)));
    CHECK(theory::leaky_relu(depth, 1.0) == 1.0);
  }
  // Per layer: E[f'(z1) f'(z2)] / E[f'(z)^2] for independent pre-activations (co-active with
  // probability 1/4), by sampling.
  shatter::rng g(81);
  for (double a : {0.2, 0.6}) {
    double cross = 0, sq = 0;
    const int n = 200000;
    for (int k = 0; k < n; ++k) {
      const double d1 = g.normal() > 0 ? 1 : a, d2 = g.normal() > 0 ? 1 : a;
      cross += d1 * d2;
      sq += d1 * d1;
    }
    CHECK(cross / sq == Approx(theory::leaky_relu(1, a)).margin(0.005));
  }
  CHECK(theory::tat(20) == Approx(theory::leaky_relu(20, shatter::tat_slope(20))));
  CHECK(theory::tat(8) == Approx(theory::feedforward(8)));  // unreachable: a = 0
  CHECK_THROWS_AS(theory::tat(2.5), shatter::config_error);
  CHECK_THROWS_AS(theory::leaky_relu(3, -0.1), shatter::config_error);
}
