// The training loop: it learns, is deterministic, resumes exactly, guards against NaN/Inf.
#include <catch2/catch.hpp>

#include <sstream>

#include "shatter/activation/relu.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/init/he.hpp"
#include "shatter/loss/mse.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/fit.hpp"

using shatter::matrix;
using Index = shatter::index;

namespace {

/// n samples of 3 Gaussian blobs in d dimensions (centres 3 apart), labels 0..2.
template <class T>
shatter::dataset<T> blobs(Index d, Index n, std::uint64_t seed) {
  shatter::rng g(seed);
  matrix<T> centres(d, 3);
  for (Index i = 0; i < centres.size(); ++i) centres(i) = T(1.5 * g.normal());
  shatter::dataset<T> ds;
  ds.classes = 3;
  ds.x.resize(d, n);
  for (Index j = 0; j < n; ++j) {
    const auto c = static_cast<std::int32_t>(g.below(3));
    ds.labels.push_back(c);
    for (Index i = 0; i < d; ++i) ds.x(i, j) = centres(i, c) + T(0.7 * g.normal());
  }
  return ds;
}

shatter::mlp_spec small_spec(Index depth = 3) {
  shatter::mlp_spec s;
  s.in = 8;
  s.width = 16;
  s.hidden_layers = depth;
  s.out = 3;
  return s;
}

/// Identity on the forward pass; on backward call number `bad_call` it returns NaN gradients.
class nan_on_backward final : public shatter::layer<double> {
 public:
  explicit nan_on_backward(Index n, int bad_call) : n_(n), bad_(bad_call) {}
  std::string kind() const override { return "nan_on_backward"; }
  shatter::image_shape input_shape() const override { return {n_, 1, 1}; }
  shatter::image_shape output_shape() const override { return {n_, 1, 1}; }
  shatter::backward_reads reads() const override { return {}; }
  void forward_kernel(shatter::const_batch_view<double> x, shatter::batch_view<double> y,
                      shatter::mode, const shatter::kernel_env<double>&) override {
    y = x;
  }
  void backward_kernel(shatter::const_batch_view<double>, shatter::const_batch_view<double>,
                       shatter::const_batch_view<double> dy, shatter::batch_view<double> dx, bool,
                       const shatter::kernel_env<double>&) override {
    if (dx.size() == 0) return;
    dx = dy;
    if (++calls_ == bad_) dx.setConstant(std::numeric_limits<double>::quiet_NaN());
  }
  void tangent_kernel(shatter::const_batch_view<double> x, shatter::const_batch_view<double> dx,
                      shatter::batch_view<double> y, shatter::batch_view<double> dy,
                      shatter::batch_stats, const shatter::kernel_env<double>&) override {
    y = x;
    dy = dx;
  }
  std::unique_ptr<shatter::layer<double>> clone() const override {
    return std::make_unique<nan_on_backward>(*this);
  }

 private:
  Index n_;
  int bad_;
  int calls_ = 0;
};

/// dense(8 -> 16) relu dense(16 -> 16) nan_on_backward relu dense(16 -> 3), He init.
shatter::sequential<double> net_with_nan_layer(int bad_call) {
  shatter::rng g(4);
  shatter::sequential<double> net;
  shatter::init::he_normal(net.add(shatter::dense<double>(8, 16)).weight(), g);
  net.add(shatter::relu<double>());
  shatter::init::he_normal(net.add(shatter::dense<double>(16, 16)).weight(), g);
  net.add(nan_on_backward(16, bad_call));
  net.add(shatter::relu<double>());
  shatter::init::he_normal(net.add(shatter::dense<double>(16, 3)).weight(), g);
  return net;
}

std::vector<matrix<double>> values(shatter::sequential<double>& net) {
  std::vector<matrix<double>> v;
  for (auto& p : net.parameters()) v.push_back(*p.value);
  return v;
}

bool bitwise_equal(const std::vector<matrix<double>>& a, const std::vector<matrix<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), sizeof(double) * a[i].size()) != 0)
      return false;
  return true;
}

/// Runs a test on one thread (the products here are tiny; threads only add overhead).
struct one_thread {
  int saved = shatter::threads();
  one_thread() { shatter::set_threads(1); }
  ~one_thread() { shatter::set_threads(saved); }
};

}  // namespace

