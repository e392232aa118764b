// Tests of training checkpoints: exact round trips, the file layout PyTorch expects, and refusal
// (with the tensor's name) of every mismatch, leaving the network untouched.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "shatter/io/checkpoint.hpp"
#include "shatter/network/builders.hpp"
#include "temp_dir.hpp"

using namespace shatter;

namespace {

template <class T>
sequential<T> make_net(std::uint64_t seed, shatter::index width = 6) {
  rng g(seed);
  mlp_spec s;
  s.in = 3;
  s.width = width;
  s.hidden_layers = 2;
  s.out = 2;
  s.batch_norm = true;
  s.bias_std = 0.1;
  return plain_relu_mlp<T>(s, g);
}

// A momentum buffer per parameter, like an optimiser's state.
template <class T>
struct fake_state {
  std::vector<matrix<T>> buffers;
  std::vector<tensor_ref<T>> refs;
  fake_state(sequential<T>& net, std::uint64_t seed) {
    rng g(seed);
    auto params = net.parameters();
    buffers.reserve(params.size());
    for (auto& p : params) {
      buffers.emplace_back(p.value->rows(), p.value->cols());
      for (shatter::index i = 0; i < buffers.back().size(); ++i) buffers.back()(i) = T(g.normal());
      refs.push_back({"momentum." + p.name, &buffers.back(), nullptr});
    }
  }
};

// Runs a training-mode forward so the batch-norm running statistics move away from 0 and 1.
template <class T>
void touch_buffers(sequential<T>& net, std::uint64_t seed) {
  rng g(seed);
  static matrix<T> x;  // the network keeps a pointer to its last input
  x.resize(3, 5);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = T(g.normal());
  net.forward(x, mode::train);
}

template <class T>
bool same_tensors(sequential<T>& a, sequential<T>& b) {
  auto pa = a.parameters(), pb = b.parameters();
  auto ba = a.buffers(), bb = b.buffers();
  pa.insert(pa.end(), ba.begin(), ba.end());
  pb.insert(pb.end(), bb.begin(), bb.end());
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (pa[i].name != pb[i].name || *pa[i].value != *pb[i].value) return false;
  return true;
}

}  // namespace

TEMPLATE_TEST_CASE("checkpoint: save then load restores everything bitwise", "", float, double) {
  using T = TestType;
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");

  auto net = make_net<T>(1);
  touch_buffers(net, 2);
  fake_state<T> state(net, 3);
  rng g(4);
  g.normal();  // leaves a cached spare normal in the state
  save_checkpoint(path, net, state.refs, g, 7, 1234, {{"run", "unit test"}});

  auto fresh = make_net<T>(99);
  fake_state<T> fresh_state(fresh, 98);
  rng h(97);
  REQUIRE_FALSE(same_tensors(net, fresh));
  const checkpoint_info info = load_checkpoint(path, fresh, fresh_state.refs, h);

  CHECK(info.epoch == 7);
  CHECK(info.step == 1234);
  CHECK(info.metadata.at("run") == "unit test");
  CHECK(info.metadata.at("shatter.version") == version);
  CHECK(info.metadata.at("shatter.architecture") == detail::architecture_of(net));
  CHECK(same_tensors(net, fresh));
  for (std::size_t i = 0; i < state.buffers.size(); ++i)
    CHECK(state.buffers[i] == fresh_state.buffers[i]);
  CHECK(h.state() == g.state());
  CHECK(h.normal() == g.normal());
  CHECK(h() == g());
  // Only the checkpoint is left in the directory: no temporary file.
  CHECK(dir.files() == std::vector<std::string>{"ckpt.safetensors"});
}

