// Input-output Jacobian spectra: exact Jacobians (forward mode), their singular values, and
// Lanczos on J^T J through tangents and backward.
#include <catch2/catch.hpp>

#include <Eigen/SVD>
#include <algorithm>

#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/probe/jacobian_spectrum.hpp"

using namespace shatter;
using Idx = shatter::index;
using probe::bn_statistics;

namespace {

matrix<double> normal(Idx rows, Idx cols, rng& g) {
  matrix<double> m(rows, cols);
  for (Idx i = 0; i < m.size(); ++i) m(i) = g.normal();
  return m;
}

Eigen::VectorXd singular_values(const Eigen::MatrixXd& m) {
  return Eigen::JacobiSVD<Eigen::MatrixXd>(m).singularValues();
}

double rel_diff(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  if (a.size() != b.size()) return 1e300;
  return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
}

/// The product of the W0 maps of a looks-linear MLP: the first dense layer's W, then the left
/// half W0 of every mirrored [W0, -W0].
Eigen::MatrixXd product_of_w0(sequential<double>& net) {
  Eigen::MatrixXd p;
  for (std::size_t i = 0; i < net.size(); ++i)
    if (auto* d = dynamic_cast<dense<double>*>(&net[i])) {
      const matrix<double>& w = d->weight();
      const Eigen::MatrixXd w0 = p.size() == 0 ? w : w.leftCols(w.cols() / 2);
      p = p.size() == 0 ? w0 : Eigen::MatrixXd(w0 * p);
    }
  return p;
}

/// The layers of a CIFAR net before its global average pooling (the convolutional body).
sequential<double> body_of(sequential<double>& net) {
  sequential<double> body;
  for (std::size_t i = 0; i < net.size(); ++i) {
    if (dynamic_cast<global_avg_pool<double>*>(&net[i])) break;
    body.add(net[i].clone());
  }
  return body;
}

cifar_spec tiny_cifar(bool bn) {
  cifar_spec s;
  s.weighted_layers = 8;
  s.input = {2, 6, 6};
  s.width = 2;
  s.classes = 3;
  s.batch_norm = bn;
  return s;
}

}  // namespace

TEST_CASE("looks-linear MLPs without BN have exactly the singular values of their W0 product") {
  rng g(71);
  mlp_spec s;
  s.in = 12;
  s.width = 16;
  s.out = 10;
  s.bias_std = 0.5;
  for (Idx depth : {1, 5, 40}) {
    INFO("depth " << depth);
    s.hidden_layers = depth;
    // He-normal W0: singular values spread with depth, so the comparison is not trivially 1.
    auto net = looks_linear_mlp<double>(s, g, init::ll_base::he_normal);
    const Eigen::VectorXd want = singular_values(product_of_w0(net));
    const auto got = probe::jacobian_singular_values(net, normal(12, 3, g));
    REQUIRE(got.size() == 3);
    for (const auto& sv : got) CHECK(rel_diff(sv, want) < 1e-10);
    if (depth == 40) CHECK(want(0) / want(want.size() - 1) > 10);
  }
  // Orthogonal W0 (square): every singular value is 1 (perfect dynamical isometry).
  s.out = s.in = s.width = 16;
  s.hidden_layers = 30;
  auto iso = looks_linear_mlp<double>(s, g);
  const auto sv = probe::jacobian_singular_values(iso, normal(16, 2, g));
  CHECK((sv[0].array() - 1).abs().maxCoeff() < 1e-12);
  // PReLU-LL: the product of all its weight matrices.
  s.hidden_layers = 20;
  auto pl = prelu_ll_mlp<double>(s, g, init::ll_base::he_normal);
  Eigen::MatrixXd prod = Eigen::MatrixXd::Identity(16, 16);
  for (std::size_t i = 0; i < pl.size(); ++i)
    if (auto* d = dynamic_cast<dense<double>*>(&pl[i])) prod = d->weight() * prod;
  CHECK(rel_diff(probe::jacobian_singular_values(pl, normal(16, 2, g))[0], singular_values(prod)) <
        1e-10);
}