TEST_CASE("fit learns separable blobs and reports every epoch", "[train]") {
  one_thread single;
  const auto train = blobs<float>(8, 600, 1), test = blobs<float>(8, 300, 1);
  shatter::rng g(2);
  auto net = shatter::looks_linear_mlp<float>(
      [] {
        auto s = small_spec();
        return s;
      }(),
      g);
  shatter::softmax_cross_entropy<float> loss;
  const auto before = shatter::evaluate(net, loss, test);
  shatter::sgd<float> opt(net.parameters(), {0.05, 0.9});
  shatter::fit_options o;
  o.epochs = 3;
  o.batch_size = 32;
  o.progress_every = 5;
  std::ostringstream log;
  o.progress = &log;
  int calls = 0;
  o.on_epoch = [&](const shatter::epoch_report& r) { CHECK(r.epoch == calls++); };
  const auto res = shatter::fit(net, loss, opt, shatter::schedule::constant(0.05), train, test, o);
  REQUIRE(res.epochs.size() == 3);
  CHECK(calls == 3);
  CHECK(res.steps == 3 * 19);  // ceil(600 / 32) = 19 batches per epoch
  CHECK(res.epochs.back().step == res.steps);
  CHECK(res.epochs.back().test.samples == 300);
  CHECK(res.epochs.back().test.accuracy > 0.95);
  CHECK(res.epochs.back().test.loss < 0.3 * before.loss);
  CHECK(res.epochs.back().train_loss < res.epochs.front().train_loss);
  CHECK(log.str().find("samples/s") != std::string::npos);
  CHECK(log.str().find("epoch 3/3 done") != std::string::npos);
  CHECK(net.input_gradient());  // restored after training
}

TEST_CASE("fit follows the schedule per step or per epoch", "[train][schedule]") {
  one_thread single;
  const auto train = blobs<double>(8, 40, 3);
  shatter::rng g(2);
  auto net = shatter::looks_linear_mlp<double>(small_spec(), g);
  shatter::softmax_cross_entropy<double> loss;
  shatter::sgd<double> opt(net.parameters(), {0.1});
  shatter::fit_options o;
  o.epochs = 3;
  o.batch_size = 10;  // 4 steps per epoch
  std::vector<double> lrs;
  o.on_step = [&](const shatter::step_report& r) { lrs.push_back(r.learning_rate); };
  const auto sched = shatter::schedule::step_decay(0.1, {5}, 0.5);
  shatter::fit(net, loss, opt, sched, train, o);
  REQUIRE(lrs.size() == 12);
  for (std::size_t i = 0; i < lrs.size(); ++i) CHECK(lrs[i] == sched.lr_at(std::int64_t(i)));
  lrs.clear();
  o.schedule_per_epoch = true;
  const auto per_epoch = shatter::schedule::step_decay(0.1, {1, 2}, 0.5);
  shatter::fit(net, loss, opt, per_epoch, train, o);
  REQUIRE(lrs.size() == 12);
  CHECK(lrs[3] == 0.1);
  CHECK(lrs[4] == 0.05);
  CHECK(lrs[11] == 0.025);
  CHECK(opt.learning_rate() == 0.025);
}

TEST_CASE("same seed, one thread: bitwise identical parameters, resume reproduces the run",
          "[train][determinism]") {
  one_thread single;
  const int saved_threads = shatter::threads();
  shatter::set_threads(1);
  const auto train = blobs<double>(8, 100, 5);
  auto run = [&](std::uint64_t shuffle_seed, std::int64_t split) {
    shatter::rng g(7);
    auto net = shatter::looks_linear_mlp<double>(small_spec(4), g);
    shatter::softmax_cross_entropy<double> loss;
    shatter::adam<double> opt(net.parameters(), {1e-2});
    shatter::fit_options o;
    o.epochs = 3;
    o.batch_size = 16;  // 7 batches per epoch, 21 steps
    o.seed = shuffle_seed;
    const auto sched = shatter::schedule::cosine(1e-2, 21).with_warmup(3);
    if (split < 0) {
      shatter::fit(net, loss, opt, sched, train, o);
    } else {
      o.max_steps = split;
      shatter::fit(net, loss, opt, sched, train, o);
      // A fresh optimiser restored from the old one's state, as a checkpoint would do.
      shatter::adam<double> opt2(net.parameters(), {1e-2});
      auto from = opt.state(), to = opt2.state();
      for (std::size_t i = 0; i < from.size(); ++i) *to[i].value = *from[i].value;
      opt2.set_steps(opt.steps());
      o.max_steps = -1;
      o.start_step = split;
      const auto r = shatter::fit(net, loss, opt2, sched, train, o);
      CHECK(r.steps == 21);
    }
    return values(net);
  };
  const auto a = run(11, -1), b = run(11, -1), c = run(12, -1);
  CHECK(bitwise_equal(a, b));
  CHECK_FALSE(bitwise_equal(a, c));      // the shuffle seed matters
  CHECK(bitwise_equal(a, run(11, 10)));  // resumed mid-epoch (epoch 2, batch 4)
  CHECK(bitwise_equal(a, run(11, 14)));  // resumed at an epoch boundary
  shatter::set_threads(saved_threads);
}

