// Optimisers against hand-computed PyTorch updates; schedules at known points; state naming.
#include <catch2/catch.hpp>

#include <cmath>

#include "shatter/core/rng.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/optim/sgd.hpp"

using shatter::matrix;
using shatter::tensor_ref;

namespace {

const double kPi = 3.14159265358979323846;

/// One 1 x 1 parameter with value v and gradient g.
struct scalar_param {
  matrix<double> value = matrix<double>::Constant(1, 1, 1.0);
  matrix<double> grad = matrix<double>::Constant(1, 1, 1.0);
  std::vector<tensor_ref<double>> refs() { return {{"0.weight", &value, &grad}}; }
};

}  // namespace

TEST_CASE("sgd matches hand-computed PyTorch updates", "[optim]") {
  SECTION("plain") {
    scalar_param s;
    shatter::sgd<double> opt(s.refs(), {0.1});
    opt.step();
    CHECK(s.value(0) == Approx(0.9).epsilon(1e-15));
    CHECK(opt.state().empty());
    CHECK(opt.steps() == 1);
  }
  SECTION("momentum: buf = mu buf + g, p -= lr buf") {
    scalar_param s;
    shatter::sgd<double> opt(s.refs(), {0.1, 0.9});
    opt.step();  // buf = 1, p = 0.9
    CHECK(s.value(0) == Approx(0.9).epsilon(1e-15));
    opt.step();  // buf = 1.9, p = 0.71
    CHECK(s.value(0) == Approx(0.71).epsilon(1e-15));
    REQUIRE(opt.state().size() == 1);
    CHECK(opt.state()[0].name == "momentum.0.weight");
    CHECK((*opt.state()[0].value)(0) == Approx(1.9).epsilon(1e-15));
  }
  SECTION("nesterov: p -= lr (g + mu buf)") {
    scalar_param s;
    shatter::sgd<double> opt(s.refs(), {0.1, 0.9, true});
    opt.step();  // buf = 1, p = 1 - 0.1 * 1.9 = 0.81
    CHECK(s.value(0) == Approx(0.81).epsilon(1e-15));
    opt.step();  // buf = 1.9, p = 0.81 - 0.1 * (1 + 1.71) = 0.539
    CHECK(s.value(0) == Approx(0.539).epsilon(1e-14));
  }
  SECTION("weight decay joins the gradient before momentum") {
    scalar_param s;
    s.value(0) = 2.0;
    shatter::sgd<double> opt(s.refs(), {0.1, 0.5, false, 0.25});
    opt.step();  // d = 1 + 0.5 = 1.5, buf = 1.5, p = 2 - 0.15 = 1.85
    CHECK(s.value(0) == Approx(1.85).epsilon(1e-15));
    opt.step();  // d = 1 + 0.4625 = 1.4625, buf = 0.75 + 1.4625 = 2.2125, p = 1.85 - 0.22125
    CHECK(s.value(0) == Approx(1.62875).epsilon(1e-14));
  }
}

TEST_CASE("sgd on matrices follows the reference recursion elementwise", "[optim]") {
  shatter::rng g(5);
  matrix<double> w(3, 4), dw(3, 4), b(3, 1), db(3, 1);
  for (Eigen::Index i = 0; i < w.size(); ++i) w(i) = g.normal();
  for (Eigen::Index i = 0; i < b.size(); ++i) b(i) = g.normal();
  const matrix<double> w0 = w;
  shatter::sgd<double> opt({{"w", &w, &dw}, {"b", &b, &db}}, {0.05, 0.9, true, 1e-2});
  matrix<double> ref = w0, buf = matrix<double>::Zero(3, 4);
  for (int t = 0; t < 5; ++t) {
    for (Eigen::Index i = 0; i < dw.size(); ++i) dw(i) = g.normal();
    db.setConstant(0.5);
    for (Eigen::Index i = 0; i < ref.size(); ++i) {
      const double d = dw(i) + 1e-2 * ref(i);
      buf(i) = 0.9 * buf(i) + d;
      ref(i) -= 0.05 * (d + 0.9 * buf(i));
    }
    opt.step();
  }
  CHECK((w - ref).cwiseAbs().maxCoeff() < 1e-14);
}

