// Tangents through whole networks (plan_mode::tangent): a resnet-style MLP with residual and
// branch_sum blocks and the four CIFAR architectures, against finite differences of the
// forward and against the backward pass.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "core_support.hpp"
#include "shatter/activation/crelu.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tanh.hpp"
#include "shatter/network/branch_sum.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"

using namespace shatter;
using namespace shatter::coretest;

namespace {

dense<double> random_dense(idx in, idx out, rng& g) {
  dense<double> d(in, out, true);
  for (idx i = 0; i < out; ++i) d.bias()(i, 0) = 0.3 * g.normal();
  return d;
}

/// dense -> BN -> relu -> residual(dense, BN, tanh, dense; beta 0.5) -> leaky_relu ->
/// branch_sum(dense | dense, BN, crelu, dense) -> prelu (per feature) -> dense: a scalar output.
sequential<double> small_resnet(rng& g) {
  sequential<double> net;
  net.add(random_dense(5, 8, g));
  net.add(batch_norm<double>(8));
  net.add(relu<double>());
  sequential<double> f;
  f.add(random_dense(8, 8, g));
  f.add(batch_norm<double>(8));
  f.add(tanh_activation<double>());
  f.add(random_dense(8, 8, g));
  net.add(residual<double>(std::move(f), 0.5));
  net.add(leaky_relu<double>(0.1));
  sequential<double> a, b;
  a.add(random_dense(8, 6, g));
  b.add(random_dense(8, 6, g));
  b.add(batch_norm<double>(6));
  b.add(crelu<double>());
  b.add(random_dense(12, 6, g));
  net.add(branch_sum<double>(std::move(a), std::move(b)));
  prelu<double> p(6, 0.25);
  for (idx i = 0; i < 6; ++i) p.slope()(i, 0) = g.uniform(-0.3, 0.8);
  net.add(std::move(p));
  net.add(random_dense(6, 1, g));
  randomise_batch_norms(net, g);
  return net;
}

cifar_spec small_cifar() {
  cifar_spec s;
  s.weighted_layers = 8;
  s.input = {3, 8, 8};
  s.width = 4;
  s.classes = 1;
  return s;
}

void set_bn_gradient(layer<double>& net, bn_gradient m) {
  for_each_leaf(net, [m](layer<double>& l) {
    if (auto* bn = dynamic_cast<batch_norm<double>*>(&l)) bn->set_gradient_mode(m);
  });
}

std::vector<matrix<double>> buffers_of(sequential<double>& net) {
  std::vector<matrix<double>> out;
  for (auto& b : net.buffers()) out.push_back(*b.value);
  return out;
}

/// The tangent plan's (y, J dx) for each batch_stats against: the forward (y), central
/// differences of the function it differentiates (J dx), and the backward pass of a training
/// plan with dy = 1 (v . dL/dx per sample; summed over the batch through the statistics).
void check_network_tangent(sequential<double>& net, const matrix<double>& x, rng& g,
                           double fd_tol) {
  REQUIRE(net.out_size() == 1);
  const idx n = x.cols(), d = x.rows();
  const matrix<double> dx = normal_matrix(d, n, g);
  const auto before = buffers_of(net);
  const idx leaves = count_leaves(net, [](layer<double>&) { return true; });
  const matrix<double> ones = matrix<double>::Ones(1, n);
  for (batch_stats s : {batch_stats::running, batch_stats::fixed, batch_stats::through}) {
    INFO("batch_stats " << (s == batch_stats::running ? "running"
                            : s == batch_stats::fixed ? "fixed"
                                                      : "through"));
    plan<double> p(net, n, plan_mode::tangent);
    idx steps = 0;
    matrix<double> last_dy;
    plan<double>::tangent_observer watch = [&](const plan<double>::tangent_step& st) {
      ++steps;
      last_dy = st.dy;
    };
    const auto out = p.tangent(const_batch_view<double>(x.data(), d, n),
                               const_batch_view<double>(dx.data(), d, n), s, &watch);
    const matrix<double> y = out.first, dy = out.second;
    CHECK(steps == leaves);  // the observer sees every leaf, those inside blocks included
    CHECK(max_abs_diff(last_dy, dy) == 0.0);
    REQUIRE(dy.cwiseAbs().maxCoeff() > 0);

    // The function the tangent differentiates, and its value at x.
    sequential<double> f = net;
    mode m = mode::eval;
    matrix<double> y_ref;
    if (s == batch_stats::running) {
      y_ref = f.forward(x, mode::eval);
    } else if (s == batch_stats::fixed) {
      y_ref = f.forward(x, mode::train);
      freeze_batch_norms(f);  // statistics held at the unperturbed batch's
    } else {
      y_ref = f.forward(x, mode::train);
      m = mode::train;  // statistics move with the batch
    }
    const matrix<double> fd = central_difference(
        [&](const matrix<double>& z) { return matrix<double>(f.forward(z, m)); }, x, dx);
    CHECK(rel_error(y, y_ref) < 1e-12);
    CHECK(rel_error(dy, fd) < fd_tol);

    // The backward path of a training plan, dy = 1.
    sequential<double> b = net;
    set_bn_gradient(
        b, s == batch_stats::through ? bn_gradient::through_batch_stats : bn_gradient::fixed_stats);
    plan<double> q(b, n, plan_mode::train);
    q.forward(const_batch_view<double>(x.data(), d, n),
              s == batch_stats::running ? mode::eval : mode::train);
    if (s != batch_stats::through) {
      const matrix<double> grad = q.backward(const_batch_view<double>(ones.data(), 1, n), true);
      const Eigen::RowVectorXd vg = (dx.array() * grad.array()).colwise().sum();
      CHECK(rel_error(vg, dy) < 1e-10);
    } else {
      // The samples are coupled through the statistics: (J dx)_i = sum_j dx_j . d f_i / d x_j,
      // one backward per output i with dy = e_i (keeping the forward's values).
      Eigen::RowVectorXd vg(n);
      matrix<double> e = matrix<double>::Zero(1, n);
      for (idx i = 0; i < n; ++i) {
        e(0, i) = 1;
        const matrix<double> grad =
            q.backward(const_batch_view<double>(e.data(), 1, n), true, false, true);
        vg(i) = (dx.array() * grad.array()).sum();
        e(0, i) = 0;
      }
      CHECK(rel_error(vg, dy) < 1e-10);
      // ... whose sum is the single backward with dy = 1.
      const matrix<double> grad = q.backward(const_batch_view<double>(ones.data(), 1, n), true);
      CHECK(std::abs((dx.array() * grad.array()).sum() - dy.sum()) <
            1e-10 * std::max(1.0, dy.cwiseAbs().sum()));
    }
  }
  // Tangent passes change no running statistics.
  const auto after = buffers_of(net);
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(max_abs_diff(after[i], before[i]) == 0.0);
}

}  // namespace

