// Workloads a and b of ../shared/perf-anchors.md: one training step (forward, softmax
// cross-entropy, backward, SGD update) of a deep MLP, fp32, batch 128, input 3072, 10 classes.
//   a: CReLU, width 256 (each later layer takes 512 inputs), mirrored looks-linear init
//   b: ReLU, width 256, He init
// Benchmark names: mlp/<crelu|relu>/depth:<D>/threads:<T>. Counter GFLOPs: multiply-adds of the
// matrix products counted as 2 flops (elementwise work not counted). Loss and optimiser are the
// library's (softmax_cross_entropy, plain sgd), as in bench/torch_mlp.py.
//
//   mlp_bench --benchmark_filter='mlp/crelu/depth:20/threads:2'
//   mlp_bench --memory [depth]   peak RSS of a depth-200 (default) CReLU training step
//   mlp_bench --steps crelu|relu DEPTH N   N training steps, for profilers
//
// Set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to the same thread count when comparing.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shatter/core/threads.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/optim/sgd.hpp"

namespace {

using T = float;
constexpr shatter::index kIn = 3072, kWidth = 256, kOut = 10, kBatch = 128;
constexpr double kLr = 1e-3;

/// A network, a fixed batch and everything one training step needs, allocated once.
shatter::sequential<T> make_net(bool crelu, shatter::index depth) {
  shatter::rng g(42);
  shatter::mlp_spec s;
  s.in = kIn;
  s.width = kWidth;
  s.hidden_layers = depth;
  s.out = kOut;
  auto net = crelu ? shatter::looks_linear_mlp<T>(s, g) : shatter::plain_relu_mlp<T>(s, g);
  net.set_input_gradient(false);  // nobody needs dL/dx of the data
  return net;
}

shatter::sgd_options sgd_lr(double lr) {
  shatter::sgd_options o;
  o.lr = lr;
  return o;
}

/// A network, a fixed batch and everything one training step needs, allocated once.
struct mlp_case {
  bool crelu;
  shatter::sequential<T> net;
  std::vector<shatter::tensor_ref<T>> params;
  shatter::softmax_cross_entropy<T> ce;
  shatter::sgd<T> opt;
  shatter::matrix<T> x;
  std::vector<std::int32_t> labels;
  double flops = 0;  ///< per training step
  T loss = 0;

  mlp_case(bool use_crelu, shatter::index depth)
      : crelu(use_crelu),
        net(make_net(use_crelu, depth)),
        params(net.parameters()),
        opt(params, sgd_lr(kLr)) {
    shatter::rng g(7);
    x.resize(kIn, kBatch);
    for (shatter::index j = 0; j < x.cols(); ++j)
      for (shatter::index i = 0; i < x.rows(); ++i) x(i, j) = T(g.normal());
    labels.resize(kBatch);
    for (auto& l : labels) l = std::int32_t(g.below(kOut));
    // Matrix products per step: forward W X, backward dW = dY X^T, and dX = W^T dY for every
    // dense layer but the first.
    const double hid_in = crelu ? 2.0 * kWidth : double(kWidth);
    const double macs_fwd = double(kIn) * kWidth + (depth - 1) * hid_in * kWidth + hid_in * kOut;
    const double macs_dx = macs_fwd - double(kIn) * kWidth;
    flops = 2.0 * kBatch * (2 * macs_fwd + macs_dx);
  }

  void step() {
    loss = ce.forward(net.forward(x, shatter::mode::train), labels);
    net.backward(ce.gradient());
    opt.step();
  }
};

template <bool Crelu>
void bm_mlp(benchmark::State& st) {
  const bool crelu = Crelu;
  const auto depth = shatter::index(st.range(0));
  shatter::set_threads(int(st.range(1)));
  mlp_case c(crelu, depth);
  c.step();  // warm-up: sizes every buffer
  for (auto _ : st) {
    c.step();
    benchmark::DoNotOptimize(c.loss);
  }
  st.counters["GFLOPs"] =
      benchmark::Counter(c.flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["loss"] = double(c.loss);
}

void mlp_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"depth", "threads"});
  for (int depth : {20, 50})
    for (int threads : {1, 2}) b->Args({depth, threads});
}

/// Peak resident set of one training step of the depth-D CReLU MLP, next to what it must hold.
int memory_report(shatter::index depth) {
  auto rss_kib = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss);
  };
  const double before = rss_kib();
  mlp_case c(true, depth);
  shatter::plan<T> p(c.net, kBatch, shatter::plan_mode::train);
  for (int s = 0; s < 2; ++s) {
    c.ce.forward(shatter::matrix<T>(p.forward(c.x, shatter::mode::train)), c.labels);
    p.backward(c.ce.gradient(), false);
    c.opt.step();
  }
  const double after = rss_kib();
  double params = 0;
  for (auto& q : c.params) params += double(q.value->size());
  const double held = double(p.bytes()) / sizeof(T);
  const double mib = sizeof(T) / (1024.0 * 1024.0);
  std::printf(
      "memory: CReLU MLP depth %ld width %ld batch %ld fp32\n"
      "  parameters          %8.1f MiB (%.0f scalars)\n"
      "  gradients           %8.1f MiB\n"
      "  plan buffers        %8.1f MiB (kept activations, gradients, workspace)\n"
      "  params+grads+plan   %8.1f MiB\n"
      "  peak RSS            %8.1f MiB (process; %.1f MiB before building the network)\n"
      "  peak RSS growth     %8.1f MiB\n",
      long(depth), long(kWidth), long(kBatch), params * mib, params, params * mib, held * mib,
      (2 * params + held) * mib, after / 1024.0, before / 1024.0, (after - before) / 1024.0);
  return 0;
}

}  // namespace

BENCHMARK_TEMPLATE(bm_mlp, true)
    ->Name("mlp/crelu")
    ->Apply(mlp_args)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(bm_mlp, false)
    ->Name("mlp/relu")
    ->Apply(mlp_args)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--memory") == 0)
      return memory_report(i + 1 < argc ? std::atol(argv[i + 1]) : 200);
  if (argc >= 5 && std::strcmp(argv[1], "--steps") == 0) {
    // For profilers (valgrind --tool=callgrind): N steps, no timing loop.
    mlp_case c(std::strcmp(argv[2], "crelu") == 0, std::atol(argv[3]));
    for (long s = std::atol(argv[4]); s > 0; --s) c.step();
    std::printf("loss %g\n", double(c.loss));
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
