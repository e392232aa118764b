// fit as the one safe training loop: run directories (lock, checkpoint and log in that order,
// exact resume mid-epoch and after a stop request, log cut back, options compared, finished runs
// left alone), the non-finite guard over parameters, running statistics and the test loss, and
// checked writes.
#include <catch2/catch.hpp>

#include "../support/blobs.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../io/temp_dir.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"
#include "shatter/train/stop.hpp"

using namespace shatter;

namespace {

using test::blobs;

/// A small batch-norm MLP trained with SGD (momentum, weight decay) for 4 epochs of 7 batches
/// in a run directory; `init_seed` changes the initial weights.
struct run {
  sequential<double> net;
  softmax_cross_entropy<double> loss;
  sgd<double> opt;
  run_options o;
  dataset<double> train = blobs(8, 100, 5), test = blobs(8, 40, 6);

  run(const std::string& dir, std::uint64_t init_seed, architecture a = architecture::plain_relu_bn)
      : net(make(a, init_seed)), opt(net.parameters(), options()) {
    o.epochs = 4;
    o.batch_size = 16;  // 100 samples: 7 batches per epoch
    o.seed = 77;
    o.run_dir = dir;
    o.config = {{"lr", "0.05"}, {"arch", to_string(a)}};
    o.log_line = [](const epoch_report& r) {  // the default line holds wall times
      std::ostringstream s;
      s.precision(17);
      s << "{\"epoch\": " << r.epoch + 1 << ", \"train_loss\": " << r.train_loss
        << ", \"test_accuracy\": " << r.test.accuracy << "}";
      return s.str();
    };
  }
  static sequential<double> make(architecture a, std::uint64_t seed) {
    rng g(seed);
    mlp_spec s;
    s.in = 8;
    s.width = 24;
    s.hidden_layers = 3;
    s.out = 3;
    s.bias_std = 0.05;
    return build<double>(a, s, g);
  }
  static sgd_options options() {
    sgd_options so;
    so.lr = 0.05;
    so.momentum = 0.9;
    so.weight_decay = 1e-4;
    return so;
  }
  fit_result go() {
    return fit(net, loss, opt, schedule_for_run([](const run_length& r) {
                 return schedule::cosine(0.05, r.total_steps).with_warmup(r.steps_per_epoch / 2);
               }),
               train, test, o);
  }
};

std::vector<matrix<double>> snapshot(sequential<double>& net) {
  std::vector<matrix<double>> v;
  for (auto& p : net.parameters()) v.push_back(*p.value);
  for (auto& b : net.buffers()) v.push_back(*b.value);
  return v;
}

/// Every batch norm's count of training batches, in layer order.
std::vector<std::int64_t> batch_counts(sequential<double>& net) {
  std::vector<std::int64_t> v;
  for (const batch_norm<double>* bn : batch_norms_of<double>(net))
    v.push_back(bn->batches_tracked());
  return v;
}

bool bitwise_equal(const std::vector<matrix<double>>& a, const std::vector<matrix<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].rows() != b[i].rows() || a[i].cols() != b[i].cols() ||
        std::memcmp(a[i].data(), b[i].data(), sizeof(double) * a[i].size()) != 0)
      return false;
  return true;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct single_thread {
  int saved = threads();
  single_thread() { set_threads(1); }
  ~single_thread() { set_threads(saved); }
};

/// The uninterrupted reference run: final weights, log and record.
struct reference {
  std::vector<matrix<double>> weights;
  std::string log;
  fit_record record;
};

reference uninterrupted() {
  test::temp_dir dir;
  run r(dir.path(), 1);
  const auto res = r.go();
  REQUIRE(res.epochs.size() == 4);
  REQUIRE(res.record.finished);
  return {snapshot(r.net), slurp(dir.file("log.jsonl")), res.record};
}

/// Resumes the run in `dir` with fresh objects (other initial weights) and checks that it ends
/// exactly as the reference: weights, log and best/last figures.
void resume_and_compare(const test::temp_dir& dir, const reference& ref) {
  run r(dir.path(), 999);
  REQUIRE_FALSE(bitwise_equal(snapshot(r.net), ref.weights));
  r.o.resume = true;
  const auto res = r.go();
  CHECK_FALSE(res.stopped);
  CHECK(res.record.finished);
  CHECK(bitwise_equal(snapshot(r.net), ref.weights));
  CHECK(slurp(dir.file("log.jsonl")) == ref.log);
  CHECK(res.record.best_epoch == ref.record.best_epoch);
  CHECK(res.record.best_test_accuracy == ref.record.best_test_accuracy);
  CHECK(res.record.last_test_loss == ref.record.last_test_loss);
}

}  // namespace

