// A data-parallel training run whose rank fails on purpose, for failure_test.sh:
//   failing_run DIR FAIL_RANK FAIL_STEP HOW   (under mpirun; HOW: throw, escape, kill, hang, none)
// trains a small MLP with a checkpoint every 4 steps in DIR; at step FAIL_STEP rank FAIL_RANK
// throws a data_error that main catches and ends the job with (throw), lets it escape main
// (escape: std::terminate), kills itself with SIGKILL (kill), or sleeps for an hour (hang: the
// communicator's 5 s watchdog on the other rank ends the job). Alone:
//   failing_run --check DIR STEP
// loads DIR's checkpoint and exits 0 when it is intact and holds step STEP.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "shatter/core/threads.hpp"
#include "shatter/dist/mpi.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"

namespace {

shatter::sequential<float> make_net() {
  shatter::rng g(3);
  shatter::mlp_spec s;
  s.in = 10;
  s.width = 16;
  s.hidden_layers = 2;
  s.out = 3;
  return shatter::looks_linear_mlp<float>(s, g);
}

shatter::dataset<float> data() {
  shatter::rng g(4);
  shatter::dataset<float> d;
  d.classes = 3;
  d.x.resize(10, 200);
  for (shatter::index j = 0; j < 200; ++j) {
    d.labels.push_back(std::int32_t(g.below(3)));
    for (shatter::index i = 0; i < 10; ++i) d.x(i, j) = float(g.normal()) + float(d.labels.back());
  }
  return d;
}

int check(const std::string& dir, long step) {
  auto net = make_net();
  shatter::sgd<float> opt(net.parameters(), {0.01, 0.9});
  shatter::rng unused(0);
  const auto info = shatter::load_checkpoint(dir + "/checkpoint.safetensors", net, opt, unused);
  if (info.step != step) {
    std::fprintf(stderr, "failing_run: checkpoint holds step %ld, expected %ld\n", long(info.step),
                 step);
    return 1;
  }
  std::printf("checkpoint intact at step %ld\n", long(info.step));
  return 0;
}

void train(shatter::communicator& comm, const std::string& dir, int fail_rank, long fail_step,
           const std::string& how) {
  auto net = make_net();
  const auto train = data();
  shatter::softmax_cross_entropy<float> loss;
  shatter::sgd<float> opt(net.parameters(), {0.01, 0.9});
  shatter::run_options o;
  o.epochs = 4;
  o.batch_size = 20;
  o.comm = &comm;
  o.run_dir = dir;
  o.checkpoint_every = 4;
  o.on_step = [&](shatter::step_report& r) {
    if (comm.rank() != fail_rank || r.step != fail_step) return;
    if (how == "kill") std::raise(SIGKILL);
    if (how == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
    if (how == "throw" || how == "escape")
      throw shatter::data_error("failing_run: a failure on purpose at step " +
                                std::to_string(r.step));
  };
  shatter::fit(net, loss, opt, train, o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--check") return check(argv[2], std::atol(argv[3]));
  if (argc != 5) {
    std::fprintf(stderr, "usage: failing_run DIR FAIL_RANK FAIL_STEP HOW | --check DIR STEP\n");
    return 2;
  }
  shatter::dist::mpi_session session(argc, argv, "failing_run");
  shatter::set_threads(1);
  shatter::dist::mpi_communicator comm;
  comm.set_timeout(5, "failing_run");
  const std::string how = argv[4];
  if (how == "escape") {
    train(comm, argv[1], std::atoi(argv[2]), std::atol(argv[3]), how);
    return 0;
  }
  try {
    train(comm, argv[1], std::atoi(argv[2]), std::atol(argv[3]), how);
  } catch (const std::exception& e) {
    shatter::dist::abort_job("failing_run", std::string("error: ") + e.what());
  }
  return 0;
}
