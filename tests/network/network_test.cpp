// Networks: composition, builders for the paper's families, gradients end to end, bad input.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/tanh.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"

using namespace shatter;
using shatter::matrix;

TEST_CASE("sequential composes layers and checks sizes when adding") {
  sequential<double> net;
  net.add(dense<double>(4, 5));
  net.add(relu<double>());
  CHECK(net.out_size() == 5);
  net.add(crelu<double>());
  CHECK(net.out_size() == 10);
  CHECK_THROWS_WITH(net.add(dense<double>(5, 2)), Catch::Contains("layer 3") &&
                                                      Catch::Contains("dense(5 -> 2, bias)") &&
                                                      Catch::Contains("10"));
  net.add(dense<double>(10, 2));
  CHECK(net.size() == 4);
  const auto ps = net.parameters();
  REQUIRE(ps.size() == 4);
  CHECK(ps[0].name == "0.weight");
  CHECK(ps[3].name == "3.bias");
  CHECK(net.parameter_count() == 4 * 5 + 5 + 10 * 2 + 2);
  matrix<double> wrong = matrix<double>::Zero(3, 2);
  CHECK_THROWS_WITH(net.forward(wrong, mode::train), Catch::Contains("expected 4"));
  CHECK_THROWS_AS(net[9], config_error);
}

TEST_CASE("copies of a network are deep") {
  rng g(1);
  mlp_spec s;
  s.in = 3;
  s.width = 4;
  s.hidden_layers = 2;
  auto a = plain_relu_mlp<double>(s, g);
  sequential<double> b = a;
  dynamic_cast<dense<double>&>(b[0]).weight().setZero();
  CHECK(dynamic_cast<dense<double>&>(a[0]).weight().norm() > 0);
}

TEST_CASE("every family's gradients match finite differences end to end") {
  rng g(3);
  mlp_spec s;
  s.in = 3;
  s.width = 5;
  s.hidden_layers = 3;
  s.out = 2;
  s.bias_std = 0.3;
  for (const auto& name : architecture_names()) {
    DYNAMIC_SECTION(name) {
      auto net = build<double>(parse_architecture(name), s, g);
      if (name == "plain_crelu_ll") {
        // Perturb the mirror so that the check also covers the non-linear regime.
        for (auto& p : net.parameters())
          for (shatter::index i = 0; i < p.value->size(); ++i) (*p.value)(i) += 0.05 * g.normal();
      }
      const auto rep = test::check_gradients(net, test::away_from_zero(3, 6, g), g);
      CHECK(rep.input_error < 1e-6);
      CHECK(rep.param_error < 1e-6);
    }
  }
  SECTION("prelu and tanh inside a network") {
    sequential<double> net;
    net.add(dense<double>(3, 4));
    net.add(prelu<double>(4, 0.2));
    net.add(dense<double>(4, 4));
    net.add(tanh_activation<double>());
    net.add(dense<double>(4, 1));
    for (auto& p : net.parameters())
      for (shatter::index i = 0; i < p.value->size(); ++i) (*p.value)(i) = g.normal();
    const auto rep = test::check_gradients(net, test::away_from_zero(3, 6, g), g);
    CHECK(rep.input_error < 1e-7);
    CHECK(rep.param_error < 1e-7);
  }
}

TEST_CASE("builders produce the documented layer counts and sizes") {
  rng g(4);
  mlp_spec s;
  s.in = 7;
  s.width = 9;
  s.hidden_layers = 4;
  s.out = 3;
  auto relu_net = plain_relu_mlp<float>(s, g);
  CHECK(relu_net.size() == 4 * 2 + 1);
  auto crelu_net = plain_crelu_mlp<float>(s, g);
  CHECK(dynamic_cast<dense<float>&>(crelu_net[2]).in_size() == 18);
  auto res = resnet_mlp<float>(s, g);
  CHECK(res.size() == 4 + 2);
  s.batch_norm = true;
  CHECK(plain_relu_mlp<float>(s, g).size() == 4 * 3 + 1);
  CHECK(build<float>(architecture::plain_relu, s, g).size() == 4 * 2 + 1);  // name decides BN
  CHECK(to_string(parse_architecture("resnet_bn")) == "resnet_bn");
  CHECK_THROWS_WITH(parse_architecture("fnn_tanh"),
                    Catch::Contains("fnn_tanh") && Catch::Contains("crelu_ll"));
}

