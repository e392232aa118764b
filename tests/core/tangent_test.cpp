// Tangent kernels of every layer: dy = J dx against central differences of the forward, y
// against the forward, in both memory layouts a tangent may see.
#include <catch2/catch.hpp>
#include <memory>

#include "../support/gradcheck.hpp"
#include "core_support.hpp"
#include "shatter/activation/crelu.hpp"
#include "shatter/activation/identity.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tanh.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/flatten.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/max_pool2d.hpp"
#include "shatter/layer/subsample_pad.hpp"

using namespace shatter;
using namespace shatter::coretest;

namespace {

/// The tangent of a layer without batch statistics: y equals the forward (in both modes),
/// dy equals the central difference of the forward along dx, in the adjacent [X | dX] layout of
/// a tangent plan and in separate buffers.
void check_tangent(layer<double>& l, const matrix<double>& x, rng& g, double tol = 1e-8) {
  const matrix<double> dx = normal_matrix(x.rows(), x.cols(), g);
  const matrix<double> y_train = run_forward(l, x, mode::train);
  const matrix<double> y_eval = run_forward(l, x, mode::eval);
  const matrix<double> fd = central_difference(
      [&](const matrix<double>& z) { return run_forward(l, z, mode::eval); }, x, dx);
  REQUIRE(fd.cwiseAbs().maxCoeff() > 0);  // a tangent that is all zero would pass nothing
  for (bool adjacent : {true, false})
    for (batch_stats s : {batch_stats::fixed, batch_stats::through, batch_stats::running}) {
      INFO(l.describe() << (adjacent ? ", adjacent [X | dX]" : ", separate buffers") << ", stats "
                        << int(s));
      const auto [y, dy] = run_tangent(l, x, dx, s, adjacent);
      CHECK(rel_error(y, y_train) < 1e-13);
      CHECK(rel_error(y, y_eval) < 1e-13);
      CHECK(rel_error(dy, fd) < tol);
    }
}

}  // namespace

TEST_CASE("dense tangent: y = W x + b, dy = W dx", "[core][tangent]") {
  rng g(101);
  for (bool bias : {true, false}) {
    dense<double> d(7, 5, bias);
    if (bias)
      for (idx i = 0; i < 5; ++i) d.bias()(i, 0) = g.normal();
    const matrix<double> x = normal_matrix(7, 6, g);
    check_tangent(d, x, g);
    // The exact linear map: dy = W dx (no bias), in both layouts.
    const matrix<double> dx = normal_matrix(7, 6, g);
    for (bool adjacent : {true, false}) {
      const auto [y, dy] = run_tangent(d, x, dx, batch_stats::fixed, adjacent);
      CHECK(rel_error(dy, d.weight() * dx) < 1e-14);
    }
  }
  // A wide layer: the rows are split into blocks over threads.
  dense<double> wide(40, 300, true);
  for (idx i = 0; i < 300; ++i) wide.bias()(i, 0) = g.normal();
  const matrix<double> x = normal_matrix(40, 9, g), dx = normal_matrix(40, 9, g);
  for (bool adjacent : {true, false}) {
    const auto one = run_tangent(wide, x, dx, batch_stats::fixed, adjacent, 1);
    const auto two = run_tangent(wide, x, dx, batch_stats::fixed, adjacent, 2);
    CHECK(rel_error(one.second, wide.weight() * dx) < 1e-13);
    CHECK(rel_error(two.second, one.second) < 1e-14);
    CHECK(rel_error(two.first, run_forward(wide, x, mode::eval)) < 1e-13);
  }
}

