// shatter: the training loop (shuffled mini-batches, schedule, evaluation, progress, non-finite
// guard, run directory with checkpoints, log and exact resume, stop requests).
#ifndef SHATTER_TRAIN_FIT_HPP
#define SHATTER_TRAIN_FIT_HPP

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/optim/optimizer.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/train/evaluate.hpp"
#include "shatter/train/fit_record.hpp"
#include "shatter/train/nonfinite.hpp"
#include "shatter/train/run_directory.hpp"
#include "shatter/train/shuffle.hpp"

namespace shatter {

/// What `fit` does when a step meets a NaN or infinity (in the loss, a gradient, or the
/// parameters or running statistics after the update). Either way the step leaves nothing
/// behind: parameters, optimiser state and running statistics are those before the step.
enum class nonfinite_policy {
  stop,       ///< throw numeric_error naming the step and where it appeared
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
  bool stop = false;                 ///< set to true in `on_epoch` to end training here
};

/// One optimiser step, passed to `fit_options::on_step`.
struct step_report {
  std::int64_t epoch = 0;    ///< 0-based epoch
  std::int64_t step = 0;     ///< global step count after this step (1 after the first)
  double loss = 0;           ///< the batch's loss (possibly non-finite when skipped)
  double learning_rate = 0;  ///< the learning rate used
  bool skipped = false;      ///< the batch was skipped for a non-finite value
  bool stop = false;         ///< set to true in `on_step` to end training after this step
};

/// The length of a training run, for schedules given relative to it (see schedule_for_run).
struct run_length {
  std::int64_t steps_per_epoch = 0;  ///< batches per epoch
  std::int64_t epochs = 0;           ///< epochs of the whole run
  std::int64_t total_steps = 0;      ///< steps_per_epoch * epochs
};

/// A schedule made from the run's length, e.g. a cosine over the whole run after half an epoch
/// of warm-up: `[](const run_length& r) { return schedule::cosine(0.1, r.total_steps)
/// .with_warmup(r.steps_per_epoch / 2); }`. `fit` calls it once, before training.
using schedule_for_run = std::function<schedule(const run_length&)>;

/// Options of `fit`. Time for the schedule is the global step (or the epoch); a step is one
/// mini-batch. The sample order depends only on (seed, epoch), so a run resumed at any step
/// (from a run directory, or by hand with `start_step` and restored network and optimiser)
/// reproduces the uninterrupted run exactly (bitwise with one thread).
///
/// Run directory: with `run_dir` set, fit locks the directory (see run_directory), writes
/// `checkpoint.safetensors` after every epoch, every `checkpoint_every` steps, when a stop is
/// requested and when it reaches `max_steps`, and appends each finished epoch's line to
/// `log.jsonl` after its checkpoint. With `resume` it continues the run found there: the
/// checkpoint's options (`config` and fit's own: epochs, batch size, seed, shuffle, drop_last,
/// schedule_per_epoch, data set sizes) must match this call's (run_refused names each one that
/// differs, with both values), the log is cut back to the checkpoint, temporary files of
/// interrupted writes are removed, and a finished run is left as it is. Without `resume`, a
/// directory holding a checkpoint is refused (run_refused), so nothing is overwritten.
struct fit_options {
  std::int64_t epochs = 1;            ///< epochs to train (>= 0)
  index batch_size = 128;             ///< samples per step (>= 1)
  std::uint64_t seed = 1;             ///< seed of the per-epoch shuffle (and the transform's rng)
  bool shuffle = true;                ///< false: samples in data order
  bool drop_last = false;             ///< drop a final partial batch of each epoch (else keep it)
  bool schedule_per_epoch = false;    ///< schedule time = epoch index instead of global step
  std::int64_t start_step = 0;        ///< resume by hand: global step to start at (>= 0)
  std::int64_t max_steps = -1;        ///< stop after this global step (-1: no limit)
  index eval_batch_size = 1000;       ///< batch size for evaluation (>= 1)
  std::ostream* progress = nullptr;   ///< progress lines go here (null: silent)
  std::int64_t progress_every = 100;  ///< steps between progress lines (>= 1)
  nonfinite_policy on_nonfinite = nonfinite_policy::stop;
  std::function<void(epoch_report&)> on_epoch;  ///< after each finished epoch (may set stop)
  std::function<void(step_report&)> on_step;    ///< after each step (may set stop)
  /// Nonzero: stop at the next step boundary (checkpointing first with a run directory). Meant
  /// for a flag a signal handler sets, e.g. `&shatter::stop_signal` (see handle_stop_signals).
  const volatile std::sig_atomic_t* stop = nullptr;
  std::string run_dir;                ///< directory of the run (empty: none, nothing written)
  bool resume = false;                ///< continue the run in run_dir from its checkpoint
  std::int64_t checkpoint_every = 0;  ///< with run_dir: also checkpoint every N steps (0: not)
  /// With run_dir: the caller's options that change the result (name -> value, e.g. "lr" ->
  /// "0.1"), stored in every checkpoint and compared on resume.
  std::map<std::string, std::string> config;
  /// With run_dir: the epoch's line in log.jsonl, without the newline (default: a JSON object
  /// of the report, non-finite numbers as null).
  std::function<std::string(const epoch_report&)> log_line;
};

/// What `fit` did: one report per epoch it finished (an epoch resumed by hand in the middle
/// reports only the batches it ran; one resumed from a run directory, the whole epoch; an epoch
/// cut short by `max_steps` or a stop is not reported), the final global step count, the number
/// of batches skipped in this call, and the run's record over all its sessions (best and last
/// test figures, time).
struct fit_result {
  std::vector<epoch_report> epochs;
  std::int64_t steps = 0;
  std::int64_t skipped_batches = 0;
  bool stopped = false;           ///< ended early by `stop` or a callback's stop
  bool already_finished = false;  ///< resume found the run finished: nothing was done
  std::string checkpoint;         ///< the last checkpoint written or read (with run_dir)
  fit_record record;              ///< the run's record (see fit_record)
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
  require<config_error>(o.checkpoint_every >= 0, "fit: checkpoint_every must be >= 0, got ",
                        o.checkpoint_every);
  require<config_error>(!o.resume || !o.run_dir.empty(), "fit: resume needs a run_dir");
  require<config_error>(o.run_dir.empty() || o.start_step == 0,
                        "fit: start_step is for resuming by hand; with a run_dir use resume");
  for (const auto& kv : o.config)
    require<config_error>(!kv.first.empty() && kv.first.rfind("fit_options.", 0) != 0,
                          "fit: config names must be non-empty and not start with "
                          "\"fit_options.\", got \"",
                          kv.first, "\"");
}

/// Throws config_error when a training batch of one sample would reach a batch norm with
/// per-feature statistics (a variance over one sample), naming the layer and the batch sizes.
template <class T>
void check_single_sample_batches(sequential<T>& net, index n, const fit_options& o) {
  const index last = n % o.batch_size;
  const bool single = !o.drop_last && (std::min(n, o.batch_size) == 1 || last == 1);
  if (!single) return;
  for_each_leaf(net, [&](layer<T>& l, const std::string& path) {
    require<config_error>(l.kind() != "batch_norm" || l.input_shape().spatial() > 1, "fit: ", n,
                          " training samples in batches of ", o.batch_size,
                          " leave a batch of one sample, but layer ", path, " ", l.describe(),
                          " needs at least two per batch; set drop_last or change the batch "
                          "size");
  });
}

/// The options of fit that change the result, as "fit_options.<name>" config entries, added to
/// the caller's `o.config`.
inline std::map<std::string, std::string> fit_config(const fit_options& o, index train_n,
                                                     index test_n) {
  auto c = o.config;
  c["fit_options.epochs"] = std::to_string(o.epochs);
  c["fit_options.batch_size"] = std::to_string(o.batch_size);
  c["fit_options.seed"] = std::to_string(o.seed);
  c["fit_options.shuffle"] = o.shuffle ? "true" : "false";
  c["fit_options.drop_last"] = o.drop_last ? "true" : "false";
  c["fit_options.schedule_per_epoch"] = o.schedule_per_epoch ? "true" : "false";
  c["fit_options.training_samples"] = std::to_string(train_n);
  c["fit_options.test_samples"] = std::to_string(test_n);
  return c;
}

/// A JSON number, or null when `v` is not finite (JSON has no NaN or infinity).
inline std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

/// The default line of log.jsonl for an epoch: its report as one JSON object.
inline std::string default_log_line(const epoch_report& r) {
  return cat("{\"epoch\": ", r.epoch + 1, ", \"step\": ", r.step,
             ", \"train_loss\": ", json_number(r.train_loss),
             ", \"train_accuracy\": ", json_number(r.train_accuracy),
             ", \"test_loss\": ", r.test.samples ? json_number(r.test.loss) : "null",
             ", \"test_accuracy\": ", r.test.samples ? json_number(r.test.accuracy) : "null",
             ", \"learning_rate\": ", json_number(r.learning_rate),
             ", \"skipped_batches\": ", r.skipped_batches,
             ", \"seconds\": ", json_number(r.seconds), "}");
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

/// Refuses an optimiser that would train nothing, or not everything: one bound to parameters
/// that are not this network's (built for a copy of it) or that misses some of its parameters
/// (built before a layer was added). config_error naming the first few parameters and the count.
template <class T>
void check_optimizer_covers(sequential<T>& net, const optimizer<T>& opt) {
  std::set<const matrix<T>*> bound, mine;
  for (const auto& p : opt.parameters()) bound.insert(p.value);
  std::vector<std::string> uncovered, foreign;
  for (const auto& p : net.parameters()) {
    mine.insert(p.value);
    if (!bound.count(p.value)) uncovered.push_back(p.name);
  }
  for (const auto& p : opt.parameters())
    if (!mine.count(p.value)) foreign.push_back(p.name);
  auto names = [](const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", '" : "'") + v[i] + "'";
    return v.size() > 3 ? cat(s, " and ", v.size() - 3, " more") : s;
  };
  require<config_error>(foreign.empty(), "fit: the ", opt.kind(), " optimiser is bound to ",
                        foreign.size(), " parameter(s) that are not this network's (",
                        names(foreign),
                        "): was it built for a copy of the network? Build it from "
                        "net.parameters() of the network being trained");
  require<config_error>(uncovered.empty(), "fit: the ", opt.kind(), " optimiser does not cover ",
                        uncovered.size(), " of the network's parameters (", names(uncovered),
                        "): was a layer added after it was built? Build the optimiser last");
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

/// Copies of the tensors a step may change (parameters, optimiser state, running statistics),
/// so that a step that meets a non-finite value can be undone. The copies reuse their storage.
template <class T>
class step_undo {
 public:
  step_undo(sequential<T>& net, optimizer<T>& opt)
      : params_(net.parameters()), state_(opt.state()), buffers_(net.buffers()), opt_(opt) {}

  /// Saves the running statistics (before the forward pass, which updates them).
  void save_buffers() { copy_out(buffers_, saved_buffers_); }
  /// Saves the parameters, the optimiser state and its step counter (before the update).
  void save_update() {
    copy_out(params_, saved_params_);
    copy_out(state_, saved_state_);
    steps_ = opt_.steps();
  }
  /// Puts back the running statistics.
  void restore_buffers() { copy_in(saved_buffers_, buffers_); }
  /// Puts back the parameters, the optimiser state and its step counter.
  void restore_update() {
    copy_in(saved_params_, params_);
    copy_in(saved_state_, state_);
    opt_.set_steps(steps_);
  }
  /// The first parameter or running statistic holding a NaN or infinity ("" if none).
  std::string first_nonfinite(sequential<T>& net) const {
    for (const auto& p : params_)
      if (!p.value->allFinite()) return cat("parameter '", p.name, "' of ", layer_of(net, p.name));
    for (const auto& b : buffers_)
      if (!b.value->allFinite())
        return cat("running statistic '", b.name, "' of ", layer_of(net, b.name));
    return {};
  }

 private:
  static void copy_out(const std::vector<tensor_ref<T>>& from, std::vector<matrix<T>>& to) {
    to.resize(from.size());
    for (std::size_t i = 0; i < from.size(); ++i) to[i] = *from[i].value;
  }
  static void copy_in(const std::vector<matrix<T>>& from, std::vector<tensor_ref<T>>& to) {
    for (std::size_t i = 0; i < from.size(); ++i) *to[i].value = from[i];
  }

  std::vector<tensor_ref<T>> params_, state_, buffers_;
  std::vector<matrix<T>> saved_params_, saved_state_, saved_buffers_;
  optimizer<T>& opt_;
  std::int64_t steps_ = 0;
};

/// The working state of one `fit` call: its arguments, the global step, the batch buffers reused
/// across steps, the run's record and the result so far. `run` trains from the start step (or
/// the run directory's checkpoint) to the end, a stop or the step limit.
template <class T, class Loss, class Transform>
class fit_loop {
 public:
  fit_loop(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
           const dataset<T>& train, const dataset<T>& test, const fit_options& o,
           Transform& transform, std::int64_t per_epoch, run_directory* dir)
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
        step_(o.start_step),
        dir_(dir),
        config_(fit_config(o, train.size(), test.size())),
        undo_(net, opt) {}

  /// Runs the epochs from the one holding the start step on, until `o.epochs`, the step limit
  /// or a stop request; with a run directory, starts or resumes the run there first.
  fit_result run() {
    if (dir_ && !open_run()) return result_;
    for (std::int64_t epoch = step_ / per_epoch_; epoch < o_.epochs && !done() && !stopped_;
         ++epoch)
      run_epoch(epoch);
    if (dir_ && step_ != saved_step_) save_checkpoint_now("");
    result_.steps = step_;
    result_.stopped = stopped_;
    rec_.step = step_;
    result_.record = rec_;
    return result_;
  }

 private:
  /// True once the step limit is reached.
  bool done() const { return step_ >= end_step_; }

  /// True once a stop was requested (by the flag or a callback).
  bool stop_requested() {
    if (o_.stop && *o_.stop != 0) stopped_ = true;
    return stopped_;
  }

  /// Starts a fresh run in the run directory (refused if it holds a checkpoint) or resumes the
  /// one there. False when the run found there is finished (then nothing is changed).
  bool open_run() {
    dir_->remove_stale_temporaries();
    const std::string path = dir_->checkpoint_path();
    const bool have = dir_->has_checkpoint();
    result_.checkpoint = have ? path : "";
    if (!o_.resume) {
      require<run_refused>(!have, "run directory '", dir_->path(), "' already holds a run (", path,
                           "); resume it or choose another directory");
      dir_->cut_log(0);
      return true;
    }
    require<run_refused>(have, "nothing to resume in '", dir_->path(), "': there is no ", path);
    io::safetensors_file f;
    try {
      f = io::read_safetensors(path);
      rec_ = decode_fit_record(f.metadata, path);
      check_same_config(f.metadata, config_, path);
    } catch (const data_error& e) {
      throw run_refused(cat("cannot resume from '", path, "': ", e.what()));
    }
    if (rec_.finished) {
      result_.already_finished = true;
      result_.steps = step_ = rec_.step;
      result_.record = rec_;
      return false;
    }
    load_for_resume(path);
    return true;
  }

  /// Loads the checkpoint at `path` into the network and the optimiser, checks it against the
  /// record, and restores the unfinished epoch's sums and the log as they were at that step.
  void load_for_resume(const std::string& path) {
    rng unused(0);
    checkpoint_info info;
    try {
      info = load_checkpoint(path, net_, opt_, unused);
    } catch (const data_error& e) {
      throw run_refused(cat("cannot resume from '", path, "': ", e.what()));
    }
    require<run_refused>(info.step == rec_.step && info.epoch == rec_.step / per_epoch_,
                         "cannot resume from '", path, "': its epoch ", info.epoch, " and step ",
                         info.step, " do not agree with its record (step ", rec_.step, ", ",
                         per_epoch_, " steps per epoch)");
    step_ = saved_step_ = rec_.step;
    tally_ = epoch_tally{};
    tally_.loss_sum = rec_.epoch_loss_sum;
    tally_.seen = rec_.epoch_seen;
    tally_.correct = rec_.epoch_correct;
    tally_.finite_batches = rec_.epoch_batches;
    tally_.skipped = rec_.epoch_skipped;
    dir_->cut_log(rec_.log_bytes);
    log_bytes_ = rec_.log_bytes;
    if (!rec_.log_line.empty()) append_log(rec_.log_line);
  }

  /// Appends `line` and a newline to the log.
  void append_log(const std::string& line) {
    dir_->append_log(line + "\n");
    log_bytes_ += static_cast<std::int64_t>(line.size()) + 1;
  }

  /// Writes the checkpoint of the current step, with the record (the unfinished epoch's sums,
  /// the log's size and `line`, the log line of the epoch that just finished, or "").
  void save_checkpoint_now(const std::string& line) {
    rec_.step = step_;
    rec_.epoch_loss_sum = tally_.loss_sum;
    rec_.epoch_seen = tally_.seen;
    rec_.epoch_correct = tally_.correct;
    rec_.epoch_batches = tally_.finite_batches;
    rec_.epoch_skipped = tally_.skipped;
    rec_.log_bytes = log_bytes_;
    rec_.log_line = line;
    rec_.finished = step_ >= per_epoch_ * o_.epochs;
    auto meta = encode_fit_record(rec_);
    for (const auto& kv : config_) meta["config." + kv.first] = kv.second;
    const rng unused(o_.seed);
    save_checkpoint(dir_->checkpoint_path(), net_, opt_, unused, step_ / per_epoch_, step_, meta);
    saved_step_ = step_;
    result_.checkpoint = dir_->checkpoint_path();
  }

  /// Trains the remaining batches of `epoch` (printing progress lines and writing the periodic
  /// checkpoints), then finishes it if it ran to its end.
  void run_epoch(std::int64_t epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    if (o_.shuffle)
      epoch_order(o_.seed, epoch, train_.size(), order_);
    else
      epoch_order_identity(train_.size(), order_);
    auto window_start = std::chrono::steady_clock::now();
    double lr = opt_.learning_rate();
    std::int64_t b = step_ - epoch * per_epoch_;
    for (; b < per_epoch_ && !done() && !stop_requested(); ++b) {
      lr = train_batch(epoch, b);
      if (o_.progress && step_ % o_.progress_every == 0) {
        print_progress(*o_.progress, o_, epoch, b, per_epoch_, lr, tally_,
                       seconds_since(window_start));
        tally_.clear_window();
        window_start = std::chrono::steady_clock::now();
      }
      if (dir_ && o_.checkpoint_every > 0 && step_ % o_.checkpoint_every == 0 && b + 1 < per_epoch_)
        save_checkpoint_now("");
    }
    if (b == per_epoch_) finish_epoch(epoch, lr, t0);
  }

  /// One step on batch `b` of `epoch`: gather, transform, set the learning rate, forward and
  /// backward, the update, then the non-finite guard (undoing the step if a value went
  /// non-finite) and `o.on_step`. Returns the learning rate used.
  double train_batch(std::int64_t epoch, std::int64_t b) {
    const index first = b * o_.batch_size;
    const index m = std::min(o_.batch_size, train_.size() - first);
    gather_batch(train_, order_, first, m, xb_, yb_);
    transform_batch(transform_, xb_, yb_, o_.seed, step_);
    const double lr = sched_.lr_at(o_.schedule_per_epoch ? epoch : step_);
    opt_.set_learning_rate(lr);
    undo_.save_buffers();
    batch_outcome r = forward_backward(net_, loss_, xb_, yb_);
    ++step_;
    if (r.problem.empty()) {
      undo_.save_update();
      opt_.step();
      const std::string where = undo_.first_nonfinite(net_);
      if (!where.empty()) {
        undo_.restore_update();
        r.problem = "the update made " + where + " non-finite";
      }
    }
    if (!r.problem.empty()) {
      undo_.restore_buffers();
      skip_batch(epoch, b, r.problem);
    } else {
      tally_.add(r.loss, r.correct, m);
    }
    if (o_.on_step) {
      step_report sr;
      sr.epoch = epoch;
      sr.step = step_;
      sr.loss = r.loss;
      sr.learning_rate = lr;
      sr.skipped = !r.problem.empty();
      o_.on_step(sr);
      stopped_ = stopped_ || sr.stop;
    }
    return lr;
  }

  /// Applies `o.on_nonfinite` to batch `b` of `epoch`, whose values went non-finite: throws
  /// numeric_error naming the step, or counts the batch as skipped and says so in the progress.
  void skip_batch(std::int64_t epoch, std::int64_t b, const std::string& problem) {
    const std::string msg = detail::cat("fit: step ", step_, " (epoch ", epoch + 1, ", batch ",
                                        b + 1, " of ", per_epoch_, "): ", problem);
    if (o_.on_nonfinite == nonfinite_policy::stop) throw numeric_error(msg);
    ++tally_.skipped;
    ++result_.skipped_batches;
    ++rec_.skipped_total;
    if (o_.progress) *o_.progress << msg << "; batch skipped\n" << std::flush;
  }

  /// Finishes `epoch` (started at `t0`): evaluates the test set (numeric_error if its loss is
  /// not finite: such a model is not saved), prints the summary, updates the record, writes the
  /// checkpoint and then the log line, and calls `o.on_epoch`.
  void finish_epoch(std::int64_t epoch, double lr, std::chrono::steady_clock::time_point t0) {
    epoch_report r = make_epoch_report(epoch, step_, tally_, lr, seconds_since(t0));
    if (!test_.empty()) {
      r.test = evaluate(net_, loss_, test_, o_.eval_batch_size);
      require<numeric_error>(std::isfinite(r.test.loss), "fit: epoch ", epoch + 1, " (step ", step_,
                             "): the test loss is ", r.test.loss, "; the network is not saved",
                             dir_ && saved_step_ >= 0
                                 ? cat(" (the checkpoint of step ", saved_step_, " stays)")
                                 : std::string());
    }
    r.seconds = seconds_since(t0);
    if (o_.progress) print_epoch_summary(*o_.progress, r, o_.epochs);
    result_.epochs.push_back(r);
    rec_.seconds += r.seconds;
    rec_.last_epoch = epoch;
    rec_.last_test_accuracy = r.test.accuracy;
    rec_.last_test_loss = r.test.loss;
    if (r.test.samples && (rec_.best_epoch < 0 || r.test.accuracy > rec_.best_test_accuracy)) {
      rec_.best_epoch = epoch;
      rec_.best_test_accuracy = r.test.accuracy;
      rec_.best_test_loss = r.test.loss;
    }
    tally_ = epoch_tally{};
    if (dir_) {
      const std::string line = o_.log_line ? o_.log_line(r) : default_log_line(r);
      require<config_error>(line.find('\n') == std::string::npos, "fit: the log line of epoch ",
                            epoch + 1, " holds a newline");
      save_checkpoint_now(line);
      append_log(line);
    }
    if (o_.on_epoch) {
      o_.on_epoch(r);
      stopped_ = stopped_ || r.stop;
    }
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
  run_directory* dir_;            ///< the run directory (null: none)
  const std::map<std::string, std::string> config_;  ///< options that must match on resume
  step_undo<T> undo_;
  fit_record rec_;
  epoch_tally tally_;  ///< the unfinished epoch's sums
  bool stopped_ = false;
  std::int64_t saved_step_ = -1;  ///< step of the last checkpoint written or loaded (-1: none)
  std::int64_t log_bytes_ = 0;    ///< the log's size as this run wrote it
  fit_result result_;
  std::vector<index> order_;  ///< this epoch's sample order
  matrix<T> xb_;              ///< the batch's features
  label_vector yb_;           ///< the batch's labels
};
}  // namespace detail

/// Trains `net` on `train` with mini-batch steps: every epoch visits the samples in a seeded
/// random order (see `epoch_order`), gathers each batch into a reused buffer, runs forward in
/// mode::train, `loss.forward`, backward (the input gradient is switched off meanwhile), sets
/// the optimiser's learning rate from the schedule and steps it. After each epoch it evaluates
/// `test` (if not empty) in mode::eval, prints a summary to `o.progress` and calls
/// `o.on_epoch`. `Loss` is any type with `T forward(const matrix<T>& output, const
/// label_vector& labels)` and `const matrix<T>& gradient() const` (softmax_cross_entropy, mse).
/// The schedule is a `schedule`, a `schedule_for_run` (made from the run's length), or left out
/// (the optimiser's learning rate throughout).
/// Non-finite guard: a step whose loss, gradients, updated parameters or running statistics
/// (batch norm) hold a NaN or infinity is undone completely (parameters, optimiser state and
/// running statistics are those before it), then with nonfinite_policy::stop a numeric_error
/// names the global step, the epoch and where the value appeared first (see
/// find_nonfinite_gradient / _forward); with skip_batch training goes on. A non-finite test loss
/// at the end of an epoch throws numeric_error before anything of that epoch is saved. So a
/// checkpoint never holds a non-finite value.
/// Stops: `o.stop`, or `stop` set in a callback's report, end training at the next step boundary
/// (fit_result::stopped), after a checkpoint when there is a run directory (see fit_options).
/// Errors: invalid options -> config_error (also when a batch of one sample would reach a batch
/// norm with per-feature statistics); data not matching the network -> shape_error or
/// data_error naming the data set; run directory problems -> run_refused or data_error; a failed
/// write -> data_error naming the file and the system's reason, the previous checkpoint intact.
/// Thread safety: the network, loss and optimiser belong to this call while it runs (the data
/// sets are only read, so concurrent fits may share them); independent fits on distinct
/// networks may run on distinct threads.
/// With a batch transform (data augmentation): `transform(x, labels, g)` is called on every
/// gathered training batch (x: features x m, labels: m entries) before the forward pass and may
/// change both in place (keeping their sizes). `g` is a shatter::rng seeded from (o.seed, global
/// step), so augmented runs stay deterministic and resume exactly.
template <class T, class Loss, class Transform>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule_for_run& sched,
               const dataset<T>& train, const dataset<T>& test, const fit_options& o,
               Transform&& transform) {
  detail::check_fit_options(o);
  detail::check_fit_data(net, train, test);
  detail::check_optimizer_covers(net, opt);
  const std::int64_t per_epoch = detail::fit_batches_per_epoch(train.size(), o);
  detail::check_single_sample_batches(net, train.size(), o);
  require<config_error>(static_cast<bool>(sched), "fit: the schedule_for_run is empty");
  const schedule s = sched(run_length{per_epoch, o.epochs, per_epoch * o.epochs});
  std::optional<run_directory> dir;
  if (!o.run_dir.empty()) dir.emplace(o.run_dir, /*create=*/!o.resume);
  detail::input_gradient_guard<T> guard{net, net.input_gradient()};
  net.set_input_gradient(false);
  return detail::fit_loop<T, Loss, std::remove_reference_t<Transform>>(
             net, loss, opt, s, train, test, o, transform, per_epoch, dir ? &*dir : nullptr)
      .run();
}

/// fit with a fixed schedule and a batch transform (see above).
template <class T, class Loss, class Transform>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const dataset<T>& test, const fit_options& o,
               Transform&& transform) {
  return fit(net, loss, opt, schedule_for_run([sched](const run_length&) { return sched; }), train,
             test, o, std::forward<Transform>(transform));
}

