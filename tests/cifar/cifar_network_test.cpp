// CIFAR architectures: depth counting, parameter counts, gradients, and a smoke training run.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/sgd.hpp"

using namespace shatter;
using Idx = Eigen::Index;

TEST_CASE("CIFAR networks have depth = 6n + 2 weighted layers, up to 200") {
  rng g(51);
  for (const auto& name : cifar_arch_names())
    for (Idx depth : {8, 20, 56, 200}) {
      cifar_spec s;
      s.weighted_layers = depth;
      auto net = build_cifar<float>(parse_cifar_arch(name), s, g);
      INFO(name << " depth " << depth);
      CHECK(count_weighted_layers<float>(net) == depth);
      CHECK(net.in_size() == 3072);
      CHECK(net.out_size() == 10);
    }
  cifar_spec bad;
  bad.weighted_layers = 21;
  CHECK_THROWS_WITH(build_cifar<float>(cifar_arch::resnet, bad, g), Catch::Contains("6 n + 2"));
  CHECK_THROWS_WITH(parse_cifar_arch("vgg"), Catch::Contains("plain_crelu_ll"));
}

TEST_CASE("CIFAR ResNet-20 (option A) has the reference 269,722 parameters") {
  rng g(52);
  cifar_spec s;
  auto resnet = build_cifar<float>(cifar_arch::resnet, s, g);
  CHECK(resnet.parameter_count() == 269722);
  // The plain ReLU net has the same convolutions (19) without shortcuts: same count.
  auto plain = build_cifar<float>(cifar_arch::plain_relu, s, g);
  CHECK(plain.parameter_count() == 269722);
  // CReLU doubles the input channels of every conv after the first, and of the classifier.
  auto cr = build_cifar<float>(cifar_arch::plain_crelu, s, g);
  const Idx convs = 16 * 27 + 6 * (16 * 32 * 9) + (32 * 32 * 9) + 5 * (32 * 64 * 9) +
                    (64 * 64 * 9) + 5 * (64 * 128 * 9);
  const Idx bn = 2 * (7 * 16 + 6 * 32 + 6 * 64);
  CHECK(cr.parameter_count() == convs + bn + 128 * 10 + 10);
}

TEST_CASE("CIFAR networks: gradients match finite differences (small images, double)") {
  for (const auto& name : cifar_arch_names()) {
    rng g(53);
    cifar_spec s;
    s.weighted_layers = 8;
    s.input = {2, 6, 6};
    s.width = 2;
    s.classes = 3;
    auto net = build_cifar<double>(parse_cifar_arch(name), s, g);
    const matrix<double> x = test::away_from_zero(72, 4, g);
    const auto rep = test::check_gradients(net, x, g);
    INFO(name);
    CHECK(rep.input_error < 1e-5);
    CHECK(rep.param_error < 1e-5);
  }
}

TEST_CASE(
    "smoke training: a few SGD steps on a tiny subset lower the loss for every architecture") {
  // Tiny products: one thread (OpenMP threads on tiny matrices only add synchronisation).
  const int saved_threads = threads();
  set_threads(1);
  for (const auto& name : cifar_arch_names()) {
    rng g(54);
    cifar_spec s;
    s.weighted_layers = 14;
    s.input = {3, 8, 8};
    s.width = 4;
    auto net = build_cifar<float>(parse_cifar_arch(name), s, g);
    net.set_input_gradient(false);
    matrix<float> x(192, 32);
    label_vector y(32);
    for (Idx j = 0; j < 32; ++j) {
      y[std::size_t(j)] = std::int32_t(j % 10);
      for (Idx i = 0; i < 192; ++i)
        x(i, j) = float(g.normal() * 0.5 + ((i / 64) == (j % 3) ? 1.0 : 0.0) + 0.1 * (j % 10));
    }
    softmax_cross_entropy<float> loss;
    sgd_options o;
    o.lr = 0.05;
    o.momentum = 0.9;
    sgd<float> opt(net.parameters(), o);
    const double first = loss.forward(net.forward(x, mode::train), y);
    double last = first;
    for (int step = 0; step < 30; ++step) {
      last = loss.forward(net.forward(x, mode::train), y);
      net.backward(loss.gradient());
      opt.step();
    }
    INFO(name << ": loss " << first << " -> " << last);
    CHECK(std::isfinite(last));
    CHECK(last < 0.5 * first);
  }
  set_threads(saved_threads);
}
