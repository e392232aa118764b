// shatter: the gradient sweep, exact input-gradients of a network along a line of inputs.
#ifndef SHATTER_PROBE_SWEEP_HPP
#define SHATTER_PROBE_SWEEP_HPP

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <exception>
#include <utility>
#include <vector>

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/elementwise.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/core/error.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/layer/residual.hpp"
#include "shatter/network/sequential.hpp"
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
  /// tangent when every layer supports it and bn != through, backprop otherwise.
  automatic,
  /// Forward-mode: the input tangent dx/dt is pushed through the network beside the batch, in
  /// the same matrix products ([X | dX/dt] as one 2M-column batch). Supports dense, relu, crelu,
  /// batch_norm, residual, sequential and every elementwise activation.
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

/// Calls f(leaf) for every non-container layer of `l` in forward order, descending into
/// sequential networks and residual branches.
template <class T, class F>
void for_each_leaf(layer<T>& l, F&& f) {
  if (auto* s = dynamic_cast<sequential<T>*>(&l)) {
    for (std::size_t i = 0; i < s->size(); ++i) for_each_leaf((*s)[i], f);
  } else if (auto* r = dynamic_cast<residual<T>*>(&l)) {
    for_each_leaf(r->branch(), f);
  } else {
    f(l);
  }
}

/// Saves what a probe changes in a network (running statistics, batch-norm gradient modes, the
/// input-gradient switch) and restores it on destruction, so probing leaves the network as it was.
template <class T>
class network_state_guard {
 public:
  explicit network_state_guard(layer<T>& net) : net_(net), input_grad_(net.input_gradient()) {
    net.collect_buffers("", buffers_);
    for (auto& b : buffers_) saved_.push_back(*b.value);
    for_each_leaf(net, [this](layer<T>& l) {
      if (auto* bn = dynamic_cast<batch_norm<T>*>(&l)) modes_.emplace_back(bn, bn->gradient_mode());
    });
  }
  ~network_state_guard() {
    for (std::size_t i = 0; i < buffers_.size(); ++i) *buffers_[i].value = saved_[i];
    for (auto& m : modes_) m.first->set_gradient_mode(m.second);
    net_.set_input_gradient(input_grad_);
  }
  network_state_guard(const network_state_guard&) = delete;
  network_state_guard& operator=(const network_state_guard&) = delete;

 private:
  layer<T>& net_;
  bool input_grad_;
  std::vector<tensor_ref<T>> buffers_;
  std::vector<matrix<T>> saved_;
  std::vector<std::pair<batch_norm<T>*, bn_gradient>> modes_;
};

