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
#include <type_traits>
#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/optim/optimizer.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/train/data_parallel.hpp"
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
/// (from a run directory, see run_options, or by hand with `start_step` and restored network
/// and optimiser) reproduces the uninterrupted run exactly (bitwise with one thread).
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
  /// The optimiser may cover only some of the network's parameters; the others stay as they are
  /// (e.g. fine-tuning a classifier head). It must still be bound to this network. False: fit
  /// refuses an optimiser that misses any parameter (one built before a layer was added).
  bool partial_optimizer = false;
  /// Data-parallel training over the ranks of `comm` (null or a single rank: this process
  /// alone). Every rank calls fit with the same network architecture, data, options and
  /// schedule. Rank 0's parameters, buffers and optimiser state are broadcast at the start;
  /// every step, each rank gathers the global batch of `batch_size` samples (and transforms
  /// it, so augmentation is the single-process one), takes its shard (see shard_of), runs
  /// forward and backward with its loss gradient scaled by shard / batch, and the gradients are
  /// summed over the ranks (gradient_reducer): the update is that of the global batch's mean
  /// loss, so learning rates and schedules are those of the global batch. Batch norm keeps
  /// per-rank statistics and rank 0's running statistics are broadcast after each step (as
  /// PyTorch's DDP), or uses the global batch's statistics with `sync_batch_norm`. The test set
  /// is split across the ranks for evaluation. Only rank 0 prints progress, writes the run
  /// directory (the same checkpoint format; a run resumes on any number of ranks) and holds the
  /// complete fit_result::record; stops and non-finite steps are agreed by all ranks.
  communicator* comm = nullptr;
  /// With comm: batch norm statistics over the global batch instead of per rank.
  bool sync_batch_norm = false;
};

/// Options of a `fit` that keeps its run in a directory: fit_options plus the directory.
/// Passing run_options instead of fit_options is what compiles the checkpoint and log code into
/// a program, so programs that never write a run stay quick to compile.
///
/// With `run_dir` set, fit locks the directory (see run_directory), writes
/// `checkpoint.safetensors` after every epoch, every `checkpoint_every` steps, when a stop is
/// requested and when it reaches `max_steps`, and appends each finished epoch's line to
/// `log.jsonl` after its checkpoint. With `resume` it continues the run found there: the
/// checkpoint's options (`config` and fit's own: epochs, batch size, seed, shuffle, drop_last,
/// schedule_per_epoch, data set sizes) must match this call's (run_refused names each one that
/// differs, with both values), the log is cut back to the checkpoint, temporary files of
/// interrupted writes are removed, and a finished run is left as it is. Without `resume`, a
/// directory holding a checkpoint is refused (run_refused), so nothing is overwritten.
struct run_options : fit_options {
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
  std::string checkpoint;         ///< the last checkpoint written or read (run_options::run_dir)
  fit_record record;              ///< the run's record (see fit_record)
};

