// Weights files: PyTorch's layout (4-D conv weights, num_batches_tracked, no U64), weights-only
// save and load, non-strict loads with their report, short mismatch messages, older files, the
// structure check, and the optimiser kind check of checkpoints.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "shatter/io/checkpoint.hpp"
#include "shatter/io/model_recipe.hpp"
#include "shatter/io/weights.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/adamw.hpp"
#include "temp_dir.hpp"

using namespace shatter;

namespace {

cifar_spec small_cifar() {
  cifar_spec s;
  s.weighted_layers = 8;
  s.width = 2;
  s.classes = 3;
  s.input = {3, 6, 6};
  return s;
}

template <class T>
matrix<T> random_batch(shatter::index rows, shatter::index n, std::uint64_t seed) {
  rng g(seed);
  matrix<T> x(rows, n);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = T(g.normal());
  return x;
}

// Training forwards move the batch-norm statistics and count batches.
template <class T>
void train_forwards(sequential<T>& net, int times) {
  for (int k = 0; k < times; ++k)
    net.forward(random_batch<T>(net.in_size(), 4, 10 + k), mode::train);
}

template <class T>
bool same_tensors(sequential<T>& a, sequential<T>& b) {
  auto ea = detail::file_entries(a), eb = detail::file_entries(b);
  if (ea.size() != eb.size()) return false;
  for (std::size_t i = 0; i < ea.size(); ++i) {
    if (ea[i].name != eb[i].name) return false;
    if (ea[i].counter ? ea[i].counter->batches_tracked() != eb[i].counter->batches_tracked()
                      : *ea[i].value != *eb[i].value)
      return false;
  }
  return true;
}

}  // namespace

TEST_CASE("weights: conv weights are 4-D [out, in, kh, kw] and round trip", "[io][weights]") {
  test::temp_dir dir;
  const std::string path = dir.file("w.safetensors");
  rng g(1);
  auto net = build_cifar<float>(cifar_arch::resnet, small_cifar(), g);
  train_forwards(net, 3);
  save_weights(path, net);
  const auto f = io::read_safetensors(path);
  const auto& w = f.at("0.weight");
  CHECK(w.shape == std::vector<std::int64_t>{2, 3, 3, 3});
  // element [o, c, i, j] at row-major index ((o C + c) 3 + i) 3 + j is W(o, c 9 + i 3 + j)
  const auto& W = static_cast<conv2d<float>&>(net[0]).weight();
  const int o = 1, c = 2, i = 0, j = 2;
  CHECK(io::detail::get_le<float>(w.data.data() + 4 * (((o * 3 + c) * 3 + i) * 3 + j)) ==
        W(o, c * 9 + i * 3 + j));
  CHECK(f.at("3.branch.0.weight").shape == std::vector<std::int64_t>{2, 2, 3, 3});
  // batch norm: num_batches_tracked is an I64 scalar counting the training forwards
  const auto& nbt = f.at("1.num_batches_tracked");
  CHECK(nbt.type == io::dtype::I64);
  CHECK(nbt.shape.empty());
  CHECK(io::detail::get_le<std::int64_t>(nbt.data.data()) == 3);
  // weights only: no optimiser, rng, epoch or step; nothing unsigned
  for (const auto& kv : f.tensors) {
    CHECK(kv.first.rfind("optimizer.", 0) != 0);
    CHECK(kv.first != "rng.state");
    CHECK(kv.second.type != io::dtype::U64);
  }
  CHECK(f.metadata.count("shatter.epoch") == 0);
  CHECK(f.metadata.at("shatter.format") == weights_format);

  rng h(2);
  auto fresh = build_cifar<float>(cifar_arch::resnet, small_cifar(), h);
  REQUIRE_FALSE(same_tensors(net, fresh));
  const load_report r = load_weights(path, fresh);
  CHECK(r.skipped.empty());
  CHECK(r.missing.empty());
  CHECK(r.loaded.size() == detail::file_entries(net).size());
  CHECK(same_tensors(net, fresh));
  CHECK(static_cast<batch_norm<float>&>(fresh[1]).batches_tracked() == 3);
  const auto x = random_batch<float>(net.in_size(), 5, 7);
  const matrix<float> y = net.forward(x, mode::eval);
  CHECK(fresh.forward(x, mode::eval) == y);
  // load_network builds the network from the file's description alone
  auto built = load_network<float>(path);
  CHECK(built.forward(x, mode::eval) == y);
}

