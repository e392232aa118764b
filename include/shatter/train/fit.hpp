// shatter: the training loop helper (shuffled mini-batches, schedule, evaluation, progress).
#ifndef SHATTER_TRAIN_FIT_HPP
#define SHATTER_TRAIN_FIT_HPP

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/optim/optimizer.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/train/evaluate.hpp"
#include "shatter/train/nonfinite.hpp"
#include "shatter/train/shuffle.hpp"

namespace shatter {

/// What `fit` does when a loss or a gradient is NaN or infinite.
enum class nonfinite_policy {
  stop,       ///< throw numeric_error naming the step and where it appeared (parameters untouched)
  skip_batch  ///< skip the update for this batch, count it, and go on
};

/// Summary of one finished epoch, passed to `fit_options::on_epoch` and kept in `fit_result`.
struct epoch_report {
  std::int64_t epoch = 0;            ///< 0-based index of the epoch
  std::int64_t step = 0;             ///< global step count at its end (batches seen, incl. skipped)
  double train_loss = 0;             ///< mean loss of its (finite) training batches, mode::train
  double train_accuracy = 0;         ///< accuracy on those batches, before each update
  evaluation test;                   ///< test set in mode::eval (samples = 0 without test data)
  double seconds = 0;                ///< wall time of the epoch including evaluation
  double samples_per_second = 0;     ///< training throughput (excluding evaluation)
  double learning_rate = 0;          ///< learning rate of its last step
  std::int64_t skipped_batches = 0;  ///< batches skipped for non-finite values in this epoch
};

/// One optimiser step, passed to `fit_options::on_step`.
struct step_report {
  std::int64_t epoch = 0;    ///< 0-based epoch
  std::int64_t step = 0;     ///< global step count after this step (1 after the first)
  double loss = 0;           ///< the batch's loss (possibly non-finite when skipped)
  double learning_rate = 0;  ///< the learning rate used
  bool skipped = false;      ///< the batch was skipped for a non-finite value
};

/// Options of `fit`. Time for the schedule is the global step (or the epoch); a step is one
/// mini-batch. Resuming at `start_step` reproduces the uninterrupted run exactly (single thread)
/// when the network, optimiser state and `steps()` are restored as well, since the sample order
/// depends only on (seed, epoch).
struct fit_options {
  std::int64_t epochs = 1;            ///< epochs to train (>= 0)
  index batch_size = 128;             ///< samples per step (>= 1)
  std::uint64_t seed = 1;             ///< seed of the per-epoch shuffle
  bool shuffle = true;                ///< false: samples in data order
  bool drop_last = false;             ///< drop a final partial batch of each epoch
  bool schedule_per_epoch = false;    ///< schedule time = epoch index instead of global step
  std::int64_t start_step = 0;        ///< resume: global step to start at (>= 0)
  std::int64_t max_steps = -1;        ///< stop after this global step (-1: no limit)
  index eval_batch_size = 1000;       ///< batch size for evaluation (>= 1)
  std::ostream* progress = nullptr;   ///< progress lines go here (null: silent)
  std::int64_t progress_every = 100;  ///< steps between progress lines (>= 1)
  nonfinite_policy on_nonfinite = nonfinite_policy::stop;
  std::function<void(const epoch_report&)> on_epoch;  ///< after each epoch (log, checkpoint)
  std::function<void(const step_report&)> on_step;    ///< after each step (may be empty)
};

/// What `fit` did: one report per epoch run (an epoch resumed in the middle, or cut short by
/// `max_steps`, reports only the batches it ran), the final global step count and the number of
/// skipped batches.
struct fit_result {
  std::vector<epoch_report> epochs;
  std::int64_t steps = 0;
  std::int64_t skipped_batches = 0;
};

namespace detail {
/// Restores a network's input-gradient flag when leaving a scope (also on exceptions).
template <class T>
struct input_gradient_guard {
  sequential<T>& net;
  bool saved;
  ~input_gradient_guard() { net.set_input_gradient(saved); }
};

/// Throws config_error naming the first option of `fit` that is out of range.
inline void check_fit_options(const fit_options& o) {
  require<config_error>(o.epochs >= 0, "fit: epochs must be >= 0, got ", o.epochs);
  require<config_error>(o.batch_size >= 1, "fit: batch size must be >= 1, got ", o.batch_size);
  require<config_error>(o.eval_batch_size >= 1, "fit: evaluation batch size must be >= 1, got ",
                        o.eval_batch_size);
  require<config_error>(o.progress_every >= 1, "fit: progress_every must be >= 1, got ",
                        o.progress_every);
  require<config_error>(o.start_step >= 0, "fit: start_step must be >= 0, got ", o.start_step);
}

/// Checks that the training set is not empty (config_error) and that both data sets are valid
/// (data_error) and match the network's input and output sizes (shape_error), naming the set.
template <class T>
void check_fit_data(const sequential<T>& net, const dataset<T>& train, const dataset<T>& test) {
  require<config_error>(!train.empty(), "fit: the training set is empty");
  train.validate("fit: training set");
  require<shape_error>(train.features() == net.in_size(), "fit: the network takes ", net.in_size(),
                       " features per sample but the training set has ", train.features());
  require<shape_error>(train.classes <= net.out_size(), "fit: the training set has ", train.classes,
                       " classes but the network has only ", net.out_size(), " outputs");
  if (!test.empty()) {
    test.validate("fit: test set");
    require<shape_error>(test.features() == net.in_size(), "fit: the network takes ", net.in_size(),
                         " features per sample but the test set has ", test.features());
  }
}

/// Batches in an epoch of `n` samples: the last one partial unless `o.drop_last`; config_error
/// when drop_last leaves no batch at all.
inline std::int64_t fit_batches_per_epoch(index n, const fit_options& o) {
  const std::int64_t per_epoch =
      o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
  require<config_error>(per_epoch >= 1, "fit: drop_last with batch size ", o.batch_size,
                        " larger than the training set (", n, " samples) leaves no batch");
  return per_epoch;
}

/// Wall time in seconds since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Copies the `m` samples order[first], ..., order[first + m - 1] of `train` into the batch `x`
/// (features x m) and `labels` (m entries); the buffers are reused across batches.
template <class T>
void gather_batch(const dataset<T>& train, const std::vector<index>& order, index first, index m,
                  matrix<T>& x, label_vector& labels) {
  x.resize(train.features(), m);
  labels.resize(static_cast<std::size_t>(m));
  for (index k = 0; k < m; ++k) {
    const index j = order[static_cast<std::size_t>(first + k)];
    x.col(k) = train.x.col(j);
    labels[static_cast<std::size_t>(k)] = train.labels[static_cast<std::size_t>(j)];
  }
}

/// Calls the batch transform on a gathered batch with a shatter::rng seeded from (seed, global
/// step), so that augmentation is reproducible on resume; shape_error if it resized the batch.
template <class T, class Transform>
void transform_batch(Transform& transform, matrix<T>& x, label_vector& labels, std::uint64_t seed,
                     std::int64_t step) {
  const index rows = x.rows(), m = x.cols();
  rng g(seed ^ (0xd1b54a32d192ed03ULL * (static_cast<std::uint64_t>(step) + 1)));
  transform(x, labels, g);
  require<shape_error>(x.rows() == rows && x.cols() == m && static_cast<index>(labels.size()) == m,
                       "fit: the batch transform changed the batch's size");
}

/// What forward, loss and backward gave on one training batch.
struct batch_outcome {
  double loss = 0;      ///< the batch's mean loss (possibly non-finite)
  index correct = 0;    ///< correctly classified samples (0 when the loss is non-finite)
  std::string problem;  ///< where the first non-finite value is; empty when everything is finite
};

/// Forward in mode::train and the loss; if the loss is finite, backward and a search of the
/// gradients for NaN/infinity, otherwise a search of the layer outputs and parameters (the
/// backward pass is then skipped). The optimiser is not touched.
template <class T, class Loss>
batch_outcome forward_backward(sequential<T>& net, Loss& loss, const matrix<T>& x,
                               const label_vector& labels) {
  batch_outcome r;
  const matrix<T>& y = net.forward(x, mode::train);
  r.loss = static_cast<double>(loss.forward(y, labels));
  if (!std::isfinite(r.loss)) {
    const auto where = find_nonfinite_forward(net, x);
    r.problem = detail::cat("non-finite loss (", r.loss, ")",
                            where.found() ? "; first non-finite: " + where.where
                                          : std::string("; every layer output is finite"));
  } else {
    r.correct = correct_count(y, labels);
    net.backward(loss.gradient());
    const auto where = find_nonfinite_gradient(net);
    if (where.found())
      r.problem = "non-finite gradient, first (going backward from the loss) in " + where.where;
  }
  return r;
}

/// Running sums of one epoch's finite (not skipped) batches: over the whole epoch for its report,
/// and over the window since the last progress line for that line.
struct epoch_tally {
  double loss_sum = 0;              ///< sum of the batch losses
  index seen = 0;                   ///< samples
  index correct = 0;                ///< correctly classified samples, before each update
  std::int64_t finite_batches = 0;  ///< batches summed
  std::int64_t skipped = 0;         ///< batches skipped for non-finite values
  double window_loss = 0;           ///< sum of the batch losses in the window
  index window_seen = 0;            ///< samples in the window
  std::int64_t window_batches = 0;  ///< batches in the window

