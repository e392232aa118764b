// Writes a checkpoint of a small batch-norm ReLU network plus an input batch and the network's
// eval-mode output, for pytorch_crosscheck.py (run by hand; see that script).
//   g++ -std=c++17 -O2 -I include -I /usr/include/eigen3 tests/io/crosscheck/write_checkpoint.cpp \
//       -o /tmp/write_checkpoint && /tmp/write_checkpoint /tmp/xcheck
#include <iostream>
#include <string>

#include "shatter/io/checkpoint.hpp"
#include "shatter/network/builders.hpp"

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  shatter::rng g(3);
  shatter::mlp_spec s;
  s.in = 4;
  s.width = 5;
  s.hidden_layers = 2;
  s.out = 3;
  s.bias_std = 0.3;
  s.batch_norm = true;
  auto net = shatter::plain_relu_mlp<float>(s, g);
  shatter::matrix<float> x(4, 7);
  for (shatter::index i = 0; i < x.size(); ++i) x(i) = float(g.normal());
  for (int k = 0; k < 3; ++k) net.forward(x, shatter::mode::train);  // move running statistics
  shatter::save_checkpoint(dir + "/net.safetensors", net, {}, g, 2, 30, {{"arch", "fnn_relu_bn"}});
  const shatter::matrix<float> y = net.forward(x, shatter::mode::eval);
  shatter::io::safetensors_file io;
  // Batches as PyTorch wants them: samples x features (the transpose of shatter's layout).
  io.tensors["x"] = shatter::io::to_tensor(shatter::matrix<float>(x.transpose()));
  io.tensors["y"] = shatter::io::to_tensor(shatter::matrix<float>(y.transpose()));
  shatter::io::write_safetensors(dir + "/io.safetensors", io);
  std::cout << "wrote " << dir << "/net.safetensors and " << dir << "/io.safetensors\n";
}
