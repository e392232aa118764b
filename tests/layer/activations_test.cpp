// Activations: forward values, the CReLU convention at 0, and finite-difference gradients.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/activation/crelu.hpp"
#include "shatter/activation/identity.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tanh.hpp"

using namespace shatter;

TEST_CASE("crelu stacks relu(z) over relu(-z) and doubles the width") {
  crelu<double> a;
  matrix<double> x(3, 2);
  x << 1, -2, 0, 3, -0.5, 0.25;
  const auto& y = a.forward(x, mode::train);
  REQUIRE(y.rows() == 6);
  REQUIRE(y.cols() == 2);
  CHECK(y(0, 0) == 1);
  CHECK(y(3, 0) == 0);
  CHECK(y(0, 1) == 0);
  CHECK(y(3, 1) == 2);
  CHECK(y(2, 0) == 0);
  CHECK(y(5, 0) == 0.5);
  // relu(z) - relu(-z) == z exactly.
  CHECK((y.topRows(3) - y.bottomRows(3) - x).cwiseAbs().maxCoeff() == 0);
}

TEST_CASE("crelu passes the gradient through exactly one half, also at 0") {
  crelu<double> a;
  matrix<double> x(3, 1);
  x << 0, 1, -1;
  a.forward(x, mode::train);
  // dL/dy = [1, 1, 1, -1, -1, -1]: the looks-linear combination top - bottom.
  matrix<double> dy(6, 1);
  dy << 1, 1, 1, -1, -1, -1;
  const auto& dx = a.backward(dy);
  CHECK(dx(0, 0) == 1);
  CHECK(dx(1, 0) == 1);
  CHECK(dx(2, 0) == 1);
}

TEMPLATE_TEST_CASE("activations match finite differences", "", relu<double>, crelu<double>,
                   leaky_relu<double>, tanh_activation<double>, identity<double>) {
  rng g(7);
  TestType a;
  const auto x = test::away_from_zero(5, 4, g);
  const auto rep = test::check_gradients(a, x, g);
  CHECK(rep.input_error < 1e-8);
}

TEST_CASE("prelu gradients for the input and the learnable slope") {
  rng g(3);
  SECTION("shared slope") {
    prelu<double> a(1, 0.3);
    const auto rep = test::check_gradients(a, test::away_from_zero(5, 4, g), g);
    CHECK(rep.input_error < 1e-8);
    CHECK(rep.param_error < 1e-8);
  }
  SECTION("one slope per feature") {
    prelu<double> a(5, 0.3);
    a.slope()(2, 0) = -0.7;
    const auto rep = test::check_gradients(a, test::away_from_zero(5, 4, g), g);
    CHECK(rep.input_error < 1e-8);
    CHECK(rep.param_error < 1e-8);
  }
  SECTION("slope 1 is the identity") {
    prelu<double> a(1, 1.0);
    const auto x = test::away_from_zero(5, 4, g);
    CHECK((a.forward(x, mode::train) - x).norm() == 0);
  }
}

TEMPLATE_TEST_CASE("activations work in float", "", float, double) {
  relu<TestType> r;
  matrix<TestType> x(2, 2);
  x << TestType(-1), TestType(2), TestType(0.5), TestType(-3);
  const auto& y = r.forward(x, mode::eval);
  CHECK(y(0, 0) == TestType(0));
  CHECK(y(0, 1) == TestType(2));
}

TEST_CASE("activations reject a batch of the wrong size once connected") {
  relu<double> r;
  r.connect({4, 1, 1}, "layer 1:");
  matrix<double> x(3, 2);
  x.setZero();
  CHECK_THROWS_AS(r.forward(x, mode::train), shape_error);
  CHECK_THROWS_WITH(r.forward(x, mode::train),
                    Catch::Contains("relu(4)") && Catch::Contains("3 x 2"));
}
