// Initialisers, and the looks-linear identities: an LL CReLU network is exactly linear at init.
#include <catch2/catch.hpp>

#include <Eigen/Dense>

#include "shatter/init/glorot.hpp"
#include "shatter/init/he.hpp"
#include "shatter/init/looks_linear.hpp"
#include "shatter/init/orthogonal.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/network/builders.hpp"

using namespace shatter;
using shatter::matrix;

TEST_CASE("orthogonal init for any shape, with a gain") {
  rng g(1);
  for (auto [r, c] : {std::pair<int, int>{5, 5}, {3, 7}, {7, 3}, {1, 4}, {4, 1}}) {
    matrix<double> w(r, c);
    init::orthogonal(w, g, 2.0);
    const matrix<double> gram =
        r <= c ? matrix<double>(w * w.transpose()) : matrix<double>(w.transpose() * w);
    const auto n = gram.rows();
    CHECK((gram - 4.0 * matrix<double>::Identity(n, n)).cwiseAbs().maxCoeff() < 1e-12);
  }
  matrix<double> empty;
  CHECK_THROWS_AS(init::orthogonal(empty, g), shape_error);
}

TEST_CASE("the orthonormal factor equals Eigen's Householder QR with R's diagonal made positive") {
  rng g(3);
  for (auto [m, n] : {std::pair<int, int>{1, 1}, {6, 1}, {9, 9}, {40, 17}, {300, 120}}) {
    Eigen::MatrixXd a(m, n);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) a(i, j) = g.normal();
    const Eigen::MatrixXd q = shatter::detail::orthonormal_columns(a);
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
    Eigen::MatrixXd ref = qr.householderQ() * Eigen::MatrixXd::Identity(m, n);
    for (int j = 0; j < n; ++j)
      if (qr.matrixQR()(j, j) < 0) ref.col(j) = -ref.col(j);
    CHECK((q - ref).cwiseAbs().maxCoeff() < 1e-12);
    // Q^T a is R: upper triangular with a positive diagonal.
    const Eigen::MatrixXd r = q.transpose() * a;
    for (int j = 0; j < n; ++j) {
      CHECK(r(j, j) > 0);
      for (int i = j + 1; i < n; ++i) CHECK(std::abs(r(i, j)) < 1e-12);
    }
    CHECK((q * r - a).cwiseAbs().maxCoeff() < 1e-12);
  }
  // A rank-deficient input still gives orthonormal columns (a zero column needs no reflection).
  Eigen::MatrixXd z = Eigen::MatrixXd::Zero(5, 3);
  z(0, 0) = 2;
  z(4, 2) = -1;
  const Eigen::MatrixXd q = shatter::detail::orthonormal_columns(z);
  CHECK((q.transpose() * q - Eigen::MatrixXd::Identity(3, 3)).cwiseAbs().maxCoeff() < 1e-15);
}

TEST_CASE("He and Glorot draws have the documented variance") {
  rng g(2);
  matrix<double> w(400, 500);
  init::he_normal(w, g);
  const double var_he = w.array().square().mean();
  CHECK(var_he == Approx(2.0 / 500).epsilon(0.02));  // 2e5 draws: relative sd ~ 0.3%
  init::glorot_uniform(w, g);
  CHECK(w.array().square().mean() == Approx(2.0 / 900).epsilon(0.02));
  CHECK(w.cwiseAbs().maxCoeff() <= std::sqrt(6.0 / 900));
  init::glorot_normal(w, g);
  CHECK(w.array().square().mean() == Approx(2.0 / 900).epsilon(0.02));
}

TEST_CASE("looks-linear weights are mirrored [W0, -W0]") {
  rng g(3);
  matrix<double> w(6, 8);
  init::looks_linear(w, g);
  CHECK((w.leftCols(4) + w.rightCols(4)).norm() == 0);
  const matrix<double> w0 = w.leftCols(4);
  CHECK((w0.transpose() * w0 - matrix<double>::Identity(4, 4)).cwiseAbs().maxCoeff() < 1e-12);
  init::looks_linear(w, g, init::ll_base::he_normal);
  CHECK((w.leftCols(4) + w.rightCols(4)).norm() == 0);
}

