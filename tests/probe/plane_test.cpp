// The 2-D gradient map and the radial power spectrum: the plane through three points, a linear
// net's constant gradient, agreement with line sweeps, white and brown 2-D noise, bad input.
#include <catch2/catch.hpp>
#include <cmath>

#include "shatter/core/threads.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/probe/plane.hpp"
#include "shatter/probe/radial_spectrum.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/probe/synthetic.hpp"

using namespace shatter;
using namespace shatter::probe;
using idx = shatter::index;

namespace {

const bool single_thread = (set_threads(1), true);

mlp_spec two_input(idx depth) {
  mlp_spec s;
  s.in = 2;
  s.width = 16;
  s.hidden_layers = depth;
  s.bias_std = 0.5;
  return s;
}

plane_basis unit_axes() {
  plane_basis p{Eigen::VectorXd(2), Eigen::VectorXd::Unit(2, 0), Eigen::VectorXd::Unit(2, 1)};
  p.origin << 0.3, -0.2;
  return p;
}

}  // namespace

TEST_CASE("plane_through passes through the three points", "[plane]") {
  rng g(3);
  Eigen::VectorXd a(5), b(5), c(5);
  for (idx i = 0; i < 5; ++i) a(i) = g.normal(), b(i) = g.normal(), c(i) = g.normal();
  const plane_basis p = plane_through(a, b, c);
  auto at = [&](double s, double t) { return Eigen::VectorXd(p.origin + s * p.e1 + t * p.e2); };
  CHECK((at(-1.0 / 3, -1.0 / 3) - a).norm() < 1e-12);
  CHECK((at(2.0 / 3, -1.0 / 3) - b).norm() < 1e-12);
  CHECK((at(-1.0 / 3, 2.0 / 3) - c).norm() < 1e-12);
  CHECK_THROWS_AS(plane_through(a, b, Eigen::VectorXd(2 * b - a)), config_error);
  CHECK_THROWS_AS(plane_through(a, a, c), config_error);
  CHECK_THROWS_AS(plane_through(a, b, Eigen::VectorXd(4)), config_error);
}

TEST_CASE("a looks-linear net has a constant gradient map and correlation 1", "[plane]") {
  rng g(11);
  auto net = build<double>(architecture::plain_crelu_ll, two_input(6), g);
  plane_options o;
  o.points = 17;
  const auto r = sweep_plane(net, unit_axes(), o);
  REQUIRE(r.grad_s.rows() == 17);
  REQUIRE(r.grad_s.cols() == 17);
  // f(x) = A x + c: its gradient A is the same everywhere, and equals f's finite differences.
  matrix<double> x(2, 3);
  x << 0, 1, 0, 0, 0, 1;
  const matrix<double> y = net.forward(x, mode::eval);
  const double a1 = y(0, 1) - y(0, 0), a2 = y(0, 2) - y(0, 0);
  CHECK((r.grad_s.array() - a1).abs().maxCoeff() < 1e-10);
  CHECK((r.grad_t.array() - a2).abs().maxCoeff() < 1e-10);
  CHECK((r.correlation.array() - 1).abs().maxCoeff() < 1e-12);
}

TEST_CASE("the gradient map's rows are line sweeps along e1", "[plane]") {
  rng g(5);
  auto net = build<double>(architecture::plain_relu, two_input(3), g);
  plane_options o;
  o.points = 9;
  const plane_basis p = unit_axes();
  const auto r = sweep_plane(net, p, o);
  for (idx i : {0, 4, 8}) {
    sweep_options so;
    so.from = o.from;
    so.to = o.to;
    so.points = o.points;
    const Eigen::VectorXd u = p.origin + r.coords(i) * p.e2;
    const auto line = sweep_line(net, u, p.e1, so);
    CHECK((line.gradient - r.grad_s.row(i).transpose()).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((line.output - r.output.row(i).transpose()).cwiseAbs().maxCoeff() < 1e-12);
  }
  CHECK(r.correlation(4, 4) == Approx(1.0).epsilon(1e-12));
  CHECK(r.correlation.maxCoeff() <= 1 + 1e-12);
  CHECK(r.correlation.minCoeff() >= -1 - 1e-12);
}

TEST_CASE("radial spectrum slope: 2-D white noise ~ 0, 1/f^2 noise ~ -2", "[plane]") {
  rng g(2017);
  double white = 0, brown = 0;
  const int reps = 8;
  for (int k = 0; k < reps; ++k) {
    white += radial_spectrum_slope(white_noise_2d(64, 64, g)) / reps;
    brown += radial_spectrum_slope(power_law_noise_2d(64, 64, 2.0, g)) / reps;
  }
  CHECK(std::abs(white) < 0.15);
  CHECK(std::abs(brown + 2) < 0.2);
  // A plane wave has its power in one ring: the spectrum is zero elsewhere.
  Eigen::MatrixXd wave(32, 32);
  for (idx r = 0; r < 32; ++r)
    for (idx c = 0; c < 32; ++c) wave(r, c) = std::cos(2 * 3.14159265358979323846 * 4 * c / 32.0);
  const auto s = radial_power_spectrum(wave);
  CHECK(s.power(3) > 1);
  CHECK(s.power(0) < 1e-20);
  CHECK(s.frequency(3) == Approx(4.0 / 32));
}

TEST_CASE("dft2 inverts", "[plane]") {
  rng g(1);
  const Eigen::MatrixXd x = white_noise_2d(6, 8, g);
  const Eigen::MatrixXcd f = dft2(x.cast<std::complex<double>>());
  CHECK((dft2(f, true).real() - x).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(std::abs(f(0, 0) - std::complex<double>(x.sum(), 0)) < 1e-12);
}

TEST_CASE("sweep_plane and the spectrum refuse bad input", "[plane]") {
  rng g(2);
  auto net = build<double>(architecture::plain_relu, two_input(1), g);
  plane_options o;
  o.points = 2;
  CHECK_THROWS_AS(sweep_plane(net, unit_axes(), o), config_error);
  o.points = 9;
  o.bn = bn_statistics::through;
  CHECK_THROWS_AS(sweep_plane(net, unit_axes(), o), config_error);
  o.bn = bn_statistics::fixed;
  o.from = 1;
  CHECK_THROWS_AS(sweep_plane(net, unit_axes(), o), config_error);
  o.from = -1;
  plane_basis bad = unit_axes();
  bad.e1 = Eigen::VectorXd::Ones(3);
  CHECK_THROWS_AS(sweep_plane(net, bad, o), shape_error);
  bad = unit_axes();
  bad.e2.setZero();
  CHECK_THROWS_AS(sweep_plane(net, bad, o), config_error);
  mlp_spec two_out = two_input(1);
  two_out.out = 2;
  auto net2 = build<double>(architecture::plain_relu, two_out, g);
  CHECK_THROWS_AS(sweep_plane(net2, unit_axes(), o), shape_error);
  CHECK_THROWS_AS(radial_power_spectrum(Eigen::MatrixXd::Zero(3, 8)), config_error);
  CHECK_THROWS_AS(radial_spectrum_slope(Eigen::MatrixXd::Ones(16, 16)), numeric_error);
  Eigen::MatrixXd nan = Eigen::MatrixXd::Zero(8, 8);
  nan(2, 3) = std::nan("");
  CHECK_THROWS_AS(radial_power_spectrum(nan), numeric_error);
}
