// The C++ half of the PyTorch bridge check (.ci/steps/55-pytorch-bridge.sh, with
// python/torch_roundtrip.py):
//   torch_roundtrip write DIR        writes small networks of each family (weights files) with an
//                                    input batch and shatter's evaluation outputs;
//   torch_roundtrip check DIR        loads the files PyTorch wrote back into the matching
//                                    networks (strictly: the structure must be the builder's)
//                                    and compares with PyTorch's outputs;
//   torch_roundtrip probe FILE IO    probes a network PyTorch trained (1 input, 1 output),
//                                    checking its outputs against PyTorch's first.
// Exits 1 when an output differs by more than 1e-5 (relative to max(1, |y|)).
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "shatter/shatter.hpp"

namespace {

using namespace shatter;

struct config {
  std::string name, recipe;
  std::function<sequential<float>()> build;
};

std::vector<config> configs() {
  std::vector<config> out;
  mlp_spec m;
  m.in = 4;
  m.width = 8;
  m.hidden_layers = 3;
  m.out = 3;
  m.bias_std = 0.1;
  for (auto a : {architecture::plain_crelu_ll, architecture::resnet_bn})
    out.push_back({"mlp_" + to_string(a), model_recipe(a, m), [a, m] {
                     rng g(7);
                     return build<float>(a, m, g);
                   }});
  for (auto a : {cifar_arch::resnet, cifar_arch::plain_relu, cifar_arch::plain_crelu,
                 cifar_arch::plain_crelu_ll, cifar_arch::plain_prelu_ll, cifar_arch::plain_tat})
    for (shatter::index depth : {8, 14}) {
      cifar_spec s;
      s.weighted_layers = depth;
      s.width = 4;
      s.classes = 5;
      s.input = {3, 8, 8};
      out.push_back(
          {"cifar_" + to_string(a) + "_" + std::to_string(depth), model_recipe(a, s), [a, s] {
             rng g(7);
             return build_cifar<float>(a, s, g);
           }});
    }
  return out;
}

matrix<float> random_batch(shatter::index rows, shatter::index n, rng& g) {
  matrix<float> x(rows, n);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = float(g.normal());
  return x;
}

/// Moves what evaluation reads away from its initial values: two training forwards (batch-norm
/// statistics and counters) and noise on every 1-D parameter (biases, scales, shifts, slopes).
void perturb(sequential<float>& net, rng& g) {
  for (int k = 0; k < 2; ++k) net.forward(random_batch(net.in_size(), 8, g), mode::train);
  for (auto& p : net.parameters())
    if (p.value->cols() == 1)
      for (shatter::index i = 0; i < p.value->size(); ++i) (*p.value)(i) += float(0.1 * g.normal());
}

/// x [N, features] and y [N, outputs] (one sample per row, as PyTorch batches them).
void write_io(const std::string& path, const matrix<float>& x, const matrix<float>& y) {
  io::safetensors_file f;
  f.tensors["x"] = io::to_tensor(matrix<float>(x.transpose()));
  f.tensors["y"] = io::to_tensor(matrix<float>(y.transpose()));
  io::write_safetensors(path, f);
}

/// max |a - b| / max(1, max |b|); prints it and returns whether it is within 1e-5.
bool agree(const std::string& what, const matrix<float>& a, const matrix<float>& b) {
  const double scale = std::max(1.0, double(b.cwiseAbs().maxCoeff()));
  const double d = double((a - b).cwiseAbs().maxCoeff()) / scale;
  std::printf("  %-44s max |shatter - torch| / max(1, |y|) = %.2e  %s\n", what.c_str(), d,
              d <= 1e-5 ? "ok" : "FAIL");
  return d <= 1e-5;
}

int write_all(const std::string& dir) {
  rng g(11);
  for (const auto& c : configs()) {
    auto net = c.build();
    perturb(net, g);
    const matrix<float> x = random_batch(net.in_size(), 6, g);
    const matrix<float> y = net.forward(x, mode::eval);
    save_weights(dir + "/" + c.name + ".safetensors", net, {{}, c.recipe});
    write_io(dir + "/" + c.name + ".io.safetensors", x, y);
  }
  std::printf("wrote %zu networks to %s\n", configs().size(), dir.c_str());
  return 0;
}

int check_all(const std::string& dir) {
  bool ok = true;
  for (const auto& c : configs()) {
    const std::string path = dir + "/" + c.name + ".torch.safetensors";
    const auto io_file = io::read_safetensors(dir + "/" + c.name + ".torch_io.safetensors");
    const matrix<float> x = io::to_matrix<float>(io_file.at("x"), "x").transpose();
    const matrix<float> y = io::to_matrix<float>(io_file.at("y"), "y").transpose();
    auto net = c.build();  // the builder's network: the file must match it exactly
    load_weights(path, net);
    ok = agree(c.name, net.forward(x, mode::eval), y) && ok;
    auto built = load_network<float>(path);  // and the network the file describes
    ok = agree(c.name + " (load_network)", built.forward(x, mode::eval), y) && ok;
    auto twin = c.build();  // the same weights from shatter_torch's builders
    load_weights(dir + "/" + c.name + ".pybuilt.safetensors", twin);
    ok = agree(c.name + " (shatter_torch builder)", twin.forward(x, mode::eval), y) && ok;
  }
  return ok ? 0 : 1;
}

int probe_file(const std::string& path, const std::string& io_path) {
  auto net = load_network<double>(path);
  const auto f = io::read_safetensors(io_path);
  const matrix<double> y = io::to_matrix<double>(f.at("y"), "y");  // [points, 1]
  const probe::sweep_result r = probe::sweep(net);  // 256 points on [-2, 2], as PyTorch's
  const bool ok = agree("probe outputs", r.output.cast<float>(), y.col(0).cast<float>());
  const probe::noise_stats s = probe::analyse(r);
  std::printf(
      "  gradient of the PyTorch-trained net: lag-1 autocorrelation %.3f, spectrum slope "
      "%.2f, verdict %s\n",
      s.lag1, s.slope, to_string(s.verdict).c_str());
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "write" && argc == 3) return write_all(argv[2]);
    if (cmd == "check" && argc == 3) return check_all(argv[2]);
    if (cmd == "probe" && argc == 4) return probe_file(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_roundtrip: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: torch_roundtrip write DIR | check DIR | probe FILE IO\n");
  return 2;
}
