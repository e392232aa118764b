// The skip-free initialisations after looks-linear, for fully connected nets: PReLU with slopes
// starting at 1 (exactly linear at initialisation) and TAT's leaky ReLU (C_f(0) = eta).
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/gradcheck.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/sgd.hpp"

using namespace shatter;

namespace {

/// The affine map the dense layers of `net` compose when every other layer is the identity:
/// x -> W_L (... (W_1 x + b_1) ...) + b_L.
matrix<double> affine_reference(sequential<double>& net, const matrix<double>& x) {
  matrix<double> h = x;
  for (std::size_t i = 0; i < net.size(); ++i)
    if (auto* d = dynamic_cast<dense<double>*>(&net[i])) {
      matrix<double> next = d->weight() * h;
      if (d->has_bias()) next.colwise() += d->bias().col(0);
      h = next;
    }
  return h;
}

double max_rel(const matrix<double>& a, const matrix<double>& b) {
  return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
}

}  // namespace

TEST_CASE("prelu_ll_mlp is exactly linear at initialisation and learns its slopes") {
  rng g(21);
  mlp_spec s;
  s.in = 6;
  s.width = 24;
  s.hidden_layers = 30;
  s.out = 3;
  s.bias_std = 0.5;
  for (auto base : {init::ll_base::orthogonal, init::ll_base::he_normal}) {
    auto net = prelu_ll_mlp<double>(s, g, base);
    CHECK(net.size() == 2 * 30 + 1);
    const matrix<double> x = matrix<double>::Random(6, 10) * 3.0;
    const matrix<double> ref = affine_reference(net, x);
    const matrix<double> y = net.forward(x, mode::train);
    CHECK(max_rel(y, ref) < 1e-13);
    // Half of the pre-activations are negative, so a slope other than 1 changes the outputs.
    dynamic_cast<prelu<double>&>(net[1]).slope().setConstant(0.5);
    CHECK(max_rel(net.forward(x, mode::train), ref) > 1e-3);
  }
  // The slopes are parameters: one SGD step moves them off 1 and the net becomes non-linear.
  auto net = prelu_ll_mlp<double>(s, g);
  auto params = net.parameters();
  REQUIRE(params[2].name == "1.slope");
  params.erase(params.begin(), params.begin() + 2);
  CHECK(params[0].value->rows() == 24);
  sgd<double> opt(net.parameters(), {0.05});
  const matrix<double> x = matrix<double>::Random(6, 16);
  const matrix<double> y = net.forward(x, mode::train);
  net.backward(y);  // L = |f|^2 / 2
  CHECK(params[0].grad->cwiseAbs().maxCoeff() > 0);
  opt.step();
  CHECK((params[0].value->array() - 1.0).abs().maxCoeff() > 0);
  CHECK(max_rel(net.forward(x, mode::train), affine_reference(net, x)) > 1e-8);
}

TEST_CASE("prelu_ll_mlp and tat_mlp gradients match finite differences") {
  rng g(22);
  mlp_spec s;
  s.in = 3;
  s.width = 5;
  s.hidden_layers = 14;
  s.out = 2;
  s.bias_std = 0.3;
  auto p = prelu_ll_mlp<double>(s, g);
  for (auto& t : p.parameters())
    for (shatter::index i = 0; i < t.value->size(); ++i) (*t.value)(i) += 0.05 * g.normal();
  auto t = tat_mlp<double>(s, g);
  for (auto* net : {&p, &t}) {
    const auto rep = test::check_gradients(*net, test::away_from_zero(3, 6, g), g);
    CHECK(rep.input_error < 1e-6);
    CHECK(rep.param_error < 1e-6);
  }
}

TEST_CASE("tat_mlp uses TAT's slope and gain in every hidden layer") {
  rng g(23);
  mlp_spec s;
  s.in = 4;
  s.width = 8;
  s.hidden_layers = 50;
  auto net = tat_mlp<double>(s, g, 0.9);
  const double a = tat_slope(50, 0.9);
  int acts = 0;
  for (std::size_t i = 0; i < net.size(); ++i)
    if (auto* l = dynamic_cast<leaky_relu<double>*>(&net[i])) {
      ++acts;
      CHECK(l->op().slope == a);
      CHECK(l->op().gain == Approx(tat_gain(a)).epsilon(1e-15));
    }
  CHECK(acts == 50);
  s.hidden_layers = 8;  // C_f(0) = 0.9 unreachable: plain ReLU with gain sqrt 2
  auto shallow = tat_mlp<double>(s, g, 0.9);
  CHECK(dynamic_cast<leaky_relu<double>&>(shallow[1]).op().slope == 0.0);
  CHECK_THROWS_WITH(tat_mlp<double>(s, g, 1.5), Catch::Contains("eta"));
}

TEST_CASE("tat_mlp: the Monte-Carlo C-map at initialisation gives C_f(0) = eta within 0.02") {
  // Two orthonormal inputs (correlation 0) through many random wide nets: the mean cosine of
  // their outputs estimates C_f(0). Widths vary so no single width's bias dominates.
  rng g(24);
  for (double eta : {0.9, 0.6}) {
    mlp_spec s;
    s.hidden_layers = 20;
    s.bias = false;
    double sum = 0;
    int nets = 0;
    for (shatter::index width : {192, 256, 320}) {
      s.in = s.width = s.out = width;
      for (int k = 0; k < 6; ++k, ++nets) {
        auto net = tat_mlp<double>(s, g, eta, init::ll_base::he_normal);
        matrix<double> x(width, 2);
        for (shatter::index i = 0; i < x.size(); ++i) x(i) = g.normal();
        x.col(0).normalize();
        x.col(1) -= x.col(0).dot(x.col(1)) * x.col(0);
        x.col(1).normalize();
        const matrix<double> y = net.forward(x, mode::eval);
        sum += y.col(0).dot(y.col(1)) / (y.col(0).norm() * y.col(1).norm());
      }
    }
    INFO("eta = " << eta << ", slope " << tat_slope(20, eta));
    CHECK(std::abs(sum / nets - eta) < 0.02);
  }
  // Control: plain ReLU (a = 0) at the same depth lands well above 0.9.
  CHECK(tat_network_cmap(0.0, 20) > 0.94);
}