TEST_CASE("weights: a full checkpoint's weights load without its optimiser", "[io][weights]") {
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");
  rng g(1);
  mlp_spec s;
  s.in = 3;
  s.width = 5;
  s.hidden_layers = 2;
  s.out = 2;
  auto net = build<double>(architecture::resnet_bn, s, g);
  train_forwards(net, 2);
  adam<double> opt(net.parameters());
  save_checkpoint(path, net, opt, g, 1, 10);
  rng h(5);
  auto fresh = build<double>(architecture::resnet_bn, s, h);
  const load_report r = load_weights(path, fresh);  // optimiser state and rng ignored
  CHECK(r.skipped.empty());
  CHECK(same_tensors(net, fresh));
  // load_checkpoint without the optimiser names the first few and the count, not all 24
  rng k(0);
  CHECK_THROWS_WITH(load_checkpoint(path, fresh, {}, k),
                    Catch::Contains("24 tensors of the file are not in the network: "
                                    "'optimizer.adam.m.0.bias', 'optimizer.adam.m.0.weight', "
                                    "'optimizer.adam.m.1.branch.0.bias' and 21 more") &&
                        Catch::Contains("use load_weights") &&
                        !Catch::Contains("optimizer.adam.v.0.weight"));
}

TEST_CASE("weights: non-strict load reports what it skipped and did not find", "[io][weights]") {
  test::temp_dir dir;
  const std::string path = dir.file("w.safetensors");
  const std::string cut = dir.file("cut.safetensors");
  rng g(1);
  mlp_spec s;
  s.in = 3;
  s.width = 4;
  s.hidden_layers = 2;
  s.out = 2;
  auto net = build<double>(architecture::plain_relu, s, g);
  save_weights(path, net, {{{"note", "test"}}, model_recipe(architecture::plain_relu, s)});
  auto f = io::read_safetensors(path);
  CHECK(f.metadata.at("note") == "test");
  CHECK(f.metadata.at("shatter.model").find("\"name\":\"plain_relu\"") != std::string::npos);
  f.tensors.erase("2.bias");
  for (int i = 0; i < 5; ++i)
    f.tensors["head" + std::to_string(i) + ".weight"] =
        io::to_tensor(matrix<double>::Ones(2, 2).eval());
  io::write_safetensors(cut, f);

  rng h(9);
  auto target = build<double>(architecture::plain_relu, s, h);
  const matrix<double> kept = static_cast<dense<double>&>(target[2]).bias();
  SECTION("strict: refused with the first few names and the counts, nothing changed") {
    const auto before = target;
    CHECK_THROWS_WITH(load_weights(cut, target),
                      Catch::Contains(cut + ": 1 tensor of the network is missing from the file: "
                                            "'2.bias'; 5 tensors of the file are not in the "
                                            "network: 'head0.weight', 'head1.weight', "
                                            "'head2.weight' and 2 more") &&
                          !Catch::Contains("head3"));
    auto copy = before;
    CHECK(same_tensors(target, copy));
  }
  SECTION("not strict: loads the rest and reports") {
    load_weights_options o;
    o.strict = false;
    const load_report r = load_weights(cut, target, o);
    CHECK(r.missing == std::vector<std::string>{"2.bias"});
    CHECK(r.skipped == std::vector<std::string>{"head0.weight", "head1.weight", "head2.weight",
                                                "head3.weight", "head4.weight"});
    CHECK(r.loaded.size() == 5);
    CHECK(r.summary() ==
          "loaded 5 tensors; skipped 5 ('head0.weight', 'head1.weight', 'head2.weight' and 2 "
          "more); not found 1 ('2.bias')");
    CHECK(static_cast<dense<double>&>(target[2]).bias() == kept);  // left as it was
    CHECK(static_cast<dense<double>&>(target[0]).weight() ==
          static_cast<dense<double>&>(net[0]).weight());
  }
  SECTION("a wrong shape is refused even when not strict") {
    f.tensors["0.weight"] = io::to_tensor(matrix<double>::Ones(3, 4).eval());
    io::write_safetensors(cut, f);
    load_weights_options o;
    o.strict = false;
    CHECK_THROWS_WITH(load_weights(cut, target, o),
                      Catch::Contains("tensor '0.weight' has shape [3, 4] in the file but [4, 3]"));
  }
}

TEST_CASE("weights: float files load into double networks", "[io][weights]") {
  test::temp_dir dir;
  const std::string path = dir.file("w.safetensors");
  rng g(1);
  auto net = build_cifar<float>(cifar_arch::plain_crelu_ll, small_cifar(), g);
  save_weights(path, net);
  rng h(1);
  auto d = build_cifar<double>(cifar_arch::plain_crelu_ll, small_cifar(), h);
  load_weights(path, d);
  const auto& wf = static_cast<conv2d<float>&>(net[3]).weight();
  CHECK(static_cast<conv2d<double>&>(d[3]).weight() == wf.cast<double>());
}