TEST_CASE("a NaN gradient stops training, naming the step and the first parameter reached",
          "[train][nonfinite]") {
  one_thread single;
  const auto train = blobs<double>(8, 64, 6);
  auto net = net_with_nan_layer(3);
  shatter::softmax_cross_entropy<double> loss;
  shatter::sgd<double> opt(net.parameters(), {0.01});
  shatter::fit_options o;
  o.batch_size = 16;
  std::vector<matrix<double>> before_step3;
  o.on_step = [&](const shatter::step_report& r) {
    if (r.step == 2) before_step3 = values(net);
  };
  const auto sched = shatter::schedule::constant(0.01);
  try {
    shatter::fit(net, loss, opt, sched, train, o);
    FAIL("no exception");
  } catch (const shatter::numeric_error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("step 3 ") && Catch::Contains("non-finite gradient") &&
                        Catch::Contains("'2.bias' of layer 2 dense(16 -> 16, bias)"));
  }
  CHECK(bitwise_equal(before_step3, values(net)));  // the bad update was not applied
  CHECK(opt.steps() == 2);
}

TEST_CASE("the skip option skips non-finite batches and trains on", "[train][nonfinite]") {
  one_thread single;
  const auto train = blobs<double>(8, 64, 6);
  auto net = net_with_nan_layer(2);
  shatter::softmax_cross_entropy<double> loss;
  shatter::sgd<double> opt(net.parameters(), {0.01});
  shatter::fit_options o;
  o.batch_size = 16;
  o.epochs = 2;
  o.on_nonfinite = shatter::nonfinite_policy::skip_batch;
  std::ostringstream log;
  o.progress = &log;
  const auto r = shatter::fit(net, loss, opt, shatter::schedule::constant(0.01), train, o);
  CHECK(r.skipped_batches == 1);
  CHECK(r.epochs[0].skipped_batches == 1);
  CHECK(r.steps == 8);
  CHECK(opt.steps() == 7);
  CHECK(log.str().find("step 2 (epoch 1, batch 2 of 4)") != std::string::npos);
  for (auto& p : net.parameters()) CHECK(p.value->allFinite());
}

TEST_CASE("a NaN weight makes the loss non-finite, the guard names the first bad layer",
          "[train][nonfinite]") {
  one_thread single;
  const auto train = blobs<double>(8, 64, 6);
  auto net = net_with_nan_layer(-1);
  static_cast<shatter::dense<double>&>(net[2]).weight()(3, 4) =
      std::numeric_limits<double>::infinity();
  shatter::softmax_cross_entropy<double> loss;
  shatter::sgd<double> opt(net.parameters(), {0.01});
  shatter::fit_options o;
  o.batch_size = 16;
  CHECK_THROWS_WITH(shatter::fit(net, loss, opt, shatter::schedule::constant(0.01), train, o),
                    Catch::Contains("step 1 ") && Catch::Contains("non-finite loss") &&
                        Catch::Contains("output of layer 2 dense(16 -> 16, bias)") &&
                        Catch::Contains("value of parameter '2.weight'"));
}