TEST_CASE("tangent plan through a resnet-style net (residual, branch_sum, BN) is exact",
          "[core][tangent][plan]") {
  rng g(201);
  auto net = small_resnet(g);
  CHECK(count_leaves(net, [](layer<double>& l) { return l.kind() == "batch_norm"; }) == 3);
  const matrix<double> x = normal_matrix(5, 7, g);
  check_network_tangent(net, x, g, 1e-7);
}

TEST_CASE("tangent plan through the four CIFAR architectures is exact (3x8x8, depth 8, double)",
          "[core][tangent][plan][cifar]") {
  for (const auto& name : cifar_arch_names()) {
    INFO(name);
    rng g(202);
    auto net = build_cifar<double>(parse_cifar_arch(name), small_cifar(), g);
    randomise_batch_norms(net, g);
    const matrix<double> x = normal_matrix(net.in_size(), 4, g);
    check_network_tangent(net, x, g, 1e-6);
  }
}

TEST_CASE("a tangent plan reuses its buffers and refuses wrong batches", "[core][tangent][plan]") {
  rng g(203);
  auto net = small_resnet(g);
  plan<double> p(net, 6, plan_mode::tangent);
  const matrix<double> x = normal_matrix(5, 6, g), dx = normal_matrix(5, 6, g);
  p.tangent(const_batch_view<double>(x.data(), 5, 6), const_batch_view<double>(dx.data(), 5, 6),
            batch_stats::fixed);
  const std::size_t bytes = p.bytes();
  CHECK(bytes > 0);
  // A smaller batch: the same buffers, and the same numbers as a plan of its own size.
  const auto small = p.tangent(const_batch_view<double>(x.data(), 5, 3),
                               const_batch_view<double>(dx.data(), 5, 3), batch_stats::fixed);
  const matrix<double> dy_small = small.second;
  CHECK(p.bytes() == bytes);
  plan<double> exact(net, 3, plan_mode::tangent);
  const matrix<double> dy_exact =
      exact
          .tangent(const_batch_view<double>(x.data(), 5, 3),
                   const_batch_view<double>(dx.data(), 5, 3), batch_stats::fixed)
          .second;
  CHECK(rel_error(dy_small, dy_exact) < 1e-14);
  // Too large a batch, a tangent of another shape, forward/backward on a tangent plan.
  const matrix<double> big = normal_matrix(5, 7, g);
  CHECK_THROWS_AS(p.tangent(const_batch_view<double>(big.data(), 5, 7),
                            const_batch_view<double>(big.data(), 5, 7), batch_stats::fixed),
                  shape_error);
  CHECK_THROWS_AS(p.tangent(const_batch_view<double>(x.data(), 5, 6),
                            const_batch_view<double>(dx.data(), 5, 5), batch_stats::fixed),
                  shape_error);
  CHECK_THROWS_AS(p.forward(const_batch_view<double>(x.data(), 5, 6), mode::eval), config_error);
  const matrix<double> one = matrix<double>::Ones(1, 6);
  CHECK_THROWS_AS(p.backward(const_batch_view<double>(one.data(), 1, 6), true), config_error);
}