  /// Adds a finite batch of `m` samples with mean loss `l`, `hits` of them classified correctly.
  void add(double l, index hits, index m) {
    correct += hits;
    loss_sum += l;
    window_loss += l;
    seen += m;
    window_seen += m;
    ++finite_batches;
    ++window_batches;
  }

  /// Starts a new progress window.
  void clear_window() {
    window_loss = 0;
    window_seen = 0;
    window_batches = 0;
  }
};

/// Writes the progress line after batch `b` (0-based) of `epoch`: the window's mean loss and
/// throughput over `secs` seconds, the learning rate, and the epoch's time left at that pace.
inline void print_progress(std::ostream& out, const fit_options& o, std::int64_t epoch,
                           std::int64_t b, std::int64_t per_epoch, double lr, const epoch_tally& t,
                           double secs) {
  const double eta = secs / static_cast<double>(std::max<std::int64_t>(1, t.window_batches)) *
                     static_cast<double>(per_epoch - b - 1);
  std::ostringstream line;
  line << "epoch " << epoch + 1 << "/" << o.epochs << "  step " << b + 1 << "/" << per_epoch
       << "  loss " << std::setprecision(4)
       << (t.window_batches ? t.window_loss / static_cast<double>(t.window_batches) : NAN)
       << "  lr " << std::setprecision(3) << lr << "  " << std::fixed << std::setprecision(0)
       << (secs > 0 ? static_cast<double>(t.window_seen) / secs : 0) << " samples/s  eta " << eta
       << " s\n";
  out << line.str() << std::flush;
}

/// The training part of an epoch's report, from its tally and its training time in seconds (the
/// caller adds the test evaluation and the total `seconds`).
inline epoch_report make_epoch_report(std::int64_t epoch, std::int64_t step, const epoch_tally& t,
                                      double lr, double train_secs) {
  epoch_report r;
  r.epoch = epoch;
  r.step = step;
  r.train_loss = t.finite_batches ? t.loss_sum / static_cast<double>(t.finite_batches) : NAN;
  r.train_accuracy = t.seen ? static_cast<double>(t.correct) / static_cast<double>(t.seen) : 0;
  r.samples_per_second = train_secs > 0 ? static_cast<double>(t.seen) / train_secs : 0;
  r.learning_rate = lr;
  r.skipped_batches = t.skipped;
  return r;
}

/// Writes the summary line of a finished epoch out of `epochs`.
inline void print_epoch_summary(std::ostream& out, const epoch_report& r, std::int64_t epochs) {
  std::ostringstream line;
  line << "epoch " << r.epoch + 1 << "/" << epochs << " done: train loss " << std::setprecision(4)
       << r.train_loss << " acc " << r.train_accuracy;
  if (r.test.samples) line << " | test loss " << r.test.loss << " acc " << r.test.accuracy;
  line << " | " << std::fixed << std::setprecision(1) << r.seconds << " s, " << std::setprecision(0)
       << r.samples_per_second << " samples/s";
  if (r.skipped_batches) line << " | " << r.skipped_batches << " batches skipped";
  out << line.str() << "\n" << std::flush;
}

/// The working state of one `fit` call: its arguments, the global step, the batch buffers reused
/// across steps and the result so far. `run` trains from `o.start_step` to the end.
template <class T, class Loss, class Transform>
class fit_loop {
 public:
  fit_loop(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
           const dataset<T>& train, const dataset<T>& test, const fit_options& o,
           Transform& transform, std::int64_t per_epoch)
      : net_(net),
        loss_(loss),
        opt_(opt),
        sched_(sched),
        train_(train),
        test_(test),
        o_(o),
        transform_(transform),
        per_epoch_(per_epoch),
        end_step_(o.max_steps >= 0 ? o.max_steps : per_epoch * o.epochs),
        step_(o.start_step) {}