namespace detail {
/// Enables fit's overloads for its options types: fit_options and run_options.
template <class O>
using if_fit_options = std::enable_if_t<std::is_base_of_v<fit_options, O>, int>;

/// Restores a network's input-gradient flag when leaving a scope (also on exceptions).
template <class T>
struct input_gradient_guard {
  sequential<T>& net;
  bool saved;
  ~input_gradient_guard() { net.set_input_gradient(saved); }
};

/// Puts a network's batch norms back to per-rank statistics when leaving a scope.
template <class T>
struct batch_norm_sync_guard {
  sequential<T>& net;
  bool on;
  ~batch_norm_sync_guard() {
    if (on) set_batch_norm_sync(net, nullptr);
  }
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

/// Also checks the run directory's options (config_error naming the first out of range).
inline void check_fit_options(const run_options& o) {
  check_fit_options(static_cast<const fit_options&>(o));
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

/// With `o.comm` over p > 1 ranks: config_error unless every batch of an epoch of `n` samples
/// gives every rank at least one sample (and two where a per-rank batch norm with per-feature
/// statistics needs them).
template <class T>
void check_rank_shards(sequential<T>& net, index n, const fit_options& o) {
  if (!o.comm || o.comm->size() <= 1) return;
  const index p = o.comm->size();
  const index last = n % o.batch_size;
  const index smallest = std::min(n, (o.drop_last || last == 0) ? o.batch_size : last);
  require<config_error>(smallest >= p, "fit: ", n, " training samples in batches of ", o.batch_size,
                        " give a batch of ", smallest, " samples, fewer than the ", p,
                        " ranks; change the batch size or set drop_last");
  if (o.sync_batch_norm || smallest / p >= 2) return;
  for_each_leaf(net, [&](layer<T>& l, const std::string& path) {
    require<config_error>(l.kind() != "batch_norm" || l.input_shape().spatial() > 1,
                          "fit: a batch of ", smallest, " samples over ", p,
                          " ranks leaves a rank one sample, but layer ", path, " ", l.describe(),
                          " needs two per rank; set sync_batch_norm, drop_last "
                          "or change the batch size");
  });
}

/// The options of fit that change the result, as "fit_options.<name>" config entries, added to
/// the caller's `o.config`.
inline std::map<std::string, std::string> fit_config(const run_options& o, index train_n,
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
/// that are not this network's (built for a copy of it) or, unless `partial`, that misses some
/// of its parameters (built before a layer was added). config_error naming the first few
/// parameters and the count.
template <class T>
void check_optimizer_covers(sequential<T>& net, const optimizer<T>& opt, bool partial) {
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
  require<config_error>(partial || uncovered.empty(), "fit: the ", opt.kind(),
                        " optimiser does not cover ", uncovered.size(),
                        " of the network's parameters (", names(uncovered),
                        "): was a layer added after it was built? Build the optimiser last (or "
                        "set fit_options::partial_optimizer to train only the ones it covers)");
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

/// forward_backward on one rank's shard `x` of a global batch of `m` samples, over the ranks of
/// `c`: the loss gradient is scaled by shard / m before backward and `reducer` sums the
/// gradients over the ranks, so every rank ends with the gradient of the global batch's mean
/// loss; `loss` and `correct` are the global batch's. A non-finite loss on any rank is the
/// problem of all (every rank then skips backward; the message names the first such rank).
template <class T, class Loss>
batch_outcome forward_backward_ranks(sequential<T>& net, Loss& loss, const matrix<T>& x,
                                     const label_vector& labels, index m, communicator& c,
                                     gradient_reducer<T>& reducer, matrix<T>& dy) {
  batch_outcome r;
  const matrix<T>& y = net.forward(x, mode::train);
  const double local = static_cast<double>(loss.forward(y, labels));
  const bool bad = !std::isfinite(local);
  std::vector<double> sums(2 + std::size_t(c.size()), 0.0);
  sums[0] = bad ? 0.0 : local * static_cast<double>(x.cols());
  sums[1] = bad ? 0.0 : static_cast<double>(correct_count(y, labels));
  sums[2 + std::size_t(c.rank())] = bad ? 1.0 : 0.0;
  c.all_sum(sums.data(), sums.size());
  int first_bad = -1;
  for (int k = c.size(); k-- > 0;)
    if (sums[2 + std::size_t(k)] > 0) first_bad = k;
  if (first_bad >= 0) {
    r.loss = NAN;
    const auto where = find_nonfinite_forward(net, x);  // on every rank: it may be collective
    if (c.rank() == first_bad)
      r.problem = detail::cat("non-finite loss (", local, ") on rank ", first_bad,
                              where.found() ? "; first non-finite: " + where.where
                                            : std::string("; every layer output is finite"));
    c.broadcast(r.problem, first_bad);
    return r;
  }
  r.loss = sums[0] / static_cast<double>(m);
  r.correct = static_cast<index>(std::llround(sums[1]));
  dy = loss.gradient() * static_cast<T>(static_cast<double>(x.cols()) / static_cast<double>(m));
  net.backward(dy);
  reducer.all_sum(c);
  const auto where = find_nonfinite_gradient(net);
  if (where.found())
    r.problem = "non-finite gradient, first (going backward from the loss) in " + where.where;
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
      : params_(net.parameters()),
        state_(opt.state()),
        buffers_(net.buffers()),
        norms_(batch_norms_of<T>(net)),
        opt_(opt) {}

  /// Saves the running statistics and the batch norms' batch counts (before the forward pass,
  /// which updates them).
  void save_buffers() {
    copy_out(buffers_, saved_buffers_);
    saved_counts_.clear();
    for (const batch_norm<T>* bn : norms_) saved_counts_.push_back(bn->batches_tracked());
  }
  /// Saves the parameters, the optimiser state and its step counter (before the update).
  void save_update() {
    copy_out(params_, saved_params_);
    copy_out(state_, saved_state_);
    steps_ = opt_.steps();
  }
  /// Puts back the running statistics and the batch counts.
  void restore_buffers() {
    copy_in(saved_buffers_, buffers_);
    for (std::size_t i = 0; i < norms_.size(); ++i)
      norms_[i]->set_batches_tracked(saved_counts_[i]);
  }
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
  std::vector<batch_norm<T>*> norms_;       ///< the batch norms, whose batch counts
  std::vector<std::int64_t> saved_counts_;  ///< are not buffers
  optimizer<T>& opt_;
  std::int64_t steps_ = 0;
};

/// The working state of one `fit` call: its arguments, the global step, the batch buffers reused
/// across steps, the run's record and the result so far. `run` trains from the start step (or
/// the run directory's checkpoint) to the end, a stop or the step limit. With Keeps_run (fit
/// given run_options) it also keeps the run in `run->run_dir` (held in `dir` by rank 0);
/// without, its checkpoint and log code is not compiled at all.
template <class T, class Loss, class Transform, bool Keeps_run>
class fit_loop {
 public:
  fit_loop(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
           const dataset<T>& train, const dataset<T>& test, const fit_options& o,
           Transform& transform, std::int64_t per_epoch, const run_options* run, run_directory* dir)
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
        run_(run),
        dir_(dir),
        undo_(net, opt),
        comm_(o.comm && o.comm->size() > 1 ? o.comm : nullptr),
        root_(!comm_ || comm_->root()),
        has_dir_(run && !run->run_dir.empty()) {
    if constexpr (Keeps_run)
      if (has_dir_) config_ = fit_config(*run, train.size(), test.size());
    if (!comm_) return;
    reducer_.emplace(net.parameters());
    buffers_ = net.buffers();
    const batch_shard sh = shard_of(test.size(), comm_->rank(), comm_->size());
    test_shard_.x = test.x.middleCols(sh.first, sh.count);
    test_shard_.labels.assign(test.labels.begin() + sh.first,
                              test.labels.begin() + sh.first + sh.count);
    test_shard_.classes = test.classes;
  }

  /// Runs the epochs from the one holding the start step on, until `o.epochs`, the step limit
  /// or a stop request; with a run directory, starts or resumes the run there first.
  fit_result run() {
    if constexpr (Keeps_run)
      if (has_dir_ && !open_run()) return result_;
    if (comm_) share_state();
    for (std::int64_t epoch = step_ / per_epoch_; epoch < o_.epochs && !done() && !stopped_;
         ++epoch)
      run_epoch(epoch);
    if constexpr (Keeps_run)
      if (has_dir_ && step_ != saved_step_) save_checkpoint_now("");
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
    if (comm_) stopped_ = detail::any_rank(*comm_, stopped_);
    return stopped_;
  }

  /// Rank 0 opens the run (open_run_here); every rank learns the outcome, the start step and
  /// the unfinished epoch's sums. False when the run is finished.
  bool open_run() {
    bool go = true;
    detail::on_root_agreed(comm_, [&] { go = open_run_here(); });
    if (!comm_) return go;
    double v[8] = {go ? 1.0 : 0.0,
                   double(step_),
                   double(saved_step_),
                   tally_.loss_sum,
                   double(tally_.seen),
                   double(tally_.correct),
                   double(tally_.finite_batches),
                   double(tally_.skipped)};
    comm_->broadcast(v, 8, 0);
    go = v[0] != 0;
    step_ = std::int64_t(v[1]);
    saved_step_ = std::int64_t(v[2]);
    if (!go) {
      result_.already_finished = true;
      result_.steps = step_;
      return false;
    }
    tally_ = epoch_tally{};
    tally_.loss_sum = v[3];
    tally_.seen = index(v[4]);
    tally_.correct = index(v[5]);
    tally_.finite_batches = std::int64_t(v[6]);
    tally_.skipped = std::int64_t(v[7]);
    return true;
  }

  /// Every rank takes rank 0's parameters, running statistics, optimiser state and step count.
  void share_state() {
    broadcast_tensors(*comm_, net_.parameters());
    broadcast_tensors(*comm_, buffers_);
    broadcast_tensors(*comm_, opt_.state());
    double v[2] = {double(opt_.steps()), double(step_)};
    comm_->broadcast(v, 2, 0);
    opt_.set_steps(std::int64_t(v[0]));
    step_ = std::int64_t(v[1]);
  }

  /// On the rank holding the run directory: starts a fresh run there (refused if it holds a
  /// checkpoint) or resumes the one there. False when the run found there is finished (then nothing
  /// is changed).
  bool open_run_here() {
    dir_->remove_stale_temporaries();
    const std::string path = dir_->checkpoint_path();
    const bool have = dir_->has_checkpoint();
    result_.checkpoint = have ? path : "";
    if (!run_->resume) {
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

  /// Writes the checkpoint of the current step (rank 0 alone; every rank learns if it failed).
  void save_checkpoint_now(const std::string& line) {
    detail::on_root_agreed(comm_, [&] { write_checkpoint(line); });
    saved_step_ = step_;
  }

  /// Writes the checkpoint of the current step, with the record (the unfinished epoch's sums,
  /// the log's size and `line`, the log line of the epoch that just finished, or "").
  void write_checkpoint(const std::string& line) {
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
      if (o_.progress && root_ && step_ % o_.progress_every == 0) {
        print_progress(*o_.progress, o_, epoch, b, per_epoch_, lr, tally_,
                       seconds_since(window_start));
        tally_.clear_window();
        window_start = std::chrono::steady_clock::now();
      }
      if constexpr (Keeps_run)
        if (has_dir_ && run_->checkpoint_every > 0 && step_ % run_->checkpoint_every == 0 &&
            b + 1 < per_epoch_)
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
    batch_outcome r;
    if (comm_) {
      const batch_shard sh = shard_of(m, comm_->rank(), comm_->size());
      xs_ = xb_.middleCols(sh.first, sh.count);
      ys_.assign(yb_.begin() + sh.first, yb_.begin() + sh.first + sh.count);
      r = forward_backward_ranks(net_, loss_, xs_, ys_, m, *comm_, *reducer_, dy_);
    } else {
      r = forward_backward(net_, loss_, xb_, yb_);
    }
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
    if (comm_ && !o_.sync_batch_norm) broadcast_tensors(*comm_, buffers_, flat_buffers_);
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
    if (o_.progress && root_) *o_.progress << msg << "; batch skipped\n" << std::flush;
  }

  /// Finishes `epoch` (started at `t0`): evaluates the test set (numeric_error if its loss is
  /// not finite: such a model is not saved), prints the summary, updates the record, writes the
  /// checkpoint and then the log line, and calls `o.on_epoch`.
  void finish_epoch(std::int64_t epoch, double lr, std::chrono::steady_clock::time_point t0) {
    epoch_report r = make_epoch_report(epoch, step_, tally_, lr, seconds_since(t0));
    if (!test_.empty()) {
      r.test = evaluate_test();
      require<numeric_error>(std::isfinite(r.test.loss), "fit: epoch ", epoch + 1, " (step ", step_,
                             "): the test loss is ", r.test.loss, "; the network is not saved",
                             dir_ && saved_step_ >= 0
                                 ? cat(" (the checkpoint of step ", saved_step_, " stays)")
                                 : std::string());
    }
    r.seconds = seconds_since(t0);
    if (comm_) comm_->broadcast(&r.seconds, 1, 0);  // rank 0's clock, as in its record
    if (o_.progress && root_) print_epoch_summary(*o_.progress, r, o_.epochs);
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
    if constexpr (Keeps_run)
      if (has_dir_) keep_epoch(epoch, r);
    if (o_.on_epoch) {
      o_.on_epoch(r);
      stopped_ = stopped_ || r.stop;
    }
    if (comm_) stopped_ = detail::any_rank(*comm_, stopped_);
  }

  /// Writes the checkpoint of the epoch `r` just finished, then its line in the log.
  void keep_epoch(std::int64_t epoch, const epoch_report& r) {
    const std::string line = run_->log_line ? run_->log_line(r) : default_log_line(r);
    require<config_error>(line.find('\n') == std::string::npos, "fit: the log line of epoch ",
                          epoch + 1, " holds a newline");
    save_checkpoint_now(line);
    if (dir_) append_log(line);
  }

  /// The test set's evaluation: with ranks, each evaluates its shard and the sums are combined.
  evaluation evaluate_test() {
    if (!comm_) return evaluate(net_, loss_, test_, o_.eval_batch_size);
    const evaluation e = evaluate(net_, loss_, test_shard_, o_.eval_batch_size);
    const double n = static_cast<double>(e.samples);
    double v[4] = {e.loss * n, e.accuracy * n, n, static_cast<double>(e.nonfinite)};
    comm_->all_sum(v, 4);
    evaluation g;
    g.samples = test_.size();
    g.loss = v[0] / static_cast<double>(g.samples);
    g.accuracy = static_cast<double>(std::llround(v[1])) / static_cast<double>(g.samples);
    g.nonfinite = static_cast<index>(std::llround(v[3]));
    return g;
  }

  sequential<T>& net_;
  Loss& loss_;
  optimizer<T>& opt_;
  const schedule& sched_;
  const dataset<T>& train_;
  const dataset<T>& test_;
  const fit_options& o_;
  Transform& transform_;
  const std::int64_t per_epoch_;               ///< batches per epoch
  const std::int64_t end_step_;                ///< the global step to stop at
  std::int64_t step_;                          ///< global steps done (including skipped batches)
  const run_options* run_;                     ///< the run's options (null: fit_options alone)
  run_directory* dir_;                         ///< the run directory (null: none, or not rank 0)
  std::map<std::string, std::string> config_;  ///< with a run: options that must match on resume
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
  communicator* comm_;        ///< the ranks training together (null: this process alone)
  bool root_;                 ///< rank 0 (or alone): prints, and holds the run directory
  bool has_dir_;              ///< the run has a directory (held by rank 0)
  std::optional<gradient_reducer<T>> reducer_;  ///< with ranks: sums the gradients
  std::vector<tensor_ref<T>> buffers_;          ///< with ranks: the running statistics
  dataset<T> test_shard_;                       ///< with ranks: this rank's part of the test set
  matrix<T> xs_, dy_;  ///< with ranks: this rank's shard of the batch, the scaled loss gradient
  label_vector ys_;    ///< with ranks: the shard's labels
  std::vector<T> flat_buffers_;  ///< with ranks: the running statistics packed for a broadcast
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
/// (fit_result::stopped), after a checkpoint when there is a run directory (see run_options).
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
/// Data-parallel over several processes: see fit_options::comm (every rank calls fit; errors
/// in the options or data are thrown on every rank alike).
/// `o` is a fit_options, or a run_options to keep the run in a directory.
template <class T, class Loss, class O, class Transform, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule_for_run& sched,
               const dataset<T>& train, const dataset<T>& test, const O& o, Transform&& transform) {
  constexpr bool keeps_run = std::is_base_of_v<run_options, O>;
  detail::check_fit_options(o);
  detail::check_fit_data(net, train, test);
  detail::check_optimizer_covers(net, opt, o.partial_optimizer);
  const std::int64_t per_epoch = detail::fit_batches_per_epoch(train.size(), o);
  detail::check_single_sample_batches(net, train.size(), o);
  detail::check_rank_shards(net, train.size(), o);
  require<config_error>(static_cast<bool>(sched), "fit: the schedule_for_run is empty");
  const schedule s = sched(run_length{per_epoch, o.epochs, per_epoch * o.epochs});
  communicator* comm = o.comm && o.comm->size() > 1 ? o.comm : nullptr;
  const run_options* run = nullptr;
  std::optional<run_directory> dir;  // held by rank 0 alone
  if constexpr (keeps_run) {
    run = &o;
    if (!o.run_dir.empty())
      detail::on_root_agreed(comm, [&] { dir.emplace(o.run_dir, /*create=*/!o.resume); });
  }
  detail::input_gradient_guard<T> guard{net, net.input_gradient()};
  net.set_input_gradient(false);
  detail::batch_norm_sync_guard<T> sync{net, comm && o.sync_batch_norm};
  if (sync.on) set_batch_norm_sync(net, comm);
  return detail::fit_loop<T, Loss, std::remove_reference_t<Transform>, keeps_run>(
             net, loss, opt, s, train, test, o, transform, per_epoch, run, dir ? &*dir : nullptr)
      .run();
}

/// fit with a fixed schedule and a batch transform (see above).
template <class T, class Loss, class O, class Transform, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const dataset<T>& test, const O& o, Transform&& transform) {
  return fit(net, loss, opt, schedule_for_run([sched](const run_length&) { return sched; }), train,
             test, o, std::forward<Transform>(transform));
}

/// fit without a batch transform (see above for everything else).
template <class T, class Loss, class O, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const dataset<T>& test, const O& o) {
  return fit(net, loss, opt, sched, train, test, o, [](matrix<T>&, label_vector&, rng&) {});
}

/// fit with a schedule made from the run's length, without a batch transform.
template <class T, class Loss, class O, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule_for_run& sched,
               const dataset<T>& train, const dataset<T>& test, const O& o) {
  return fit(net, loss, opt, sched, train, test, o, [](matrix<T>&, label_vector&, rng&) {});
}

/// fit at the optimiser's learning rate throughout, with a batch transform.
template <class T, class Loss, class O, class Transform, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const dataset<T>& train,
               const dataset<T>& test, const O& o, Transform&& transform) {
  return fit(net, loss, opt, schedule::constant(opt.learning_rate()), train, test, o,
             std::forward<Transform>(transform));
}

/// fit at the optimiser's learning rate throughout.
template <class T, class Loss, class O, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const dataset<T>& train,
               const dataset<T>& test, const O& o) {
  return fit(net, loss, opt, schedule::constant(opt.learning_rate()), train, test, o);
}

/// fit without a test set.
template <class T, class Loss, class O, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const schedule& sched,
               const dataset<T>& train, const O& o) {
  return fit(net, loss, opt, sched, train, dataset<T>{}, o);
}

/// fit without a test set, at the optimiser's learning rate throughout.
template <class T, class Loss, class O, detail::if_fit_options<O> = 0>
fit_result fit(sequential<T>& net, Loss& loss, optimizer<T>& opt, const dataset<T>& train,
               const O& o) {
  return fit(net, loss, opt, schedule::constant(opt.learning_rate()), train, dataset<T>{}, o);
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_FIT_HPP