/// fit without a batch transform (see above for everything else).
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const dataset<T>& test, const fit_options& o) {
  return fit(net, loss, opt, sched, train, test, o, [](matrix<T>&, label_vector&, rng&) {});
}

/// fit with a schedule made from the run's length, without a batch transform.
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule_for_run& sched,
               const dataset<T>& train, const dataset<T>& test, const fit_options& o) {
  return fit(net, loss, opt, sched, train, test, o, [](matrix<T>&, label_vector&, rng&) {});
}

/// fit at the optimiser's learning rate throughout, with a batch transform.
template <class T, class Loss, class Transform>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const dataset<T>& train,
               const dataset<T>& test, const fit_options& o, Transform&& transform) {
  return fit(net, loss, opt, schedule::constant(opt.learning_rate()), train, test, o,
             std::forward<Transform>(transform));
}

/// fit at the optimiser's learning rate throughout.
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const dataset<T>& train,
               const dataset<T>& test, const fit_options& o) {
  return fit(net, loss, opt, schedule::constant(opt.learning_rate()), train, test, o);
}

/// fit without a test set.
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const fit_options& o) {
  return fit(net, loss, opt, sched, train, dataset<T>{}, o);
}

/// fit without a test set, at the optimiser's learning rate throughout.
template <class T, class Loss>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const dataset<T>& train,
               const fit_options& o) {
  return fit(net, loss, opt, schedule::constant(opt.learning_rate()), train, dataset<T>{}, o);
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_FIT_HPP
