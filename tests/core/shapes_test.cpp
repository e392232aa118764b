// Shapes and initialisation: a layer connected to an image of the right size but the wrong
// shape is refused when added, naming the layer and both shapes; dense and conv2d layers are
// He-initialised when constructed.
#include <catch2/catch.hpp>

#include "core_support.hpp"
#include "shatter/activation/crelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/flatten.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/max_pool2d.hpp"
#include "shatter/layer/subsample_pad.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"

using namespace shatter;
using namespace shatter::coretest;
using Catch::Contains;

namespace {

/// conv2d(1 x 16 x 16 -> 1 x 16 x 16) -> crelu: samples of 2 x 16 x 16 = 512 values.
sequential<double> conv_crelu() {
  sequential<double> net;
  net.add(conv2d<double>({1, 16, 16}, 1, 3, 1, 1));
  net.add(crelu<double>());
  return net;
}

}  // namespace

TEST_CASE("a conv2d after a CReLU of another image shape (same size) is refused when added",
          "[core][shapes]") {
  auto net = conv_crelu();
  REQUIRE(net.output_shape() == (image_shape{2, 16, 16}));
  REQUIRE(net.out_size() == 8 * 8 * 8);
  conv2d<double> wrong({8, 8, 8}, 4, 3, 1, 1);
  const std::string name = wrong.describe();
  CHECK_THROWS_AS(net.add(wrong), shape_error);
  CHECK_THROWS_WITH(net.add(wrong), Contains("layer 2") && Contains(name) &&
                                        Contains("8 x 8 x 8") && Contains("2 x 16 x 16"));
  // The network is unchanged and still runs.
  CHECK(net.size() == 2);
  rng g(501);
  const matrix<double> x = normal_matrix(256, 3, g);
  CHECK(net.forward(x, mode::eval).rows() == 512);

  // The same through a shape-free layer (relu adopts the 2 x 16 x 16 shape) ...
  auto through_relu = conv_crelu();
  through_relu.add(relu<double>());
  CHECK(through_relu.output_shape() == (image_shape{2, 16, 16}));
  CHECK_THROWS_WITH(through_relu.add(conv2d<double>({8, 8, 8}, 4, 3, 1, 1)),
                    Contains("layer 3") && Contains("8 x 8 x 8") && Contains("2 x 16 x 16"));
  // ... from a CReLU connected by hand as the first layer ...
  crelu<double> c;
  c.connect({1, 16, 16}, "test:");
  sequential<double> first;
  first.add(std::move(c));
  CHECK_THROWS_WITH(first.add(conv2d<double>({8, 8, 8}, 4, 3, 1, 1)),
                    Contains("layer 1") && Contains("8 x 8 x 8") && Contains("2 x 16 x 16"));
  // ... and into the first layer of a residual block or of a nested sequential.
  sequential<double> branch;
  branch.add(conv2d<double>({8, 8, 8}, 8, 3, 1, 1));
  CHECK_THROWS_WITH(conv_crelu().add(residual<double>(branch)),
                    Contains("8 x 8 x 8") && Contains("2 x 16 x 16"));
  CHECK_THROWS_AS(conv_crelu().add(branch), shape_error);

  // The matching shape, and layers that take any shape of the right size, are accepted.
  CHECK_NOTHROW(conv_crelu().add(conv2d<double>({2, 16, 16}, 4, 3, 1, 1)));
  CHECK_NOTHROW(conv_crelu().add(dense<double>(512, 10)));
  CHECK_NOTHROW(conv_crelu().add(batch_norm<double>(2, 256)));
  CHECK_NOTHROW(conv_crelu().add(batch_norm<double>(512)));  // per-feature statistics
}

