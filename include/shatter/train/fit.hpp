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
  require<config_error>(o.epochs >= 0, "fit: epochs must be >= 0, got ", o.epochs);
  require<config_error>(o.batch_size >= 1, "fit: batch size must be >= 1, got ", o.batch_size);
  require<config_error>(o.eval_batch_size >= 1, "fit: evaluation batch size must be >= 1, got ",
                        o.eval_batch_size);
  require<config_error>(o.progress_every >= 1, "fit: progress_every must be >= 1, got ",
                        o.progress_every);
  require<config_error>(o.start_step >= 0, "fit: start_step must be >= 0, got ", o.start_step);
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
  using clock = std::chrono::steady_clock;
  const index n = train.size();
  const std::int64_t per_epoch =
      o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
  require<config_error>(per_epoch >= 1, "fit: drop_last with batch size ", o.batch_size,
                        " larger than the training set (", n, " samples) leaves no batch");

  detail::input_gradient_guard<T> guard{net, net.input_gradient()};
  net.set_input_gradient(false);

  fit_result result;
  std::vector<index> order;
  matrix<T> xb;
  label_vector yb;
  std::int64_t step = o.start_step;
  const std::int64_t end_step = o.max_steps >= 0 ? o.max_steps : per_epoch * o.epochs;
  std::ostream* out = o.progress;
  auto stop_now = [&] { return step >= end_step; };

  for (std::int64_t epoch = step / per_epoch; epoch < o.epochs && !stop_now(); ++epoch) {
    const auto t0 = clock::now();
    if (o.shuffle)
      epoch_order(o.seed, epoch, n, order);
    else
      epoch_order_identity(n, order);
    double loss_sum = 0, window_loss = 0;
    index seen = 0, correct = 0, window_seen = 0;
    std::int64_t finite_batches = 0, window_batches = 0, skipped = 0;
    auto tw = clock::now();
    double lr = opt.learning_rate();
    for (std::int64_t b = step - epoch * per_epoch; b < per_epoch && !stop_now(); ++b) {
      const index first = b * o.batch_size;
      const index m = std::min(o.batch_size, n - first);
      xb.resize(train.features(), m);
      yb.resize(static_cast<std::size_t>(m));
      for (index k = 0; k < m; ++k) {
        const index j = order[static_cast<std::size_t>(first + k)];
        xb.col(k) = train.x.col(j);
        yb[static_cast<std::size_t>(k)] = train.labels[static_cast<std::size_t>(j)];
      }
      {
        rng g(o.seed ^ (0xd1b54a32d192ed03ULL * (static_cast<std::uint64_t>(step) + 1)));
        transform(xb, yb, g);
        require<shape_error>(
            xb.rows() == train.features() && xb.cols() == m && static_cast<index>(yb.size()) == m,
            "fit: the batch transform changed the batch's size");
      }
      lr = sched.lr_at(o.schedule_per_epoch ? epoch : step);
      opt.set_learning_rate(lr);

      const matrix<T>& y = net.forward(xb, mode::train);
      const double l = static_cast<double>(loss.forward(y, yb));
      std::string problem;
      index batch_correct = 0;
      if (!std::isfinite(l)) {
        const auto where = find_nonfinite_forward(net, xb);
        problem = detail::cat("non-finite loss (", l, ")",
                              where.found() ? "; first non-finite: " + where.where
                                            : std::string("; every layer output is finite"));
      } else {
        batch_correct = correct_count(y, yb);
        net.backward(loss.gradient());
        const auto where = find_nonfinite_gradient(net);
        if (where.found())
          problem = "non-finite gradient, first (going backward from the loss) in " + where.where;
      }
      ++step;
      step_report sr;
      sr.epoch = epoch;
      sr.step = step;
      sr.learning_rate = lr;
      if (!problem.empty()) {
        const std::string msg = detail::cat("fit: step ", step, " (epoch ", epoch + 1, ", batch ",
                                            b + 1, " of ", per_epoch, "): ", problem);
        if (o.on_nonfinite == nonfinite_policy::stop) throw numeric_error(msg);
        ++skipped;
        ++result.skipped_batches;
        if (out) *out << msg << "; batch skipped\n" << std::flush;
        sr.loss = l;
        sr.skipped = true;
      } else {
        opt.step();
        correct += batch_correct;
        loss_sum += l;
        window_loss += l;
        seen += m;
        window_seen += m;
        ++finite_batches;
        ++window_batches;
        sr.loss = l;
      }
      if (o.on_step) o.on_step(sr);
      if (out && (step % o.progress_every == 0)) {
        const double secs = std::chrono::duration<double>(clock::now() - tw).count();
        const double eta = secs / static_cast<double>(std::max<std::int64_t>(1, window_batches)) *
                           static_cast<double>(per_epoch - b - 1);
        std::ostringstream line;
        line << "epoch " << epoch + 1 << "/" << o.epochs << "  step " << b + 1 << "/" << per_epoch
             << "  loss " << std::setprecision(4)
             << (window_batches ? window_loss / static_cast<double>(window_batches) : NAN)
             << "  lr " << std::setprecision(3) << lr << "  " << std::fixed << std::setprecision(0)
             << (secs > 0 ? static_cast<double>(window_seen) / secs : 0) << " samples/s  eta "
             << eta << " s\n";
        *out << line.str() << std::flush;
        window_loss = 0;
        window_seen = 0;
        window_batches = 0;
        tw = clock::now();
      }
    }
    const double train_secs = std::chrono::duration<double>(clock::now() - t0).count();
    epoch_report r;
    r.epoch = epoch;
    r.step = step;
    r.train_loss = finite_batches ? loss_sum / static_cast<double>(finite_batches) : NAN;
    r.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0;
    r.samples_per_second = train_secs > 0 ? static_cast<double>(seen) / train_secs : 0;
    r.learning_rate = lr;
    r.skipped_batches = skipped;
    if (!test.empty()) r.test = evaluate(net, loss, test, o.eval_batch_size);
    r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    if (out) {
      std::ostringstream line;
      line << "epoch " << epoch + 1 << "/" << o.epochs << " done: train loss "
           << std::setprecision(4) << r.train_loss << " acc " << r.train_accuracy;
      if (r.test.samples) line << " | test loss " << r.test.loss << " acc " << r.test.accuracy;
      line << " | " << std::fixed << std::setprecision(1) << r.seconds << " s, "
           << std::setprecision(0) << r.samples_per_second << " samples/s";
      if (skipped) line << " | " << skipped << " batches skipped";
      *out << line.str() << "\n" << std::flush;
    }
    result.epochs.push_back(r);
    if (o.on_epoch) o.on_epoch(r);
  }
  result.steps = step;
  return result;
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
