// The Jacobian-spectrum probes (probe/jacobian_spectrum.hpp) at initialisation, fp32:
//
//   jacobian/exact_mlp       exact Jacobians and their SVD: a plain ReLU MLP, in = width = out =
//                            128, depth 32, 16 samples (128 tangent directions per sample)
//   jacobian/lanczos_cifar   40 Lanczos steps on J^T J of a CIFAR plain_crelu_ll body (depth 20,
//                            width 8, 3 x 16 x 16 images, 4 samples): 40 tangent and 40
//                            backward passes of the batch
// The argument is the thread count.
#include <benchmark/benchmark.h>

#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/probe/jacobian_spectrum.hpp"

namespace {

shatter::matrix<float> gaussian(shatter::index rows, shatter::index cols, shatter::rng& g) {
  shatter::matrix<float> m(rows, cols);
  for (shatter::index i = 0; i < m.size(); ++i) m(i) = float(g.normal());
  return m;
}

void exact_mlp(benchmark::State& state) {
  shatter::rng g(7);
  shatter::mlp_spec s;
  s.in = s.width = s.out = 128;
  s.hidden_layers = 32;
  auto net = shatter::plain_relu_mlp<float>(s, g);
  const auto x = gaussian(128, 16, g);
  shatter::probe::jacobian_options o;
  o.threads = int(state.range(0));
  double sink = 0;
  for (auto _ : state) {
    sink += shatter::probe::jacobian_singular_values(net, x, o)[0](0);
    benchmark::DoNotOptimize(sink);
  }
  state.counters["jacobians/s"] =
      benchmark::Counter(16, benchmark::Counter::kIsIterationInvariantRate);
}

void lanczos_cifar(benchmark::State& state) {
  shatter::rng g(8);
  shatter::cifar_spec s;
  s.weighted_layers = 20;
  s.width = 8;
  s.input = {3, 16, 16};
  s.batch_norm = false;
  auto full = shatter::build_cifar<float>(shatter::cifar_arch::plain_crelu_ll, s, g);
  shatter::sequential<float> body;
  for (std::size_t i = 0; i < full.size(); ++i) {
    if (dynamic_cast<shatter::global_avg_pool<float>*>(&full[i])) break;
    body.add(full[i].clone());
  }
  const auto x = gaussian(body.in_size(), 4, g);
  shatter::probe::lanczos_options o;
  o.steps = 40;
  o.jacobian.threads = int(state.range(0));
  double sink = 0;
  for (auto _ : state) {
    sink += shatter::probe::jacobian_lanczos(body, x, o)[0].singular_values(0);
    benchmark::DoNotOptimize(sink);
  }
  state.counters["steps/s"] = benchmark::Counter(40, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(exact_mlp)
    ->Name("jacobian/exact_mlp")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(lanczos_cifar)
    ->Name("jacobian/lanczos_cifar")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_MAIN();
