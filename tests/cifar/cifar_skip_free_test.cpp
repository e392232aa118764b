// CIFAR convnets with the skip-free initialisations after looks-linear: plain_prelu_ll (PReLU,
// one slope per channel starting at 1) and plain_tat (TAT's leaky ReLU).
#include <catch2/catch.hpp>

#include "shatter/network/cifar.hpp"

using namespace shatter;
using Idx = shatter::index;

namespace {

cifar_spec small_spec(Idx depth, bool bn) {
  cifar_spec s;
  s.weighted_layers = depth;
  s.input = {3, 8, 8};
  s.width = 4;
  s.batch_norm = bn;
  return s;
}

/// `net` with its PReLU layers left out (clones of every other layer).
sequential<double> without_prelu(sequential<double>& net) {
  sequential<double> out;
  for (std::size_t i = 0; i < net.size(); ++i)
    if (!dynamic_cast<prelu<double>*>(&net[i])) out.add(net[i].clone());
  return out;
}

}  // namespace

TEST_CASE("plain_prelu_ll is exactly linear at initialisation (with and without BN)") {
  for (bool bn : {false, true})
    for (bool delta : {false, true}) {
      INFO("bn " << bn << ", delta " << delta);
      rng g(61);
      cifar_spec s = small_spec(14, bn);
      s.delta = delta;
      auto net = build_cifar<double>(cifar_arch::plain_prelu_ll, s, g);
      CHECK(count_weighted_layers<double>(net) == 14);
      auto linear = without_prelu(net);
      CHECK(linear.size() + 13 == net.size());
      matrix<double> x(192, 6);
      for (Idx i = 0; i < x.size(); ++i) x(i) = g.normal();
      const matrix<double> y = net.forward(x, mode::train);
      const matrix<double> ref = linear.forward(x, mode::train);
      CHECK((y - ref).cwiseAbs().maxCoeff() <= 1e-12 * ref.cwiseAbs().maxCoeff());
      if (!bn) {  // without BN it is a linear map: f(2x) = 2 f(x) (zero biases)
        const matrix<double> y2 = net.forward(2 * x, mode::train);
        CHECK((y2 - 2 * y).cwiseAbs().maxCoeff() <= 1e-12 * y.cwiseAbs().maxCoeff());
      }
    }
}

TEST_CASE("plain_prelu_ll has one slope per channel, plain_tat TAT's slope over depth - 1") {
  rng g(62);
  auto net = build_cifar<double>(cifar_arch::plain_prelu_ll, small_spec(20, true), g);
  Idx slopes = 0;
  for (auto& p : net.parameters())
    if (p.name.find("slope") != std::string::npos) {
      ++slopes;
      CHECK((p.value->array() == 1.0).all());
      CHECK((p.value->rows() == 4 || p.value->rows() == 8 || p.value->rows() == 16));
    }
  CHECK(slopes == 19);

  for (Idx depth : {8, 20, 56}) {
    INFO("depth " << depth);
    auto tat = build_cifar<double>(cifar_arch::plain_tat, small_spec(depth, false), g);
    const double a = depth == 8 ? 0.0 : tat_slope(depth - 1, 0.9);
    Idx acts = 0;
    for_each_leaf<double>(tat, [&](layer<double>& l) {
      if (auto* lr = dynamic_cast<leaky_relu<double>*>(&l)) {
        ++acts;
        CHECK(lr->op().slope == a);
        CHECK(lr->op().gain == Approx(tat_gain(a)));
      }
    });
    CHECK(acts == depth - 1);
  }
  cifar_spec eta = small_spec(20, false);
  eta.tat_eta = 0.5;
  auto tat = build_cifar<double>(cifar_arch::plain_tat, eta, g);
  CHECK(dynamic_cast<leaky_relu<double>&>(tat[1]).op().slope == tat_slope(19, 0.5));
  CHECK(parse_cifar_arch("plain_tat") == cifar_arch::plain_tat);
  CHECK(to_string(cifar_arch::plain_prelu_ll) == "plain_prelu_ll");
}

TEST_CASE("prelu: one slope per channel of an image, or refused sizes") {
  prelu<double> p(2, 1.0);
  p.connect({2, 2, 2}, "here:");
  CHECK(p.in_size() == 8);
  p.slope() << 0.5, 0.25;
  matrix<double> x(8, 1);
  x << -1, -2, 3, -4, -1, 2, -3, -4;
  const matrix<double> y = p.forward(x, mode::train);
  matrix<double> want(8, 1);
  want << -0.5, -1, 3, -2, -0.25, 2, -0.75, -1;
  CHECK((y - want).cwiseAbs().maxCoeff() == 0.0);
  const matrix<double> dx = p.backward(matrix<double>::Ones(8, 1));
  matrix<double> dwant(8, 1);
  dwant << 0.5, 0.5, 1, 0.5, 0.25, 1, 0.25, 0.25;
  CHECK((dx - dwant).cwiseAbs().maxCoeff() == 0.0);
  auto params = std::vector<tensor_ref<double>>();
  p.collect_parameters("", params);
  CHECK((*params[0].grad)(0, 0) == -7.0);  // -1 - 2 - 4
  CHECK((*params[0].grad)(1, 0) == -8.0);  // -1 - 3 - 4
  prelu<double> q(3, 1.0);
  CHECK_THROWS_WITH(q.connect({2, 2, 2}, "layer 4:"),
                    Catch::Contains("layer 4") && Catch::Contains("3 slopes"));
}