TEST_CASE("checkpoint: the file is plain safetensors with PyTorch's names and layouts") {
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");
  auto net = make_net<float>(1);
  fake_state<float> state(net, 3);
  rng g(4);
  save_checkpoint(path, net, state.refs, g, 0, 0);
  const auto f = io::read_safetensors(path);
  // plain_relu_mlp with batch norm: 0 dense, 1 batch_norm, 2 relu, 3 dense, 4 bn, 5 relu, 6 dense.
  const auto& w = f.at("0.weight");
  CHECK(w.type == io::dtype::F32);
  CHECK(w.shape == std::vector<std::int64_t>{6, 3});  // nn.Linear(3, 6).weight is [out, in]
  const auto& W = static_cast<dense<float>&>(net[0]).weight();
  CHECK(io::to_matrix<float>(w, "0.weight") == W);
  CHECK(io::detail::get_le<float>(w.data.data() + 4 * 1) == W(0, 1));  // row-major
  CHECK(f.at("0.bias").shape == std::vector<std::int64_t>{6});
  CHECK(f.at("1.running_mean").shape == std::vector<std::int64_t>{6});
  CHECK(f.at("1.running_var").shape == std::vector<std::int64_t>{6});
  CHECK(f.at("6.weight").shape == std::vector<std::int64_t>{2, 6});
  CHECK(f.at("optimizer.momentum.3.weight").shape == std::vector<std::int64_t>{6, 6});
  CHECK(f.at("rng.state").type == io::dtype::I64);  // torch 1.13 reads I64, not U64
  for (const auto& kv : f.tensors) CHECK(kv.second.type != io::dtype::U64);
  // batch norm's num_batches_tracked: an I64 scalar, as in PyTorch's state_dict
  CHECK(f.at("1.num_batches_tracked").type == io::dtype::I64);
  CHECK(f.at("1.num_batches_tracked").shape.empty());
  CHECK(f.metadata.at("shatter.format") == checkpoint_format);
  CHECK(f.metadata.at("shatter.scalar") == "float");
  CHECK(f.tensors.size() ==
        net.parameters().size() + net.buffers().size() + 2 + state.refs.size() + 1);
}

TEST_CASE("checkpoint: every mismatch is refused with the tensor's name, nothing is changed") {
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");
  const std::string bad = dir.file("bad.safetensors");
  auto net = make_net<double>(1);
  touch_buffers(net, 2);
  fake_state<double> state(net, 3);
  rng g(4);
  save_checkpoint(path, net, state.refs, g, 1, 2);
  const auto good = io::read_safetensors(path);

  auto target = make_net<double>(50);
  const auto before = target;  // deep copy
  fake_state<double> tstate(target, 51);
  const auto state_before = tstate.buffers;
  rng tg(52);
  const auto rng_before = tg.state();
  auto unchanged = [&] {
    auto copy = before;
    CHECK(same_tensors(target, copy));
    CHECK(tstate.buffers == state_before);
    CHECK(tg.state() == rng_before);
  };
  auto refused = [&](const io::safetensors_file& f, const std::string& message) {
    io::write_safetensors(bad, f);
    CHECK_THROWS_AS(load_checkpoint(bad, target, tstate.refs, tg), data_error);
    CHECK_THROWS_WITH(load_checkpoint(bad, target, tstate.refs, tg),
                      Catch::Contains(message) && Catch::Contains(bad));
    unchanged();
  };

  SECTION("missing parameter") {
    auto f = good;
    f.tensors.erase("3.bias");
    refused(f, "1 tensor of the network is missing from the file: '3.bias'");
  }
  SECTION("missing buffer") {
    auto f = good;
    f.tensors.erase("4.running_var");
    refused(f, "missing from the file: '4.running_var'");
  }
  SECTION("missing optimiser state") {
    auto f = good;
    f.tensors.erase("optimizer.momentum.6.weight");
    refused(f, "missing from the file: 'optimizer.momentum.6.weight'");
  }
  SECTION("extra tensor") {
    auto f = good;
    f.tensors["7.weight"] = io::to_tensor(matrix<double>::Zero(2, 2).eval());
    refused(f, "1 tensor of the file is not in the network: '7.weight'");
  }
  SECTION("shape mismatch") {
    auto f = good;
    f.tensors["3.weight"] = io::to_tensor(matrix<double>::Zero(6, 5).eval());
    refused(f, "tensor '3.weight' has shape [6, 5] in the file but [6, 6] in the network");
  }
  SECTION("transposed weight") {
    auto f = good;
    f.tensors["0.weight"] = io::to_tensor(matrix<double>::Zero(3, 6).eval());
    refused(f, "tensor '0.weight' has shape [3, 6] in the file but [6, 3]");
  }
  SECTION("dtype mismatch") {
    auto f = good;
    f.tensors["0.bias"] = io::to_tensor(matrix<float>::Zero(6, 1).eval());
    refused(f, "tensor '0.bias' is stored as F32 but the network uses F64");
  }
  SECTION("bad rng state") {
    auto f = good;
    f.tensors["rng.state"] = io::to_tensor(std::vector<std::uint64_t>{1, 2, 3});
    refused(f, "'rng.state' must be I64 [6]");
  }
  SECTION("not a checkpoint") {
    auto f = good;
    f.metadata.erase("shatter.format");
    refused(f, "not a shatter checkpoint");
  }
  SECTION("bad epoch") {
    auto f = good;
    f.metadata["shatter.epoch"] = "3x";
    refused(f, "\"shatter.epoch\" = \"3x\" is not an integer");
  }
  SECTION("another architecture") {
    auto f = good;
    auto other = make_net<double>(1, 7);
    f.metadata["shatter.layers"] = io::describe_network(other);
    refused(f,
            "written for another network (first difference at layer 0, layers.0.out: 7 against "
            "6):\n  file:    dense(3 -> 7, bias)\n  network: dense(3 -> 6, bias)");
  }
  SECTION("a float checkpoint into a double network") {
    auto fnet = make_net<float>(1);
    fake_state<float> fs(fnet, 3);
    save_checkpoint(bad, fnet, fs.refs, g, 0, 0);
    CHECK_THROWS_WITH(load_checkpoint(bad, target, tstate.refs, tg),
                      Catch::Contains("stored as F32 but the network uses F64"));
    unchanged();
  }
  SECTION("saved without optimiser state, loaded with") {
    save_checkpoint(bad, net, {}, g, 0, 0);
    CHECK_THROWS_WITH(load_checkpoint(bad, target, tstate.refs, tg),
                      Catch::Contains("10 tensors of the network are missing from the file: "
                                      "'optimizer.momentum.0.weight', 'optimizer.momentum.0.bias', "
                                      "'optimizer.momentum.1.weight' and 7 more"));
    unchanged();
  }
  SECTION("truncated file") {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() - 3);
    CHECK_THROWS_WITH(load_checkpoint(bad, target, tstate.refs, tg),
                      Catch::Contains("run past the end") && Catch::Contains("rng.state"));
    unchanged();
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(load_checkpoint(dir.file("nope.safetensors"), target, tstate.refs, tg),
                      Catch::Contains("nope.safetensors") && Catch::Contains("cannot open"));
    unchanged();
  }
}

