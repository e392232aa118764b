// Workload c of ../shared/perf-anchors.md: a CIFAR-like plain CReLU convnet, fp32, batch 64,
// input 3 x 32 x 32, 3x3 convolutions with bias, CReLU after every convolution (so the next one
// takes 2C channels), no batch norm:
//   6 convs with 16 channels at 32x32 (the first from 3 channels), a stride-2 conv to 32
//   channels, 6 convs with 32 channels at 16x16, a stride-2 conv to 64 channels, 6 convs with
//   64 channels at 8x8, global average pooling, linear 128 -> 10.
// (20 convolutions; bench/torch_conv.py builds exactly the same network in PyTorch.)
// Benchmarks:
//   conv/train/threads:T   one training step: forward, softmax cross-entropy, backward, SGD
//   conv/infer/threads:T   forward in evaluation mode
// Counter images_per_second (items_per_second) and ms_per_step.
//
//   conv_bench --memory [depth] [batch]   peak RSS of one training step of plain_crelu_ll
//                                         (CIFAR architecture with BN), default depth 200, batch
//                                         128
// Set OMP_NUM_THREADS to the thread count when comparing (bench/compare_conv.sh does).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shatter/activation/crelu.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/init/he.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/sgd.hpp"

namespace {

using T = float;
constexpr shatter::index kBatch = 64;

/// The workload-c network (see the file comment), He-initialised.
shatter::sequential<T> workload_c(shatter::rng& g) {
  shatter::sequential<T> net;
  shatter::image_shape shape{3, 32, 32};
  auto unit = [&](shatter::index out, shatter::index stride) {
    shatter::conv2d<T> c(shape, out, 3, stride, 1, true);
    shatter::init::he_normal(c.weight(), g, c.fan_in());
    const auto o = c.output_shape();
    net.add(std::move(c));
    net.add(shatter::crelu<T>());
    shape = {2 * o.channels, o.height, o.width};
  };
  for (int i = 0; i < 6; ++i) unit(16, 1);
  unit(32, 2);
  for (int i = 0; i < 6; ++i) unit(32, 1);
  unit(64, 2);
  for (int i = 0; i < 6; ++i) unit(64, 1);
  net.add(shatter::global_avg_pool<T>(shape));
  shatter::dense<T> d(shape.channels, 10);
  shatter::init::he_normal(d.weight(), g, 0, 1.0);
  net.add(std::move(d));
  return net;
}

struct conv_case {
  shatter::sequential<T> net;
  shatter::matrix<T> x;
  shatter::label_vector labels;
  shatter::softmax_cross_entropy<T> loss;
  std::unique_ptr<shatter::sgd<T>> opt;

  explicit conv_case(shatter::index batch) {
    shatter::rng g(7);
    net = workload_c(g);
    net.set_input_gradient(false);
    x.resize(3072, batch);
    for (shatter::index i = 0; i < x.size(); ++i) x(i) = T(g.normal());
    labels.resize(std::size_t(batch));
    for (auto& l : labels) l = std::int32_t(g.below(10));
    shatter::sgd_options o;
    o.lr = 1e-3;
    o.momentum = 0.9;
    opt = std::make_unique<shatter::sgd<T>>(net.parameters(), o);
  }
  void train_step() {
    const auto& y = net.forward(x, shatter::mode::train);
    loss.forward(y, labels);
    net.backward(loss.gradient());
    opt->step();
  }
};

void conv_train(benchmark::State& st) {
  shatter::set_threads(int(st.range(0)));
  conv_case c(kBatch);
  c.train_step();  // warm-up: scratch buffers reach their final size
  for (auto _ : st) c.train_step();
  st.SetItemsProcessed(st.iterations() * kBatch);
  st.counters["ms_per_step"] = benchmark::Counter(
      double(st.iterations()) * 1e-3, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void conv_infer(benchmark::State& st) {
  shatter::set_threads(int(st.range(0)));
  conv_case c(kBatch);
  c.net.forward(c.x, shatter::mode::eval);
  for (auto _ : st) benchmark::DoNotOptimize(c.net.forward(c.x, shatter::mode::eval).data());
  st.SetItemsProcessed(st.iterations() * kBatch);
  st.counters["ms_per_step"] = benchmark::Counter(
      double(st.iterations()) * 1e-3, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(conv_train)
    ->Name("conv/train")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);
BENCHMARK(conv_infer)
    ->Name("conv/infer")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);

/// Peak resident memory of one training step of the CIFAR plain_crelu_ll network.
int memory_main(int depth, int batch) {
  shatter::rng g(1);
  shatter::cifar_spec s;
  s.depth = depth;
  const auto t0 = std::chrono::steady_clock::now();
  auto net = shatter::build_cifar<T>(shatter::cifar_arch::plain_crelu_ll, s, g);
  const double build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  net.set_input_gradient(false);
  shatter::matrix<T> x(3072, batch);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = T(g.normal());
  shatter::label_vector labels(std::size_t(batch), 3);
  shatter::softmax_cross_entropy<T> loss;
  shatter::sgd_options o;
  o.lr = 0.1;
  o.momentum = 0.9;
  shatter::sgd<T> opt(net.parameters(), o);
  const auto t1 = std::chrono::steady_clock::now();
  const auto& y = net.forward(x, shatter::mode::train);
  const double l = loss.forward(y, labels);
  net.backward(loss.gradient());
  opt.step();
  const double step_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "plain_crelu_ll depth %d batch %d: %lld parameters, built in %.1f ms, one training step "
      "%.2f s (loss %.4f), peak RSS %.1f MiB\n",
      depth, batch, static_cast<long long>(net.parameter_count()), build_ms, step_s, l,
      double(ru.ru_maxrss) / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--memory") == 0)
    return memory_main(argc >= 3 ? std::atoi(argv[2]) : 200, argc >= 4 ? std::atoi(argv[3]) : 128);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
