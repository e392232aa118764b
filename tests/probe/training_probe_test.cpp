// The training probe: its step-0 record equals direct probe calls, it fires every N steps of a
// fit exactly, and its log lines parse; plus the line version of unit activity.
#include <catch2/catch.hpp>
#include <cmath>

#include "../support/blobs.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/io/json.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/probe/training_probe.hpp"
#include "shatter/train/fit.hpp"

using namespace shatter;
using namespace shatter::probe;
using idx = shatter::index;

namespace {

const bool single_thread = (set_threads(1), true);

mlp_spec spec(idx depth) {
  mlp_spec s;
  s.in = 5;
  s.width = 12;
  s.hidden_layers = depth;
  s.out = 3;
  s.bias_std = 0.3;
  return s;
}

matrix<double> inputs(idx d, idx n, std::uint64_t seed) {
  rng g(seed);
  matrix<double> x(d, n);
  for (idx i = 0; i < x.size(); ++i) x(i) = g.normal();
  return x;
}

/// A 3-vector as a dynamic-size vector (the probe takes Eigen::VectorXd).
Eigen::VectorXd vec(double a, double b, double c) {
  Eigen::VectorXd v(3);
  v << a, b, c;
  return v;
}

}  // namespace

TEST_CASE("training probe at step 0 of a looks-linear net equals direct probe calls",
          "[training_probe]") {
  rng g(4);
  auto net = looks_linear_mlp<double>(spec(4), g);
  const matrix<double> pairs = inputs(5, 4, 9);
  const Eigen::VectorXd w = vec(0.5, -1.0, 2.0);
  training_probe_options o;
  o.points = 16;
  o.every = 1;
  training_probe<double> tp(net, pairs, w, o);
  const auto& r = tp.probe(0);
  CHECK(r.step == 0);
  CHECK(r.lines == 2);
  // Linear at initialisation: constant gradient along every line.
  CHECK(r.lag1_mean == 1.0);
  CHECK(r.lag1_std == 0.0);
  CHECK(std::isnan(r.slope_mean));
  CHECK(r.verdict == "constant");
  // f(x) = (w / |w|) . (A x + c): the gradient norm is |A^T w| / |w| everywhere, from differences.
  const Eigen::VectorXd wu = w / w.norm();
  matrix<double> x = matrix<double>::Zero(5, 6);
  for (idx i = 0; i < 5; ++i) x(i, i + 1) = 1;
  const matrix<double> y = net.forward(x, mode::eval);
  Eigen::VectorXd grad(5);
  for (idx i = 0; i < 5; ++i) grad(i) = wu.dot(y.col(i + 1) - y.col(0));
  CHECK(r.grad_norm == Approx(grad.norm()).epsilon(1e-10));
  // Unit activity: the mean over layers and lines of direct unit_activity_line calls.
  sweep_options so;
  so.from = 0;
  so.to = 1;
  so.points = 16;
  double active = 0, coactive = 0;
  for (idx k = 0; k < 2; ++k) {
    const Eigen::VectorXd a = pairs.col(2 * k), v = pairs.col(2 * k + 1) - a;
    const auto act = unit_activity_line(net, a, v, so);
    REQUIRE(act.size() == 4);
    for (const auto& l : act) {
      active += l.active / 8;
      coactive += l.coactive / 8;
      // CReLU: exactly one of each unit's two halves is on (pre-activation zero has measure 0).
      CHECK(l.active == Approx(0.5).epsilon(1e-12));
    }
  }
  CHECK(r.active == Approx(active).epsilon(1e-12));
  CHECK(r.coactive == Approx(coactive).epsilon(1e-12));
}

TEST_CASE("training probe on a ReLU net equals the sweep's statistics", "[training_probe]") {
  rng g(8);
  auto net = build<double>(architecture::plain_relu, spec(6), g);
  const matrix<double> pairs = inputs(5, 2, 3);
  training_probe_options o;
  o.points = 32;
  training_probe<double> tp(net, pairs, vec(0, 1, 0), o);
  const auto& r = tp.probe(7);
  // w = e_2 picks the second output: probe that output directly.
  sequential<double> s;
  s.add(net.clone());
  dense<double> pick(3, 1, false, no_init);
  pick.weight() << 0, 1, 0;
  s.add(std::move(pick));
  sweep_options so;
  so.from = 0;
  so.to = 1;
  so.points = 32;
  const Eigen::VectorXd a = pairs.col(0), v = pairs.col(1) - a;
  const auto st = analyse(sweep_line(s, a, v, so));
  CHECK(r.step == 7);
  CHECK(r.lag1_mean == Approx(st.lag1).epsilon(1e-12));
  CHECK(r.slope_mean == Approx(st.slope).epsilon(1e-12));
  CHECK(r.lag1_std == 0.0);
}

TEST_CASE("training probe fires every N steps of fit exactly", "[training_probe]") {
  const auto train = shatter::test::blobs(5, 100, 1);
  rng g(2);
  mlp_spec s = spec(2);
  auto net = build<double>(architecture::plain_relu, s, g);
  training_probe_options o;
  o.points = 8;
  o.every = 3;
  training_probe<double> tp(net, inputs(5, 2, 5), vec(1, 1, 1), o);
  std::vector<std::string> lines;
  tp.on_record = [&](const training_probe_record& r) { lines.push_back(to_json_line(r)); };
  softmax_cross_entropy<double> loss;
  sgd<double> opt(net.parameters(), {0.05, 0.9});
  fit_options fo;
  fo.epochs = 2;
  fo.batch_size = 10;  // 10 steps per epoch, 20 in all
  fo.on_step = [&](step_report& r) { tp(r); };
  fit(net, loss, opt, schedule::constant(0.05), train, fo);
  REQUIRE(tp.records().size() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(tp.records()[i].step == std::int64_t(3 * (i + 1)));
  REQUIRE(lines.size() == 6);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const io::json_value j = io::parse_json(lines[i].data(), lines[i].size());
    REQUIRE(j.kind == io::json_value::object_v);
    REQUIRE(j.keys.size() == 10);
    CHECK(j.keys[0] == "step");
    CHECK(j.items[0].text == std::to_string(3 * (i + 1)));
    CHECK(std::stod(j.items[2].text) == Approx(tp.records()[i].lag1_mean).epsilon(1e-15));
    CHECK(j.keys[9] == "verdict");
    CHECK(j.items[9].text == tp.records()[i].verdict);
  }
  // The probe works on a copy and restores its state: probing twice at the same weights gives
  // the same numbers.
  const auto first = tp.probe(20), again = tp.probe(20);
  CHECK(again.lag1_mean == first.lag1_mean);
  CHECK(again.grad_norm == first.grad_norm);
  CHECK(again.active == first.active);
}

TEST_CASE("training probe refuses bad input", "[training_probe]") {
  rng g(1);
  auto net = build<double>(architecture::plain_relu, spec(1), g);
  const Eigen::VectorXd w = vec(1, 0, 0);
  training_probe_options o;
  CHECK_THROWS_AS(training_probe<double>(net, inputs(5, 3, 1), w, o), config_error);
  CHECK_THROWS_AS(training_probe<double>(net, inputs(4, 2, 1), w, o), shape_error);
  CHECK_THROWS_AS(training_probe<double>(net, inputs(5, 2, 1), Eigen::VectorXd::Ones(2), o),
                  shape_error);
  CHECK_THROWS_AS(training_probe<double>(net, inputs(5, 2, 1), Eigen::VectorXd::Zero(3), o),
                  config_error);
  o.every = 0;
  CHECK_THROWS_AS(training_probe<double>(net, inputs(5, 2, 1), w, o), config_error);
}
