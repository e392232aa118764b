// Thread safety as documented: independent networks (clones) trained and evaluated on two
// std::threads at the same time give bitwise the results of running them one after the other.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "shatter/core/threads.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"

using namespace shatter;

namespace {

dataset<double> make_random_data(shatter::index features, shatter::index n, std::uint64_t seed) {
  rng g(seed);
  dataset<double> d;
  d.classes = 10;
  d.x.resize(features, n);
  for (shatter::index i = 0; i < d.x.size(); ++i) d.x(i) = g.normal();
  for (shatter::index j = 0; j < n; ++j) d.labels.push_back(static_cast<std::int32_t>(g.below(10)));
  return d;
}

/// One independent job: a network (a clone), its optimiser, its data; trains, evaluates and
/// saves a checkpoint, recording everything it produced.
struct job {
  sequential<double> net;
  dataset<double> data;
  std::string checkpoint;
  std::vector<matrix<double>> result;

  void run() {
    softmax_cross_entropy<double> loss;
    adam_options ao;
    ao.lr = 1e-3;
    adam<double> opt(net.parameters(), ao);
    fit_options o;
    o.epochs = 2;
    o.batch_size = 8;
    o.seed = 3;
    fit(net, loss, opt, schedule::constant(1e-3), data, o);
    result.clear();
    for (auto& p : net.parameters()) result.push_back(*p.value);
    for (auto& b : net.buffers()) result.push_back(*b.value);
    result.push_back(net.forward(data.x, mode::eval));
    rng g(1);
    if (!checkpoint.empty()) save_checkpoint(checkpoint, net, opt, g, 2, 0);
  }
};

bool bitwise_equal(const std::vector<matrix<double>>& a, const std::vector<matrix<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].rows() != b[i].rows() || a[i].cols() != b[i].cols() ||
        std::memcmp(a[i].data(), b[i].data(), sizeof(double) * a[i].size()) != 0)
      return false;
  return true;
}

sequential<double> mlp(std::uint64_t seed) {
  rng g(seed);
  mlp_spec s;
  s.in = 12;
  s.width = 32;
  s.hidden_layers = 4;
  s.out = 10;
  return build<double>(architecture::resnet_bn, s, g);
}

sequential<double> convnet(std::uint64_t seed) {
  rng g(seed);
  cifar_spec s;
  s.weighted_layers = 8;
  s.width = 4;
  s.input = {3, 8, 8};
  return build_cifar<double>(cifar_arch::plain_crelu_ll, s, g);
}

}  // namespace

TEST_CASE("threads: independent networks on two threads equal the serial run bitwise",
          "[robust][threads]") {
  const int saved = threads();
  set_threads(1);  // bitwise reproducibility; the layers are what is under test here
  const sequential<double> base_mlp = mlp(1), base_conv = convnet(2);
  const auto mlp_data = make_random_data(12, 48, 3), conv_data = make_random_data(3 * 8 * 8, 24, 4);

  // Serial reference: one job after the other on this thread.
  job a{base_mlp, mlp_data, "", {}}, b{base_conv, conv_data, "", {}};
  a.run();
  b.run();

  SECTION("different networks at the same time") {
    job a2{base_mlp, mlp_data, "", {}}, b2{base_conv, conv_data, "", {}};
    std::thread t1([&] { a2.run(); }), t2([&] { b2.run(); });
    t1.join();
    t2.join();
    CHECK(bitwise_equal(a2.result, a.result));
    CHECK(bitwise_equal(b2.result, b.result));
  }
  SECTION("two clones of one network at the same time (shared per-thread scratch is not shared)") {
    job b2{base_conv, conv_data, "", {}}, b3{base_conv, conv_data, "", {}};
    std::thread t1([&] { b2.run(); }), t2([&] { b3.run(); });
    t1.join();
    t2.join();
    CHECK(bitwise_equal(b2.result, b.result));
    CHECK(bitwise_equal(b3.result, b.result));
  }
  SECTION("checkpoints of distinct networks written concurrently") {
    char tmpl[] = "/tmp/shatter_threads_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    job a2{base_mlp, mlp_data, dir + "/a.safetensors", {}};
    job a3{base_mlp, mlp_data, dir + "/b.safetensors", {}};
    std::thread t1([&] { a2.run(); }), t2([&] { a3.run(); });
    t1.join();
    t2.join();
    CHECK(bitwise_equal(a2.result, a.result));
    const auto f1 = io::read_file(a2.checkpoint), f2 = io::read_file(a3.checkpoint);
    CHECK(f1 == f2);
    std::remove(a2.checkpoint.c_str());
    std::remove(a3.checkpoint.c_str());
    ::rmdir(dir.c_str());
  }
  set_threads(saved);
}

TEST_CASE("threads: two training threads that each use 2 worker threads (shared block pool)",
          "[robust][threads]") {
  const int saved = threads();
  set_threads(2);  // each job's products are split into blocks run by the library's pool
  const sequential<double> base_mlp = mlp(7), base_conv = convnet(8);
  const auto mlp_data = make_random_data(12, 48, 9),
             conv_data = make_random_data(3 * 8 * 8, 24, 10);
  job a{base_mlp, mlp_data, "", {}}, b{base_conv, conv_data, "", {}};
  a.run();
  b.run();
  job a2{base_mlp, mlp_data, "", {}}, b2{base_conv, conv_data, "", {}};
  std::thread t1([&] { a2.run(); }), t2([&] { b2.run(); });
  t1.join();
  t2.join();
  // The split of each product into blocks depends only on the sizes and the thread setting, so
  // the results match the serial run exactly whichever thread ran which block.
  CHECK(bitwise_equal(a2.result, a.result));
  CHECK(bitwise_equal(b2.result, b.result));
  set_threads(saved);
}

TEST_CASE("threads: a const network is read concurrently (clone on each thread)",
          "[robust][threads]") {
  const sequential<double> base = mlp(5);
  matrix<double> x(12, 16);
  rng g(6);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = g.normal();
  auto serial = base;
  const matrix<double> y = serial.forward(x, mode::eval);
  std::vector<matrix<double>> ys(4);
  std::vector<std::thread> pool;
  for (std::size_t k = 0; k < ys.size(); ++k)
    pool.emplace_back([&, k] {
      auto mine = base;  // copying a const network concurrently is a read
      ys[k] = mine.forward(x, mode::eval);
    });
  for (auto& t : pool) t.join();
  for (const auto& yk : ys) CHECK(yk == y);
}
