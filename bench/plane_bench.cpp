// The cost of the probes beyond the 1-D sweep, fp32:
//
//   plane/sweep_plane      probe::sweep_plane of a 2-input plain ReLU net (width 200, depth 50)
//                          over the 65 x 65 grid of `shattering plane` (two tangent passes over
//                          4225 inputs); argument: threads
//   plane/radial_slope     probe::radial_spectrum_slope of a 65 x 65 map (2-D DFT, direct sums
//                          since 65 is not a power of two)
//   conv/sweep_line        probe::sweep_line of a depth-56 CIFAR plain_relu net (width 16, BN,
//                          logits projected to a scalar) along 64 points between two images: one
//                          network of `shattering conv`; argument: threads
//   train/training_probe   one training_probe::probe of a depth-20 CIFAR plain_relu net, 2 lines
//                          of 64 points (sweep, input-gradient norms and unit activity): the cost
//                          `cifar10 --probe-every` adds per probe
#include <benchmark/benchmark.h>

#include "shatter/core/threads.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/probe/plane.hpp"
#include "shatter/probe/radial_spectrum.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/probe/synthetic.hpp"
#include "shatter/probe/training_probe.hpp"

namespace {

using shatter::index;

void sweep_plane(benchmark::State& state) {
  shatter::set_threads(int(state.range(0)));
  shatter::rng g(42);
  shatter::mlp_spec s;
  s.in = 2;
  s.width = 200;
  s.hidden_layers = 50;
  s.bias_std = 0.5;
  auto net = shatter::build<float>(shatter::architecture::plain_relu, s, g);
  shatter::probe::plane_basis p{Eigen::VectorXd::Zero(2), Eigen::VectorXd::Unit(2, 0),
                                Eigen::VectorXd::Unit(2, 1)};
  shatter::probe::plane_options o;
  o.from = -2;
  o.to = 2;
  double sink = 0;
  for (auto _ : state) {
    sink += shatter::probe::sweep_plane(net, p, o).grad_s(0, 0);
    benchmark::DoNotOptimize(sink);
  }
  state.counters["points/s"] = benchmark::Counter(double(o.points * o.points),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

void radial_slope(benchmark::State& state) {
  shatter::rng g(1);
  const Eigen::MatrixXd m = shatter::probe::white_noise_2d(65, 65, g);
  double sink = 0;
  for (auto _ : state) {
    sink += shatter::probe::radial_spectrum_slope(m);
    benchmark::DoNotOptimize(sink);
  }
}

shatter::sequential<float> cifar_net(index depth, bool scalar, shatter::rng& g) {
  shatter::cifar_spec s;
  s.weighted_layers = depth;
  auto net = shatter::build_cifar<float>(shatter::cifar_arch::plain_relu, s, g);
  if (scalar) {
    shatter::dense<float> proj(10, 1, false, shatter::no_init);
    proj.weight().setConstant(1.0f / std::sqrt(10.0f));
    net.add(std::move(proj));
  }
  return net;
}

shatter::matrix<float> images(index n, shatter::rng& g) {
  shatter::matrix<float> x(3 * 32 * 32, n);
  for (index i = 0; i < x.size(); ++i) x(i) = float(g.normal());
  return x;
}

void conv_sweep_line(benchmark::State& state) {
  shatter::set_threads(int(state.range(0)));
  shatter::rng g(7);
  auto net = cifar_net(56, true, g);
  const shatter::matrix<float> x = images(2, g);
  const Eigen::VectorXd u = x.col(0).cast<double>(), v = x.col(1).cast<double>() - u;
  shatter::probe::sweep_options o;
  o.from = 0;
  o.to = 1;
  o.points = 64;
  double sink = 0;
  for (auto _ : state) {
    sink += shatter::probe::sweep_line(net, u, v, o).gradient(0);
    benchmark::DoNotOptimize(sink);
  }
}

void training_probe(benchmark::State& state) {
  shatter::set_threads(int(state.range(0)));
  shatter::rng g(9);
  auto net = cifar_net(20, false, g);
  shatter::probe::training_probe_options o;
  o.points = 64;
  shatter::probe::training_probe<float> tp(net, images(4, g), Eigen::VectorXd::Ones(10), o);
  double sink = 0;
  std::int64_t step = 0;
  for (auto _ : state) {
    sink += tp.probe(step++).lag1_mean;
    benchmark::DoNotOptimize(sink);
  }
}

}  // namespace

BENCHMARK(sweep_plane)
    ->Name("plane/sweep_plane")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(radial_slope)->Name("plane/radial_slope")->Unit(benchmark::kMillisecond);
BENCHMARK(conv_sweep_line)
    ->Name("conv/sweep_line")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(training_probe)
    ->Name("train/training_probe")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