TEST_CASE("adam matches hand-computed PyTorch updates", "[optim]") {
  SECTION("first step moves by lr in the gradient's sign") {
    scalar_param s;
    s.grad(0) = -3.0;
    shatter::adam<double> opt(s.refs(), {0.01});
    opt.step();
    CHECK(s.value(0) == Approx(1.0 + 0.01 * 3.0 / (3.0 + 1e-8)).epsilon(1e-15));
    REQUIRE(opt.state().size() == 2);
    CHECK(opt.state()[0].name == "adam.m.0.weight");
    CHECK(opt.state()[1].name == "adam.v.0.weight");
    CHECK((*opt.state()[0].value)(0) == Approx(-0.3).epsilon(1e-15));
    CHECK((*opt.state()[1].value)(0) == Approx(0.009).epsilon(1e-14));
  }
  SECTION("a gradient sequence with L2 weight decay against the scalar recursion") {
    scalar_param s;
    shatter::adam_options o;
    o.lr = 0.1;
    o.beta1 = 0.8;
    o.beta2 = 0.9;
    o.eps = 1e-6;
    o.weight_decay = 0.1;
    shatter::adam<double> opt(s.refs(), o);
    double p = 1, m = 0, v = 0;
    const double gs[] = {1.0, -2.0, 0.5, 3.0};
    for (int t = 1; t <= 4; ++t) {
      s.grad(0) = gs[t - 1];
      const double d = gs[t - 1] + 0.1 * p;
      m = 0.8 * m + 0.2 * d;
      v = 0.9 * v + 0.1 * d * d;
      p -= 0.1 / (1 - std::pow(0.8, t)) * m /
           (std::sqrt(v) / std::sqrt(1 - std::pow(0.9, t)) + 1e-6);
      opt.step();
      CHECK(s.value(0) == Approx(p).epsilon(1e-14));
    }
    CHECK(opt.steps() == 4);
  }
  SECTION("decoupled weight decay (AdamW) shrinks p first") {
    scalar_param s;
    s.value(0) = 2.0;
    shatter::adam_options o;
    o.lr = 0.1;
    o.weight_decay = 0.5;
    o.decoupled_weight_decay = true;
    shatter::adam<double> opt(s.refs(), o);
    opt.step();  // p = 2 * (1 - 0.05) = 1.9, then - 0.1 * 1 / (1 + 1e-8)
    CHECK(s.value(0) == Approx(1.9 - 0.1 / (1 + 1e-8)).epsilon(1e-15));
  }
  SECTION("set_steps continues the bias correction (checkpoint resume)") {
    scalar_param a, b;
    shatter::adam<double> oa(a.refs(), {0.1}), ob(b.refs(), {0.1});
    for (int t = 0; t < 3; ++t) oa.step();
    ob.step();
    // copy state and counter from oa to ob, then both must agree bitwise.
    b.value = a.value;
    auto sa = oa.state(), sb = ob.state();
    for (std::size_t i = 0; i < sa.size(); ++i) *sb[i].value = *sa[i].value;
    ob.set_steps(oa.steps());
    oa.step();
    ob.step();
    CHECK(a.value(0) == b.value(0));
  }
}

