// shatter: shattering during training: the gradient probe run on fixed inputs every N steps.
#ifndef SHATTER_PROBE_TRAINING_PROBE_HPP
#define SHATTER_PROBE_TRAINING_PROBE_HPP

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/io/json.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/probe/noise.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/probe/units.hpp"

namespace shatter::probe {

/// What the probe measured at one step, over its lines (all means over lines, then points):
/// lag-1 autocorrelation and spectral slope of the input gradient along each line (slope NaN
/// when every line's gradient is constant), the mean input-gradient norm ||grad_x f|| over the
/// lines' points, and the proportions of rectifier units active for an input and co-active for a
/// pair of inputs (unit_activity_line, averaged over layers).
struct training_probe_record {
  std::int64_t step = 0;
  index lines = 0;
  double lag1_mean = 0, lag1_std = 0;
  double slope_mean = 0, slope_std = 0;
  double grad_norm = 0;
  double active = 0, coactive = 0;
  std::string verdict;
};

/// Settings of the training probe: probe every `every` steps (>= 1), `points` per line (>= 8);
/// batch norms take each line's batch statistics, held fixed (sweep's default).
struct training_probe_options {
  std::int64_t every = 100;
  index points = 64;
};

/// The record as one JSON object on one line (no newline): keys step, lines, lag1_mean,
/// lag1_std, slope_mean, slope_std, grad_norm, active, coactive, verdict; non-finite numbers as
/// null. Numbers carry 17 significant digits.
inline std::string to_json_line(const training_probe_record& r) {
  auto num = [](double x) {
    if (!std::isfinite(x)) return std::string("null");
    std::ostringstream s;
    s << std::setprecision(17) << x;
    return s.str();
  };
  std::string out = "{\"step\":" + std::to_string(r.step) +
                    ",\"lines\":" + std::to_string(r.lines) + ",\"lag1_mean\":" + num(r.lag1_mean) +
                    ",\"lag1_std\":" + num(r.lag1_std) + ",\"slope_mean\":" + num(r.slope_mean) +
                    ",\"slope_std\":" + num(r.slope_std) + ",\"grad_norm\":" + num(r.grad_norm) +
                    ",\"active\":" + num(r.active) + ",\"coactive\":" + num(r.coactive) +
                    ",\"verdict\":";
  io::append_json_string(out, r.verdict);
  return out + "}";
}

/// The mean input-gradient norm (1/M) sum_i ||grad_x f(x_i)|| of a scalar-output network over the
/// columns of x, by backpropagation with batch norms at the batch's statistics held fixed. The
/// network's state is restored.
template <class T>
double mean_input_gradient_norm(layer<T>& net, const matrix<T>& x) {
  require<shape_error>(net.out_size() == 1 && x.rows() == net.in_size() && x.cols() >= 1,
                       "probe::mean_input_gradient_norm: needs a scalar-output network and a "
                       "batch of its input size");
  network_state_guard<T> guard(net);
  for_each_leaf(net, [](layer<T>& l, const std::string&) {
    if (auto* bn = dynamic_cast<batch_norm<T>*>(&l))
      bn->set_gradient_mode(bn_gradient::fixed_stats);
  });
  const index m = x.cols();
  plan<T> p(net, m, plan_mode::train);
  p.forward(const_batch_view<T>(x.data(), x.rows(), m), mode::train);
  const matrix<T> dy = matrix<T>::Ones(1, m);
  const auto dx = p.backward(const_batch_view<T>(dy.data(), 1, m), true, false);
  double s = 0;
  for (index i = 0; i < m; ++i) s += double(dx.col(i).template cast<double>().norm());
  return s / double(m);
}

/// Probes a network during training. It keeps a reference to the network and fixed lines
/// x(t) = a_k + t (b_k - a_k), t in [0, 1], between pairs of inputs (columns 2k and 2k + 1 of
/// `pairs`); the scalar probed is w . net(x), w a fixed unit vector of the network's output size.
/// probe(step) measures now (on a copy of the network, which training never sees) and appends a
/// record; as a fit on_step callback (operator(), any report with a `step` member) it probes when
/// step is a multiple of `every`. `on_record`, if set, is called with each new record (e.g. to
/// write a log line). config_error for bad options, an odd number of inputs or a zero w;
/// shape_error for sizes that do not match the network.
template <class T>
class training_probe {
 public:
  training_probe(layer<T>& net, const matrix<T>& pairs, const Eigen::VectorXd& w,
                 const training_probe_options& o = {})
      : net_(net), pairs_(pairs), w_(w), o_(o) {
    require<config_error>(o.every >= 1 && o.points >= 8,
                          "training_probe: need every >= 1 and points >= 8, got ", o.every, ", ",
                          o.points);
    require<config_error>(pairs.cols() >= 2 && pairs.cols() % 2 == 0,
                          "training_probe: needs an even number (>= 2) of inputs, got ",
                          pairs.cols());
    require<shape_error>(pairs.rows() == net.in_size() && w.size() == net.out_size(),
                         "training_probe: inputs of size ", net.in_size(), " and w of size ",
                         net.out_size(), " needed, got ", pairs.rows(), " and ", w.size());
    require<config_error>(w.allFinite() && w.norm() > 0,
                          "training_probe: w must be finite, "
                          "non-zero");
    w_ /= w_.norm();
  }

