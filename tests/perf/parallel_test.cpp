// The block pool behind dense products: every block runs exactly once, nested and concurrent
// callers fall back to serial loops, and a two-thread network step is repeatable bit for bit and
// equals the one-thread step up to rounding.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "shatter/core/threads.hpp"
#include "shatter/exec/gemm.hpp"
#include "shatter/network/builders.hpp"

TEST_CASE("parallel_blocks runs every block exactly once", "[perf][parallel]") {
  shatter::set_threads(2);
  for (shatter::index n : {0, 1, 2, 3, 7, 64, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    for (int rep = 0; rep < 50; ++rep)
      shatter::detail::parallel_blocks<float>(
          shatter::exec::context{2}, n, 16,
          [&](shatter::index i) { hits[static_cast<std::size_t>(i)].fetch_add(1); });
    for (auto& h : hits) REQUIRE(h.load() == 50);
  }
  shatter::set_threads(1);
}

TEST_CASE("nested and concurrent parallel_blocks calls complete", "[perf][parallel]") {
  shatter::set_threads(2);
  std::atomic<long> sum{0};
  auto job = [&] {
    for (int rep = 0; rep < 200; ++rep)
      shatter::detail::parallel_blocks<float>(
          shatter::exec::context{2}, 8, 0, [&](shatter::index i) {
            shatter::detail::parallel_blocks<float>(shatter::exec::context{2}, 4, 0,
                                                    [&](shatter::index j) { sum += i * 4 + j; });
          });
  };
  std::thread a(job), b(job);
  a.join();
  b.join();
  CHECK(sum.load() == 2L * 200 * (31 * 32 / 2));
  shatter::set_threads(1);
}

namespace {
shatter::matrix<double> step_params(int threads) {
  shatter::set_threads(threads);
  shatter::rng g(3);
  shatter::mlp_spec s;
  s.in = 150;
  s.width = 200;
  s.hidden_layers = 3;
  s.out = 7;
  auto net = shatter::looks_linear_mlp<double>(s, g);
  shatter::matrix<double> x(150, 96);
  for (shatter::index j = 0; j < x.cols(); ++j)
    for (shatter::index i = 0; i < x.rows(); ++i) x(i, j) = g.normal();
  auto params = net.parameters();
  for (int step = 0; step < 3; ++step) {
    const auto& y = net.forward(x, shatter::mode::train);
    const shatter::matrix<double> dy = y / double(y.cols());
    const auto& dx = net.backward(dy);
    REQUIRE(dx.rows() == 150);
    for (auto& p : params) *p.value -= 0.05 * *p.grad;
  }
  shatter::set_threads(1);
  return net.forward(x, shatter::mode::eval);  // the outputs after three steps
}
}  // namespace

TEST_CASE("two-thread training steps are repeatable and match one thread", "[perf][parallel]") {
  const auto one = step_params(1);
  const auto two = step_params(2);
  const auto again = step_params(2);
  CHECK((two.array() == again.array()).all());  // blocks do not depend on which thread ran them
  CHECK((two - one).cwiseAbs().maxCoeff() <= 1e-12 * (1 + one.cwiseAbs().maxCoeff()));
}