TEST_CASE("singular values of a one-layer ReLU net: sqrt 2 (repeated) and 0, all finite") {
  // J = W2 D W1 with orthogonal W and D = sqrt(2) diag(active): every non-zero singular value is
  // sqrt 2 (a case where Eigen 3.4's BDCSVD returned NaN).
  rng g(76);
  mlp_spec s;
  s.in = s.width = s.out = 64;
  s.hidden_layers = 1;
  s.bias = false;
  auto net = tat_mlp<double>(s, g);  // depth 1: a = 0, gain sqrt 2, orthogonal weights
  const matrix<double> x = normal(64, 16, g);
  const auto sv = probe::jacobian_singular_values(net, x);
  for (Idx i = 0; i < 16; ++i) {
    const Eigen::VectorXd& v = sv[std::size_t(i)];
    REQUIRE(v.allFinite());
    const Eigen::VectorXd z = dynamic_cast<dense<double>&>(net[0]).weight() * x.col(i);
    const Idx active = Idx((z.array() > 0).count());
    Idx ones = 0;
    for (Idx k = 0; k < 64; ++k) {
      const bool root2 = std::abs(v(k) - std::sqrt(2.0)) < 1e-12, zero = v(k) < 1e-12;
      CHECK((root2 || zero));
      ones += root2;
    }
    CHECK(ones == active);
  }
}

