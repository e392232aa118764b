// The probe on convolutional networks: sweeps along a line between two images through the
// CIFAR architectures (batch norm, a scalar output), and unit activity through residual and
// branch_sum blocks.
#include <catch2/catch.hpp>

#include "core_support.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/network/branch_sum.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/probe/units.hpp"

using namespace shatter;
using namespace shatter::coretest;
using namespace shatter::probe;

namespace {

cifar_spec small_cifar() {
  cifar_spec s;
  s.weighted_layers = 8;
  s.input = {3, 8, 8};
  s.width = 4;
  s.classes = 1;
  return s;
}

sweep_options line_options(idx points, bn_statistics bn, gradient_method m) {
  sweep_options o;
  o.from = 0.0;
  o.to = 1.0;
  o.points = points;
  o.bn = bn;
  o.method = m;
  return o;
}

/// The sweep batch x_i = u + t_i v, one column per point.
matrix<double> line_batch(const Eigen::VectorXd& u, const Eigen::VectorXd& v,
                          const Eigen::VectorXd& t) {
  matrix<double> x(u.size(), t.size());
  for (idx i = 0; i < t.size(); ++i) x.col(i) = u + t(i) * v;
  return x;
}

std::vector<matrix<double>> buffers_of(sequential<double>& net) {
  std::vector<matrix<double>> out;
  for (auto& b : net.buffers()) out.push_back(*b.value);
  return out;
}

}  // namespace

TEST_CASE("sweep_line through the CIFAR nets: tangent = finite differences = backprop",
          "[core][probe][cifar]") {
  const double h = 1e-6;
  const idx m = 12;
  for (const auto& name : cifar_arch_names()) {
    INFO(name);
    rng g(301);
    auto net = build_cifar<double>(parse_cifar_arch(name), small_cifar(), g);
    randomise_batch_norms(net, g);
    if (parse_cifar_arch(name) == cifar_arch::resnet) {
      // The downsampling blocks are branch_sums with batch norms inside the residual branch.
      idx sums_with_bn = 0;
      for (std::size_t i = 0; i < net.size(); ++i)
        if (auto* b = dynamic_cast<branch_sum<double>*>(&net[i]))
          sums_with_bn +=
              count_leaves(*b, [](layer<double>& l) { return l.kind() == "batch_norm"; }) > 0;
      REQUIRE(sums_with_bn == 2);
    }
    const Eigen::VectorXd img1 = normal_matrix(net.in_size(), 1, g).col(0);
    const Eigen::VectorXd img2 = normal_matrix(net.in_size(), 1, g).col(0);
    const Eigen::VectorXd v = img2 - img1;
    const auto state = buffers_of(net);

    // Statistics of the sweep batch, held fixed.
    const auto tan =
        sweep_line(net, img1, v, line_options(m, bn_statistics::fixed, gradient_method::tangent));
    const auto bp =
        sweep_line(net, img1, v, line_options(m, bn_statistics::fixed, gradient_method::backprop));
    REQUIRE(tan.method == gradient_method::tangent);
    REQUIRE(bp.method == gradient_method::backprop);
    const matrix<double> x = line_batch(img1, v, tan.t);
    // The function differentiated: the net with every batch norm frozen at the sweep batch's
    // statistics (running statistics set to them, evaluation mode).
    sequential<double> frozen = net;
    frozen.forward(x, mode::train);
    freeze_batch_norms(frozen);
    const matrix<double> vv = v.replicate(1, m);
    // (forward returns the network's own output buffer: copy it before the next call)
    auto eval_row = [](sequential<double>& n, const matrix<double>& z) -> Eigen::VectorXd {
      return n.forward(z, mode::eval).row(0).transpose();
    };
    const Eigen::VectorXd fd =
        (eval_row(frozen, x + h * vv) - eval_row(frozen, x - h * vv)) / (2 * h);
    const Eigen::VectorXd f = frozen.forward(x, mode::eval).row(0).transpose();
    REQUIRE(fd.cwiseAbs().maxCoeff() > 0);
    CHECK(rel_error(tan.gradient, fd) < 1e-6);
    CHECK(rel_error(bp.gradient, fd) < 1e-6);
    CHECK(rel_error(tan.gradient, bp.gradient) < 1e-10);
    CHECK(rel_error(tan.output, f) < 1e-12);
    CHECK(rel_error(bp.output, f) < 1e-12);
    // Held statistics differ from the running ones: the sweep did use the batch's.
    const Eigen::VectorXd f_running = net.forward(x, mode::eval).row(0).transpose();
    CHECK(rel_error(f_running, f) > 1e-6);

    // Running statistics (evaluation mode): the derivative of the evaluation forward.
    const auto tan_r =
        sweep_line(net, img1, v, line_options(m, bn_statistics::running, gradient_method::tangent));
    const auto bp_r = sweep_line(
        net, img1, v, line_options(m, bn_statistics::running, gradient_method::backprop));
    const Eigen::VectorXd fd_r = (eval_row(net, x + h * vv) - eval_row(net, x - h * vv)) / (2 * h);
    CHECK(rel_error(tan_r.gradient, fd_r) < 1e-6);
    CHECK(rel_error(bp_r.gradient, tan_r.gradient) < 1e-10);
    CHECK(rel_error(tan_r.output, f_running) < 1e-12);

    // The sweeps leave the running statistics as they were.
    const auto after = buffers_of(net);
    REQUIRE(after.size() == state.size());
    for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] == state[i]);
  }
}