TEST_CASE("fit rejects bad data and options with clear messages", "[train][bad-input]") {
  one_thread single;
  auto train = blobs<double>(8, 32, 6);
  shatter::rng g(2);
  auto net = shatter::looks_linear_mlp<double>(small_spec(), g);
  shatter::softmax_cross_entropy<double> loss;
  shatter::sgd<double> opt(net.parameters(), {0.01});
  const auto sched = shatter::schedule::constant(0.01);
  shatter::fit_options o;
  o.batch_size = 0;
  CHECK_THROWS_AS(shatter::fit(net, loss, opt, sched, train, o), shatter::config_error);
  o.batch_size = 8;
  auto wide = blobs<double>(9, 32, 6);
  CHECK_THROWS_WITH(shatter::fit(net, loss, opt, sched, wide, o),
                    Catch::Contains("takes 8 features") && Catch::Contains("has 9"));
  train.labels[5] = 7;
  CHECK_THROWS_AS(shatter::fit(net, loss, opt, sched, train, o), shatter::data_error);
  train.labels[5] = 0;
  train.labels.pop_back();
  CHECK_THROWS_WITH(shatter::fit(net, loss, opt, sched, train, o),
                    Catch::Contains("31 labels for 32 samples"));
  CHECK_THROWS_AS(shatter::fit(net, loss, opt, sched, shatter::dataset<double>{}, o),
                  shatter::config_error);
  CHECK_THROWS_AS(shatter::evaluate(net, loss, wide, 0), shatter::config_error);
}

TEST_CASE("mse works as the training loss on one-hot labels", "[train]") {
  one_thread single;
  const auto train = blobs<double>(8, 200, 8);
  shatter::rng g(2);
  auto net = shatter::looks_linear_mlp<double>(small_spec(), g);
  shatter::mse<double> loss;
  const double before = shatter::evaluate(net, loss, train).loss;
  shatter::sgd<double> opt(net.parameters(), {0.05, 0.9});
  shatter::fit_options o;
  o.epochs = 3;
  o.batch_size = 20;
  const auto r = shatter::fit(net, loss, opt, shatter::schedule::constant(0.05), train, o);
  CHECK(shatter::evaluate(net, loss, train).loss < 0.5 * before);
  CHECK(r.epochs.back().train_accuracy > 0.9);
}

TEST_CASE("epoch_order is a seeded permutation, different per epoch", "[train][shuffle]") {
  one_thread single;
  std::vector<Index> a, b, c;
  shatter::epoch_order(5, 0, 100, a);
  shatter::epoch_order(5, 0, 100, b);
  shatter::epoch_order(5, 1, 100, c);
  CHECK(a == b);
  CHECK(a != c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (Index i = 0; i < 100; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a batch transform sees every batch with a step-seeded rng", "[train][augment]") {
  one_thread single;
  const auto train = blobs<double>(8, 40, 3);
  auto draws = [&](std::int64_t start) {
    shatter::rng g(2);
    auto net = shatter::looks_linear_mlp<double>(small_spec(), g);
    shatter::softmax_cross_entropy<double> loss;
    shatter::sgd<double> opt(net.parameters(), {0.01});
    shatter::fit_options o;
    o.epochs = 2;
    o.batch_size = 10;
    o.start_step = start;
    std::vector<double> u;
    shatter::fit(net, loss, opt, shatter::schedule::constant(0.01), train, {}, o,
                 [&](matrix<double>& x, shatter::label_vector& y, shatter::rng& r) {
                   CHECK(x.cols() == 10);
                   CHECK(y.size() == 10);
                   x *= -1.0;  // allowed: same size
                   u.push_back(r.uniform());
                 });
    return u;
  };
  const auto all = draws(0), tail = draws(5);
  REQUIRE(all.size() == 8);
  REQUIRE(tail.size() == 3);
  CHECK(all[5] == tail[0]);  // resumed runs draw the same augmentation randomness
  CHECK(all[7] == tail[2]);
  CHECK(all[0] != all[1]);

  shatter::rng g(2);
  auto net = shatter::looks_linear_mlp<double>(small_spec(), g);
  shatter::softmax_cross_entropy<double> loss;
  shatter::sgd<double> opt(net.parameters(), {0.01});
  CHECK_THROWS_WITH(
      shatter::fit(
          net, loss, opt, shatter::schedule::constant(0.01), train, {}, shatter::fit_options{},
          [](matrix<double>& x, shatter::label_vector&, shatter::rng&) { x.resize(8, 3); }),
      Catch::Contains("changed the batch's size"));
}
