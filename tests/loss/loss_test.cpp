// Losses: values against hand computations, gradients against finite differences, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "shatter/core/rng.hpp"
#include "shatter/loss/mse.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"

using Index = shatter::index;
using shatter::matrix;

namespace {

matrix<double> random_matrix(Index r, Index c, shatter::rng& g, double scale = 1.0) {
  matrix<double> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m(i) = scale * g.normal();
  return m;
}

/// Largest |analytic - central difference| over all entries of z, for loss f(z).
template <class F>
double max_fd_error(matrix<double> z, const matrix<double>& analytic, F f, double h = 1e-6) {
  double err = 0;
  for (Index i = 0; i < z.size(); ++i) {
    const double v = z(i);
    z(i) = v + h;
    const double lp = f(z);
    z(i) = v - h;
    const double lm = f(z);
    z(i) = v;
    err = std::max(err, std::abs(analytic(i) - (lp - lm) / (2 * h)));
  }
  return err;
}

}  // namespace

TEST_CASE("softmax cross-entropy equals the hand-computed value", "[loss]") {
  matrix<double> z(3, 2);
  z << 1.0, 0.0, 2.0, 0.0, 3.0, 0.0;  // column 0: (1, 2, 3); column 1: (0, 0, 0)
  shatter::softmax_cross_entropy<double> ce;
  const double l = ce.forward(z, {2, 0});
  const double l0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
  const double l1 = std::log(3.0);
  CHECK(l == Approx((l0 + l1) / 2).epsilon(1e-14));
  // Gradient columns sum to zero (softmax sums to 1, one-hot sums to 1).
  CHECK(std::abs(ce.gradient().col(0).sum()) < 1e-15);
  CHECK(ce.gradient()(1, 1) == Approx((1.0 / 3.0) / 2).epsilon(1e-14));
  CHECK(ce.gradient()(0, 1) == Approx((1.0 / 3.0 - 1.0) / 2).epsilon(1e-14));
  CHECK(ce.gradient()(0, 0) > 0);
  CHECK(ce.gradient()(2, 0) < 0);
}

TEST_CASE("softmax cross-entropy gradient matches finite differences", "[loss]") {
  shatter::rng g(11);
  const matrix<double> z = random_matrix(7, 5, g, 2.0);
  const std::vector<std::int32_t> y{0, 6, 3, 3, 1};
  shatter::softmax_cross_entropy<double> ce;
  ce.forward(z, y);
  const matrix<double> grad = ce.gradient();
  shatter::softmax_cross_entropy<double> ce2;
  const double err =
      max_fd_error(z, grad, [&](const matrix<double>& zz) { return ce2.forward(zz, y); });
  CHECK(err < 1e-9);
}

TEST_CASE("softmax cross-entropy is stable for huge logits", "[loss]") {
  matrix<float> z(3, 2);
  z << 1000.f, -1000.f, 0.f, -1000.f, -1000.f, 1000.f;  // col 0: (1000, 0, -1000)
  shatter::softmax_cross_entropy<float> ce;
  const float l = ce.forward(z, {0, 2});
  // column 0: label at the max -> loss ~ 0; column 1 (-1000, -1000, 1000): label 2 is the max.
  CHECK(std::isfinite(l));
  CHECK(l == Approx(0.0f).margin(1e-6));
  CHECK(ce.gradient().allFinite());
  const float l2 = ce.forward(z, {1, 0});
  // column 0 label 1: 1000; column 1 label 0: 2000 -> mean 1500.
  CHECK(l2 == Approx(1500.0f).epsilon(1e-6));
}

TEST_CASE("mse equals the hand-computed value and its gradient matches finite differences",
          "[loss]") {
  matrix<double> y(2, 2), t(2, 2);
  y << 1, 2, 3, 4;
  t << 0, 0, 0, 1;
  shatter::mse<double> m;
  // 0.5 * (1 + 4 + 9 + 9) / 2 = 5.75
  CHECK(m.forward(y, t) == Approx(5.75).epsilon(1e-15));

  shatter::rng g(3);
  const matrix<double> a = random_matrix(4, 6, g), b = random_matrix(4, 6, g);
  m.forward(a, b);
  const matrix<double> grad = m.gradient();
  shatter::mse<double> m2;
  CHECK(max_fd_error(a, grad, [&](const matrix<double>& z) { return m2.forward(z, b); }) < 1e-9);

  // One-hot labels give the same as explicit one-hot targets.
  const std::vector<std::int32_t> lab{3, 0, 1, 1, 2, 3};
  matrix<double> onehot = matrix<double>::Zero(4, 6);
  for (Index j = 0; j < 6; ++j) onehot(lab[j], j) = 1;
  const double l1 = m.forward(a, onehot);
  const matrix<double> g1 = m.gradient();
  CHECK(m.forward(a, lab) == Approx(l1).epsilon(1e-15));
  CHECK((m.gradient() - g1).cwiseAbs().maxCoeff() < 1e-15);
}

TEST_CASE("accuracy counts argmax hits", "[loss]") {
  matrix<double> z(3, 4);
  z << 0, 1, 0, 5,  //
      1, 0, 0, 0,   //
      0, 0, 1, 0;
  CHECK(shatter::correct_count(z, {1, 0, 2, 1}) == 3);
  CHECK(shatter::accuracy(z, {1, 0, 2, 1}) == Approx(0.75));
}

TEST_CASE("losses reject bad labels and shapes with clear messages", "[loss][bad-input]") {
  matrix<double> z = matrix<double>::Zero(3, 2);
  shatter::softmax_cross_entropy<double> ce;
  CHECK_THROWS_AS(ce.forward(z, {0}), shatter::shape_error);
  CHECK_THROWS_WITH(ce.forward(z, {0}), Catch::Contains("1 labels for a batch of 2"));
  CHECK_THROWS_AS(ce.forward(z, {0, 3}), shatter::data_error);
  CHECK_THROWS_WITH(ce.forward(z, {0, 3}), Catch::Contains("label 3 of sample 1"));
  CHECK_THROWS_AS(ce.forward(z, {-1, 0}), shatter::data_error);
  CHECK_THROWS_AS(ce.forward(matrix<double>(3, 0), {}), shatter::shape_error);
  shatter::mse<double> m;
  CHECK_THROWS_AS(m.forward(z, matrix<double>::Zero(2, 3)), shatter::shape_error);
  CHECK_THROWS_WITH(m.forward(z, matrix<double>::Zero(2, 3)), Catch::Contains("3 x 2"));
  CHECK_THROWS_AS(m.forward(z, std::vector<std::int32_t>{0, 5}), shatter::data_error);
  CHECK_THROWS_AS(shatter::accuracy(z, {0, 1, 2}), shatter::shape_error);
}
