// shatter: the gradient sweep, exact input-gradients of a network along a line of inputs.
#ifndef SHATTER_PROBE_SWEEP_HPP
#define SHATTER_PROBE_SWEEP_HPP

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/probe/noise.hpp"

namespace shatter::probe {

/// Where batch-norm layers take their statistics during a sweep, and how the gradient treats
/// them. The sweep's M points form one batch.
enum class bn_statistics {
  /// Default. Mean and variance are those of the sweep batch, held fixed when differentiating:
  /// g_i = d f(x_i) / d x_i for the network whose batch norms are frozen at the sweep's
  /// statistics. One pass, and each g_i depends on x_i alone once the statistics are fixed.
  fixed,
  /// Mean and variance of the sweep batch, differentiated through: g_i = d f_i / d x_i including
  /// the paths through the batch mean and variance (the diagonal of the full M x M Jacobian).
  /// Exact, but costs M backward passes.
  through,
  /// The running statistics (evaluation mode), constants.
  running
};

/// How the gradients are computed; all methods are exact (no finite differences).
enum class gradient_method {
  /// tangent unless bn == through, backprop then.
  automatic,
  /// Forward-mode: the input tangent dx/dt is pushed through the network beside the batch by
  /// every layer's tangent kernel (dense layers multiply [X | dX/dt] as one 2M-column batch).
  /// Works for every network built from library layers, convolutions included.
  tangent,
  /// Reverse mode through the layers' own backward(): forward the batch, backward with dy = 1.
  backprop
};

/// The sweep: t over `points` evenly spaced values on [from, to], the default being the paper's
/// 256 points on [-2, 2].
struct sweep_options {
  double from = -2.0;
  double to = 2.0;
  index points = 256;
  bn_statistics bn = bn_statistics::fixed;
  gradient_method method = gradient_method::automatic;
};

/// The result of a sweep: t_i, f(x(t_i)) and the exact df/dt at t_i (i = 0..M-1), in double.
struct sweep_result {
  Eigen::VectorXd t;
  Eigen::VectorXd output;
  Eigen::VectorXd gradient;
  /// The scale of each gradient's rounding error: with the tangent method and a final dense
  /// layer, sum_k |w_k| |dh_k/dt| over the terms the last product sums (much larger than
  /// |gradient| when they nearly cancel); |gradient| otherwise. analyse(sweep_result) uses it.
  Eigen::VectorXd magnitude;
  gradient_method method = gradient_method::automatic;  ///< the method actually used
};

/// Saves what a probe changes in a network (running statistics, batch-norm gradient modes and
/// batch counters, the input-gradient switch) and restores it on destruction, so probing leaves the
/// network as it was.
template <class T>
class network_state_guard {
 public:
  explicit network_state_guard(layer<T>& net) : net_(net), input_grad_(net.input_gradient()) {
    net.collect_buffers("", buffers_);
    for (auto& b : buffers_) saved_.push_back(*b.value);
    for_each_leaf(net, [this](layer<T>& l, const std::string&) {
      if (auto* bn = dynamic_cast<batch_norm<T>*>(&l))
        modes_.push_back({bn, bn->gradient_mode(), bn->batches_tracked()});
    });
  }
  ~network_state_guard() {
    for (std::size_t i = 0; i < buffers_.size(); ++i) *buffers_[i].value = saved_[i];
    for (auto& m : modes_) {
      m.bn->set_gradient_mode(m.mode);
      m.bn->set_batches_tracked(m.batches);
    }
    net_.set_input_gradient(input_grad_);
  }
  network_state_guard(const network_state_guard&) = delete;
  network_state_guard& operator=(const network_state_guard&) = delete;