TEST_CASE("weights: the structure check tells apart networks with the same tensors",
          "[io][weights]") {
  test::temp_dir dir;
  const std::string path = dir.file("w.safetensors");
  rng g(1);
  auto s = small_cifar();
  s.weighted_layers = 14;
  auto tat = build_cifar<float>(cifar_arch::plain_tat, s, g);
  save_weights(path, tat);
  auto relu = build_cifar<float>(cifar_arch::plain_relu, s, g);  // same tensors, ReLU not TAT
  CHECK_THROWS_WITH(load_weights(path, relu),
                    Catch::Contains("written for another network (first difference at layer 2, "
                                    "layers.2.kind: \"leaky_relu\" against \"relu\")"));
  load_weights_options o;
  o.strict = false;  // matches tensors by name only
  CHECK(load_weights(path, relu, o).missing.empty());
}

TEST_CASE("weights: files of the previous checkpoint format still load", "[io][weights]") {
  test::temp_dir dir;
  const std::string path = dir.file("new.safetensors");
  const std::string old = dir.file("old.safetensors");
  rng g(1);
  auto net = build_cifar<double>(cifar_arch::plain_relu, small_cifar(), g);
  train_forwards(net, 2);
  save_checkpoint(path, net, {}, g, 3, 4);
  // shatter-checkpoint-1: conv weights 2-D, no num_batches_tracked, rng U64, no structure JSON
  auto f = io::read_safetensors(path);
  f.metadata["shatter.format"] = "shatter-checkpoint-1";
  f.metadata.erase("shatter.layers");
  std::vector<std::string> drop;
  for (auto& kv : f.tensors) {
    if (kv.first.find("num_batches_tracked") != std::string::npos) drop.push_back(kv.first);
    if (kv.second.shape.size() == 4)
      kv.second.shape = {kv.second.shape[0],
                         kv.second.shape[1] * kv.second.shape[2] * kv.second.shape[3]};
  }
  for (const auto& n : drop) f.tensors.erase(n);
  f.tensors["rng.state"].type = io::dtype::U64;
  io::write_safetensors(old, f);
  rng h(7), k(8);
  auto fresh = build_cifar<double>(cifar_arch::plain_relu, small_cifar(), h);
  const auto info = load_checkpoint(old, fresh, {}, k);
  CHECK(info.epoch == 3);
  CHECK(k.state() == g.state());
  CHECK(static_cast<conv2d<double>&>(fresh[3]).weight() ==
        static_cast<conv2d<double>&>(net[3]).weight());
  // a 2-D conv weight in a current file is refused
  f.metadata["shatter.format"] = checkpoint_format;
  io::write_safetensors(old, f);
  CHECK_THROWS_WITH(
      load_checkpoint(old, fresh, {}, k),
      Catch::Contains("tensor '0.weight' has shape [2, 27] in the file but [2, 3, 3, 3]"));
}

TEST_CASE("checkpoint: an optimiser's state does not load into another kind", "[io][adamw]") {
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");
  rng g(1);
  mlp_spec s;
  s.in = 2;
  s.width = 3;
  s.out = 1;
  auto net = build<float>(architecture::plain_relu, s, g);
  adamw<float> aw(net.parameters());
  adam<float> a(net.parameters());
  save_checkpoint(path, net, aw, g, 0, 0);
  CHECK(io::read_safetensors(path).metadata.at("shatter.optimizer") == "adamw");
  CHECK_THROWS_WITH(load_checkpoint(path, net, a, g),
                    Catch::Contains("saved with optimiser 'adamw', not 'adam'"));
  save_checkpoint(path, net, a, g, 0, 0);
  CHECK_THROWS_WITH(load_checkpoint(path, net, aw, g),
                    Catch::Contains("saved with optimiser 'adam', not 'adamw'"));
  CHECK_NOTHROW(load_checkpoint(path, net, a, g));
}

TEST_CASE("weights: a network description is checked before anything is built", "[io][weights]") {
  CHECK_THROWS_WITH(io::build_network<float>(R"({"input":[4,1,1],"layers":[{"kind":"dense",)"
                                             R"("in":[4,1,1],"out":4000000000,"bias":true}]})",
                                             "f"),
                    Catch::Contains("f: layers.0.out is not a non-negative integer"));
  CHECK_THROWS_WITH(io::build_network<float>(R"({"input":[65536,1,1],"layers":[{"kind":"dense",)"
                                             R"("in":[65536,1,1],"out":65536,"bias":true}]})",
                                             "f"),
                    Catch::Contains("f: layers.0 has") && Catch::Contains("more than the 2^28"));
  CHECK_THROWS_WITH(io::build_network<float>(R"({"input":[4,1,1],"layers":[{"kind":"gelu",)"
                                             R"("in":[4,1,1]}]})",
                                             "f"),
                    Catch::Contains("f: layers.0 has the unknown kind \"gelu\""));
  CHECK_THROWS_AS(io::build_network<float>("{\"input\":[4,1,1]", "f"), data_error);
}