namespace detail {

inline void check_sweep_options(const sweep_options& o, const char* who) {
  require<config_error>(std::isfinite(o.from) && std::isfinite(o.to), who,
                        ": the range must be finite, got [", o.from, ", ", o.to, "]");
  require<config_error>(o.from < o.to, who, ": the range [", o.from, ", ", o.to, "] is ",
                        o.from == o.to ? "empty" : "reversed", "; need from < to");
  require<config_error>(o.points >= 2, who, ": need at least 2 points, got ", o.points);
}

/// Whether the tangent (forward-mode) path knows every layer of l.
template <class T>
bool tangent_supported(layer<T>& l) {
  bool ok = true;
  for_each_leaf(l, [&ok](layer<T>& x) {
    ok = ok && (dynamic_cast<dense<T>*>(&x) || dynamic_cast<crelu<T>*>(&x) ||
                dynamic_cast<batch_norm<T>*>(&x) || dynamic_cast<elementwise<T>*>(&x));
  });
  return ok;
}

/// Whether the tangent path only reads `l` (dense, relu, crelu, nested in sequential or
/// residual), so that disjoint chunks of points may run through it concurrently.
template <class T>
bool tangent_pure(layer<T>& l) {
  bool ok = true;
  for_each_leaf(l, [&ok](layer<T>& x) {
    ok = ok &&
         (dynamic_cast<dense<T>*>(&x) || dynamic_cast<relu<T>*>(&x) || dynamic_cast<crelu<T>*>(&x));
  });
  return ok;
}

/// Forward mode: z = [H | D] (features x 2m) holds the batch H and its tangent D = dH/dt;
/// replaces z by the layer's [Y | dY/dt]. `tmp` is scratch space.
/// `magnitude`, if given, receives the row-0 |W| |dX/dt| of the last dense layer run.
template <class T>
void tangent_forward(layer<T>& l, matrix<T>& z, matrix<T>& tmp, index m, mode md,
                     row_vector<T>* magnitude = nullptr) {
  if (auto* s = dynamic_cast<sequential<T>*>(&l)) {
    for (std::size_t i = 0; i < s->size(); ++i) {
      const bool last_dense = i + 1 == s->size() && dynamic_cast<dense<T>*>(&(*s)[i]) != nullptr;
      tangent_forward((*s)[i], z, tmp, m, md, last_dense ? magnitude : nullptr);
    }
  } else if (auto* r = dynamic_cast<residual<T>*>(&l)) {
    const matrix<T> zin = z;
    tangent_forward(r->branch(), z, tmp, m, md);
    z = zin + r->beta() * z;
  } else if (auto* d = dynamic_cast<dense<T>*>(&l)) {
    require<shape_error>(z.rows() == d->in_size(), d->describe(), ": expected ", d->in_size(),
                         " features per sample, got ", z.rows());
    tmp.resize(d->out_size(), z.cols());
    tmp.noalias() = d->weight() * z;
    if (d->has_bias()) tmp.leftCols(m).colwise() += d->bias().col(0);
    if (magnitude) *magnitude = (d->weight().cwiseAbs() * z.rightCols(m).cwiseAbs()).row(0);
    std::swap(z, tmp);
  } else if (dynamic_cast<relu<T>*>(&l)) {
    z.rightCols(m) = (z.leftCols(m).array() > T(0)).select(z.rightCols(m), T(0));
    z.leftCols(m) = z.leftCols(m).cwiseMax(T(0));
  } else if (dynamic_cast<crelu<T>*>(&l)) {
    const index n = z.rows();
    tmp.resize(2 * n, 2 * m);
    const auto h = z.leftCols(m).array();
    const auto dz = z.rightCols(m).array();
    tmp.topLeftCorner(n, m).array() = h.max(T(0));
    tmp.bottomLeftCorner(n, m).array() = (-h).max(T(0));
    tmp.topRightCorner(n, m).array() = (h >= T(0)).select(dz, T(0));
    tmp.bottomRightCorner(n, m).array() = (h < T(0)).select(-dz, T(0));
    std::swap(z, tmp);
  } else if (auto* bn = dynamic_cast<batch_norm<T>*>(&l)) {
    const matrix<T> h = z.leftCols(m);
    z.leftCols(m) = bn->forward(h, md);
    const auto& inv = bn->last_inv_std();
    const index c = inv.size(), s = z.rows() / c;
    for (index k = 0; k < c; ++k) z.block(k * s, m, s, m) *= bn->gamma()(k, 0) * inv(k);
  } else if (auto* e = dynamic_cast<elementwise<T>*>(&l)) {
    // Elementwise: the Jacobian is diagonal, so J D = J^T D = backward(D).
    const matrix<T> h = z.leftCols(m), dz = z.rightCols(m);
    z.leftCols(m) = e->forward(h, md);
    z.rightCols(m) = e->backward(dz);
  } else {
    throw config_error(shatter::detail::cat("probe: the tangent method does not support ",
                                            l.describe(), "; use gradient_method::backprop"));
  }
}

/// The common sweep over inputs x(t) = u + t v (u, v of the network's input size).
template <class T>
sweep_result sweep_impl(layer<T>& net, const Eigen::VectorXd& u, const Eigen::VectorXd& v,
                        const sweep_options& o, const char* who) {
  check_sweep_options(o, who);
  require<shape_error>(net.out_size() == 1, who, ": the network must have a scalar output, ",
                       net.describe(), " has ", net.out_size(), " outputs");
  const index m = o.points, d = u.size();
  sweep_result r;
  r.t.resize(m);
  for (index i = 0; i < m; ++i) r.t(i) = o.from + (o.to - o.from) * double(i) / double(m - 1);
  r.t(m - 1) = o.to;

  network_state_guard<T> guard(net);
  const mode md = o.bn == bn_statistics::running ? mode::eval : mode::train;
  const bool tangent_ok = o.bn != bn_statistics::through && tangent_supported(net);
  gradient_method method = o.method;
  if (method == gradient_method::automatic)
    method = tangent_ok ? gradient_method::tangent : gradient_method::backprop;
  require<config_error>(method != gradient_method::tangent || o.bn != bn_statistics::through, who,
                        ": the tangent method cannot differentiate through batch statistics "
                        "(bn_statistics::through); use backprop or automatic");
  require<config_error>(method != gradient_method::tangent || tangent_ok, who,
                        ": the tangent method does not support every layer of ", net.describe(),
                        "; use backprop or automatic");
  r.method = method;
  r.output.resize(m);
  r.gradient.resize(m);

  if (method == gradient_method::tangent) {
    // Without batch norm or stateful activations the points are independent: split them into
    // one chunk per thread (one synchronisation per sweep instead of one per product).
    const index chunks =
        tangent_pure(net) ? std::max<index>(1, std::min<index>(threads(), m / 64)) : 1;
    r.magnitude = Eigen::VectorXd::Zero(m);
    std::exception_ptr failure;
#ifdef _OPENMP
#pragma omp parallel for num_threads(int(chunks)) schedule(static, 1) if (chunks > 1)
#endif
    for (index c = 0; c < chunks; ++c) {
      try {
        const index i0 = c * m / chunks, mc = (c + 1) * m / chunks - i0;
        matrix<T> z(d, 2 * mc), tmp;
        for (index i = 0; i < mc; ++i) {
          z.col(i) = (u + r.t(i0 + i) * v).template cast<T>();
          z.col(mc + i) = v.template cast<T>();
        }
        row_vector<T> mag;
        tangent_forward(net, z, tmp, mc, md, &mag);
        require<shape_error>(z.rows() == 1, who, ": the network produced ", z.rows(),
                             " outputs per sample; need 1");
        r.output.segment(i0, mc) = z.leftCols(mc).transpose().template cast<double>();
        r.gradient.segment(i0, mc) = z.rightCols(mc).transpose().template cast<double>();
        if (mag.size() == mc) r.magnitude.segment(i0, mc) = mag.transpose().template cast<double>();
      } catch (...) {
#ifdef _OPENMP
#pragma omp critical(shatter_probe_sweep)
#endif
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    r.magnitude = r.magnitude.cwiseMax(r.gradient.cwiseAbs());
  } else {
    matrix<T> x(d, m);
    for (index i = 0; i < m; ++i) x.col(i) = (u + r.t(i) * v).template cast<T>();
    for_each_leaf(net, [&o](layer<T>& l) {
      if (auto* bn = dynamic_cast<batch_norm<T>*>(&l))
        bn->set_gradient_mode(o.bn == bn_statistics::through ? bn_gradient::through_batch_stats
                                                             : bn_gradient::fixed_stats);
    });
    net.set_input_gradient(true);
    const matrix<T>& y = net.forward(x, md);
    require<shape_error>(y.rows() == 1 && y.cols() == m, who, ": the network produced a ", y.rows(),
                         " x ", y.cols(), " output for a ", d, " x ", m, " batch; need 1 x ", m);
    r.output = y.transpose().template cast<double>();
    const vector<T> vt = v.template cast<T>();
    if (o.bn != bn_statistics::through) {
      const matrix<T> dy = matrix<T>::Ones(1, m);
      const matrix<T>& dx = net.backward(dy);
      r.gradient = (vt.transpose() * dx).transpose().template cast<double>();
    } else {
      // The diagonal of the full Jacobian: one backward pass per output, dy = e_i.
      matrix<T> dy = matrix<T>::Zero(1, m);
      for (index i = 0; i < m; ++i) {
        dy(0, i) = T(1);
        const matrix<T>& dx = net.backward(dy);
        r.gradient(i) = double(vt.dot(dx.col(i)));
        dy(0, i) = T(0);
      }
    }
  }
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
/// (batch-norm running statistics and modes) is left as it was, but its layers' caches refer to
/// the sweep's own batch: run forward again before calling backward on the network yourself.
/// Not thread-safe for one network; distinct networks may be swept concurrently. Throws
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
