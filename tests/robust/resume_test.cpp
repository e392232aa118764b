// Training never loses work: N steps straight and N/2 + checkpoint + N/2 in fresh objects give
// bitwise identical networks (single thread), also when the process writing checkpoints was
// killed with SIGKILL in the middle of a write (caught there by SIGSTOP); a non-finite stop
// keeps the last good checkpoint.
#include <catch2/catch.hpp>

#include "../support/blobs.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "../io/temp_dir.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"

using namespace shatter;

namespace {

using test::blobs;

constexpr std::int64_t total_steps = 28;  // 4 epochs of 7 batches

/// Everything a training run owns; `init_seed` changes the initial weights, so a "fresh" run
/// built with another seed shares nothing with the one that wrote the checkpoint.
template <class Opt>
struct run_state {
  sequential<double> net;
  softmax_cross_entropy<double> loss;
  Opt opt;
  rng g;
  schedule sched = schedule::cosine(0.05, total_steps).with_warmup(4);
  fit_options o;

  run_state(architecture a, std::uint64_t init_seed)
      : net(make(a, init_seed)), opt(net.parameters(), options()), g(init_seed + 1) {
    o.epochs = 4;
    o.batch_size = 16;  // 100 samples: 7 batches per epoch
    o.seed = 77;
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
  static auto options() {
    if constexpr (std::is_same_v<Opt, sgd<double>>) {
      sgd_options so;
      so.lr = 0.05;
      so.momentum = 0.9;
      so.nesterov = true;
      so.weight_decay = 1e-4;
      return so;
    } else {
      adam_options ao;
      ao.lr = 0.01;
      return ao;
    }
  }
  /// Trains from global step `from` up to step `to`.
  void train(const dataset<double>& data, std::int64_t from, std::int64_t to) {
    o.start_step = from;
    o.max_steps = to;
    fit(net, loss, opt, sched, data, o);
  }
};

/// Parameters and buffers, in order.
std::vector<matrix<double>> snapshot(sequential<double>& net) {
  std::vector<matrix<double>> v;
  for (auto& p : net.parameters()) v.push_back(*p.value);
  for (auto& b : net.buffers()) v.push_back(*b.value);
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

struct single_thread {
  int saved = threads();
  single_thread() { set_threads(1); }
  ~single_thread() { set_threads(saved); }
};

template <class Opt>
void check_resume(architecture a) {
  single_thread one;
  const auto data = blobs(8, 100, 5);
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");

  run_state<Opt> straight(a, 1);
  straight.train(data, 0, total_steps);
  const auto reference = snapshot(straight.net);

  for (const std::int64_t split : {total_steps / 2, std::int64_t(7), std::int64_t(3)}) {
    INFO("architecture " << to_string(a) << ", checkpoint after step " << split);
    {
      run_state<Opt> first(a, 1);
      first.train(data, 0, split);
      save_checkpoint(path, first.net, first.opt, first.g, split / 7, split);
    }
    run_state<Opt> resumed(a, 1000 + static_cast<std::uint64_t>(split));  // other weights
    REQUIRE_FALSE(bitwise_equal(snapshot(resumed.net), reference));
    const checkpoint_info info = load_checkpoint(path, resumed.net, resumed.opt, resumed.g);
    CHECK(info.step == split);
    CHECK(resumed.opt.steps() == split);
    resumed.train(data, info.step, total_steps);
    CHECK(bitwise_equal(snapshot(resumed.net), reference));
  }
}

bool has_temporary(const test::temp_dir& dir) {
  for (const auto& f : dir.files())
    if (f.find(".tmp.") != std::string::npos) return true;
  return false;
}

/// Polls until `child` is caught with a checkpoint temporary on disk, and leaves it stopped
/// (SIGSTOP) there; a child caught after the rename is continued and polled again. False after
/// 15 s without catching one.
bool stop_inside_write(pid_t child, const test::temp_dir& dir) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!has_temporary(dir)) continue;
    if (::kill(child, SIGSTOP) != 0) return false;
    int status = 0;
    if (::waitpid(child, &status, WUNTRACED) != child || !WIFSTOPPED(status)) return false;
    if (has_temporary(dir)) return true;
    ::kill(child, SIGCONT);
  }
  return false;
}

}  // namespace

TEST_CASE("resume: N steps straight == N/2, checkpoint, fresh objects, N/2 (bitwise)",
          "[robust][resume]") {
  check_resume<sgd<double>>(architecture::plain_relu_bn);    // batch-norm buffers + momentum
  check_resume<adam<double>>(architecture::plain_crelu_ll);  // Adam moments + step counter
  check_resume<adam<double>>(architecture::resnet_bn);
}