TEST_CASE("run directory: resume mid-epoch equals the uninterrupted run bitwise",
          "[robust][run-dir]") {
  single_thread one;
  const reference ref = uninterrupted();
  for (const std::int64_t split : {std::int64_t(3), std::int64_t(10), std::int64_t(14)}) {
    INFO("interrupted after step " << split);
    test::temp_dir dir;
    {
      run first(dir.path(), 1);
      first.o.max_steps = split;
      const auto res = first.go();
      CHECK(res.steps == split);
      CHECK(res.checkpoint == dir.file("checkpoint.safetensors"));
    }
    resume_and_compare(dir, ref);
  }
}

TEST_CASE(
    "run directory: a stop request (SIGINT) checkpoints, and resuming equals the "
    "uninterrupted run",
    "[robust][run-dir][stop]") {
  single_thread one;
  const reference ref = uninterrupted();
  test::temp_dir dir;
  {
    run first(dir.path(), 1);
    stop_signal = 0;
    handle_stop_signals();
    first.o.stop = &stop_signal;
    first.o.on_step = [](step_report& r) {
      if (r.step == 11) ::raise(SIGINT);  // handled: the step finishes, fit stops after it
    };
    const auto res = first.go();
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    CHECK(stop_signal == SIGINT);
    stop_signal = 0;
    CHECK(res.stopped);
    CHECK(res.steps == 11);
    CHECK(res.epochs.size() == 1);
    run probe("", 3);
    rng unused(0);
    const checkpoint_info info =
        load_checkpoint(dir.file("checkpoint.safetensors"), probe.net, probe.opt, unused);
    CHECK(info.step == 11);
    CHECK(info.epoch == 1);
  }
  resume_and_compare(dir, ref);

  // A callback's stop ends the run after that epoch, checkpointed.
  test::temp_dir dir2;
  run cb(dir2.path(), 1);
  cb.o.on_epoch = [](epoch_report& r) { r.stop = r.epoch == 1; };
  const auto res = cb.go();
  CHECK(res.stopped);
  CHECK(res.steps == 14);
  CHECK_FALSE(res.record.finished);
}

TEST_CASE("run directory: a second run on a locked directory is refused, naming the holder",
          "[robust][run-dir][lock]") {
  test::temp_dir dir;
  {
    run_directory held(dir.path());
    try {
      run_directory second(dir.path());
      FAIL("the second lock was granted");
    } catch (const run_refused& e) {
      CHECK_THAT(e.what(), Catch::Contains("in use by another run") &&
                               Catch::Contains("pid " + std::to_string(::getpid())));
    }
    run r(dir.path(), 1);
    CHECK_THROWS_AS(r.go(), run_refused);
    CHECK_FALSE(std::ifstream(dir.file("checkpoint.safetensors")).good());
  }
  CHECK_NOTHROW(run_directory(dir.path()));  // released with its holder
  std::ofstream(dir.file("file")) << "x";
  CHECK_THROWS_WITH(run_directory(dir.file("file")), Catch::Contains("not a directory"));
}

TEST_CASE(
    "run directory: resume cuts the log back to the checkpoint and removes stale "
    "temporary files",
    "[robust][run-dir][log]") {
  single_thread one;
  const reference ref = uninterrupted();
  test::temp_dir dir;
  {
    run first(dir.path(), 1);
    first.o.max_steps = 10;
    first.go();
  }
  // A run killed later would have left a line the checkpoint does not cover, a torn line and a
  // temporary file of an interrupted checkpoint write.
  std::ofstream(dir.file("log.jsonl"), std::ios::app) << "{\"epoch\": 2, \"junk\": 1}\n{\"epo";
  std::ofstream(dir.file("checkpoint.safetensors.tmp.4242.0")) << std::string(1000, 'x');
  resume_and_compare(dir, ref);
  for (const auto& f : dir.files()) CHECK(f.find(".tmp.") == std::string::npos);

  // Killed after an epoch's checkpoint but before its log line: resume writes the line.
  test::temp_dir dir2;
  {
    run first(dir2.path(), 1);
    first.o.max_steps = 14;  // two whole epochs
    first.go();
  }
  const std::string two = slurp(dir2.file("log.jsonl"));
  std::ofstream(dir2.file("log.jsonl"), std::ios::trunc) << two.substr(0, two.find('\n') + 1);
  resume_and_compare(dir2, ref);
}