TEST_CASE("sweep_line through the CIFAR resnet, statistics differentiated through",
          "[core][probe][cifar]") {
  const double h = 1e-6;
  const idx m = 6;
  rng g(302);
  auto net = build_cifar<double>(cifar_arch::resnet, small_cifar(), g);
  randomise_batch_norms(net, g);
  const Eigen::VectorXd u = normal_matrix(net.in_size(), 1, g).col(0);
  const Eigen::VectorXd v = normal_matrix(net.in_size(), 1, g).col(0);
  const auto r =
      sweep_line(net, u, v, line_options(m, bn_statistics::through, gradient_method::automatic));
  CHECK(r.method == gradient_method::backprop);
  CHECK_THROWS_AS(
      sweep_line(net, u, v, line_options(m, bn_statistics::through, gradient_method::tangent)),
      config_error);
  const matrix<double> x = line_batch(u, v, r.t);
  Eigen::VectorXd fd(m);
  for (idx i = 0; i < m; ++i) {  // point i moves inside the batch: the statistics move with it
    matrix<double> xp = x, xm = x;
    xp.col(i) += h * v;
    xm.col(i) -= h * v;
    const double fp = net.forward(xp, mode::train)(0, i);
    const double fm = net.forward(xm, mode::train)(0, i);
    fd(i) = (fp - fm) / (2 * h);
  }
  CHECK(rel_error(r.gradient, fd) < 1e-6);
  const auto fixed =
      sweep_line(net, u, v, line_options(m, bn_statistics::fixed, gradient_method::tangent));
  CHECK(rel_error(fixed.gradient, fd) > 1e-4);  // the two statistics modes differ
}