TEST_CASE("resume after the checkpointing process was killed with SIGKILL mid-write",
          "[robust][resume][sigkill]") {
  single_thread one;
  const auto data = blobs(8, 100, 5);
  const architecture a = architecture::resnet_bn;
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");

  run_state<adam<double>> straight(a, 1);
  straight.train(data, 0, total_steps);
  const auto reference = snapshot(straight.net);

  {
    run_state<adam<double>> first(a, 1);
    first.train(data, 0, 10);
    save_checkpoint(path, first.net, first.opt, first.g, 1, 10);
  }
  const std::vector<unsigned char> step10 = io::read_file(path);

  int mid_write_kills = 0;
  const int attempts = 12;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    io::write_file_atomic(path, step10.data(), step10.size());
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // The child resumes from the checkpoint, saves one after every step, and once training is
      // over keeps rewriting the final one until it is killed (at most 20 s).
      ::alarm(20);
      ::close(ready[0]);
      try {
        run_state<adam<double>> worker(a, 5000);
        const auto info = load_checkpoint(path, worker.net, worker.opt, worker.g);
        worker.o.on_step = [&](const step_report& r) {
          save_checkpoint(path, worker.net, worker.opt, worker.g, r.epoch, r.step);
        };
        const char c = 'r';
        if (::write(ready[1], &c, 1) != 1) ::_exit(4);
        worker.train(data, info.step, total_steps);
        for (;;) save_checkpoint(path, worker.net, worker.opt, worker.g, 3, total_steps);
      } catch (...) {
        ::_exit(3);
      }
    }
    ::close(ready[1]);
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    if (attempt % 2 == 0) {
      // Kill at a different moment each time: during training or during the rewrite loop.
      std::this_thread::sleep_for(std::chrono::microseconds(300 + 3400 * attempt));
    } else {
      // Kill inside a write, deterministically: stop the child while a temporary exists.
      INFO("attempt " << attempt << ": waiting to stop the child inside a write");
      REQUIRE(stop_inside_write(child, dir));
    }
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);

    // A temporary file left behind means the kill landed inside a write.
    bool torn = false;
    for (const auto& f : dir.files())
      if (f.find(".tmp.") != std::string::npos) {
        torn = true;
        std::remove(dir.file(f).c_str());
      }
    mid_write_kills += torn;

    // The checkpoint on disk is complete and valid, and resuming from it gives the reference.
    run_state<adam<double>> resumed(a, 9000 + static_cast<std::uint64_t>(attempt));
    checkpoint_info info;
    REQUIRE_NOTHROW(info = load_checkpoint(path, resumed.net, resumed.opt, resumed.g));
    INFO("attempt " << attempt << ": killed " << (torn ? "mid-write" : "between writes")
                    << ", checkpoint at step " << info.step);
    CHECK(info.step >= 10);
    CHECK(info.step <= total_steps);
    resumed.train(data, info.step, total_steps);
    CHECK(bitwise_equal(snapshot(resumed.net), reference));
  }
  // The premise of the test: the odd attempts' kills all interrupted a write in progress.
  INFO(mid_write_kills << " of " << attempts << " kills interrupted a checkpoint write");
  CHECK(mid_write_kills >= attempts / 2);
}

TEST_CASE("a non-finite stop keeps the last good checkpoint", "[robust][nonfinite]") {
  single_thread one;
  const auto data = blobs(8, 100, 5);
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");
  run_state<sgd<double>> run(architecture::plain_relu, 1);
  std::vector<matrix<double>> saved;
  run.o.on_epoch = [&](const epoch_report& r) {
    save_checkpoint(path, run.net, run.opt, run.g, r.epoch + 1, r.step);
    saved = snapshot(run.net);
  };
  run.o.on_step = [&](const step_report& r) {
    // Something goes wrong in epoch 2: a weight becomes NaN after step 10.
    if (r.step == 10)
      (*run.net.parameters()[0].value)(0, 0) = std::numeric_limits<double>::quiet_NaN();
  };
  CHECK_THROWS_WITH(run.train(data, 0, total_steps),
                    Catch::Contains("step 11 (epoch 2, batch 4 of 7)") &&
                        Catch::Contains("non-finite loss") &&
                        Catch::Contains("value of parameter '0.weight'"));
  run_state<sgd<double>> fresh(architecture::plain_relu, 2);
  const auto info = load_checkpoint(path, fresh.net, fresh.opt, fresh.g);
  CHECK(info.epoch == 1);
  CHECK(info.step == 7);
  CHECK(bitwise_equal(snapshot(fresh.net), saved));
  for (const auto& m : snapshot(fresh.net)) CHECK(m.allFinite());
}