TEST_CASE("image layers of the right size but the wrong shape are refused, naming the layer",
          "[core][shapes]") {
  auto expect_refused = [](layer<double>&& l) {
    auto net = conv_crelu();
    const std::string name = l.describe();
    INFO(name);
    REQUIRE(l.in_size() == 512);
    try {
      net.add(l.clone());
      FAIL("accepted " << name << " after a 2 x 16 x 16 output");
    } catch (const shape_error& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Contains("layer 2") && Contains(name) && Contains("2 x 16 x 16"));
    }
    CHECK(net.size() == 2);
  };
  expect_refused(conv2d<double>({8, 8, 8}, 4, 1));
  expect_refused(max_pool2d<double>({8, 8, 8}, 2));
  expect_refused(global_avg_pool<double>({8, 8, 8}));
  expect_refused(flatten<double>({8, 8, 8}));
  expect_refused(subsample_pad<double>({8, 8, 8}, 8, 2));
  expect_refused(batch_norm<double>(8, 64));
}

namespace {

struct moments {
  double mean = 0, var = 0, within_one_sd = 0;
};
moments moments_of(const matrix<double>& w) {
  moments m;
  const double n = double(w.size());
  m.mean = w.mean();
  m.var = (w.array() - m.mean).square().sum() / (n - 1);
  const double sd = std::sqrt(m.var);
  m.within_one_sd = double((w.array().abs() < sd).count()) / n;
  return m;
}

}  // namespace

TEST_CASE("dense and conv2d are He-initialised when constructed", "[core][init]") {
  SECTION("dense(600 -> 400): N(0, 2 / 600), bias zero") {
    dense<double> d(600, 400);
    const matrix<double>& w = d.weight();
    CHECK(w.cwiseAbs().maxCoeff() > 0);
    CHECK((w.array() != 0).count() == w.size());
    const moments m = moments_of(w);
    const double target = 2.0 / 600;
    CHECK(std::abs(m.var / target - 1) < 0.02);  // the estimate's relative sd is 0.3%
    CHECK(std::abs(m.mean) < 4 * std::sqrt(target / double(w.size())));
    CHECK(std::abs(m.within_one_sd - 0.6827) < 0.01);  // normal, not uniform (0.577)
    CHECK(d.bias().cwiseAbs().maxCoeff() == 0);
    // The next layer gets other draws.
    dense<double> e(600, 400);
    CHECK((e.weight() - w).norm() > w.norm());  // independent draws: about sqrt(2) times
  }
  SECTION("conv2d(64 x 8 x 8 -> 128, 3x3): N(0, 2 / (64 * 9)), bias zero") {
    conv2d<double> c({64, 8, 8}, 128, 3, 1, 1);
    REQUIRE(c.fan_in() == 576);
    const matrix<double>& w = c.weight();
    CHECK((w.array() != 0).count() == w.size());
    const moments m = moments_of(w);
    const double target = 2.0 / 576;
    CHECK(std::abs(m.var / target - 1) < 0.04);  // relative sd 0.5%
    CHECK(std::abs(m.mean) < 4 * std::sqrt(target / double(w.size())));
    CHECK(std::abs(m.within_one_sd - 0.6827) < 0.015);
    CHECK(c.bias().cwiseAbs().maxCoeff() == 0);
  }
  SECTION("conv2d with a 1x1 kernel and without bias: fan-in = input channels") {
    conv2d<double> c({256, 4, 4}, 256, 1, 1, 0, false);
    REQUIRE(c.fan_in() == 256);
    const moments m = moments_of(c.weight());
    CHECK(std::abs(m.var / (2.0 / 256) - 1) < 0.04);
    std::vector<tensor_ref<double>> ps;
    c.collect_parameters("", ps);
    CHECK(ps.size() == 1);
  }
  SECTION("float layers too") {
    dense<float> d(500, 300);
    const Eigen::MatrixXd w = d.weight().cast<double>();
    CHECK(std::abs(moments_of(w).var / (2.0 / 500) - 1) < 0.03);
  }
  SECTION("an initialised net computes something: its output is not identically zero") {
    sequential<double> net;
    net.add(conv2d<double>({3, 8, 8}, 8, 3, 1, 1));
    net.add(relu<double>());
    net.add(dense<double>(512, 4));
    rng g(502);
    const matrix<double> x = normal_matrix(192, 5, g);
    const matrix<double> y = net.forward(x, mode::eval);
    CHECK(y.cwiseAbs().minCoeff() > 0);
  }
}