TEST_CASE("looks-linear init refuses inputs that are not a matching CReLU output") {
  rng g(4);
  matrix<double> odd(3, 5);
  CHECK_THROWS_WITH(init::looks_linear(odd, g, init::ll_base::orthogonal, "layer 7"),
                    Catch::Contains("layer 7") && Catch::Contains("3 x 5"));

  dense<double> d(8, 3);
  relu<double> r;
  r.connect({8, 1, 1}, "");
  CHECK_THROWS_WITH(init::looks_linear(d, r, g),
                    Catch::Contains("dense(8 -> 3, bias)") && Catch::Contains("relu(8)"));
  crelu<double> c;
  c.connect({3, 1, 1}, "");  // outputs 6, not 8
  CHECK_THROWS_WITH(init::looks_linear(d, c, g), Catch::Contains("(6)") && Catch::Contains("(8)"));

  // A whole ReLU network cannot be made looks-linear.
  mlp_spec s;
  s.in = 2;
  s.width = 4;
  s.hidden_layers = 3;
  auto net = plain_relu_mlp<double>(s, g);
  CHECK_THROWS_WITH(apply_looks_linear(net, g),
                    Catch::Contains("layer 2") && Catch::Contains("relu"));
}

namespace {
/// The affine map a looks-linear net computes at init, from the left halves W0 of its weights.
matrix<double> affine_reference(sequential<double>& net, const matrix<double>& x) {
  matrix<double> h = x;
  for (std::size_t i = 0; i < net.size(); ++i) {
    auto* d = dynamic_cast<dense<double>*>(&net[i]);
    if (!d) continue;
    const auto& w = d->weight();
    const bool mirrored = i > 0;
    const matrix<double> w0 = mirrored ? matrix<double>(w.leftCols(w.cols() / 2)) : w;
    if (mirrored) REQUIRE((w.leftCols(w.cols() / 2) + w.rightCols(w.cols() / 2)).norm() == 0);
    matrix<double> next = w0 * h;
    if (d->has_bias()) next.colwise() += d->bias().col(0);
    h = next;
  }
  return h;
}
}  // namespace

TEST_CASE("a looks-linear CReLU net equals the product of its W0 matrices at init") {
  for (int depth : {2, 16, 128}) {
    for (double bias_std : {0.0, 0.5}) {
      DYNAMIC_SECTION("depth " << depth << ", bias_std " << bias_std) {
        rng g(100 + depth);
        mlp_spec s;
        s.in = 5;
        s.width = 12;
        s.hidden_layers = depth;
        s.out = 3;
        s.bias_std = bias_std;
        auto net = looks_linear_mlp<double>(s, g);
        matrix<double> x(5, 9);
        for (shatter::index i = 0; i < x.size(); ++i) x(i) = g.normal();
        const matrix<double> y = net.forward(x, mode::train);
        const matrix<double> ref = affine_reference(net, x);
        CHECK((y - ref).cwiseAbs().maxCoeff() < 1e-12 * std::max(1.0, ref.cwiseAbs().maxCoeff()));
      }
    }
  }
}