TEST_CASE(
    "run directory: a finished run says so and changes nothing; a fresh run does not "
    "overwrite one",
    "[robust][run-dir]") {
  single_thread one;
  test::temp_dir dir;
  fit_record done;
  {
    run first(dir.path(), 1);
    done = first.go().record;
  }
  const std::string ckpt = slurp(dir.file("checkpoint.safetensors"));
  const std::string log = slurp(dir.file("log.jsonl"));
  run again(dir.path(), 5);
  again.o.resume = true;
  const auto before = snapshot(again.net);
  const auto res = again.go();
  CHECK(res.already_finished);
  CHECK(res.epochs.empty());
  CHECK(res.steps == 28);
  CHECK(res.record.best_test_accuracy == done.best_test_accuracy);
  CHECK(res.record.best_epoch == done.best_epoch);
  CHECK(res.record.last_test_accuracy == done.last_test_accuracy);
  CHECK(bitwise_equal(snapshot(again.net), before));
  CHECK(slurp(dir.file("checkpoint.safetensors")) == ckpt);
  CHECK(slurp(dir.file("log.jsonl")) == log);

  run fresh(dir.path(), 1);
  CHECK_THROWS_WITH(fresh.go(), Catch::Contains("already holds a run"));
  CHECK(slurp(dir.file("log.jsonl")) == log);
  test::temp_dir empty;
  run nothing(empty.path(), 1);
  nothing.o.resume = true;
  CHECK_THROWS_WITH(nothing.go(), Catch::Contains("nothing to resume"));
}

TEST_CASE("run directory: resuming with other options is refused, naming each and both values",
          "[robust][run-dir][config]") {
  single_thread one;
  test::temp_dir dir;
  {
    run first(dir.path(), 1);
    first.o.max_steps = 5;
    first.go();
  }
  run other(dir.path(), 1);
  other.o.resume = true;
  other.o.config["lr"] = "0.1";
  other.o.batch_size = 20;
  try {
    other.go();
    FAIL("resumed with other options");
  } catch (const run_refused& e) {
    CHECK_THAT(e.what(), Catch::Contains("option 'lr' is '0.05' in the checkpoint but '0.1'") &&
                             Catch::Contains("option 'fit_options.batch_size' is '16'"));
  }
  run extra(dir.path(), 1);
  extra.o.resume = true;
  extra.o.config["warmup"] = "0.5";
  CHECK_THROWS_WITH(extra.go(), Catch::Contains("option 'warmup' is absent in the checkpoint"));
  // A checkpoint saved by hand (no record of fit's) cannot be resumed as a run.
  test::temp_dir plain;
  {
    run r0("", 1);
    rng g(1);
    save_checkpoint(plain.file("checkpoint.safetensors"), r0.net, r0.opt, g, 1, 7);
  }
  run p(plain.path(), 1);
  p.o.resume = true;
  CHECK_THROWS_WITH(p.go(), Catch::Contains("not written by fit with a run directory"));
  // A checkpoint that is a FIFO is refused without opening it (which would block).
  test::temp_dir fifo;
  REQUIRE(::mkfifo(fifo.file("checkpoint.safetensors").c_str(), 0600) == 0);
  run f(fifo.path(), 1);
  f.o.resume = true;
  CHECK_THROWS_WITH(f.go(), Catch::Contains("is a FIFO, not a regular file"));
}

TEST_CASE(
    "non-finite guard: a skipped batch leaves running statistics and weights bitwise "
    "unchanged; stop leaves everything as before the step",
    "[robust][nonfinite]") {
  single_thread one;
  for (const auto policy : {nonfinite_policy::skip_batch, nonfinite_policy::stop}) {
    run r("", 1);
    r.o.run_dir.clear();
    r.o.epochs = 1;
    r.o.batch_size = 100;  // one batch per epoch, holding the NaN sample
    r.o.on_nonfinite = policy;
    r.train.x(3, 17) = std::numeric_limits<double>::quiet_NaN();
    const auto before = snapshot(r.net);
    const auto counts_before = batch_counts(r.net);
    REQUIRE(counts_before.size() == 3);
    if (policy == nonfinite_policy::skip_batch) {
      const auto res = fit(r.net, r.loss, r.opt, r.train, r.o);  // no schedule: the optimiser's
      CHECK(res.skipped_batches == 1);
    } else {
      CHECK_THROWS_AS(fit(r.net, r.loss, r.opt, r.train, r.o), numeric_error);
    }
    CHECK(r.opt.steps() == 0);
    CHECK(bitwise_equal(snapshot(r.net), before));
    CHECK(batch_counts(r.net) == counts_before);  // the skipped batch is not counted
  }
}

