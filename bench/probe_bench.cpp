// Workload d of ../shared/perf-anchors.md: the shattering probe of a plain ReLU net (He init),
// scalar input, width 200, depth 50, 1024 points in [-2, 2] as one batch: forward plus
// d(output)/d(input) at every point, fp32. Compared side by side with PyTorch autograd by
// bench/compare_probe.sh (bench/torch_probe.py is the PyTorch side).
//
//   probe/tangent   probe::sweep (forward-mode: [X | dX/dt] through each layer, the default)
//   probe/backprop  probe::sweep with gradient_method::backprop (forward + the layers' backward,
//                   which also computes every parameter gradient)
// The argument is the thread count (shatter::set_threads).
#include <benchmark/benchmark.h>

#include "shatter/core/threads.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/probe/sweep.hpp"

namespace {

constexpr shatter::index width = 200, depth = 50, points = 1024;

shatter::sequential<float> workload_net() {
  shatter::rng g(42);
  shatter::mlp_spec s;
  s.width = width;
  s.hidden_layers = depth;
  s.bias_std = 0.5;
  return shatter::build<float>(shatter::architecture::plain_relu, s, g);
}

void run(benchmark::State& state, shatter::probe::gradient_method method) {
  shatter::set_threads(int(state.range(0)));
  auto net = workload_net();
  shatter::probe::sweep_options o;
  o.points = points;
  o.method = method;
  double sink = 0;
  for (auto _ : state) {
    const auto r = shatter::probe::sweep(net, o);
    sink += r.gradient(0);
    benchmark::DoNotOptimize(sink);
  }
  // Forward plus input-gradient: 2 products of 2 * width * width * points per hidden layer.
  const double flops = 2.0 * 2.0 * double(width) * double(width) * double(points) * (depth - 1);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["points/s"] =
      benchmark::Counter(double(points), benchmark::Counter::kIsIterationInvariantRate);
}

void tangent(benchmark::State& s) {
  run(s, shatter::probe::gradient_method::tangent);
}
void backprop(benchmark::State& s) {
  run(s, shatter::probe::gradient_method::backprop);
}

}  // namespace

BENCHMARK(tangent)
    ->Name("probe/tangent")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(backprop)
    ->Name("probe/backprop")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