  /// Probes now and appends the record (see training_probe_record).
  const training_probe_record& probe(std::int64_t step) {
    sequential<T> s;
    s.add(net_.clone());
    dense<T> proj(w_.size(), 1, false, no_init);
    proj.weight() = w_.transpose().template cast<T>();
    s.add(std::move(proj));
    sweep_options so;
    so.from = 0;
    so.to = 1;
    so.points = o_.points;
    std::vector<noise_stats> stats;
    training_probe_record r;
    r.step = step;
    r.lines = pairs_.cols() / 2;
    const Eigen::VectorXd t = detail::sweep_points(so);
    for (index k = 0; k < r.lines; ++k) {
      const Eigen::VectorXd a = pairs_.col(2 * k).template cast<double>();
      const Eigen::VectorXd v = pairs_.col(2 * k + 1).template cast<double>() - a;
      stats.push_back(analyse(sweep_line(s, a, v, so)));
      matrix<T> x(a.size(), so.points);
      for (index i = 0; i < so.points; ++i) x.col(i) = (a + t(i) * v).template cast<T>();
      r.grad_norm += mean_input_gradient_norm(s, x) / double(r.lines);
      const auto act = unit_activity_line(s, a, v, so);
      for (const auto& l : act) {
        r.active += l.active / double(act.size() * std::size_t(r.lines));
        r.coactive += l.coactive / double(act.size() * std::size_t(r.lines));
      }
    }
    const noise_summary sum = summarise(stats);
    r.lag1_mean = sum.lag1_mean;
    r.lag1_std = sum.lag1_std;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    r.slope_mean = sum.slope_seeds ? sum.slope_mean : nan;
    r.slope_std = sum.slope_seeds ? sum.slope_std : nan;
    r.verdict = to_string(sum.verdict);
    records_.push_back(r);
    if (on_record) on_record(records_.back());
    return records_.back();
  }

  /// The fit callback: probes after every `every`-th step.
  template <class Report>
  void operator()(Report& report) {
    if (report.step % o_.every == 0) probe(report.step);
  }

  const std::vector<training_probe_record>& records() const { return records_; }
  std::function<void(const training_probe_record&)> on_record;

 private:
  layer<T>& net_;
  matrix<T> pairs_;
  Eigen::VectorXd w_;
  training_probe_options o_;
  std::vector<training_probe_record> records_;
};

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_TRAINING_PROBE_HPP