TEST_CASE("conv2d tangent, every path: strides 1 and 2, kernels 1, 3, 5, with and without bias",
          "[core][tangent][conv]") {
  struct conv_case {
    image_shape in;
    idx out, k, stride, pad;
    bool bias;
  };
  // Channel counts 8 and 16 fill the register tiles of the direct kernels (offset_gemm), the
  // others take the blocked product; odd k with p = (k - 1) / 2 and sides divisible by the
  // stride take the offset path, the rest im2col.
  const std::vector<conv_case> cases{
      {{4, 8, 8}, 8, 3, 1, 1, true},    // offset, direct output
      {{8, 8, 8}, 16, 3, 2, 1, false},  // offset, stride 2, direct output, input and weights
      {{16, 6, 6}, 8, 5, 1, 2, true},   // offset, k = 5, direct
      {{8, 8, 8}, 8, 1, 2, 0, true},    // offset, k = 1, stride 2
      {{3, 7, 7}, 5, 3, 1, 1, false},   // offset, odd channel counts: blocked product
      {{4, 6, 6}, 6, 1, 1, 0, true},    // offset, k = 1, blocked
      {{3, 9, 9}, 4, 3, 2, 1, true},    // im2col: side not divisible by the stride
      {{2, 7, 7}, 3, 5, 2, 0, false},   // im2col: no padding, k = 5, stride 2
      {{5, 5, 5}, 16, 3, 1, 0, true},   // im2col: unpadded 3x3
      {{8, 4, 4}, 8, 5, 1, 2, false},   // offset: the kernel is wider than the padded shift
  };
  rng g(102);
  for (const auto& c : cases) {
    for (idx chunk : {idx(1) << 18, idx(1)}) {  // default chunks, and one sample per chunk
      conv2d<double>::set_chunk_elements(chunk);
      conv2d<double> conv(c.in, c.out, c.k, c.stride, c.pad, c.bias);
      if (c.bias)
        for (idx o = 0; o < c.out; ++o) conv.bias()(o, 0) = g.normal();
      INFO(conv.describe() << ", chunk elements " << chunk);
      const matrix<double> x = normal_matrix(c.in.size(), 5, g);
      check_tangent(conv, x, g);
      // The tangent is the convolution without bias: dy = conv(dx) - b, and threads do not
      // change it.
      const matrix<double> dx = normal_matrix(c.in.size(), 5, g);
      matrix<double> expected = run_forward(conv, dx, mode::eval);
      if (c.bias) {  // one bias per output channel, over all its positions
        const idx P = conv.output_shape().spatial();
        for (idx o = 0; o < c.out; ++o) expected.middleRows(o * P, P).array() -= conv.bias()(o, 0);
      }
      for (bool adjacent : {true, false}) {
        const auto one = run_tangent(conv, x, dx, batch_stats::fixed, adjacent, 1);
        const auto two = run_tangent(conv, x, dx, batch_stats::fixed, adjacent, 2);
        CHECK(rel_error(one.second, expected) < 1e-13);
        CHECK(rel_error(two.second, one.second) < 1e-14);
        CHECK(rel_error(two.first, one.first) < 1e-14);
      }
    }
  }
  conv2d<double>::set_chunk_elements(idx(1) << 18);
}

TEST_CASE("batch norm tangent: fixed, through and running statistics, images and features",
          "[core][tangent][bn]") {
  struct bn_case {
    idx channels, spatial;
  };
  rng g(103);
  for (const bn_case c : {bn_case{5, 1}, bn_case{3, 16}}) {
    const idx rows = c.channels * c.spatial, n = 6;
    batch_norm<double> pristine(c.channels, c.spatial);
    randomise_batch_norms(pristine, g);
    INFO(pristine.describe());
    const matrix<double> x = normal_matrix(rows, n, g, 1.5).array() + 0.3;
    const matrix<double> dx = normal_matrix(rows, n, g);
    for (bool adjacent : {true, false}) {
      INFO((adjacent ? "adjacent [X | dX]" : "separate buffers"));
      {  // through: the derivative of the training forward, batch statistics moving with x
        batch_norm<double> l = pristine;
        const auto [y, dy] = run_tangent(l, x, dx, batch_stats::through, adjacent);
        batch_norm<double> f = pristine;
        const matrix<double> fd = central_difference(
            [&](const matrix<double>& z) { return run_forward(f, z, mode::train); }, x, dx);
        CHECK(rel_error(y, run_forward(f, x, mode::train)) < 1e-13);
        CHECK(rel_error(dy, fd) < 1e-7);
        // Differentiating through the mean removes the tangent's mean per channel.
        for (idx ch = 0; ch < c.channels; ++ch)
          CHECK(std::abs(dy.middleRows(ch * c.spatial, c.spatial).mean()) < 1e-12);
        // A tangent changes no running buffer.
        CHECK(max_abs_diff(l.running_mean(), pristine.running_mean()) == 0.0);
        CHECK(max_abs_diff(l.running_var(), pristine.running_var()) == 0.0);
      }
      {  // fixed: the statistics held at the unperturbed batch's
        batch_norm<double> l = pristine;
        const auto [y, dy] = run_tangent(l, x, dx, batch_stats::fixed, adjacent);
        batch_norm<double> frozen = pristine;
        const matrix<double> y_train = run_forward(frozen, x, mode::train);
        freeze_batch_norms(frozen);
        const matrix<double> fd = central_difference(
            [&](const matrix<double>& z) { return run_forward(frozen, z, mode::eval); }, x, dx);
        CHECK(rel_error(y, y_train) < 1e-13);
        CHECK(rel_error(dy, fd) < 1e-7);
        // Fixed and through differ (a check that could not tell them apart would be void).
        batch_norm<double> t = pristine;
        CHECK(rel_error(run_tangent(t, x, dx, batch_stats::through, adjacent).second, dy) > 1e-3);
        CHECK(max_abs_diff(l.running_mean(), pristine.running_mean()) == 0.0);
        CHECK(max_abs_diff(l.running_var(), pristine.running_var()) == 0.0);
      }
      {  // running: evaluation mode, constants
        batch_norm<double> l = pristine;
        const auto [y, dy] = run_tangent(l, x, dx, batch_stats::running, adjacent);
        batch_norm<double> f = pristine;
        const matrix<double> fd = central_difference(
            [&](const matrix<double>& z) { return run_forward(f, z, mode::eval); }, x, dx);
        CHECK(rel_error(y, run_forward(f, x, mode::eval)) < 1e-13);
        CHECK(rel_error(dy, fd) < 1e-8);
        // dy = gamma / sqrt(running_var + eps) dx exactly.
        for (idx ch = 0; ch < c.channels; ++ch) {
          const double k =
              pristine.gamma()(ch, 0) / std::sqrt(pristine.running_var()(ch, 0) + 1e-5);
          CHECK(rel_error(dy.middleRows(ch * c.spatial, c.spatial),
                          k * dx.middleRows(ch * c.spatial, c.spatial)) < 1e-14);
        }
        CHECK(max_abs_diff(l.running_var(), pristine.running_var()) == 0.0);
      }
    }
  }
}