TEST_CASE("exact Jacobians match finite differences and the backward pass") {
  rng g(72);
  mlp_spec s;
  s.in = 5;
  s.width = 7;
  s.hidden_layers = 4;
  s.out = 3;
  s.bias_std = 0.5;
  auto net = plain_relu_mlp<double>(s, g);
  const matrix<double> x = normal(5, 4, g);
  probe::jacobian_options o;
  o.max_columns = 6;  // several passes
  const auto jac = probe::jacobians(net, x, o);
  REQUIRE(jac.size() == 4);
  const double h = 1e-6;
  for (Idx i = 0; i < 4; ++i) {
    Eigen::MatrixXd fd(3, 5);
    for (Idx j = 0; j < 5; ++j) {
      matrix<double> xp = x.col(i), xm = x.col(i);
      xp(j, 0) += h;
      xm(j, 0) -= h;
      const matrix<double> yp = net.forward(xp, mode::eval);
      fd.col(j) = (yp - net.forward(xm, mode::eval)) / (2 * h);
    }
    CHECK((fd - jac[std::size_t(i)]).cwiseAbs().maxCoeff() < 1e-7);
  }
  // With batch norm (statistics of the batch, held fixed): J_i^T u from the backward pass.
  s.batch_norm = true;
  auto bn = plain_relu_mlp<double>(s, g);
  const auto jb = probe::jacobians(bn, x);
  plan<double> p(bn, 4, plan_mode::train);
  for_each_leaf<double>(bn, [](layer<double>& l) {
    if (auto* b = dynamic_cast<batch_norm<double>*>(&l))
      b->set_gradient_mode(bn_gradient::fixed_stats);
  });
  p.forward(x, mode::train);
  const matrix<double> u = normal(3, 4, g);
  const matrix<double> jtu = p.backward(u, true, false);
  for (Idx i = 0; i < 4; ++i)
    CHECK((jb[std::size_t(i)].transpose() * u.col(i) - jtu.col(i)).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("Lanczos singular values match the exact SVD (MLP and convnet, with and without BN)") {
  rng g(73);
  mlp_spec s;
  s.in = s.width = s.out = 24;
  s.hidden_layers = 14;
  s.bias_std = 0.3;
  // TAT's leaky ReLU for a small eta (slope well above 0) keeps J well conditioned, so Lanczos
  // runs all 24 steps.
  auto mlp = tat_mlp<double>(s, g, 0.3);
  const matrix<double> xm = normal(24, 3, g);
  probe::lanczos_options lo;
  lo.steps = 24;  // the full dimension: every singular value
  const auto exact = probe::jacobian_singular_values(mlp, xm);
  const auto lz = probe::jacobian_lanczos(mlp, xm, lo);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(lz[i].steps == 24);
    CHECK(rel_diff(lz[i].singular_values, exact[i]) < 1e-8);
  }
  // A ReLU net's J has a null space (dead units): Lanczos stops at its rank, the rest is zero.
  auto relu_net = plain_relu_mlp<double>(s, g);
  const auto ex_relu = probe::jacobian_singular_values(relu_net, xm);
  const auto lz_relu = probe::jacobian_lanczos(relu_net, xm, lo);
  for (std::size_t i = 0; i < 3; ++i) {
    const Idx k = lz_relu[i].steps;
    INFO("ReLU sample " << i << ": " << k << " steps");
    CHECK(rel_diff(lz_relu[i].singular_values.head(3), ex_relu[i].head(3)) < 1e-10);
    if (k < 24) CHECK(ex_relu[i](k) < 1e-6 * ex_relu[i](0));
  }

  for (bool with_bn : {false, true})
    for (const char* name : {"plain_relu", "plain_crelu_ll", "plain_tat", "resnet"}) {
      INFO(name << (with_bn ? " with BN" : ""));
      auto net = build_cifar<double>(parse_cifar_arch(name), tiny_cifar(with_bn), g);
      auto body = body_of(net);
      const matrix<double> x = normal(72, 3, g);
      const std::vector<matrix<double>> before = [&] {
        std::vector<matrix<double>> b;
        for (auto& t : body.buffers()) b.push_back(*t.value);
        return b;
      }();
      const auto ex = probe::jacobian_singular_values(body, x);
      probe::lanczos_options few;
      few.steps = 30;  // fewer than the 72 dimensions: the top values have converged
      const auto lan = probe::jacobian_lanczos(body, x, few);
      for (std::size_t i = 0; i < 3; ++i) {
        REQUIRE(lan[i].singular_values.size() == lan[i].steps);
        CHECK(rel_diff(lan[i].singular_values.head(3), ex[i].head(3)) < 1e-8);
      }
      const auto bufs = body.buffers();
      for (std::size_t k = 0; k < bufs.size(); ++k) CHECK(*bufs[k].value == before[k]);
    }
}

TEST_CASE("Lanczos stops at the rank of a low-rank Jacobian") {
  // A CIFAR classifier has 3 outputs: J^T J has rank 3, found in at most 4 steps.
  rng g(74);
  auto net = build_cifar<double>(cifar_arch::plain_relu, tiny_cifar(false), g);
  const matrix<double> x = normal(72, 2, g);
  const auto lan = probe::jacobian_lanczos(net, x);
  const auto ex = probe::jacobian_singular_values(net, x);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(lan[i].steps <= 4);
    CHECK(rel_diff(lan[i].singular_values.head(3), ex[i]) < 1e-9);
  }
}

TEST_CASE("Jacobian probes refuse what they cannot compute") {
  rng g(75);
  mlp_spec s;
  s.in = 4;
  s.width = 5;
  s.hidden_layers = 2;
  s.batch_norm = true;
  auto net = plain_relu_mlp<double>(s, g);
  CHECK_THROWS_WITH(probe::jacobians(net, normal(4, 1, g)), Catch::Contains("at least 2 samples"));
  CHECK_NOTHROW(probe::jacobians(net, normal(4, 1, g), {bn_statistics::running}));
  CHECK_THROWS_WITH(probe::jacobians(net, normal(3, 2, g)), Catch::Contains("4 x m"));
  CHECK_THROWS_WITH(probe::jacobians(net, normal(4, 2, g), {bn_statistics::through}),
                    Catch::Contains("through"));
  matrix<double> bad = normal(4, 2, g);
  bad(1, 1) = std::nan("");
  CHECK_THROWS_AS(probe::jacobians(net, bad), numeric_error);
  probe::lanczos_options lo;
  lo.steps = 0;
  CHECK_THROWS_WITH(probe::jacobian_lanczos(net, normal(4, 2, g), lo), Catch::Contains("steps"));
}
