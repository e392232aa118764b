// shatter: learning-rate schedules (constant, step decay, cosine, linear warm-up).
#ifndef SHATTER_OPTIM_SCHEDULE_HPP
#define SHATTER_OPTIM_SCHEDULE_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"

namespace shatter {

/// A learning-rate schedule: a value type mapping a time t >= 0 (a step or an epoch count; the
/// caller decides, `fit_options::schedule_per_epoch`) to a learning rate. Built by the static
/// factories and optionally wrapped in a linear warm-up:
/// - constant(lr):                    lr
/// - step_decay(lr, milestones, g):   lr * g^(number of milestones <= t)   (PyTorch MultiStepLR)
/// - cosine(lr, total, floor):        floor + (lr - floor) (1 + cos(pi min(t, total) / total)) / 2
///                                    (PyTorch CosineAnnealingLR with eta_min = floor, T_max =
///                                    total; stays at floor after total)
/// - s.with_warmup(w, f0):            s(t) * (f0 + (1 - f0) t / w) for t < w, s(t) after
///                                    (PyTorch LinearLR(start_factor=f0, total_iters=w) chained
///                                    with s: the inner schedule runs on the same clock t).
/// Invalid arguments throw config_error. Thread safety: an immutable value; `lr_at` may be
/// called from any number of threads.
class schedule {
 public:
  /// lr at every t.
  static schedule constant(double lr) {
    schedule s(kind::constant, lr, "schedule::constant");
    return s;
  }

  /// lr multiplied by gamma at each milestone (t >= milestone); milestones are sorted here.
  static schedule step_decay(double lr, std::vector<std::int64_t> milestones, double gamma) {
    schedule s(kind::step, lr, "schedule::step_decay");
    require<config_error>(std::isfinite(gamma) && gamma >= 0,
                          "schedule::step_decay: gamma must be finite and >= 0, got ", gamma);
    for (auto m : milestones)
      require<config_error>(m >= 0, "schedule::step_decay: milestones must be >= 0, got ", m);
    std::sort(milestones.begin(), milestones.end());
    s.milestones_ = std::move(milestones);
    s.gamma_ = gamma;
    return s;
  }

  /// Half-cosine from lr at t = 0 to floor at t = total (total >= 1, 0 <= floor <= lr).
  static schedule cosine(double lr, std::int64_t total, double floor = 0.0) {
    schedule s(kind::cosine, lr, "schedule::cosine");
    require<config_error>(total >= 1, "schedule::cosine: total must be >= 1, got ", total);
    require<config_error>(std::isfinite(floor) && floor >= 0 && floor <= lr,
                          "schedule::cosine: floor must be in [0, lr = ", lr, "], got ", floor);
    s.total_ = total;
    s.floor_ = floor;
    return s;
  }

  /// This schedule with a linear warm-up over the first `steps` time units, starting at
  /// `start_factor` times the rate (steps >= 0, start_factor in [0, 1]; steps = 0: no warm-up).
  schedule with_warmup(std::int64_t steps, double start_factor = 0.1) const {
    require<config_error>(steps >= 0, "schedule::with_warmup: steps must be >= 0, got ", steps);
    require<config_error>(start_factor >= 0 && start_factor <= 1,
                          "schedule::with_warmup: start_factor must be in [0, 1], got ",
                          start_factor);
    schedule s = *this;
    s.warmup_ = steps;
    s.start_factor_ = start_factor;
    return s;
  }

  /// The learning rate at time t (t < 0 is treated as 0).
  double lr_at(std::int64_t t) const {
    t = std::max<std::int64_t>(t, 0);
    double lr = base_;
    switch (kind_) {
      case kind::constant:
        break;
      case kind::step: {
        const auto n =
            std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
        lr = base_ * std::pow(gamma_, static_cast<double>(n));
        break;
      }
      case kind::cosine: {
        const double pi = 3.14159265358979323846;
        const double x = static_cast<double>(std::min(t, total_)) / static_cast<double>(total_);
        lr = floor_ + (base_ - floor_) * (1 + std::cos(pi * x)) / 2;
        break;
      }
    }
    if (t < warmup_)
      lr *= start_factor_ +
            (1 - start_factor_) * static_cast<double>(t) / static_cast<double>(warmup_);
    return lr;
  }

  /// Same as lr_at(t).
  double operator()(std::int64_t t) const { return lr_at(t); }

  /// The base learning rate given to the factory.
  double base_lr() const { return base_; }

 private:
  enum class kind { constant, step, cosine };
  schedule(kind k, double lr, const char* who) : kind_(k), base_(lr) {
    require<config_error>(std::isfinite(lr) && lr >= 0, who,
                          ": learning rate must be finite and >= 0, got ", lr);
  }

  kind kind_;
  double base_;
  std::vector<std::int64_t> milestones_;
  double gamma_ = 1;
  std::int64_t total_ = 1;
  double floor_ = 0;
  std::int64_t warmup_ = 0;
  double start_factor_ = 1;
};

}  // namespace shatter

#endif  // SHATTER_OPTIM_SCHEDULE_HPP
