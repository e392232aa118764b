// Finite-difference gradient checks shared by the tests (not part of the library).
#ifndef SHATTER_TESTS_GRADCHECK_HPP
#define SHATTER_TESTS_GRADCHECK_HPP

#include <algorithm>
#include <cmath>
#include <functional>

#include "shatter/core/rng.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter::test {

/// Largest relative error max|a - n| / max(1, max|n|) between analytic and numeric gradients.
struct grad_report {
  double input_error = 0;
  double param_error = 0;
  index checked = 0;
};

/// Checks layer `l` on batch `x` against central differences of L = sum(r .* l(x)) with a fixed
/// random r, for every input entry and every parameter entry. `m` is the forward mode used both
/// for the analytic and the numeric pass.
inline grad_report check_gradients(layer<double>& l, const matrix<double>& x0, rng& g,
                                   mode m = mode::train, double h = 1e-6) {
  matrix<double> x = x0;
  const matrix<double> y = l.forward(x, m);
  matrix<double> r(y.rows(), y.cols());
  for (index i = 0; i < r.size(); ++i) r(i) = g.normal();
  l.set_input_gradient(true);
  const matrix<double> dx = l.backward(r);
  std::vector<tensor_ref<double>> ps;
  l.collect_parameters("", ps);
  std::vector<matrix<double>> grads;
  for (auto& p : ps) grads.push_back(*p.grad);

  auto loss = [&]() { return (l.forward(x, m).array() * r.array()).sum(); };
  auto rel = [](double a, double n, double scale) { return std::abs(a - n) / std::max(1.0, scale); };

  grad_report rep;
  const double sx = std::max(1.0, dx.cwiseAbs().maxCoeff());
  for (index i = 0; i < x.size(); ++i) {
    const double v = x(i);
    x(i) = v + h;
    const double lp = loss();
    x(i) = v - h;
    const double lm = loss();
    x(i) = v;
    rep.input_error = std::max(rep.input_error, rel(dx(i), (lp - lm) / (2 * h), sx));
    ++rep.checked;
  }
  for (std::size_t k = 0; k < ps.size(); ++k) {
    matrix<double>& w = *ps[k].value;
    const double sw = std::max(1.0, grads[k].cwiseAbs().maxCoeff());
    for (index i = 0; i < w.size(); ++i) {
      const double v = w(i);
      w(i) = v + h;
      const double lp = loss();
      w(i) = v - h;
      const double lm = loss();
      w(i) = v;
      rep.param_error = std::max(rep.param_error, rel(grads[k](i), (lp - lm) / (2 * h), sw));
      ++rep.checked;
    }
  }
  return rep;
}

/// A d x n batch of uniform values in [-2, 2] kept at least `gap` away from 0 (ReLU kinks).
inline matrix<double> away_from_zero(index d, index n, rng& g, double gap = 0.05) {
  matrix<double> x(d, n);
  for (index i = 0; i < x.size(); ++i) {
    double v = g.uniform(-2, 2);
    if (std::abs(v) < gap) v = v < 0 ? v - gap : v + gap;
    x(i) = v;
  }
  return x;
}

}  // namespace shatter::test

#endif  // SHATTER_TESTS_GRADCHECK_HPP