TEST_CASE(
    "non-finite guard: an update that overflows is undone; a NaN test loss is never "
    "saved over the last good checkpoint",
    "[robust][nonfinite]") {
  single_thread one;
  {
    run r("", 1);
    r.o.run_dir.clear();
    sgd_options so;
    so.lr = 1e300;
    so.weight_decay = 1e300;  // finite gradient, infinite update
    sgd<double> wild(r.net.parameters(), so);
    const auto before = snapshot(r.net);
    CHECK_THROWS_WITH(fit(r.net, r.loss, wild, r.train, r.o),
                      Catch::Contains("step 1 ") && Catch::Contains("the update made parameter"));
    CHECK(bitwise_equal(snapshot(r.net), before));
    CHECK(wild.steps() == 0);
  }
  test::temp_dir dir;
  run r(dir.path(), 1);
  std::vector<matrix<double>> after_epoch1;
  r.o.on_epoch = [&](epoch_report& e) {
    if (e.epoch == 0) {
      after_epoch1 = snapshot(r.net);
      r.test.x(0, 0) = std::numeric_limits<double>::quiet_NaN();  // epoch 2's test loss: NaN
    }
  };
  CHECK_THROWS_WITH(r.go(), Catch::Contains("epoch 2 (step 14): the test loss is") &&
                                Catch::Contains("nan") &&
                                Catch::Contains("checkpoint of step 7 stays"));
  run fresh("", 2);
  rng unused(0);
  const auto info =
      load_checkpoint(dir.file("checkpoint.safetensors"), fresh.net, fresh.opt, unused);
  CHECK(info.step == 7);
  CHECK(bitwise_equal(snapshot(fresh.net), after_epoch1));
}

TEST_CASE(
    "run directory: a failed log write names the file and the system's reason; the "
    "checkpoint before it is kept",
    "[robust][run-dir][full]") {
  if (::access("/dev/full", W_OK) != 0) {
    WARN("/dev/full is not available: the full-disk case is skipped");
    return;
  }
  single_thread one;
  test::temp_dir dir;
  REQUIRE(::symlink("/dev/full", dir.file("log.jsonl").c_str()) == 0);
  run r(dir.path(), 1);
  CHECK_THROWS_WITH(
      r.go(), Catch::Contains(dir.file("log.jsonl")) && Catch::Contains("No space left on device"));
  run fresh("", 2);
  rng unused(0);
  CHECK(load_checkpoint(dir.file("checkpoint.safetensors"), fresh.net, fresh.opt, unused).step ==
        7);
}

TEST_CASE("checkpoint: a negative epoch or step is refused by the loader", "[robust][bad-input]") {
  test::temp_dir dir;
  run r("", 1);
  rng g(1);
  const std::string path = dir.file("neg.safetensors");
  save_checkpoint(path, r.net, r.opt, g, 2, 14);
  for (const char* key : {"shatter.epoch", "shatter.step"}) {
    io::safetensors_file f = io::read_safetensors(path);
    f.metadata[key] = "-3";  // as a corrupted or hostile file would say
    const std::string bad = dir.file("bad.safetensors");
    io::write_safetensors(bad, f);
    CHECK_THROWS_WITH(load_checkpoint(bad, r.net, r.opt, g),
                      Catch::Contains(key) && Catch::Contains("-3 is negative"));
  }
}

TEST_CASE("fit: options users expect (no schedule, relative schedule, single-sample batches)",
          "[robust][fit]") {
  single_thread one;
  run r("", 1);
  r.o.run_dir.clear();
  r.o.epochs = 1;
  std::vector<double> rates;
  r.o.on_step = [&](step_report& s) { rates.push_back(s.learning_rate); };
  fit(r.net, r.loss, r.opt, r.train, r.o);
  CHECK(rates == std::vector<double>(7, 0.05));  // the optimiser's rate

  run_length seen;
  r.o.epochs = 3;
  fit(r.net, r.loss, r.opt, schedule_for_run([&](const run_length& l) {
        seen = l;
        return schedule::constant(0.01);
      }),
      r.train, r.test, r.o);
  CHECK(seen.steps_per_epoch == 7);
  CHECK(seen.epochs == 3);
  CHECK(seen.total_steps == 21);

  r.train = blobs(8, 33, 5);  // batches of 16: the last one holds one sample
  r.o.batch_size = 16;
  CHECK_THROWS_WITH(fit(r.net, r.loss, r.opt, r.train, r.o),
                    Catch::Contains("leave a batch of one sample") &&
                        Catch::Contains("batch_norm(24)") && Catch::Contains("drop_last"));
  r.o.drop_last = true;
  CHECK_NOTHROW(fit(r.net, r.loss, r.opt, r.train, r.o));
}
