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
// Deep CIFAR networks (shatter::build_cifar; bench/torch_cifar.py builds the same in PyTorch),
// each measurement meant for a fresh process, one JSON line on stdout:
//   conv_bench --memory ARCH [DEPTH [BATCH]] [--eval] [--threads T]
//       peak RSS (getrusage) of ONE training step (forward, softmax cross-entropy, backward, SGD
//       momentum step), or with --eval of one evaluation pass; also the parameter bytes and the
//       step time. DEPTH 200, BATCH 128 (500 with --eval) by default.
//   conv_bench --time ARCH DEPTH BATCH STEPS [--eval] [--threads T]
//       one warm-up step, then STEPS timed steps: median images/s after the warm-up and images/s
//       over all steps including the warm-up.
//   conv_bench --memory [DEPTH [BATCH]]   the older form: ARCH = plain_crelu_ll.
//   --direct (either form): 3x3 convolutions by the direct products, not by Winograd's F(2x2, 3x3).
//   ARCH: resnet, plain_relu, plain_crelu, plain_crelu_ll.
// Set OMP_NUM_THREADS to the thread count when comparing (bench/compare_conv.sh and
// bench/memory_compare.sh do); --threads T overrides it.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
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

/// One deep-CIFAR measurement, as given on the command line (see the file comment).
struct cifar_run {
  shatter::cifar_arch arch = shatter::cifar_arch::plain_crelu_ll;
  int depth = 200;
  int batch = 0;  // 0: 128 for training, 500 for evaluation
  int steps = 0;  // timed steps after the warm-up step (0: --memory, the one step only)
  bool eval = false;
  int threads = 0;  // 0: Eigen's default (OMP_NUM_THREADS)
};

/// Peak resident set size of this process so far, MiB (Linux reports KiB).
double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

/// Milliseconds since `t0`.
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// Prints the result of a run as one JSON line (the same keys as bench/torch_cifar.py).
void print_json(const cifar_run& r, shatter::index params, double rss_before, double build_ms,
                double loss, const std::vector<double>& ms) {
  std::vector<double> timed(ms.size() > 1 ? ms.begin() + 1 : ms.begin(), ms.end());
  std::sort(timed.begin(), timed.end());
  const std::size_t h = timed.size() / 2;
  const double median = timed.size() % 2 ? timed[h] : 0.5 * (timed[h - 1] + timed[h]);
  double total = 0;
  std::string steps;
  for (double m : ms) {
    total += m;
    steps += (steps.empty() ? "" : ", ") + std::to_string(m);
  }
  std::printf(
      "{\"side\": \"shatter\", \"mode\": \"%s\", \"arch\": \"%s\", \"depth\": %d, \"batch\": %d, "
      "\"pass\": \"%s\", \"threads\": %d, \"parameters\": %lld, \"parameter_bytes\": %lld, "
      "\"build_ms\": %.1f, \"rss_before_mib\": %.1f, \"peak_rss_mib\": %.1f, \"loss\": %s, "
      "\"step_ms\": [%s], \"median_ms\": %.3f, \"images_per_second\": %.3f, "
      "\"images_per_second_all\": %.3f}\n",
      r.steps ? "time" : "memory", shatter::to_string(r.arch).c_str(), r.depth, r.batch,
      r.eval ? "eval" : "train", shatter::threads(), static_cast<long long>(params),
      static_cast<long long>(params) * static_cast<long long>(sizeof(T)), build_ms, rss_before,
      peak_rss_mib(), std::isfinite(loss) ? std::to_string(loss).c_str() : "null", steps.c_str(),
      median, 1e3 * r.batch / median, 1e3 * r.batch * double(ms.size()) / total);
}

/// Builds the network of `r`, runs 1 + r.steps training steps (or evaluation passes) on a
/// random batch, each timed, and prints the JSON line.
int cifar_main(const cifar_run& r) {
  if (r.threads > 0) shatter::set_threads(r.threads);
  const double rss_before = peak_rss_mib();
  shatter::rng g(1);
  shatter::cifar_spec s;
  s.weighted_layers = r.depth;
  const auto t0 = std::chrono::steady_clock::now();
  auto net = shatter::build_cifar<T>(r.arch, s, g);
  const double build_ms = ms_since(t0);
  net.set_input_gradient(false);  // nobody needs dL/dx of the data
  shatter::matrix<T> x(3072, r.batch);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = T(g.normal());
  shatter::label_vector labels(std::size_t(r.batch));
  for (auto& l : labels) l = std::int32_t(g.below(10));
  shatter::softmax_cross_entropy<T> loss;
  std::unique_ptr<shatter::sgd<T>> opt;
  if (!r.eval) {
    shatter::sgd_options o;
    o.lr = 0.1;
    o.momentum = 0.9;
    opt = std::make_unique<shatter::sgd<T>>(net.parameters(), o);
  }
  std::vector<double> ms;
  double l = 0;
  for (int i = 0; i <= r.steps; ++i) {
    const auto t1 = std::chrono::steady_clock::now();
    const auto& y = net.forward(x, r.eval ? shatter::mode::eval : shatter::mode::train);
    l = loss.forward(y, labels);
    if (opt) {
      net.backward(loss.gradient());
      opt->step();
    }
    ms.push_back(ms_since(t1));
  }
  print_json(r, net.parameter_count(), rss_before, build_ms, l, ms);
  return 0;
}

/// True for a non-empty string of decimal digits.
bool is_number(const char* s) {
  return *s != '\0' && std::strspn(s, "0123456789") == std::strlen(s);
}

/// Parses `--memory ...` / `--time ...` (argv[1]) into a run; config_error on a bad line.
cifar_run parse_cifar_run(int argc, char** argv) {
  const bool timing = std::strcmp(argv[1], "--time") == 0;
  cifar_run r;
  std::vector<const char*> pos;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--eval") == 0)
      r.eval = true;
    else if (std::strcmp(argv[i], "--direct") == 0)
      shatter::conv2d<float>::set_winograd(false);
    else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      r.threads = std::atoi(argv[++i]);
    else
      pos.push_back(argv[i]);
  }
  std::size_t k = 0;
  if (k < pos.size() && !is_number(pos[k])) r.arch = shatter::parse_cifar_arch(pos[k++]);
  const std::size_t numbers = timing ? 3 : 2;  // DEPTH BATCH [STEPS]
  int* field[] = {&r.depth, &r.batch, &r.steps};
  for (std::size_t j = 0; j < numbers && k < pos.size(); ++j, ++k) {
    if (!is_number(pos[k])) throw shatter::config_error(std::string("not a number: ") + pos[k]);
    *field[j] = std::atoi(pos[k]);
  }
  if (k < pos.size()) throw shatter::config_error(std::string("unexpected argument ") + pos[k]);
  if (timing && r.steps < 1) throw shatter::config_error("--time needs STEPS >= 1");
  if (r.batch == 0) r.batch = r.eval ? 500 : 128;
  if (r.batch < 1) throw shatter::config_error("BATCH must be >= 1");
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--memory") == 0 || std::strcmp(argv[1], "--time") == 0)) {
    try {
      return cifar_main(parse_cifar_run(argc, argv));
    } catch (const shatter::error& e) {
      std::fprintf(
          stderr,
          "conv_bench: %s\nusage: conv_bench --memory ARCH [DEPTH [BATCH]] [--eval] "
          "[--threads T] [--direct]\n       conv_bench --time ARCH DEPTH BATCH STEPS [--eval] "
          "[--threads T] [--direct]\n",
          e.what());
      return 2;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