TEST_CASE("activation tangents: crelu, relu, leaky_relu, tanh, identity, prelu",
          "[core][tangent][activation]") {
  rng g(104);
  // Inputs kept away from the kinks, so the central differences are exact up to rounding.
  const image_shape img{3, 4, 4};
  const matrix<double> x = test::away_from_zero(img.size(), 5, g, 0.05);
  auto connected = [&](auto l) {
    l.connect(img, "test:");
    return l;
  };
  SECTION("crelu") {
    auto l = connected(crelu<double>());
    REQUIRE(l.out_size() == 2 * img.size());
    check_tangent(l, x, g);
    // dy = [1[x >= 0] dx; -1[x < 0] dx]: the two halves sum to dx.
    const matrix<double> dx = normal_matrix(x.rows(), x.cols(), g);
    const auto [y, dy] = run_tangent(l, x, dx, batch_stats::fixed, true);
    CHECK(rel_error(dy.topRows(x.rows()) - dy.bottomRows(x.rows()), dx) < 1e-15);
  }
  SECTION("relu") {
    auto l = connected(relu<double>());
    check_tangent(l, x, g);
  }
  SECTION("leaky_relu") {
    auto l = connected(leaky_relu<double>(0.2));
    check_tangent(l, x, g);
  }
  SECTION("tanh") {
    auto l = connected(tanh_activation<double>());
    check_tangent(l, x, g, 1e-7);
  }
  SECTION("identity") {
    auto l = connected(identity<double>());
    check_tangent(l, x, g);
  }
  SECTION("prelu, one shared slope") {
    prelu<double> l(1, 0.3);
    l.connect(img, "test:");
    check_tangent(l, x, g);
  }
  SECTION("prelu, one slope per feature") {
    prelu<double> l(img.size(), 0.25);
    for (idx i = 0; i < img.size(); ++i) l.slope()(i, 0) = g.uniform(-0.5, 1.5);
    check_tangent(l, x, g);
    // The slopes are per feature: feature i's negative inputs scale by slope i.
    const matrix<double> dx = normal_matrix(x.rows(), x.cols(), g);
    const auto [y, dy] = run_tangent(l, x, dx, batch_stats::fixed, false);
    for (idx j = 0; j < x.cols(); ++j)
      for (idx i = 0; i < x.rows(); ++i)
        CHECK(dy(i, j) == Approx(x(i, j) > 0 ? dx(i, j) : l.slope()(i, 0) * dx(i, j)));
  }
}

TEST_CASE("pooling, shortcut and flatten tangents", "[core][tangent]") {
  rng g(105);
  SECTION("max_pool2d, non-overlapping and overlapping windows") {
    for (auto [k, s] : {std::pair<idx, idx>{2, 2}, std::pair<idx, idx>{3, 1}}) {
      max_pool2d<double> l({3, 6, 6}, k, s);
      // Distinct values: the maximum of each window is unique and stays so under +- h dx.
      const matrix<double> x = normal_matrix(l.in_size(), 4, g);
      check_tangent(l, x, g);
    }
  }
  SECTION("global_avg_pool") {
    global_avg_pool<double> l({4, 3, 5});
    check_tangent(l, normal_matrix(l.in_size(), 4, g), g);
  }
  SECTION("subsample_pad") {
    subsample_pad<double> l({3, 6, 6}, 8, 2);
    check_tangent(l, normal_matrix(l.in_size(), 4, g), g);
    subsample_pad<double> odd({2, 5, 5}, 2, 2);
    check_tangent(odd, normal_matrix(odd.in_size(), 3, g), g);
  }
  SECTION("flatten") {
    flatten<double> l({2, 3, 3});
    check_tangent(l, normal_matrix(l.in_size(), 4, g), g);
  }
}
