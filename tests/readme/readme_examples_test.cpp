// The README's code examples, compiled and run as written, so the README stays true.
#include <catch2/catch.hpp>

#include <cstdio>
#include <sstream>

#include "../io/temp_dir.hpp"
#include "shatter/shatter.hpp"

TEST_CASE("README: a looks-linear network is linear at initialisation") {
  std::ostringstream cout;
  // --- README ---
  shatter::rng rng(42);
  shatter::mlp_spec spec;  // 1 -> 50 hidden layers of 200 CReLU units -> 1
  spec.width = 200;
  spec.hidden_layers = 50;
  spec.bias_std = 0.5;
  auto net = shatter::looks_linear_mlp<float>(spec, rng);  // W = [W0, -W0], W0 orthogonal

  auto sweep = shatter::probe::sweep(net);  // df/dx at 256 points on [-2, 2]
  auto stats = shatter::probe::analyse(sweep);
  cout << stats.lag1 << ' ' << to_string(stats.verdict) << '\n';  // 1 constant
  // --- end ---
  CHECK(cout.str() == "1 constant\n");
}

TEST_CASE("README: build, train, check") {
  shatter::set_threads(1);
  shatter::rng rng(7);
  // A small separable task standing in for real data.
  shatter::dataset<float> train, test;
  for (auto* d : {&train, &test}) {
    d->x.resize(784, 256);
    d->labels.resize(256);
    d->classes = 10;
    for (shatter::index j = 0; j < 256; ++j) {
      const int label = int(rng.below(10));
      d->labels[std::size_t(j)] = label;
      for (shatter::index i = 0; i < 784; ++i)
        d->x(i, j) = float(0.3 * rng.normal() + (i % 10 == label ? 1.0 : 0.0));
    }
  }
  // --- README ---
  shatter::sequential<float> net;  // or a builder: plain_relu_mlp, resnet_mlp, build(arch, ...)
  auto& first = net.add(shatter::dense<float>(784, 256));
  shatter::init::orthogonal(first.weight(), rng);
  net.add(shatter::crelu<float>());  // 256 -> 512
  auto& out = net.add(shatter::dense<float>(512, 10));
  shatter::init::looks_linear(out, net[1], rng);  // throws if net[1] were not a matching CReLU

  shatter::softmax_cross_entropy<float> loss;
  shatter::sgd<float> opt(net.parameters(), {/*lr=*/0.01, /*momentum=*/0.9});
  shatter::test::temp_dir run;
  shatter::run_options o;
  o.epochs = 2;
  std::ostringstream progress;
  o.progress = &progress;
  o.run_dir = run.path();          // lock, checkpoint.safetensors after every epoch, log.jsonl
  o.stop = &shatter::stop_signal;  // with handle_stop_signals(): Ctrl-C checkpoints and returns
  auto cosine = [](const shatter::run_length& r) {  // a schedule relative to the run's length
    return shatter::schedule::cosine(0.01, r.total_steps).with_warmup(r.steps_per_epoch / 10);
  };
  auto result = shatter::fit(net, loss, opt, cosine, train, test, o);
  // --- end ---
  CHECK(result.record.finished);
  shatter::sequential<float> copy = net;
  const auto info = shatter::load_checkpoint(run.file("checkpoint.safetensors"), copy, opt, rng);
  CHECK(info.epoch == 2);
  // Train on at a constant rate (no run directory) to check that the whole thing learns.
  o.run_dir.clear();
  o.epochs = 3;
  result = shatter::fit(net, loss, opt, shatter::schedule::constant(0.01), train, test, o);
  CHECK(result.epochs.back().test.accuracy > 0.9);

  std::ostringstream cout;
  // --- README ---
  cout << shatter::summary(net);               // the table below
  auto p = shatter::predict(net, test);        // class probabilities, 10 x samples
  auto labels = shatter::classify(net, test);  // the argmax class of each sample
  // --- end ---
  CHECK(cout.str() ==
        "name  layer                    output  parameters\n"
        "0     dense(784 -> 256, bias)     256     200,960\n"
        "1     crelu(256 -> 512)           512           0\n"
        "2     dense(512 -> 10, bias)       10       5,130\n"
        "total parameters: 206,090 (buffers: 0 scalars)\n");
  CHECK((p.colwise().sum().array() - 1).abs().maxCoeff() < 1e-5f);
  CHECK(shatter::correct_count(p, test.labels) ==
        shatter::correct_count(net.forward(test.x, shatter::mode::eval), test.labels));
  shatter::index agree = 0;
  for (std::size_t j = 0; j < labels.size(); ++j) agree += labels[j] == test.labels[j];
  CHECK(double(agree) / double(labels.size()) == Approx(result.epochs.back().test.accuracy));
}

TEST_CASE("README: plans") {
  shatter::rng g(3);
  shatter::mlp_spec spec;
  spec.in = 8;
  spec.width = 16;
  spec.hidden_layers = 3;
  spec.out = 1;
  auto net = shatter::looks_linear_mlp<float>(spec, g);
  shatter::matrix<float> x = shatter::matrix<float>::Random(8, 128);
  shatter::matrix<float> dy = shatter::matrix<float>::Ones(1, 128);
  shatter::matrix<float> dx_dt = shatter::matrix<float>::Ones(8, 256);
  shatter::matrix<float> x2 = shatter::matrix<float>::Random(8, 256);
  {
    // --- README ---
    shatter::plan<float> p(net, /*max_batch=*/128, shatter::plan_mode::train, /*threads=*/2);
    auto y = p.forward(x, shatter::mode::train);        // a view, valid until the next pass
    auto dx = p.backward(dy, /*input_gradient=*/true);  // parameter gradients set too
    // --- end ---
    CHECK(y.cols() == 128);
    CHECK(dx.rows() == 8);
  }
  const shatter::matrix<float>& x_ = x2;
  {
    const auto& x = x_;
    // --- README ---
    shatter::plan<float> t(net, 256, shatter::plan_mode::tangent);
    auto [f, df] = t.tangent(x, dx_dt, shatter::batch_stats::fixed);  // f(x) and J dx, one pass
    // --- end ---
    // A looks-linear net is linear at initialisation: J dx is the same for every input.
    CHECK((df.array() - df(0, 0)).abs().maxCoeff() <= 1e-4f * (1 + std::abs(df(0, 0))));
    CHECK(f.cols() == 256);
  }
}

TEST_CASE("README: weights only, and the network from the file alone") {
  shatter::test::temp_dir dir;
  const std::string file = dir.file("net.safetensors");
  shatter::rng rng(3);
  shatter::mlp_spec spec;
  spec.in = 2;
  spec.width = 4;
  spec.out = 2;
  auto net = shatter::build<float>(shatter::architecture::resnet_bn, spec, rng);
  auto other = shatter::build<float>(shatter::architecture::resnet_bn, spec, rng);
  shatter::save_weights(file, net);
  const auto r = shatter::load_weights(file, other);
  CHECK(r.missing.empty());
  CHECK(r.skipped.empty());
  CHECK(r.summary() == "loaded 11 tensors; skipped 0; not found 0");
  auto net2 = shatter::load_network<float>(file);
  const shatter::matrix<float> x = shatter::matrix<float>::Ones(2, 3);
  const shatter::matrix<float> y = net.forward(x, shatter::mode::eval);
  CHECK(other.forward(x, shatter::mode::eval) == y);
  CHECK(net2.forward(x, shatter::mode::eval) == y);
}
