// Dense, batch norm and the residual wrapper: finite-difference gradients and exact behaviour.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/init/he.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/network/residual.hpp"

using namespace shatter;

namespace {
dense<double> random_dense(shatter::index in, shatter::index out, bool bias, rng& g) {
  dense<double> d(in, out, bias);
  init::he_normal(d.weight(), g);
  if (bias)
    for (shatter::index i = 0; i < out; ++i) d.bias()(i, 0) = g.normal();
  return d;
}
}  // namespace

TEST_CASE("dense computes W x + b and its gradients") {
  rng g(11);
  SECTION("with bias") {
    auto d = random_dense(4, 3, true, g);
    const auto x = test::away_from_zero(4, 5, g);
    const matrix<double> y = d.forward(x, mode::train);
    const matrix<double> expected = (d.weight() * x).colwise() + d.bias().col(0);
    CHECK((y - expected).norm() < 1e-14);
    const auto rep = test::check_gradients(d, x, g);
    CHECK(rep.input_error < 1e-9);
    CHECK(rep.param_error < 1e-9);
  }
  SECTION("without bias") {
    auto d = random_dense(4, 3, false, g);
    std::vector<tensor_ref<double>> ps;
    d.collect_parameters("", ps);
    REQUIRE(ps.size() == 1);
    CHECK(ps[0].name == "weight");
    CHECK_THROWS_AS(d.bias(), config_error);
    const auto rep = test::check_gradients(d, test::away_from_zero(4, 5, g), g);
    CHECK(rep.input_error < 1e-9);
    CHECK(rep.param_error < 1e-9);
  }
  SECTION("input gradient can be switched off") {
    auto d = random_dense(4, 3, true, g);
    const auto x = test::away_from_zero(4, 5, g);
    d.forward(x, mode::train);
    d.set_input_gradient(false);
    matrix<double> dy = matrix<double>::Ones(3, 5);
    CHECK(d.backward(dy).size() == 0);
    CHECK(d.weight_grad().norm() > 0);
  }
}

TEST_CASE("dense rejects bad sizes and batches with messages naming the layer") {
  CHECK_THROWS_AS(dense<double>(0, 3), config_error);
  CHECK_THROWS_WITH(dense<double>(4, 0), Catch::Contains("in = 4") && Catch::Contains("out = 0"));
  dense<double> d(4, 3);
  matrix<double> x = matrix<double>::Zero(5, 2);
  CHECK_THROWS_WITH(d.forward(x, mode::train),
                    Catch::Contains("dense(4 -> 3, bias)") && Catch::Contains("5 x 2"));
  matrix<double> ok = matrix<double>::Zero(4, 2);
  d.forward(ok, mode::train);
  matrix<double> dy = matrix<double>::Zero(3, 3);
  CHECK_THROWS_AS(d.backward(dy), shape_error);
}

TEST_CASE("batch norm: training-mode statistics, both gradient modes, evaluation mode") {
  rng g(5);
  batch_norm<double> bn(3);
  bn.gamma() << 1.5, -0.5, 2.0;
  bn.beta() << 0.1, 0.2, -0.3;
  const auto x = test::away_from_zero(3, 6, g);

  SECTION("normalised output has zero mean and unit (biased) variance before the affine part") {
    bn.gamma().setOnes();
    bn.beta().setZero();
    const matrix<double> y = bn.forward(x, mode::train);
    for (shatter::index c = 0; c < 3; ++c) {
      CHECK(std::abs(y.row(c).mean()) < 1e-12);
      CHECK(std::abs(y.row(c).array().square().mean() - 1.0) < 1e-4);  // eps = 1e-5
    }
  }
  SECTION("gradients through the batch statistics") {
    const auto rep = test::check_gradients(bn, x, g, mode::train);
    CHECK(rep.input_error < 1e-7);
    CHECK(rep.param_error < 1e-7);
  }
  SECTION("fixed statistics: each sample's own gradient gamma / sqrt(var + eps)") {
    bn.set_gradient_mode(bn_gradient::fixed_stats);
    bn.forward(x, mode::train);
    matrix<double> dy = matrix<double>::Ones(3, 6);
    const matrix<double> dx = bn.backward(dy);
    for (shatter::index c = 0; c < 3; ++c)
      for (shatter::index j = 0; j < 6; ++j)
        CHECK(dx(c, j) == Approx(bn.gamma()(c, 0) * bn.last_inv_std()(c)).epsilon(1e-14));
  }
  SECTION("evaluation mode uses running statistics and is per-sample") {
    bn.running_mean() << 0.5, -1.0, 0.0;
    bn.running_var() << 4.0, 1.0, 0.25;
    const matrix<double> y = bn.forward(x, mode::eval);
    CHECK(y(0, 0) == Approx(1.5 * (x(0, 0) - 0.5) / std::sqrt(4.0 + 1e-5) + 0.1));
    const auto rep = test::check_gradients(bn, x, g, mode::eval);
    CHECK(rep.input_error < 1e-8);
    CHECK(rep.param_error < 1e-8);
  }
  SECTION("running averages follow PyTorch: momentum 0.1, unbiased variance") {
    bn.forward(x, mode::train);
    for (shatter::index c = 0; c < 3; ++c) {
      const double mu = x.row(c).mean();
      const double var = (x.row(c).array() - mu).square().sum() / 5.0;
      CHECK(bn.running_mean()(c, 0) == Approx(0.1 * mu));
      CHECK(bn.running_var()(c, 0) == Approx(0.9 + 0.1 * var));
    }
  }
}