  /// Runs the epochs from the one holding `o.start_step` on, until `o.epochs` or the step limit.
  fit_result run() {
    for (std::int64_t epoch = step_ / per_epoch_; epoch < o_.epochs && !done(); ++epoch)
      run_epoch(epoch);
    result_.steps = step_;
    return result_;
  }

 private:
  /// True once the step limit is reached.
  bool done() const { return step_ >= end_step_; }

  /// Trains the remaining batches of `epoch` (printing progress lines), then finishes it.
  void run_epoch(std::int64_t epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    if (o_.shuffle)
      epoch_order(o_.seed, epoch, train_.size(), order_);
    else
      epoch_order_identity(train_.size(), order_);
    epoch_tally t;
    auto window_start = std::chrono::steady_clock::now();
    double lr = opt_.learning_rate();
    for (std::int64_t b = step_ - epoch * per_epoch_; b < per_epoch_ && !done(); ++b) {
      lr = train_batch(epoch, b, t);
      if (o_.progress && step_ % o_.progress_every == 0) {
        print_progress(*o_.progress, o_, epoch, b, per_epoch_, lr, t, seconds_since(window_start));
        t.clear_window();
        window_start = std::chrono::steady_clock::now();
      }
    }
    finish_epoch(epoch, t, lr, t0);
  }

