// shatter: the paper's other probe quantities: unit activity, gradient covariance, seed
// correlation.
#ifndef SHATTER_PROBE_UNITS_HPP
#define SHATTER_PROBE_UNITS_HPP

#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/probe/sweep.hpp"

namespace shatter::probe {

/// Activity of one ReLU layer over a sweep of M inputs (the paper's Figure 3).
/// active: the proportion of (unit, input) pairs with the unit on, mean_k n_k / M;
/// coactive: the proportion of (unit, pair of distinct inputs) with the unit on for both,
/// mean_k n_k (n_k - 1) / (M (M - 1)), where n_k counts the inputs that switch unit k on.
/// With batch norm each unit is on for about half the inputs: active ~ 1/2, coactive ~ 1/4.
struct layer_activity {
  index layer = 0;  ///< 1-based position among the network's ReLU layers (its depth)
  index units = 0;
  double active = 0;
  double coactive = 0;
};

namespace detail {
/// Layer `number`'s activity over the m inputs of batch y (units x m): the share of (unit, input)
/// pairs with output > 0, and of (unit, input pair) with both > 0.
template <class T>
layer_activity activity_of(index number, const_batch_view<T>& y, index m) {
  layer_activity a;
  a.layer = number;
  a.units = y.rows();
  double on = 0, pairs = 0;
  for (index k = 0; k < y.rows(); ++k) {
    const double n = double((y.row(k).array() > T(0)).count());
    on += n;
    pairs += n * (n - 1);
  }
  a.active = on / (double(y.rows()) * double(m));
  a.coactive = pairs / (double(y.rows()) * double(m) * double(m - 1));
  return a;
}
}  // namespace detail

/// Runs the sweep batch of `o` (inputs x = t, scalar-input networks) through `net` and returns
/// the activity of every ReLU layer in forward order (including those inside residual blocks
/// and both branches of a branch_sum). Batch norms use the sweep batch's statistics (running ones
/// for bn_statistics::running). The network's state is restored. Errors as sweep().
template <class T>
std::vector<layer_activity> unit_activity(layer<T>& net, const sweep_options& o = {}) {
  detail::check_sweep_options(o, "probe::unit_activity");
  require<shape_error>(net.in_size() == 1, "probe::unit_activity: needs a scalar-input network, ",
                       net.describe(), " takes ", net.in_size(), " features");
  const index m = o.points;
  matrix<T> x(1, m);
  for (index i = 0; i < m; ++i) x(0, i) = T(o.from + (o.to - o.from) * double(i) / double(m - 1));
  network_state_guard<T> guard(net);
  std::vector<layer_activity> out;
  typename plan<T>::observer watch = [&](const layer<T>& l, const_batch_view<T> y) {
    if (!dynamic_cast<const relu<T>*>(&l)) return;
    out.push_back(detail::activity_of(index(out.size()) + 1, y, m));
  };
  plan<T> p(net, m, plan_mode::eval);
  p.forward(const_batch_view<T>(x.data(), 1, m),
            o.bn == bn_statistics::running ? mode::eval : mode::train, &watch);
  return out;
}

/// Activity of every rectifier layer (ReLU, CReLU, PReLU, leaky ReLU including TAT's) along the
/// line x(t) = u + t v of any network, over the sweep batch of `o` (t on [o.from, o.to]): as
/// unit_activity, a unit is on for an input when its output is > 0 (for a leaky or parametric
/// ReLU with positive slopes: when its pre-activation is > 0; CReLU's two halves count as units).
/// Convolutional layers count every (channel, position) as a unit. Batch norms use the sweep
/// batch's statistics (running ones for bn_statistics::running); the network's state is restored.
/// shape_error when u, v do not have the network's input size; config_error for bad options.
template <class T>
std::vector<layer_activity> unit_activity_line(layer<T>& net,
                                               const Eigen::Ref<const Eigen::VectorXd>& u,
                                               const Eigen::Ref<const Eigen::VectorXd>& v,
                                               const sweep_options& o = {}) {
  detail::check_sweep_options(o, "probe::unit_activity_line");
  require<shape_error>(u.size() == net.in_size() && v.size() == net.in_size(),
                       "probe::unit_activity_line: u and v must have the network's input size ",
                       net.in_size(), ", got ", u.size(), " and ", v.size());
  const index m = o.points;
  const Eigen::VectorXd t = detail::sweep_points(o);
  matrix<T> x(u.size(), m);
  for (index i = 0; i < m; ++i) x.col(i) = (u + t(i) * v).template cast<T>();
  network_state_guard<T> guard(net);
  std::vector<layer_activity> out;
  typename plan<T>::observer watch = [&](const layer<T>& l, const_batch_view<T> y) {
    if (!dynamic_cast<const relu<T>*>(&l) && !dynamic_cast<const crelu<T>*>(&l) &&
        !dynamic_cast<const prelu<T>*>(&l) && !dynamic_cast<const leaky_relu<T>*>(&l))
      return;
    out.push_back(detail::activity_of(index(out.size()) + 1, y, m));
  };
  plan<T> p(net, m, plan_mode::eval);
  p.forward(const_batch_view<T>(x.data(), u.size(), m),
            o.bn == bn_statistics::running ? mode::eval : mode::train, &watch);
  return out;
}

/// The normalised covariance matrix of a gradient sequence (the paper's Figure 1, second row):
/// C_ij = |(g_i - mean)(g_j - mean)| / var, var the (biased) variance. A constant sequence gives
/// the zero matrix (no NaN). M x M; M >= 1.
inline Eigen::MatrixXd covariance_matrix(const Eigen::Ref<const Eigen::VectorXd>& g) {
  require<config_error>(g.size() >= 1, "probe::covariance_matrix: empty sequence");
  const Eigen::VectorXd c = g.array() - g.mean();
  const double var = c.squaredNorm() / double(g.size());
  if (!(var > 0)) return Eigen::MatrixXd::Zero(g.size(), g.size());
  return (c * c.transpose()).cwiseAbs() / var;
}

/// Correlation across seeds (independent networks) between the gradients at two fixed inputs
/// i and j: the Pearson correlation of (g_s(i), g_s(j)) over seeds s, the quantity R(i, j) of the
/// theory. `grads[s]` is seed s's gradient sequence. If either series has zero variance the
/// result is 1 when the two series are equal and 0 otherwise. Needs >= 2 seeds and valid i, j.
inline double correlation_across_seeds(const std::vector<Eigen::VectorXd>& grads, index i,
                                       index j) {
  require<config_error>(grads.size() >= 2,
                        "probe::correlation_across_seeds: need at least 2 seeds, got ",
                        grads.size());
  const index n = index(grads.size());
  Eigen::VectorXd a(n), b(n);
  for (index s = 0; s < n; ++s) {
    const auto& g = grads[std::size_t(s)];
    require<config_error>(i >= 0 && j >= 0 && i < g.size() && j < g.size(),
                          "probe::correlation_across_seeds: indices ", i, ", ", j,
                          " out of range for a sequence of ", g.size());
    a(s) = g(i);
    b(s) = g(j);
  }
  const bool equal = (a - b).cwiseAbs().maxCoeff() == 0;
  a.array() -= a.mean();
  b.array() -= b.mean();
  const double va = a.squaredNorm(), vb = b.squaredNorm();
  if (!(va > 0) || !(vb > 0)) return equal ? 1.0 : 0.0;
  return a.dot(b) / std::sqrt(va * vb);
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_UNITS_HPP