TEST_CASE("a depth-200 looks-linear network builds fast and runs") {
  rng g(5);
  mlp_spec s;
  s.in = 1;
  s.width = 64;
  s.hidden_layers = 200;
  auto net = looks_linear_mlp<float>(s, g);
  CHECK(net.size() == 401);
  matrix<float> x = matrix<float>::Random(1, 16);
  const matrix<float> y = net.forward(x, mode::train);
  CHECK(y.allFinite());
  const matrix<float> dx = net.backward(matrix<float>::Ones(1, 16));
  // Linear at init: the input gradient is the same at every input.
  CHECK((dx.array() - dx(0, 0)).abs().maxCoeff() < 1e-5f * std::abs(dx(0, 0)));
}

TEST_CASE("bad network configurations give clear errors") {
  rng g(6);
  mlp_spec s;
  s.hidden_layers = 0;
  CHECK_THROWS_WITH(plain_relu_mlp<double>(s, g), Catch::Contains("hidden_layers = 0"));
  s.hidden_layers = 2;
  s.width = 0;
  CHECK_THROWS_WITH(looks_linear_mlp<double>(s, g), Catch::Contains("width = 0"));
  s.width = 3;
  s.bias_std = -1;
  CHECK_THROWS_AS(resnet_mlp<double>(s, g), config_error);
  sequential<double> empty;
  matrix<double> x = matrix<double>::Zero(1, 1);
  CHECK_THROWS_AS(empty.forward(x, mode::train), config_error);
}

TEST_CASE("rng: reproducible streams, portable normal draws, state round trip") {
  rng a(42), b(42);
  for (int i = 0; i < 100; ++i) REQUIRE(a() == b());
  rng c(1);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = c.normal();
    sum += z;
    sq += z * z;
  }
  CHECK(std::abs(sum / n) < 5 * std::sqrt(1.0 / n));
  CHECK(std::abs(sq / n - 1) < 5 * std::sqrt(2.0 / n));
  c.normal();  // leaves a spare in the state
  const auto st = c.state();
  const double next = c.normal();
  rng d(0);
  d.set_state(st);
  CHECK(d.normal() == next);
  for (int i = 0; i < 1000; ++i) REQUIRE(c.below(7) < 7);
}

TEST_CASE("the specs' former depth fields still build the same networks") {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  rng g1(4), g2(4);
  mlp_spec a, b;
  a.in = b.in = 3;
  a.width = b.width = 5;
  a.hidden_layers = 4;
  b.depth = 4;  // the old name wins when set
  b.hidden_layers = 1;
  auto na = looks_linear_mlp<double>(a, g1);
  auto nb = looks_linear_mlp<double>(b, g2);
  CHECK(na.size() == nb.size());
  CHECK(count_weighted_layers(na) == 5);
  const matrix<double> x = matrix<double>::Random(3, 4);
  CHECK(na.forward(x, mode::eval) == nb.forward(x, mode::eval));
  cifar_spec c, d;
  c.weighted_layers = 14;
  d.depth = 14;
  c.width = d.width = 2;
  c.input = d.input = {1, 8, 8};
  auto nc = build_cifar<double>(cifar_arch::plain_crelu_ll, c, g1);
  auto nd = build_cifar<double>(cifar_arch::plain_crelu_ll, d, g2);
  CHECK(count_weighted_layers(nc) == 14);
  CHECK(count_weighted_layers(nd) == 14);
#pragma GCC diagnostic pop
}

TEST_CASE("architecture names follow the CIFAR family's, and the former names still parse") {
  CHECK(architecture_names() ==
        std::vector<std::string>{"plain_relu", "plain_relu_bn", "resnet", "resnet_bn",
                                 "plain_crelu", "plain_crelu_ll", "plain_prelu_ll", "plain_tat"});
  CHECK(parse_architecture("prelu_ll") == architecture::plain_prelu_ll);
  CHECK(parse_architecture("tat") == architecture::plain_tat);
  CHECK(parse_architecture("fnn_relu") == architecture::plain_relu);
  CHECK(parse_architecture("fnn_relu_bn") == architecture::plain_relu_bn);
  CHECK(parse_architecture("crelu") == architecture::plain_crelu);
  CHECK(parse_architecture("crelu_ll") == architecture::plain_crelu_ll);
  CHECK(to_string(parse_architecture("crelu_ll")) == "plain_crelu_ll");
  for (const auto& name : architecture_names()) {
    CHECK(to_string(parse_architecture(name)) == name);
    if (name != "plain_relu_bn" && name != "resnet_bn")  // the CIFAR family has these too
      CHECK(to_string(parse_cifar_arch(name)) == name);
  }
  CHECK_THROWS_WITH(parse_architecture("plain_tanh"), Catch::Contains("plain_crelu_ll"));
}
