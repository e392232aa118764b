// Data-parallel training over MPI, run by every rank of `mpirun -np 2 test_mpi`: two ranks with
// half the batch each train as one process with the whole batch (nets without batch norm, and
// with synchronized batch norm), the runs are bitwise reproducible and identical on the ranks,
// runs resume across rank counts, and stops, errors and non-finite batches are agreed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shatter/core/threads.hpp"
#include "shatter/dist/mpi.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"

using shatter::matrix;
using Index = shatter::index;
using T = float;

namespace {

shatter::dist::mpi_communicator* world = nullptr;

/// n samples of `classes` Gaussian blobs with d features (a d = C H W image per sample).
shatter::dataset<T> blobs(Index d, Index n, Index classes, std::uint64_t seed) {
  shatter::rng g(seed);
  matrix<T> centres(d, classes);
  for (Index i = 0; i < centres.size(); ++i) centres(i) = T(g.normal());
  shatter::dataset<T> ds;
  ds.classes = classes;
  ds.x.resize(d, n);
  for (Index j = 0; j < n; ++j) {
    const auto c = static_cast<std::int32_t>(g.below(std::uint64_t(classes)));
    ds.labels.push_back(c);
    for (Index i = 0; i < d; ++i) ds.x(i, j) = centres(i, c) + T(0.8 * g.normal());
  }
  return ds;
}

/// The networks under test: a looks-linear CReLU MLP (no batch norm), a plain conv net without
/// batch norm, and a small CIFAR ResNet with batch norm.
enum class net_kind { mlp, conv_plain, resnet_bn };

shatter::image_shape image() {
  return {2, 6, 6};
}

shatter::sequential<T> make_net(net_kind k) {
  shatter::rng g(7);
  if (k == net_kind::mlp) {
    shatter::mlp_spec s;
    s.in = image().size();
    s.width = 12;
    s.hidden_layers = 3;
    s.out = 3;
    return shatter::looks_linear_mlp<T>(s, g);
  }
  shatter::cifar_spec s;
  s.weighted_layers = 8;
  s.width = 4;
  s.classes = 3;
  s.input = image();
  s.batch_norm = k == net_kind::resnet_bn;
  return shatter::build_cifar<T>(
      k == net_kind::resnet_bn ? shatter::cifar_arch::resnet : shatter::cifar_arch::plain_relu, s,
      g);
}

struct run_output {
  std::vector<matrix<T>> values;  ///< parameters, then running statistics
  shatter::fit_result result;
};

/// Trains a fresh net of kind `k` with SGD (momentum, weight decay), a cosine schedule and a
/// noise-adding augmentation: alone when `comm` is null, else over its ranks.
run_output train(net_kind k, shatter::communicator* comm, bool sync_bn,
                 shatter::run_options o = {}) {
  const auto data = blobs(image().size(), 52, 3, 11);
  const auto test = blobs(image().size(), 21, 3, 12);
  auto net = make_net(k);
  shatter::softmax_cross_entropy<T> loss;
  shatter::sgd<T> opt(net.parameters(), {0.05, 0.9, false, 1e-3});
  o.epochs = o.epochs > 1 ? o.epochs : 2;
  o.batch_size = 16;  // 16, 16, 16, 4 per epoch
  o.seed = 5;
  o.comm = comm;
  o.sync_batch_norm = sync_bn;
  const auto sched = shatter::schedule::cosine(0.05, 8);
  auto noise = [](matrix<T>& x, shatter::label_vector&, shatter::rng& g) {
    for (Index i = 0; i < x.size(); ++i) x(i) += T(0.05 * g.normal());
  };
  run_output out;
  out.result = shatter::fit(net, loss, opt, sched, data, test, o, noise);
  for (auto& p : net.parameters()) out.values.push_back(*p.value);
  for (auto& b : net.buffers()) out.values.push_back(*b.value);
  return out;
}

/// Largest ||a_i - b_i|| / ||b_i|| over the tensors.
double max_relative_difference(const std::vector<matrix<T>>& a, const std::vector<matrix<T>>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double nb = double(b[i].norm());
    const double d = double((a[i] - b[i]).norm());
    worst = std::max(worst, nb > 0 ? d / nb : d);
  }
  return worst;
}

