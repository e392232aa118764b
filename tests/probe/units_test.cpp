// Unit activity, covariance matrices, correlation across seeds and the theory rates.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "shatter/network/builders.hpp"
#include "shatter/probe/theory.hpp"
#include "shatter/probe/units.hpp"

using namespace shatter;
using namespace shatter::probe;
using idx = shatter::index;

TEST_CASE("unit activity on a hand-built net is exact", "[probe][units]") {
  // Two units: relu(t) is on for t > 0, relu(-t) for t < 0. With M even points on [-2, 2]
  // (0 excluded) each is on for M/2 inputs.
  sequential<double> net;
  auto& d1 = net.add(dense<double>(1, 2, false));
  d1.weight() << 1, -1;
  net.add(relu<double>());
  auto& d2 = net.add(dense<double>(2, 1, false));
  d2.weight() << 1, 1;
  sweep_options o;
  o.points = 10;
  const auto act = unit_activity(net, o);
  REQUIRE(act.size() == 1);
  CHECK(act[0].layer == 1);
  CHECK(act[0].units == 2);
  CHECK(act[0].active == Approx(0.5));
  CHECK(act[0].coactive == Approx(5.0 * 4.0 / (10.0 * 9.0)));
}

TEST_CASE("with batch norm units are active for ~1/2 of inputs and co-active for ~1/4",
          "[probe][units]") {
  mlp_spec s;
  s.width = 200;
  s.hidden_layers = 20;
  s.bias_std = 0.5;
  rng g(8);
  auto bn = build<float>(architecture::plain_relu_bn, s, g);
  const auto a = unit_activity(bn);
  REQUIRE(a.size() == 20);
  for (const auto& l : a) {
    INFO("layer " << l.layer);
    CHECK(l.active == Approx(0.5).margin(0.05));
    CHECK(l.coactive == Approx(0.25).margin(0.05));
  }
  // Without batch norm the co-active proportion climbs towards the active one with depth.
  auto plain = build<float>(architecture::plain_relu, s, g);
  const auto p = unit_activity(plain);
  CHECK(p.back().coactive > p.front().coactive + 0.1);
  // resnets expose the ReLUs inside their branches.
  auto res = build<float>(architecture::resnet_bn, s, g);
  CHECK(unit_activity(res).size() == 20);
}

TEST_CASE("covariance matrix of a gradient sequence", "[probe][units]") {
  Eigen::VectorXd g(4);
  g << 1, -1, 3, -3;  // mean 0, variance 5
  const auto c = covariance_matrix(g);
  REQUIRE(c.rows() == 4);
  CHECK(c(0, 0) == Approx(1.0 / 5));
  CHECK(c(0, 1) == Approx(1.0 / 5));
  CHECK(c(2, 3) == Approx(9.0 / 5));
  CHECK(c.trace() == Approx(4.0));  // sum of squares / variance = M
  CHECK((c - c.transpose()).cwiseAbs().maxCoeff() == 0);
  const auto z = covariance_matrix(Eigen::VectorXd::Constant(5, 2.0));
  CHECK(z.allFinite());
  CHECK(z.cwiseAbs().maxCoeff() == 0);
}

TEST_CASE("correlation across seeds between the gradients at two inputs", "[probe][units]") {
  std::vector<Eigen::VectorXd> grads;
  for (int s = 0; s < 5; ++s) {
    Eigen::VectorXd g(3);
    g << s, 2.0 * s + 1, -double(s * s);
    grads.push_back(g);
  }
  CHECK(correlation_across_seeds(grads, 0, 1) == Approx(1.0));
  CHECK(correlation_across_seeds(grads, 0, 0) == Approx(1.0));
  // Against the direct Pearson formula for (s, -s^2), s = 0..4.
  const double mx = 2, my = -6;
  double sxy = 0, sxx = 0, syy = 0;
  for (int s = 0; s < 5; ++s) {
    sxy += (s - mx) * (-s * s - my);
    sxx += (s - mx) * (s - mx);
    syy += (-s * s - my) * (-s * s - my);
  }
  CHECK(correlation_across_seeds(grads, 0, 2) == Approx(sxy / std::sqrt(sxx * syy)));
  // Constant across seeds: 1 when equal, 0 otherwise; never NaN.
  std::vector<Eigen::VectorXd> flat(4, Eigen::VectorXd::Constant(2, 1.5));
  CHECK(correlation_across_seeds(flat, 0, 1) == 1.0);
  flat[0](1) = 3;
  CHECK(std::isfinite(correlation_across_seeds(flat, 0, 1)));
  CHECK_THROWS_AS(correlation_across_seeds({grads[0]}, 0, 1), config_error);
  CHECK_THROWS_AS(correlation_across_seeds(grads, 0, 3), config_error);
}

TEST_CASE("theory: predicted correlation after L layers", "[probe][theory]") {
  CHECK(theory::feedforward(3) == Approx(0.125));
  CHECK(theory::resnet(1, 1.0) == Approx(0.75));
  CHECK(theory::resnet(2, 1.0) == Approx(0.5625));
  CHECK(theory::resnet(10, 0.1) == Approx(std::pow(1.005 / 1.01, 10)));
  CHECK(theory::resnet_bn(4, 1.0) == Approx(0.5));
  CHECK(theory::resnet_bn(100, 0.5) == Approx(0.2));
  CHECK(theory::resnet_bn(4, 0.1) == 1.0);  // capped
  CHECK(theory::looks_linear(200) == 1.0);
  CHECK(*theory::predicted(architecture::plain_relu_bn, 2) == Approx(0.25));
  CHECK(*theory::predicted(architecture::plain_crelu_ll, 50) == 1.0);
  CHECK_FALSE(theory::predicted(architecture::plain_crelu, 5).has_value());
  CHECK_THROWS_AS(theory::feedforward(-1), config_error);
  CHECK_THROWS_AS(theory::resnet_bn(4, 0), config_error);
}
