// fit refuses an optimiser that would silently train nothing, or only part of the network.
#include <catch2/catch.hpp>

#include "../support/blobs.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"

namespace {

shatter::mlp_spec spec() {
  shatter::mlp_spec s;
  s.in = 4;
  s.width = 6;
  s.hidden_layers = 2;
  s.out = 3;
  return s;
}

}  // namespace

TEST_CASE("fit refuses an optimiser bound to a copy of the network", "[train][fit]") {
  const auto train = shatter::test::blobs(4, 20, 1);
  shatter::rng g(2);
  auto original = shatter::plain_relu_mlp<double>(spec(), g);
  shatter::sgd<double> opt(original.parameters(), {0.1});
  auto net = original;  // a deep copy: the optimiser still points at `original`
  const auto before = *net.parameters()[0].value;
  shatter::softmax_cross_entropy<double> loss;
  shatter::fit_options o;
  o.epochs = 1;
  o.batch_size = 10;
  CHECK_THROWS_AS(shatter::fit(net, loss, opt, shatter::schedule::constant(0.1), train, o),
                  shatter::config_error);
  CHECK_THROWS_WITH(shatter::fit(net, loss, opt, shatter::schedule::constant(0.1), train, o),
                    Catch::Contains("bound to 6 parameter(s) that are not this network's "
                                    "('0.weight', '0.bias', '2.weight' and 3 more)") &&
                        Catch::Contains("copy of the network"));
  CHECK(*net.parameters()[0].value == before);  // nothing trained
  CHECK(opt.steps() == 0);
}

TEST_CASE("fit refuses an optimiser built before a layer was added", "[train][fit]") {
  const auto train = shatter::test::blobs(4, 20, 1);
  shatter::rng g(2);
  auto s = spec();
  s.out = 5;
  auto net = shatter::plain_relu_mlp<double>(s, g);
  shatter::sgd<double> opt(net.parameters(), {0.1});
  net.add(shatter::relu<double>());
  net.add(shatter::dense<double>(5, 3));  // after the optimiser: not covered
  shatter::softmax_cross_entropy<double> loss;
  shatter::fit_options o;
  o.epochs = 1;
  o.batch_size = 10;
  CHECK_THROWS_WITH(shatter::fit(net, loss, opt, shatter::schedule::constant(0.1), train, o),
                    Catch::Contains("does not cover 2 of the network's parameters "
                                    "('6.weight', '6.bias')") &&
                        Catch::Contains("layer added after"));
  CHECK(opt.steps() == 0);
  // Built last, the optimiser covers everything and fit trains.
  shatter::sgd<double> good(net.parameters(), {0.1});
  const auto r = shatter::fit(net, loss, good, shatter::schedule::constant(0.1), train, o);
  CHECK(r.steps == 2);
  CHECK(good.steps() == 2);
}

TEST_CASE("with partial_optimizer, fit trains only the parameters the optimiser covers",
          "[train][fit]") {
  const auto train = shatter::test::blobs(4, 20, 1);
  shatter::rng g(2);
  auto net = shatter::plain_relu_mlp<double>(spec(), g);  // dense 0, 2 and the head 4
  std::vector<shatter::tensor_ref<double>> head;
  for (const auto& p : net.parameters())
    if (p.name.rfind("4.", 0) == 0) head.push_back(p);
  REQUIRE(head.size() == 2);
  shatter::sgd<double> opt(head, {0.1});
  std::vector<shatter::matrix<double>> before;
  for (const auto& p : net.parameters()) before.push_back(*p.value);
  shatter::softmax_cross_entropy<double> loss;
  shatter::fit_options o;
  o.epochs = 1;
  o.batch_size = 10;
  CHECK_THROWS_WITH(shatter::fit(net, loss, opt, train, o),
                    Catch::Contains("does not cover 4 of the network's parameters") &&
                        Catch::Contains("partial_optimizer"));
  o.partial_optimizer = true;
  const auto r = shatter::fit(net, loss, opt, train, o);
  CHECK(r.steps == 2);
  const auto after = net.parameters();
  for (std::size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].name);
    if (after[i].name.rfind("4.", 0) == 0)
      CHECK(*after[i].value != before[i]);  // the head trained
    else
      CHECK(*after[i].value == before[i]);  // the rest is bitwise as it was
  }
  // Still refused when bound to another network.
  auto copy = net;
  CHECK_THROWS_WITH(shatter::fit(copy, loss, opt, train, o),
                    Catch::Contains("copy of the network"));
}
