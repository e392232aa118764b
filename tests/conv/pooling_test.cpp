// Pooling, flatten, the option-A shortcut and branch sums: values and finite-difference gradients.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/flatten.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/max_pool2d.hpp"
#include "shatter/layer/subsample_pad.hpp"
#include "shatter/network/branch_sum.hpp"

using namespace shatter;

TEST_CASE("global average pooling averages each channel, gradient check") {
  global_avg_pool<double> p({3, 2, 2});
  matrix<double> x(12, 1);
  for (Eigen::Index i = 0; i < 12; ++i) x(i, 0) = double(i);
  const matrix<double> y = p.forward(x, mode::train);
  REQUIRE(y.rows() == 3);
  CHECK(y(0, 0) == 1.5);
  CHECK(y(1, 0) == 5.5);
  CHECK(y(2, 0) == 9.5);
  rng g(21);
  global_avg_pool<double> q({2, 3, 4});
  const auto rep = test::check_gradients(q, test::away_from_zero(24, 3, g), g);
  CHECK(rep.input_error < 1e-8);
}

TEST_CASE("max pooling picks window maxima, gradient check away from ties") {
  max_pool2d<double> p({1, 4, 4}, 2);
  CHECK(p.output_shape() == image_shape{1, 2, 2});
  matrix<double> x(16, 1);
  for (Eigen::Index i = 0; i < 16; ++i) x(i, 0) = double((i * 7) % 16);
  const matrix<double> y = p.forward(x, mode::train);
  // rows of the image: [0 7 14 5], [12 3 10 1], [8 15 6 13], [4 11 2 9]
  CHECK(y(0, 0) == 12);
  CHECK(y(1, 0) == 14);
  CHECK(y(2, 0) == 15);
  CHECK(y(3, 0) == 13);
  rng g(22);
  for (auto [k, s] : {std::pair<Eigen::Index, Eigen::Index>{2, 2}, {3, 1}, {3, 2}}) {
    max_pool2d<double> q({2, 5, 6}, k, s);
    const auto rep = test::check_gradients(q, test::away_from_zero(60, 3, g), g);
    INFO(q.describe());
    CHECK(rep.input_error < 1e-8);
  }
  CHECK_THROWS_AS(max_pool2d<double>({1, 2, 2}, 3), config_error);
}

TEST_CASE("flatten is the identity with a size check") {
  flatten<double> f({2, 3, 3});
  rng g(23);
  const matrix<double> x = test::away_from_zero(18, 4, g);
  CHECK(f.forward(x, mode::train) == x);
  CHECK(f.out_size() == 18);
  CHECK(test::check_gradients(f, x, g).input_error < 1e-9);
  matrix<double> bad(17, 1);
  CHECK_THROWS_AS(f.forward(bad, mode::train), shape_error);
}

TEST_CASE("subsample_pad keeps every s-th pixel and adds zero channels, gradient check") {
  subsample_pad<double> s({2, 4, 4}, 4, 2);
  CHECK(s.output_shape() == image_shape{4, 2, 2});
  matrix<double> x(32, 1);
  for (Eigen::Index i = 0; i < 32; ++i) x(i, 0) = double(i);
  const matrix<double> y = s.forward(x, mode::train);
  CHECK(y(0, 0) == 0);
  CHECK(y(1, 0) == 2);
  CHECK(y(2, 0) == 8);
  CHECK(y(3, 0) == 10);
  CHECK(y(4, 0) == 16);
  CHECK(y.bottomRows(8).cwiseAbs().maxCoeff() == 0);
  rng g(24);
  subsample_pad<double> t({2, 5, 5}, 3, 2);
  CHECK(test::check_gradients(t, test::away_from_zero(50, 2, g), g).input_error < 1e-9);
}

TEST_CASE("branch_sum adds two branches, gradient check through convolutions") {
  rng g(25);
  const image_shape in{2, 5, 5};
  sequential<double> a, b;
  a.add(subsample_pad<double>(in, 3, 2));
  conv2d<double> c1(in, 3, 3, 2, 1, true), c2({3, 3, 3}, 3, 3, 1, 1, false);
  for (Eigen::Index i = 0; i < c1.weight().size(); ++i) c1.weight()(i) = g.normal();
  for (Eigen::Index i = 0; i < c2.weight().size(); ++i) c2.weight()(i) = g.normal();
  b.add(std::move(c1));
  b.add(relu<double>());
  b.add(std::move(c2));
  branch_sum<double> sum(a, b);
  const matrix<double> x = test::away_from_zero(50, 2, g);
  const matrix<double> y = sum.forward(x, mode::train);
  CHECK((y - a.forward(x, mode::train) - b.forward(x, mode::train)).norm() < 1e-12);
  const auto rep = test::check_gradients(sum, x, g);
  CHECK(rep.input_error < 1e-7);
  CHECK(rep.param_error < 1e-7);
  sequential<double> wrong;
  wrong.add(subsample_pad<double>(in, 3, 1));
  CHECK_THROWS_AS(branch_sum<double>(wrong, b), shape_error);
}