TEST_CASE("unit_activity counts every relu of an MLP resnet, inside residual and branch_sum",
          "[core][probe][units]") {
  rng g(303);
  auto dense_r = [&g](idx in, idx out) {
    dense<double> d(in, out, true);
    for (idx i = 0; i < out; ++i) d.bias()(i, 0) = 0.5 * g.normal();
    return d;
  };
  sequential<double> net;
  net.add(dense_r(1, 6));
  net.add(relu<double>());  // relu 1
  {
    sequential<double> f;
    f.add(dense_r(6, 6));
    f.add(relu<double>());  // relu 2 (residual branch)
    f.add(dense_r(6, 6));
    net.add(residual<double>(std::move(f)));
  }
  net.add(relu<double>());  // relu 3
  {
    sequential<double> a, b;
    a.add(dense_r(6, 5));
    b.add(dense_r(6, 5));
    b.add(relu<double>());  // relu 4 (second branch of the branch_sum)
    b.add(dense_r(5, 5));
    net.add(branch_sum<double>(std::move(a), std::move(b)));
  }
  net.add(relu<double>());  // relu 5
  {
    sequential<double> f;
    f.add(relu<double>());  // relu 6 (a branch that starts with its activation)
    f.add(dense_r(5, 5));
    f.connect({5, 1, 1}, "test:");
    net.add(residual<double>(std::move(f), 0.5));
  }
  net.add(dense_r(5, 1));

  std::vector<layer<double>*> leaves;
  for_each_leaf(net, [&](layer<double>& l) { leaves.push_back(&l); });
  std::vector<layer<double>*> relus;
  for (auto* l : leaves)
    if (dynamic_cast<relu<double>*>(l)) relus.push_back(l);
  REQUIRE(relus.size() == 6);

  sweep_options o;
  o.points = 64;
  const auto act = unit_activity(net, o);
  REQUIRE(act.size() == relus.size());

  // The reference: the network evaluated leaf by leaf, by hand.
  matrix<double> x(1, o.points);
  for (idx i = 0; i < o.points; ++i)
    x(0, i) = o.from + (o.to - o.from) * double(i) / double(o.points - 1);
  auto run = [&](std::size_t k, const matrix<double>& z) {
    return matrix<double>(leaves[k]->forward(z, mode::eval));
  };
  std::vector<matrix<double>> acts;
  const matrix<double> r1 = run(1, run(0, x));
  acts.push_back(r1);
  const matrix<double> r2 = run(3, run(2, r1));
  acts.push_back(r2);
  const matrix<double> s1 = r1 + run(4, r2);
  const matrix<double> r3 = run(5, s1);
  acts.push_back(r3);
  const matrix<double> a = run(6, r3);
  const matrix<double> r4 = run(8, run(7, r3));
  acts.push_back(r4);
  const matrix<double> s2 = a + run(9, r4);
  const matrix<double> r5 = run(10, s2);
  acts.push_back(r5);
  const matrix<double> r6 = run(11, r5);
  acts.push_back(r6);
  const matrix<double> out = run(13, r5 + 0.5 * run(12, r6));
  CHECK(rel_error(out, net.forward(x, mode::eval)) < 1e-12);  // the reference is the network

  for (std::size_t k = 0; k < act.size(); ++k) {
    INFO("relu " << k + 1);
    CHECK(act[k].layer == idx(k) + 1);
    CHECK(act[k].units == relus[k]->out_size());
    const matrix<double>& y = acts[k];
    double on = 0, pairs = 0;
    for (idx u = 0; u < y.rows(); ++u) {
      const double n = double((y.row(u).array() > 0).count());
      on += n;
      pairs += n * (n - 1);
    }
    const double mm = double(o.points);
    CHECK(act[k].active == Approx(on / (double(y.rows()) * mm)).margin(1e-12));
    CHECK(act[k].coactive == Approx(pairs / (double(y.rows()) * mm * (mm - 1))).margin(1e-12));
  }
  // Some unit is on and some off somewhere: the activities are not all trivial.
  double lo = 1, hi = 0;
  for (const auto& a_k : act) {
    lo = std::min(lo, a_k.active);
    hi = std::max(hi, a_k.active);
  }
  CHECK(hi > 0);
  CHECK(lo < 1);

  // The library's resnet MLP with batch norm inside the residual branches: one entry per relu
  // leaf, and with the sweep batch's statistics each unit is on for about half the inputs.
  mlp_spec s;
  s.width = 16;
  s.hidden_layers = 4;
  auto resnet = build<double>(architecture::resnet_bn, s, g);
  const idx relu_leaves =
      count_leaves(resnet, [](layer<double>& l) { return dynamic_cast<relu<double>*>(&l); });
  REQUIRE(relu_leaves == 4);
  const auto act_bn = unit_activity(resnet, o);
  CHECK(idx(act_bn.size()) == relu_leaves);
  for (const auto& a_k : act_bn) {
    CHECK(a_k.units == 16);
    CHECK(std::abs(a_k.active - 0.5) < 0.1);
  }
}
