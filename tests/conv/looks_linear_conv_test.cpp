// Looks-linear and delta-orthogonal initialisation of convolutions; linearity of LL conv nets.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/init/delta_orthogonal.hpp"
#include "shatter/init/looks_linear_conv.hpp"
#include "shatter/network/cifar.hpp"

using namespace shatter;

namespace {
Eigen::MatrixXd eye(Eigen::Index n) {
  return Eigen::MatrixXd::Identity(n, n);
}
}  // namespace

TEST_CASE("conv looks-linear init mirrors input channel c with c + C and W0 is orthogonal") {
  rng g(31);
  crelu<double> act;
  act.connect({3, 6, 6}, "");
  conv2d<double> c({6, 6, 6}, 5, 3, 1, 1, false);
  init::looks_linear(c, act, g);
  const auto& w = c.weight();
  const Eigen::Index half = 3 * 9;
  for (Eigen::Index ch = 0; ch < 3; ++ch)
    for (Eigen::Index t = 0; t < 9; ++t)
      CHECK((w.col(ch * 9 + t) + w.col((ch + 3) * 9 + t)).norm() == 0);
  const Eigen::MatrixXd w0 = w.leftCols(half);
  CHECK((w0 * w0.transpose() - eye(5)).cwiseAbs().maxCoeff() < 1e-12);

  // conv([W0, -W0], crelu(z)) == conv(W0, z) on an arbitrary z.
  conv2d<double> ref({3, 6, 6}, 5, 3, 1, 1, false);
  ref.weight() = w0;
  const Eigen::MatrixXd z = Eigen::MatrixXd::Random(3 * 36, 4);
  const Eigen::MatrixXd h = act.forward(z, mode::train);
  CHECK((c.forward(h, mode::train) - ref.forward(z, mode::train)).cwiseAbs().maxCoeff() < 1e-12);

  init::looks_linear(c, act, g, init::ll_base::he_normal);
  CHECK((c.weight().leftCols(half) + c.weight().rightCols(half)).norm() == 0);
}

TEST_CASE("conv looks-linear init refuses a producer that is not a matching CReLU") {
  rng g(32);
  conv2d<double> c({6, 4, 4}, 2, 3, 1, 1, false);
  relu<double> r;
  r.connect({96, 1, 1}, "");
  CHECK_THROWS_WITH(init::looks_linear(c, r, g, init::ll_base::orthogonal, "layer 4:"),
                    Catch::Contains("layer 4:") && Catch::Contains("conv2d(6 x 4 x 4") &&
                        Catch::Contains("relu(96)"));
  crelu<double> small;
  small.connect({2, 4, 4}, "");  // 64 outputs, conv takes 96
  CHECK_THROWS_WITH(init::looks_linear(c, small, g),
                    Catch::Contains("64") && Catch::Contains("96"));
  CHECK_THROWS_AS(init::looks_linear_delta_orthogonal(c, r, g), shape_error);
}

TEST_CASE("delta-orthogonal kernels: only the centre tap, orthogonal, pixelwise Q z") {
  rng g(33);
  conv2d<double> c({4, 5, 5}, 6, 3, 1, 1, false);
  init::delta_orthogonal(c, g);
  Eigen::MatrixXd q(6, 4);
  for (Eigen::Index ch = 0; ch < 4; ++ch)
    for (Eigen::Index t = 0; t < 9; ++t) {
      if (t == 4)
        q.col(ch) = c.weight().col(ch * 9 + t);
      else
        CHECK(c.weight().col(ch * 9 + t).norm() == 0);
    }
  CHECK((q.transpose() * q - eye(4)).cwiseAbs().maxCoeff() < 1e-12);
  // Norm-preserving: each pixel's channel vector is mapped by Q (6 x 4, orthonormal columns).
  const Eigen::MatrixXd x = Eigen::MatrixXd::Random(100, 3);
  const Eigen::MatrixXd y = c.forward(x, mode::train);
  CHECK(y.colwise().norm().isApprox(x.colwise().norm(), 1e-12));

  crelu<double> act;
  act.connect({100, 1, 1}, "");
  conv2d<double> m({8, 5, 5}, 4, 3, 1, 1, false);
  init::looks_linear_delta_orthogonal(m, act, g);
  const Eigen::MatrixXd h = act.forward(x, mode::train);
  const Eigen::MatrixXd my = m.forward(h, mode::train);
  CHECK(my.colwise().norm().isApprox(x.colwise().norm(), 1e-12));  // 4 x 4 Q: orthogonal
  conv2d<double> even({4, 5, 5}, 4, 2, 1, 1, false);
  CHECK_THROWS_AS(init::delta_orthogonal(even, g), shape_error);
}

TEST_CASE("a looks-linear conv net without batch norm is exactly linear at initialisation") {
  for (bool delta : {false, true}) {
    rng g(34);
    cifar_spec s;
    s.weighted_layers = 14;
    s.input = {3, 8, 8};
    s.width = 4;
    s.batch_norm = false;
    s.delta = delta;
    auto net = build_cifar<double>(cifar_arch::plain_crelu_ll, s, g);
    const Eigen::MatrixXd x1 = Eigen::MatrixXd::Random(192, 3),
                          x2 = Eigen::MatrixXd::Random(192, 3);
    const double a = 0.7, b = -1.9;
    const Eigen::MatrixXd mix = a * x1 + b * x2;
    const Eigen::MatrixXd f1 = net.forward(x1, mode::train);
    const Eigen::MatrixXd f2 = net.forward(x2, mode::train);
    const Eigen::MatrixXd fm = net.forward(mix, mode::train);
    const double scale = fm.cwiseAbs().maxCoeff();
    INFO("delta " << delta << " scale " << scale);
    CHECK(scale > 1e-3);
    CHECK((fm - a * f1 - b * f2).cwiseAbs().maxCoeff() < 1e-12 * std::max(1.0, scale));

    // The same net with He init (plain_crelu) is not linear: the test can tell the difference.
    rng h(34);
    auto plain = build_cifar<double>(cifar_arch::plain_crelu, s, h);
    const Eigen::MatrixXd p1 = plain.forward(x1, mode::train), p2 = plain.forward(x2, mode::train);
    const Eigen::MatrixXd pm = plain.forward(mix, mode::train);
    CHECK((pm - a * p1 - b * p2).cwiseAbs().maxCoeff() > 1e-3 * pm.cwiseAbs().maxCoeff());
  }
}