 private:
  layer<T>& net_;
  bool input_grad_;
  std::vector<tensor_ref<T>> buffers_;
  std::vector<matrix<T>> saved_;
  struct bn_state {
    batch_norm<T>* bn;
    bn_gradient mode;
    std::int64_t batches;
  };
  std::vector<bn_state> modes_;
};

namespace detail {

inline void check_sweep_options(const sweep_options& o, const char* who) {
  require<config_error>(std::isfinite(o.from) && std::isfinite(o.to), who,
                        ": the range must be finite, got [", o.from, ", ", o.to, "]");
  require<config_error>(o.from < o.to, who, ": the range [", o.from, ", ", o.to, "] is ",
                        o.from == o.to ? "empty" : "reversed", "; need from < to");
  require<config_error>(o.points >= 2, who, ": need at least 2 points, got ", o.points);
}

/// The sweep's t values: `points` evenly spaced on [from, to], the last exactly `to`.
inline Eigen::VectorXd sweep_points(const sweep_options& o) {
  const index m = o.points;
  Eigen::VectorXd t(m);
  for (index i = 0; i < m; ++i) t(i) = o.from + (o.to - o.from) * double(i) / double(m - 1);
  t(m - 1) = o.to;
  return t;
}

/// Forward mode through a tangent plan over the points [i0, i0 + mc): f, df/dt and the rounding
/// magnitude sum_k |w_k| |dh_k/dt| of a final dense layer, on `threads` threads.
template <class T>
void sweep_tangent_part(layer<T>& net, const Eigen::VectorXd& u, const Eigen::VectorXd& v,
                        batch_stats stats, index i0, index mc, int threads, sweep_result& r) {
  const index d = u.size();
  matrix<T> x(d, mc), dx(d, mc);
  for (index i = 0; i < mc; ++i) {
    x.col(i) = (u + r.t(i0 + i) * v).template cast<T>();
    dx.col(i) = v.template cast<T>();
  }
  plan<T> p(net, mc, plan_mode::tangent, threads);
  const layer<T>* last = p.code().ops.back().leaf;
  const auto* last_dense = dynamic_cast<const dense<T>*>(last);
  typename plan<T>::tangent_observer watch = [&](const typename plan<T>::tangent_step& s) {
    if (&s.l == last && last_dense)
      r.magnitude.segment(i0, mc) = (last_dense->weight().cwiseAbs() * s.dx.cwiseAbs())
                                        .row(0)
                                        .transpose()
                                        .template cast<double>();
  };
  const auto out = p.tangent(x, dx, stats, &watch);
  r.output.segment(i0, mc) = out.first.row(0).transpose().template cast<double>();
  r.gradient.segment(i0, mc) = out.second.row(0).transpose().template cast<double>();
}

/// Forward mode: every point at once, or, when no layer couples the samples of a batch (no
/// batch statistics), one part of the points per thread (one synchronisation per sweep instead
/// of one per product).
template <class T>
void sweep_tangent(layer<T>& net, const Eigen::VectorXd& u, const Eigen::VectorXd& v,
                   const sweep_options& o, sweep_result& r) {
  const index m = o.points;
  const batch_stats stats =
      o.bn == bn_statistics::running ? batch_stats::running : batch_stats::fixed;
  bool coupled = false;
  for_each_leaf(net, [&](layer<T>& l) { coupled = coupled || l.couples_samples(); });
  const int t = threads();
  const index parts =
      coupled && stats != batch_stats::running ? 1 : std::max<index>(1, std::min<index>(t, m / 64));
  r.output.resize(m);
  r.gradient.resize(m);
  r.magnitude = Eigen::VectorXd::Zero(m);
  if (parts == 1) {
    sweep_tangent_part(net, u, v, stats, 0, m, t, r);
  } else {
    exec::parallel_for(parts, int(parts), [&](index c) {
      const index i0 = c * m / parts;
      sweep_tangent_part(net, u, v, stats, i0, (c + 1) * m / parts - i0, 1, r);
    });
  }
  r.magnitude = r.magnitude.cwiseMax(r.gradient.cwiseAbs());
}

/// Reverse mode through a training plan: forward the batch, then backward with dy = 1 (or, for
/// bn_statistics::through, one backward per point with dy = e_i: the Jacobian's diagonal).
template <class T>
void sweep_backprop(layer<T>& net, const Eigen::VectorXd& u, const Eigen::VectorXd& v,
                    const sweep_options& o, sweep_result& r) {
  const index m = o.points, d = u.size();
  matrix<T> x(d, m);
  for (index i = 0; i < m; ++i) x.col(i) = (u + r.t(i) * v).template cast<T>();
  for_each_leaf(net, [&o](layer<T>& l, const std::string&) {
    if (auto* bn = dynamic_cast<batch_norm<T>*>(&l))
      bn->set_gradient_mode(o.bn == bn_statistics::through ? bn_gradient::through_batch_stats
                                                           : bn_gradient::fixed_stats);
  });
  plan<T> p(net, m, plan_mode::train);
  const mode md = o.bn == bn_statistics::running ? mode::eval : mode::train;
  r.output =
      p.forward(const_batch_view<T>(x.data(), d, m), md).row(0).transpose().template cast<double>();
  const vector<T> vt = v.template cast<T>();
  matrix<T> dy = matrix<T>::Zero(1, m);
  if (o.bn != bn_statistics::through) {
    dy.setOnes();
    const auto dx = p.backward(const_batch_view<T>(dy.data(), 1, m), true, false);
    r.gradient = (vt.transpose() * dx).transpose().template cast<double>();
    return;
  }
  r.gradient.resize(m);
  for (index i = 0; i < m; ++i) {
    dy(0, i) = T(1);
    const auto dx = p.backward(const_batch_view<T>(dy.data(), 1, m), true, false, true);
    r.gradient(i) = double(vt.dot(dx.col(i)));
    dy(0, i) = T(0);
  }
}

/// The common sweep over inputs x(t) = u + t v (u, v of the network's input size).
template <class T>
sweep_result sweep_impl(layer<T>& net, const Eigen::VectorXd& u, const Eigen::VectorXd& v,
                        const sweep_options& o, const char* who) {
  check_sweep_options(o, who);
  require<shape_error>(net.out_size() == 1, who, ": the network must have a scalar output, ",
                       net.describe(), " has ", net.out_size(), " outputs");
  const index m = o.points;
  sweep_result r;
  r.t = sweep_points(o);
  network_state_guard<T> guard(net);
  gradient_method method = o.method;
  if (method == gradient_method::automatic)
    method = o.bn == bn_statistics::through ? gradient_method::backprop : gradient_method::tangent;
  require<config_error>(method != gradient_method::tangent || o.bn != bn_statistics::through, who,
                        ": the tangent method cannot differentiate through batch statistics "
                        "(bn_statistics::through); use backprop or automatic");
  r.method = method;
  if (method == gradient_method::tangent)
    sweep_tangent(net, u, v, o, r);
  else
    sweep_backprop(net, u, v, o, r);
  if (r.magnitude.size() != m) r.magnitude = r.gradient.cwiseAbs();
  for (index i = 0; i < m; ++i) {
    require<numeric_error>(std::isfinite(r.output(i)), who, ": the network output at t = ", r.t(i),
                           " (point ", i, " of ", m, ") is not finite (", r.output(i), ")");
    require<numeric_error>(std::isfinite(r.gradient(i)), who, ": the gradient at t = ", r.t(i),
                           " (point ", i, " of ", m, ") is not finite (", r.gradient(i), ")");
  }
  return r;
}

}  // namespace detail

/// Sweeps a network with one input and one output over t in [o.from, o.to] (o.points evenly
/// spaced values, one batch) and returns f(t_i) and the exact df/dt(t_i). The network's state
/// (batch-norm running statistics and modes) is left as it was; the sweep runs through plans of
/// its own. Not thread-safe for one network; distinct networks may be swept concurrently. Throws
/// config_error for fewer than 2 points or an empty, reversed or non-finite range; shape_error when
/// the network's input or output is not scalar; numeric_error when an output or gradient is not
/// finite.
template <class T>
sweep_result sweep(layer<T>& net, const sweep_options& o = {}) {
  require<shape_error>(net.in_size() == 1,
                       "probe::sweep: the 1-D sweep needs a network with a "
                       "scalar input, ",
                       net.describe(), " takes ", net.in_size(),
                       " features (use sweep_line for a line u + t v)");
  const Eigen::VectorXd one = Eigen::VectorXd::Ones(1);
  return detail::sweep_impl(net, Eigen::VectorXd::Zero(1), one, o, "probe::sweep");
}

/// Sweeps the line x(t) = u + t v through a network's input space (u, v of its input size, v
/// non-zero) and returns f(x(t_i)) and the exact d f(x(t)) / dt = v . grad f(x(t_i)). A line that
/// misses the origin avoids the bias-free degenerate case of the 1-D sweep. Errors as sweep().
template <class T>
sweep_result sweep_line(layer<T>& net, const Eigen::Ref<const Eigen::VectorXd>& u,
                        const Eigen::Ref<const Eigen::VectorXd>& v, const sweep_options& o = {}) {
  require<shape_error>(u.size() == net.in_size() && v.size() == net.in_size(),
                       "probe::sweep_line: u and v must have the network's input size ",
                       net.in_size(), ", got ", u.size(), " and ", v.size());
  require<config_error>(u.allFinite() && v.allFinite() && v.norm() > 0,
                        "probe::sweep_line: u and v must be finite and v non-zero");
  return detail::sweep_impl(net, Eigen::VectorXd(u), Eigen::VectorXd(v), o, "probe::sweep_line");
}

/// The noise statistics of a sweep's gradient (see analyse in probe/noise.hpp), with the
/// tolerance of the degenerate cases scaled by the sweep's rounding magnitude, so a looks-linear
/// float net whose constant gradient nearly cancels is still reported as constant.
inline noise_stats analyse(const sweep_result& r, const noise_options& opt = {}) {
  const double scale = r.magnitude.size() ? r.magnitude.maxCoeff() : 0.0;
  return analyse(r.gradient, opt, scale);
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_SWEEP_HPP