TEST_CASE("optimisers validate options and parameters", "[optim][bad-input]") {
  scalar_param s;
  CHECK_THROWS_AS(shatter::sgd<double>(s.refs(), {-0.1}), shatter::config_error);
  CHECK_THROWS_AS(shatter::sgd<double>(s.refs(), {0.1, 1.0}), shatter::config_error);
  CHECK_THROWS_WITH(shatter::sgd<double>(s.refs(), {0.1, 0.0, true}), Catch::Contains("Nesterov"));
  CHECK_THROWS_AS(shatter::sgd<double>(s.refs(), {0.1, 0.0, false, -1}), shatter::config_error);
  shatter::adam_options o;
  o.beta2 = 1.0;
  CHECK_THROWS_AS(shatter::adam<double>(s.refs(), o), shatter::config_error);
  matrix<double> buffer(2, 2);
  CHECK_THROWS_WITH(shatter::sgd<double>({{"0.running_mean", &buffer, nullptr}}, {0.1}),
                    Catch::Contains("0.running_mean"));
  matrix<double> g(2, 3);
  CHECK_THROWS_AS(shatter::adam<double>({{"w", &buffer, &g}}), shatter::shape_error);
  shatter::sgd<double> opt(s.refs(), {0.1});
  CHECK_THROWS_AS(opt.set_learning_rate(std::nan("")), shatter::config_error);
  CHECK_THROWS_AS(opt.set_steps(-1), shatter::config_error);
  opt.set_learning_rate(0.5);
  CHECK(opt.learning_rate() == 0.5);
}

TEST_CASE("schedules give the documented values at known points", "[optim][schedule]") {
  const auto c = shatter::schedule::constant(0.1);
  CHECK(c.lr_at(0) == 0.1);
  CHECK(c.lr_at(1000000) == 0.1);

  const auto s = shatter::schedule::step_decay(1.0, {30, 10}, 0.1);
  CHECK(s.lr_at(0) == 1.0);
  CHECK(s.lr_at(9) == 1.0);
  CHECK(s.lr_at(10) == Approx(0.1).epsilon(1e-15));
  CHECK(s.lr_at(29) == Approx(0.1).epsilon(1e-15));
  CHECK(s.lr_at(30) == Approx(0.01).epsilon(1e-15));

  const auto cs = shatter::schedule::cosine(1.0, 100, 0.1);
  CHECK(cs.lr_at(0) == Approx(1.0).epsilon(1e-15));
  CHECK(cs.lr_at(50) == Approx(0.55).epsilon(1e-15));
  CHECK(cs.lr_at(25) == Approx(0.1 + 0.9 * (1 + std::sqrt(0.5)) / 2).epsilon(1e-15));
  CHECK(cs.lr_at(100) == Approx(0.1).epsilon(1e-15));
  CHECK(cs.lr_at(500) == Approx(0.1).epsilon(1e-15));

  const auto w = shatter::schedule::cosine(1.0, 100).with_warmup(10, 0.0);
  CHECK(w.lr_at(0) == 0.0);
  CHECK(w.lr_at(5) == Approx(0.5 * (1 + std::cos(kPi * 0.05)) / 2).epsilon(1e-15));
  CHECK(w.lr_at(10) == Approx((1 + std::cos(kPi * 0.1)) / 2).epsilon(1e-15));

  const auto sw = shatter::schedule::step_decay(0.4, {2}, 0.5).with_warmup(4, 0.25);
  CHECK(sw.lr_at(0) == Approx(0.1).epsilon(1e-15));
  CHECK(sw.lr_at(1) == Approx(0.4 * 0.4375).epsilon(1e-15));
  CHECK(sw.lr_at(2) == Approx(0.2 * 0.625).epsilon(1e-15));
  CHECK(sw.lr_at(4) == Approx(0.2).epsilon(1e-15));

  CHECK_THROWS_AS(shatter::schedule::cosine(1.0, 0), shatter::config_error);
  CHECK_THROWS_AS(shatter::schedule::cosine(1.0, 10, 2.0), shatter::config_error);
  CHECK_THROWS_AS(shatter::schedule::step_decay(1.0, {-1}, 0.1), shatter::config_error);
  CHECK_THROWS_AS(shatter::schedule::constant(-1.0), shatter::config_error);
  CHECK_THROWS_AS(c.with_warmup(5, 1.5), shatter::config_error);
}
