// AdamW: PyTorch's defaults, one step against a hand-computed value, and its own kind.
#include <catch2/catch.hpp>

#include <cmath>

#include "shatter/optim/adam.hpp"
#include "shatter/optim/adamw.hpp"

TEST_CASE("adamw has torch.optim.AdamW's defaults and kind", "[optim][adamw]") {
  const shatter::adamw_options o;
  CHECK(o.lr == 1e-3);
  CHECK(o.beta1 == 0.9);
  CHECK(o.beta2 == 0.999);
  CHECK(o.eps == 1e-8);
  CHECK(o.weight_decay == 0.01);
  shatter::matrix<double> p(1, 1), g(1, 1);
  shatter::adamw<double> a({{"w", &p, &g}});
  CHECK(a.kind() == "adamw");
  shatter::adam<double> b({{"w", &p, &g}});
  CHECK(b.kind() == "adam");
}

TEST_CASE("adamw: one step equals the hand-computed update", "[optim][adamw]") {
  // p = 1, g = 0.5, lr = 0.1, lambda = 0.01 (default), betas and eps default. Step 1:
  //   p <- 1 (1 - 0.1 * 0.01) = 0.999;  m = 0.1 * 0.5 = 0.05;  v = 0.001 * 0.25 = 0.00025;
  //   p <- 0.999 - (0.1 / 0.1) * 0.05 / (sqrt(0.00025) / sqrt(0.001) + 1e-8)
  //      = 0.999 - 0.05 / (0.5 + 1e-8) = 0.899 + 2e-9 (to 1e-16).
  shatter::matrix<double> p(1, 1), g(1, 1);
  p(0, 0) = 1;
  g(0, 0) = 0.5;
  shatter::adamw_options o;
  o.lr = 0.1;
  shatter::adamw<double> a({{"w", &p, &g}}, o);
  a.step();
  CHECK(std::abs(p(0, 0) - (0.999 - 0.05 / (0.5 + 1e-8))) < 1e-15);
  CHECK(std::abs(p(0, 0) - 0.899000002) < 1e-12);
  // Step 2 with the same gradient: m = 0.095, v = 0.00049975; bias corrections 0.19, 0.001999.
  const double p1 = p(0, 0);
  a.step();
  const double m = 0.9 * 0.05 + 0.1 * 0.5, v = 0.999 * 0.00025 + 0.001 * 0.25;
  const double want = p1 * (1 - 0.1 * 0.01) -
                      (0.1 / (1 - 0.81)) * m / (std::sqrt(v) / std::sqrt(1 - 0.998001) + 1e-8);
  CHECK(std::abs(p(0, 0) - want) < 1e-15);
}

TEST_CASE("adamw without weight decay steps exactly as adam", "[optim][adamw]") {
  shatter::matrix<double> p(2, 1), q(2, 1), g(2, 1);
  p << 0.3, -1.2;
  q = p;
  shatter::adamw_options wo;
  wo.weight_decay = 0;
  shatter::adamw<double> a({{"w", &p, &g}}, wo);
  shatter::adam<double> b({{"w", &q, &g}});
  for (int s = 0; s < 3; ++s) {
    g << 0.1 * (s + 1), -0.7;
    a.step();
    b.step();
    CHECK(p == q);
  }
}