bool bitwise_equal(const std::vector<matrix<T>>& a, const std::vector<matrix<T>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), sizeof(T) * std::size_t(a[i].size())) != 0)
      return false;
  return true;
}

/// True when every rank holds the same bits as rank 0.
bool same_on_every_rank(std::vector<matrix<T>> v) {
  auto mine = v;
  for (auto& m : v) world->broadcast(m.data(), std::size_t(m.size()), 0);
  return !shatter::detail::any_rank(*world, !bitwise_equal(mine, v));
}

/// A fresh empty directory, the same path on every rank (made by rank 0).
std::string fresh_dir(const std::string& name) {
  std::string dir;
  if (world->root()) {
    char tmpl[] = "/tmp/shatter-mpi-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = std::string(tmpl) + "/" + name;
  }
  world->broadcast(dir, 0);
  return dir;
}

}  // namespace

TEST_CASE("2 ranks with half the batch each train as 1 process with the whole batch",
          "[mpi][equivalence]") {
  REQUIRE(world->size() == 2);
  struct variant {
    net_kind kind;
    bool sync;
    const char* what;
  };
  for (const variant v : {variant{net_kind::mlp, false, "looks-linear MLP, no batch norm"},
                          variant{net_kind::conv_plain, false, "plain conv net, no batch norm"},
                          variant{net_kind::resnet_bn, true, "ResNet, synchronized batch norm"}}) {
    INFO(v.what << ", rank " << world->rank());
    const auto alone = train(v.kind, nullptr, false);
    const auto ranks = train(v.kind, world, v.sync);
    CHECK(ranks.result.steps == 8);
    CHECK(max_relative_difference(ranks.values, alone.values) <= 1e-5);
    REQUIRE(ranks.result.epochs.size() == 2);
    for (std::size_t e = 0; e < 2; ++e) {
      const auto& a = alone.result.epochs[e];
      const auto& r = ranks.result.epochs[e];
      CHECK(r.train_loss == Approx(a.train_loss).epsilon(1e-5));
      CHECK(r.train_accuracy == a.train_accuracy);
      CHECK(r.test.samples == a.test.samples);
      CHECK(r.test.loss == Approx(a.test.loss).epsilon(1e-5));
      CHECK(r.test.accuracy == a.test.accuracy);
    }
    CHECK(same_on_every_rank(ranks.values));
  }
}

TEST_CASE("two identical 2-rank runs are bitwise equal, and equal on both ranks",
          "[mpi][reproducible]") {
  for (const bool sync : {false, true}) {
    INFO((sync ? "synchronized" : "per-rank") << " batch norm, rank " << world->rank());
    const auto a = train(net_kind::resnet_bn, world, sync);
    const auto b = train(net_kind::resnet_bn, world, sync);
    CHECK(bitwise_equal(a.values, b.values));
    // Per-rank statistics: rank 0's running statistics are broadcast after every step.
    CHECK(same_on_every_rank(a.values));
  }
}