  /// One step on batch `b` of `epoch`: gather, transform, set the learning rate, forward and
  /// backward, then either the optimiser step or the non-finite policy; calls `o.on_step`.
  /// Returns the learning rate used.
  double train_batch(std::int64_t epoch, std::int64_t b, epoch_tally& t) {
    const index first = b * o_.batch_size;
    const index m = std::min(o_.batch_size, train_.size() - first);
    gather_batch(train_, order_, first, m, xb_, yb_);
    transform_batch(transform_, xb_, yb_, o_.seed, step_);
    const double lr = sched_.lr_at(o_.schedule_per_epoch ? epoch : step_);
    opt_.set_learning_rate(lr);
    const batch_outcome r = forward_backward(net_, loss_, xb_, yb_);
    ++step_;
    if (!r.problem.empty()) {
      skip_batch(epoch, b, r.problem, t);
    } else {
      opt_.step();
      t.add(r.loss, r.correct, m);
    }
    if (o_.on_step) {
      step_report sr;
      sr.epoch = epoch;
      sr.step = step_;
      sr.loss = r.loss;
      sr.learning_rate = lr;
      sr.skipped = !r.problem.empty();
      o_.on_step(sr);
    }
    return lr;
  }

  /// Applies `o.on_nonfinite` to batch `b` of `epoch`, whose values went non-finite: throws
  /// numeric_error naming the step, or counts the batch as skipped and says so in the progress.
  void skip_batch(std::int64_t epoch, std::int64_t b, const std::string& problem, epoch_tally& t) {
    const std::string msg = detail::cat("fit: step ", step_, " (epoch ", epoch + 1, ", batch ",
                                        b + 1, " of ", per_epoch_, "): ", problem);
    if (o_.on_nonfinite == nonfinite_policy::stop) throw numeric_error(msg);
    ++t.skipped;
    ++result_.skipped_batches;
    if (o_.progress) *o_.progress << msg << "; batch skipped\n" << std::flush;
  }