TEST_CASE("checkpoint: reserved metadata keys and failed writes") {
  test::temp_dir dir;
  auto net = make_net<float>(1);
  rng g(1);
  CHECK_THROWS_AS(save_checkpoint(dir.file("a"), net, {}, g, 0, 0, {{"shatter.epoch", "9"}}),
                  config_error);
  CHECK_THROWS_WITH(save_checkpoint(dir.file("no/such/dir/ckpt"), net, {}, g, 0, 0),
                    Catch::Contains("no/such/dir/ckpt"));
  CHECK(dir.files().empty());
}

namespace {
// The optimiser interface load_checkpoint's optimiser overload relies on.
struct toy_optimizer {
  std::vector<matrix<double>> m;
  std::int64_t n = 0;
  double lr = 0.1;
  std::string kind() const { return "toy"; }
  std::vector<tensor_ref<double>> state() { return {{"toy.m.0", &m[0], nullptr}}; }
  std::int64_t steps() const { return n; }
  void set_steps(std::int64_t k) { n = k; }
  double learning_rate() const { return lr; }
  void set_learning_rate(double r) { lr = r; }
};
}  // namespace

TEST_CASE("checkpoint: with an optimiser object its step counter and learning rate come back") {
  test::temp_dir dir;
  const std::string path = dir.file("ckpt.safetensors");
  auto net = make_net<double>(1);
  toy_optimizer opt{{matrix<double>::Constant(2, 2, 1.5)}, 17, 0.1 / 3};
  rng g(1);
  save_checkpoint(path, net, opt, g, 2, 17);
  auto net2 = make_net<double>(2);
  toy_optimizer opt2{{matrix<double>::Zero(2, 2)}, 0, 1.0};
  rng g2(2);
  const auto info = load_checkpoint(path, net2, opt2, g2);
  CHECK(info.step == 17);
  CHECK(opt2.n == 17);
  CHECK(opt2.lr == 0.1 / 3);  // exact: printed with 17 significant digits
  CHECK(opt2.m[0] == opt.m[0]);
  CHECK(info.metadata.at("shatter.optimizer") == "toy");
  // A checkpoint saved without an optimiser object cannot restore one.
  save_checkpoint(path, net, opt.state(), g, 2, 17);
  CHECK_THROWS_WITH(load_checkpoint(path, net2, opt2, g2), Catch::Contains("no optimiser record"));
}