TEST_CASE("a run resumes on any number of ranks: 1 -> 2 and 2 -> 1", "[mpi][resume]") {
  const auto whole = train(net_kind::mlp, nullptr, false);
  SECTION("started alone, finished on 2 ranks") {
    const std::string dir = fresh_dir("run");
    shatter::run_options o;
    o.run_dir = dir;
    if (world->root()) {
      o.max_steps = 3;
      const auto first = train(net_kind::mlp, nullptr, false, o);
      CHECK(first.result.steps == 3);
    }
    o.max_steps = -1;
    o.resume = true;
    const auto rest = train(net_kind::mlp, world, false, o);
    CHECK(rest.result.steps == 8);
    CHECK(max_relative_difference(rest.values, whole.values) <= 1e-5);
    if (world->root()) {
      CHECK(rest.result.record.finished);
      CHECK(rest.result.record.last_test_accuracy == whole.result.epochs[1].test.accuracy);
    }
  }
  SECTION("started on 2 ranks, finished alone; the checkpoint is a single-process one") {
    const std::string dir = fresh_dir("run");
    shatter::run_options o;
    o.run_dir = dir;
    o.max_steps = 5;
    const auto first = train(net_kind::mlp, world, false, o);
    CHECK(first.result.steps == 5);
    if (world->root()) {
      auto net = make_net(net_kind::mlp);
      shatter::sgd<T> opt(net.parameters(), {0.05, 0.9, false, 1e-3});
      shatter::rng unused(0);
      const auto info = shatter::load_checkpoint(dir + "/checkpoint.safetensors", net, opt, unused);
      CHECK(info.step == 5);
      o.max_steps = -1;
      o.resume = true;
      const auto rest = train(net_kind::mlp, nullptr, false, o);
      CHECK(rest.result.steps == 8);
      CHECK(max_relative_difference(rest.values, whole.values) <= 1e-5);
    }
    CHECK(!shatter::detail::any_rank(*world, false));  // wait for rank 0
  }
}

TEST_CASE("refusals, stops and non-finite batches are agreed by every rank", "[mpi][agree]") {
  SECTION("resuming nothing is refused on every rank") {
    shatter::run_options o;
    o.run_dir = fresh_dir("empty");
    o.resume = true;
    CHECK_THROWS_AS(train(net_kind::mlp, world, false, o), shatter::run_refused);
  }
  SECTION("a batch that would leave a rank without samples is refused before training") {
    auto net = make_net(net_kind::mlp);
    const auto data = blobs(image().size(), 49, 3, 11);  // batches 16, 16, 16, 1
    shatter::softmax_cross_entropy<T> loss;
    shatter::sgd<T> opt(net.parameters(), {0.05});
    shatter::run_options o;
    o.batch_size = 16;
    o.comm = world;
    CHECK_THROWS_WITH(shatter::fit(net, loss, opt, data, o),
                      Catch::Contains("a batch of 1 samples, fewer than the 2 ranks"));
    o.drop_last = true;
    CHECK(shatter::fit(net, loss, opt, data, o).steps == 3);
  }
  SECTION("a stop requested on rank 1 alone stops both after the same step") {
    shatter::run_options o;
    o.on_step = [](shatter::step_report& r) { r.stop = world->rank() == 1 && r.step == 3; };
    const auto r = train(net_kind::mlp, world, false, o);
    CHECK(r.result.stopped);
    CHECK(r.result.steps == 3);
  }
  SECTION("a non-finite loss on rank 1's shard stops every rank, naming rank 1") {
    // Step 1 takes samples order[0..16) of epoch 0; rank 1's shard is order[8..16).
    std::vector<Index> order;
    shatter::epoch_order(5, 0, 52, order);
    shatter::run_options o;
    shatter::sequential<T> net = make_net(net_kind::mlp);
    auto data = blobs(image().size(), 52, 3, 11);
    data.x.col(order[10]).setConstant(T(3e38));
    shatter::softmax_cross_entropy<T> loss;
    shatter::sgd<T> opt(net.parameters(), {0.05});
    o.batch_size = 16;
    o.seed = 5;
    o.comm = world;
    try {
      shatter::fit(net, loss, opt, data, o);
      FAIL("no exception");
    } catch (const shatter::numeric_error& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("step 1 ") && Catch::Contains("rank 1"));
    }
    CHECK(opt.steps() == 0);
  }
}

int main(int argc, char** argv) {
  shatter::dist::mpi_session session(argc, argv, "test_mpi");
  int failed = 0;
  {
    shatter::dist::mpi_communicator comm;
    world = &comm;
    shatter::set_threads(1);
    if (comm.size() != 2) {
      std::fprintf(stderr, "test_mpi: run with mpirun -np 2 (got %d ranks)\n", comm.size());
      return 1;
    }
    failed = Catch::Session().run(argc, argv);
    failed = shatter::detail::any_rank(comm, failed != 0) ? 1 : 0;
    world = nullptr;
  }
  return failed;
}