  /// Reports `epoch` (started at `t0`): evaluates the test set, prints the summary, keeps the
  /// report and calls `o.on_epoch`.
  void finish_epoch(std::int64_t epoch, const epoch_tally& t, double lr,
                    std::chrono::steady_clock::time_point t0) {
    epoch_report r = make_epoch_report(epoch, step_, t, lr, seconds_since(t0));
    if (!test_.empty()) r.test = evaluate(net_, loss_, test_, o_.eval_batch_size);
    r.seconds = seconds_since(t0);
    if (o_.progress) print_epoch_summary(*o_.progress, r, o_.epochs);
    result_.epochs.push_back(r);
    if (o_.on_epoch) o_.on_epoch(r);
  }

  sequential<T>& net_;
  Loss& loss_;
  optimizer<T>& opt_;
  const schedule& sched_;
  const dataset<T>& train_;
  const dataset<T>& test_;
  const fit_options& o_;
  Transform& transform_;
  const std::int64_t per_epoch_;  ///< batches per epoch
  const std::int64_t end_step_;   ///< the global step to stop at
  std::int64_t step_;             ///< global steps done (including skipped batches)
  fit_result result_;
  std::vector<index> order_;  ///< this epoch's sample order
  matrix<T> xb_;              ///< the batch's features
  label_vector yb_;           ///< the batch's labels
};
}  // namespace detail

/// Trains `net` on `train` with mini-batch steps: every epoch visits the samples in a seeded
/// random order (see `epoch_order`), gathers each batch into a reused buffer, runs forward in
/// mode::train, `loss.forward`, backward (the input gradient is switched off meanwhile), checks
/// the loss and every gradient for NaN/infinity, sets the optimiser's learning rate from
/// `sched` and steps it. After each epoch it evaluates `test` (if not empty) in mode::eval, prints
/// a summary to `o.progress` and calls `o.on_epoch`. `Loss` is any type with
/// `T forward(const matrix<T>& output, const label_vector& labels)` and
/// `const matrix<T>& gradient() const` (softmax_cross_entropy, mse).
/// Non-finite values: with nonfinite_policy::stop a numeric_error names the global step, the
/// epoch and where the value appeared first (see find_nonfinite_gradient / _forward); the
/// optimiser has not stepped, so the parameters are those of the last good step.
/// Errors: invalid options -> config_error; data not matching the network -> shape_error or
/// data_error naming the data set.
/// Thread safety: the network, loss and optimiser belong to this call while it runs (the data
/// sets are only read, so concurrent fits may share them); independent fits on distinct
/// networks may run on distinct threads.
/// With a batch transform (data augmentation): `transform(x, labels, g)` is called on every
/// gathered training batch (x: features x m, labels: m entries) before the forward pass and may
/// change both in place (keeping their sizes). `g` is a shatter::rng seeded from (o.seed, global
/// step), so augmented runs stay deterministic and resume exactly.
template <class T, class Loss, class Transform>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const dataset<T>& test, const fit_options& o,
               Transform&& transform) {
  detail::check_fit_options(o);
  detail::check_fit_data(net, train, test);
  const std::int64_t per_epoch = detail::fit_batches_per_epoch(train.size(), o);
  detail::input_gradient_guard<T> guard{net, net.input_gradient()};
  net.set_input_gradient(false);
  return detail::fit_loop<T, Loss, Transform>(net, loss, opt, sched, train, test, o, transform,
                                              per_epoch)
      .run();
}

/// fit without a batch transform (see above for everything else).
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const dataset<T>& test, const fit_options& o) {
  return fit(net, loss, opt, sched, train, test, o, [](matrix<T>&, label_vector&, rng&) {});
}

/// fit without a test set.
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const fit_options& o) {
  return fit(net, loss, opt, sched, train, dataset<T>{}, o);
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_FIT_HPP
