// libFuzzer target: loading a checkpoint into a fixed network (the file goes through a scratch
// file, as load_checkpoint reads a path). Any input must either be refused with data_error,
// leaving the network, optimiser state and RNG untouched, or load completely.
#include <cstdint>
#include <vector>

#include "fuzz_common.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/network/builders.hpp"

namespace {
// The network the seeds were written for (see make_seeds.cpp).
shatter::sequential<float> make_net() {
  shatter::rng g(1);
  shatter::mlp_spec s;
  s.in = 3;
  s.width = 4;
  s.hidden_layers = 1;
  s.out = 2;
  s.batch_norm = true;
  return shatter::plain_relu_mlp<float>(s, g);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shatter;
  static sequential<float> net = make_net();
  static const sequential<float> pristine = make_net();
  static matrix<float> momentum = matrix<float>::Zero(4, 3);
  static std::vector<tensor_ref<float>> state{{"momentum.0.weight", &momentum, nullptr}};
  net = pristine;
  momentum.setZero();
  rng g(5);
  const auto rng_before = g.state();
  const std::string& path = fuzz::to_file("checkpoint", data, size);
  try {
    load_checkpoint(path, net, state, g);
  } catch (const data_error&) {
    auto a = net.parameters();
    auto b = const_cast<sequential<float>&>(pristine).parameters();
    for (std::size_t i = 0; i < a.size(); ++i)
      fuzz::check(*a[i].value == *b[i].value, "a refused checkpoint leaves the network unchanged");
    fuzz::check(momentum.isZero(0), "a refused checkpoint leaves the optimiser state unchanged");
    fuzz::check(g.state() == rng_before, "a refused checkpoint leaves the RNG unchanged");
  }
  return 0;
}
