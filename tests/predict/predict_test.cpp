// predict and classify: class probabilities and labels in evaluation mode, batch by batch.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "shatter/network/builders.hpp"
#include "shatter/train/predict.hpp"

using idx = shatter::index;
using shatter::matrix;

namespace {
/// A resnet-BN MLP whose batch-norm running statistics have moved away from (0, 1), so that
/// evaluation and training mode differ.
shatter::sequential<double> trained_bn_net() {
  shatter::rng g(7);
  shatter::mlp_spec s;
  s.in = 5;
  s.width = 8;
  s.hidden_layers = 2;
  s.out = 4;
  s.batch_norm = true;
  auto net = shatter::resnet_mlp<double>(s, g);
  const matrix<double> warm = matrix<double>::Random(5, 32) * 3.0 + matrix<double>::Ones(5, 32);
  for (int i = 0; i < 3; ++i) net.forward(warm, shatter::mode::train);
  return net;
}

matrix<double> softmax_columns(const matrix<double>& z) {
  matrix<double> p(z.rows(), z.cols());
  for (idx j = 0; j < z.cols(); ++j) {
    double s = 0;
    for (idx i = 0; i < z.rows(); ++i) s += std::exp(z(i, j));
    for (idx i = 0; i < z.rows(); ++i) p(i, j) = std::exp(z(i, j)) / s;
  }
  return p;
}
}  // namespace

TEST_CASE("predict gives softmax of the evaluation-mode output, columns sum to 1") {
  auto net = trained_bn_net();
  const matrix<double> x = matrix<double>::Random(5, 23);
  const matrix<double> z = net.forward(x, shatter::mode::eval);
  const matrix<double> p = shatter::predict(net, x, 1000);
  REQUIRE(p.rows() == 4);
  REQUIRE(p.cols() == 23);
  CHECK((p - softmax_columns(z)).cwiseAbs().maxCoeff() < 1e-14);
  for (idx j = 0; j < p.cols(); ++j) CHECK(std::abs(p.col(j).sum() - 1.0) < 1e-14);
  // evaluation mode: the training-mode output (batch statistics) gives other probabilities
  const matrix<double> zt = net.forward(x, shatter::mode::train);
  CHECK((p - softmax_columns(zt)).cwiseAbs().maxCoeff() > 1e-6);
}

TEST_CASE("classify is the argmax of predict's probabilities") {
  auto net = trained_bn_net();
  const matrix<double> x = matrix<double>::Random(5, 40);
  const matrix<double> p = shatter::predict(net, x);
  const shatter::label_vector c = shatter::classify(net, x);
  REQUIRE(c.size() == 40);
  for (idx j = 0; j < x.cols(); ++j) {
    idx arg = 0;
    p.col(j).maxCoeff(&arg);
    CHECK(c[std::size_t(j)] == arg);
  }
}

TEST_CASE("predict and classify in batches with a remainder equal one batch") {
  auto net = trained_bn_net();
  shatter::dataset<double> d;
  d.x = matrix<double>::Random(5, 23);
  d.labels.assign(23, 0);
  d.classes = 4;
  const matrix<double> one = shatter::predict(net, d, 23);
  for (idx b : {1, 4, 7, 22, 100}) {
    // equal up to rounding: the matrix products may block a batch of another width differently
    CHECK((shatter::predict(net, d, b) - one).cwiseAbs().maxCoeff() < 1e-14);
    CHECK(shatter::classify(net, d, b) == shatter::classify(net, d.x, 23));
  }
}

TEST_CASE("predict refuses bad input with a clear error") {
  auto net = trained_bn_net();
  const matrix<double> x = matrix<double>::Random(5, 3);
  CHECK_THROWS_AS(shatter::predict(net, x, 0), shatter::config_error);
  CHECK_THROWS_WITH(shatter::predict(net, matrix<double>(matrix<double>::Zero(6, 3))),
                    Catch::Contains("predict") && Catch::Contains("5 features"));
  matrix<double> bad = x;
  bad(2, 1) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(shatter::classify(net, bad),
                    Catch::Contains("classify") && Catch::Contains("sample 1"));
  const matrix<double> none(5, 0);
  CHECK(shatter::predict(net, none).cols() == 0);
  CHECK(shatter::classify(net, none).empty());
}