TEST_CASE("batch norm over channels x spatial positions") {
  rng g(8);
  batch_norm<double> bn(2, 4);  // 2 channels, 4 positions each
  bn.gamma() << 0.7, 1.3;
  const auto x = test::away_from_zero(8, 3, g);
  const auto rep = test::check_gradients(bn, x, g, mode::train);
  CHECK(rep.input_error < 1e-7);
  CHECK(rep.param_error < 1e-7);
  bn.gamma().setOnes();
  const matrix<double> y = bn.forward(x, mode::train);
  CHECK(std::abs(y.topRows(4).mean()) < 1e-12);
  CHECK(std::abs(y.bottomRows(4).mean()) < 1e-12);
}

TEST_CASE("batch norm rejects a one-sample training batch and bad options") {
  batch_norm<double> bn(3);
  matrix<double> x = matrix<double>::Ones(3, 1);
  CHECK_THROWS_WITH(bn.forward(x, mode::train), Catch::Contains("batch_norm(3)"));
  CHECK_NOTHROW(bn.forward(x, mode::eval));
  CHECK_THROWS_AS(batch_norm<double>(0), config_error);
  CHECK_THROWS_AS(batch_norm<double>(3, 1, -1.0), config_error);
}

TEST_CASE("residual wrapper x + beta F(x)") {
  rng g(2);
  sequential<double> branch;
  branch.add(batch_norm<double>(4));
  branch.add(relu<double>());
  branch.add(random_dense(4, 4, true, g));
  residual<double> r(branch, 0.3);
  const auto x = test::away_from_zero(4, 5, g);

  SECTION("forward is x + beta F(x)") {
    sequential<double> f = branch;
    const matrix<double> fx = f.forward(x, mode::train);
    const matrix<double> y = r.forward(x, mode::train);
    CHECK((y - (x + 0.3 * fx)).norm() < 1e-13);
  }
  SECTION("gradients, including through the branch's batch norm") {
    const auto rep = test::check_gradients(r, x, g, mode::train);
    CHECK(rep.input_error < 1e-7);
    CHECK(rep.param_error < 1e-7);
  }
  SECTION("a branch that changes the size is rejected") {
    sequential<double> bad;
    bad.add(dense<double>(4, 3));
    CHECK_THROWS_AS(residual<double>(bad, 1.0), shape_error);
  }
}

TEST_CASE("batch_norms_of finds the batch norms inside containers, in layer order") {
  rng g(4);
  sequential<double> branch;
  branch.add(batch_norm<double>(4, 1, 1e-5, 0.5));
  branch.add(relu<double>());
  branch.add(random_dense(4, 4, true, g));
  sequential<double> net;
  net.add(batch_norm<double>(4, 1, 1e-5, 0.2));
  net.add(residual<double>(branch, 1.0));
  net.add(residual<double>(branch, 1.0));
  const auto norms = batch_norms_of<double>(net);
  REQUIRE(norms.size() == 3);
  CHECK(norms[0] == &net[0]);
  CHECK(norms[1] != norms[2]);  // each block's own copy
  CHECK(norms[0]->momentum() == Approx(0.2));
  CHECK(norms[1]->momentum() == Approx(0.5));
  CHECK(batch_norms_of<double>(branch).size() == 1);
  CHECK(batch_norms_of<double>(net[1]).size() == 1);  // a residual block alone
  sequential<double> plain;
  plain.add(relu<double>());
  CHECK(batch_norms_of<double>(plain).empty());
}