TEST_CASE("with orthogonal W0 the input-Jacobian of a looks-linear net is orthogonal") {
  for (int depth : {2, 16, 128}) {
    rng g(7);
    mlp_spec s;
    s.in = s.width = s.out = 10;
    s.hidden_layers = depth;
    auto net = looks_linear_mlp<double>(s, g);
    // Ten copies of one random input; backward with dy = I gives dx = J^T.
    matrix<double> x = vector<double>::NullaryExpr(10, [&] { return g.normal(); }).replicate(1, 10);
    net.forward(x, mode::train);
    const matrix<double> jt = net.backward(matrix<double>::Identity(10, 10));
    CHECK((jt.transpose() * jt - matrix<double>::Identity(10, 10)).cwiseAbs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("looks-linear nets are linear in float too, and with batch norm") {
  rng g(9);
  mlp_spec s;
  s.in = 4;
  s.width = 16;
  s.hidden_layers = 24;
  s.out = 2;
  auto net = looks_linear_mlp<float>(s, g);
  matrix<float> x = matrix<float>::Random(4, 6);
  const matrix<float> y1 = net.forward(x, mode::eval);
  const matrix<float> x3 = 3.0f * x;
  const matrix<float> y3 = net.forward(x3, mode::eval);
  CHECK((y3 - 3.0f * y1).cwiseAbs().maxCoeff() < 1e-4f * std::max(1.0f, y1.cwiseAbs().maxCoeff()));

  // BN of a linear feature is affine: the net stays affine, so second differences vanish.
  s.batch_norm = true;
  auto bn_net = looks_linear_mlp<double>(s, g);
  bn_net.forward(matrix<double>::Random(4, 32), mode::train);  // set running statistics
  matrix<double> a = matrix<double>::Random(4, 1), b = matrix<double>::Random(4, 1);
  matrix<double> pts(4, 3);
  pts << a, b, matrix<double>(0.25 * a + 0.75 * b);
  const matrix<double> y = bn_net.forward(pts, mode::eval);
  CHECK((y.col(2) - 0.25 * y.col(0) - 0.75 * y.col(1)).cwiseAbs().maxCoeff() < 1e-9);
}

TEST_CASE("a looks-linear classifier after global average pooling of a CReLU is exactly linear") {
  rng g(11);
  sequential<double> net;
  auto& conv = net.add(conv2d<double>({2, 6, 6}, 4, 3, 1, 1, false, no_init));
  init::orthogonal(conv.weight(), g);
  net.add(crelu<double>());  // 8 channels: [relu(z); relu(-z)]
  net.add(global_avg_pool<double>({8, 6, 6}));
  auto& fc = net.add(dense<double>(8, 3, false));
  init::looks_linear(fc, net[2], g);  // fed by the pooling: accepted by itself
  CHECK((fc.weight().leftCols(4) + fc.weight().rightCols(4)).norm() == 0);
  const matrix<double> x = matrix<double>::Random(72, 5), y = matrix<double>::Random(72, 5);
  const matrix<double> fx = net.forward(x, mode::eval), fy = net.forward(y, mode::eval);
  const matrix<double> fxy = net.forward(matrix<double>(2.5 * x - 1.5 * y), mode::eval);
  CHECK((fxy - (2.5 * fx - 1.5 * fy)).cwiseAbs().maxCoeff() < 1e-12);
  // and it is W0 times the pooled convolution: relu(z) - relu(-z) = z
  CHECK(fx.cwiseAbs().maxCoeff() > 1e-3);
}

TEST_CASE("apply_looks_linear accepts a pooled CReLU and refuses a pooled ReLU") {
  for (bool mirrored : {true, false}) {
    rng g(2);
    sequential<double> net;
    net.add(dense<double>(3, 4));
    if (mirrored)
      net.add(crelu<double>());
    else
      net.add(relu<double>());
    const shatter::index c = mirrored ? 8 : 4;
    net.add(global_avg_pool<double>({c, 1, 1}));
    net.add(dense<double>(c, 2));
    if (mirrored) {
      apply_looks_linear(net, g);
      const matrix<double> x = matrix<double>::Random(3, 4);
      const matrix<double> f1 = net.forward(x, mode::eval);
      const matrix<double> f2 = net.forward(matrix<double>(3 * x), mode::eval);
      const matrix<double> f0 = net.forward(matrix<double>::Zero(3, 4), mode::eval);
      CHECK(((f2 - f0) - 3 * (f1 - f0)).cwiseAbs().maxCoeff() < 1e-12);  // affine (biases)
    } else {
      CHECK_THROWS_WITH(apply_looks_linear(net, g),
                        Catch::Contains("layer 3") && Catch::Contains("not of a CReLU output"));
    }
  }
}

TEST_CASE("every initialiser takes the layer first: the same draws as on its weight matrix") {
  rng g1(5), g2(5);
  dense<double> d1(6, 4), d2(6, 4);
  conv2d<double> c1({3, 5, 5}, 2, 3), c2({3, 5, 5}, 2, 3);
  init::he_normal(d1, g1);
  init::he_normal(d2.weight(), g2);
  CHECK(d1.weight() == d2.weight());
  init::he_normal(c1, g1, 1.0);
  init::he_normal(c2.weight(), g2, c2.fan_in(), 1.0);  // fan_in 27: the weight's columns
  CHECK(c1.weight() == c2.weight());
  init::orthogonal(d1, g1, 2.0);
  init::orthogonal(d2.weight(), g2, 2.0);
  CHECK(d1.weight() == d2.weight());
  init::glorot_uniform(c1, g1);
  init::glorot_uniform(c2.weight(), g2);
  CHECK(c1.weight() == c2.weight());
  init::glorot_normal(d1, g1, 0.5);
  init::glorot_normal(d2.weight(), g2, 0.5);
  CHECK(d1.weight() == d2.weight());
}
