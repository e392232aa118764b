// Every kind of bad user input gets a shatter exception of the right type whose message names
// what and where; never a crash, an Eigen assertion or undefined behaviour. With the environment
// variable SHATTER_BAD_INPUT_TABLE=<file> the cases and the actual messages are appended to
// <file> as markdown table rows (the README's table is made that way).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "../io/temp_dir.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/idx.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/probe/noise.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/train/fit.hpp"

using namespace shatter;

namespace {

struct bad_case {
  std::string input;                  ///< what was wrong
  std::function<void()> run;          ///< feeds it to the library
  std::string type;                   ///< expected exception type name
  std::vector<std::string> contains;  ///< expected message fragments
};

template <class E>
bool is(const std::exception& e) {
  return dynamic_cast<const E*>(&e) != nullptr;
}

std::string type_of(const std::exception& e) {
  if (is<shape_error>(e)) return "shape_error";
  if (is<config_error>(e)) return "config_error";
  if (is<data_error>(e)) return "data_error";
  if (is<numeric_error>(e)) return "numeric_error";
  if (is<error>(e)) return "error";
  return "std::exception (not a shatter error)";
}

std::string one_line(std::string s, const std::string& dir) {
  if (!dir.empty())
    for (std::size_t p; (p = s.find(dir)) != std::string::npos;) s.replace(p, dir.size(), "DIR");
  for (auto& c : s)
    if (c == '\n' || c == '|') c = ' ';
  return s;
}

void check_cases(const std::string& group, const std::vector<bad_case>& cases,
                 const std::string& dir) {
  std::ofstream table;
  if (const char* path = std::getenv("SHATTER_BAD_INPUT_TABLE")) table.open(path, std::ios::app);
  for (const auto& c : cases) {
    INFO(group << ": " << c.input);
    std::string type = "no exception", message;
    try {
      c.run();
    } catch (const std::exception& e) {
      type = type_of(e);
      message = e.what();
    }
    CHECK(type == c.type);
    for (const auto& f : c.contains) CHECK_THAT(message, Catch::Contains(f));
    if (table)
      table << "| " << group << " | " << c.input << " | `" << type
            << "`: " << one_line(message, dir) << " |\n";
  }
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<unsigned char> idx_bytes(std::vector<std::uint32_t> dims, unsigned char value = 1) {
  std::vector<unsigned char> b = {0, 0, 8, static_cast<unsigned char>(dims.size())};
  std::size_t n = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
    n *= d;
  }
  b.insert(b.end(), n, value);
  return b;
}

mlp_spec small_spec(shatter::index depth, shatter::index width) {
  mlp_spec s;
  s.in = 2;
  s.width = width;
  s.hidden_layers = depth;
  s.out = 3;
  return s;
}

}  // namespace

TEST_CASE("bad input: network configurations", "[robust][bad-input]") {
  rng g(1);
  check_cases(
      "network",
      {
          {"hidden_layers 0",
           [&] { plain_relu_mlp<float>(small_spec(0, 8), g); },
           "config_error",
           {"plain_relu_mlp", "hidden_layers = 0"}},
          {"width 0",
           [&] { looks_linear_mlp<float>(small_spec(2, 0), g); },
           "config_error",
           {"looks_linear_mlp", "width = 0"}},
          {"bias_std = NaN",
           [&] {
             auto s = small_spec(2, 4);
             s.bias_std = std::nan("");
             resnet_mlp<float>(s, g);
           },
           "config_error",
           {"bias_std must be finite"}},
          {"unknown architecture name",
           [&] { parse_architecture("relu_resnet"); },
           "config_error",
           {"unknown architecture 'relu_resnet'", "crelu_ll"}},
          {"dense(3 -> 4) followed by dense(5 -> 2)",
           [&] {
             sequential<float> n;
             n.add(dense<float>(3, 4));
             n.add(dense<float>(5, 2));
           },
           "shape_error",
           {"layer 1", "takes 5", "has 4"}},
          {"looks-linear init after ReLU instead of CReLU",
           [&] {
             auto n = plain_relu_mlp<float>(small_spec(2, 4), g);
             apply_looks_linear(n, g);
           },
           "shape_error",
           {"apply_looks_linear: layer 2"}},
          {"mirroring a weight with an odd number of inputs",
           [&] {
             matrix<float> w(4, 5);
             init::looks_linear(w, g);
           },
           "shape_error",
           {"5"}},
          {"batch of 3-feature samples into a 2-input network",
           [&] {
             auto n = plain_relu_mlp<float>(small_spec(2, 4), g);
             n.forward(matrix<float>::Zero(3, 5), mode::eval);
           },
           "shape_error",
           {"expected 2 features", "3 x 5"}},
          {"training-mode batch norm on a batch of 1",
           [&] {
             auto s = small_spec(1, 4);
             s.batch_norm = true;
             auto n = plain_relu_mlp<float>(s, g);
             n.forward(matrix<float>::Zero(2, 1), mode::train);
           },
           "shape_error",
           {"batch_norm(4)", "at least 2 values"}},
          {"CIFAR network of depth 21 (not 6n+2)",
           [&] {
             cifar_spec s;
             s.weighted_layers = 21;
             build_cifar<float>(cifar_arch::resnet, s, g);
           },
           "config_error",
           {"21"}},
          {"set_threads(0)", [] { set_threads(0); }, "config_error", {"must be >= 1, got 0"}},
      },
      "");
}

TEST_CASE("bad input: dataset files", "[robust][bad-input]") {
  test::temp_dir tmp;
  const std::string d = tmp.path();
  write_bytes(d + "/images", idx_bytes({2, 3, 3}));
  write_bytes(d + "/labels", idx_bytes({2}, 3));
  write_bytes(d + "/labels3", idx_bytes({3}, 3));
  write_bytes(d + "/label10", idx_bytes({2}, 10));
  auto truncated = idx_bytes({2, 3, 3});
  truncated.resize(truncated.size() - 5);
  write_bytes(d + "/truncated", truncated);
  auto trailing = idx_bytes({2});
  trailing.push_back(0);
  write_bytes(d + "/trailing", trailing);
  write_bytes(d + "/notgzip.gz", {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3});
  write_bytes(d + "/cifar_short.bin", std::vector<unsigned char>(3072, 1));
  std::vector<unsigned char> rec(3073, 7);
  rec[0] = 10;
  write_bytes(d + "/cifar_label.bin", rec);
  write_bytes(d + "/empty.bin", {});
  check_cases("dataset file",
              {
                  {"Fashion-MNIST directory without the files",
                   [&] { load_fashion_mnist<float>(d); },
                   "data_error",
                   {"train-images-idx3-ubyte[.gz]: file not found", "dataset-fashion-mnist"}},
                  {"IDX image file missing",
                   [&] { load_idx_images<float>(d + "/nope"); },
                   "data_error",
                   {"/nope", "cannot open"}},
                  {"IDX label file given as the image file (bad magic)",
                   [&] { load_idx_images<float>(d + "/labels"); },
                   "data_error",
                   {"/labels", "bad magic number 0x00000801", "expected 0x00000803"}},
                  {"IDX file truncated (5 bytes short)",
                   [&] { load_idx_images<float>(d + "/truncated"); },
                   "data_error",
                   {"/truncated", "truncated data"}},
                  {"IDX file with a trailing byte",
                   [&] { load_idx_labels(d + "/trailing"); },
                   "data_error",
                   {"/trailing", "1 unexpected bytes"}},
                  {"IDX label 10 with 10 classes",
                   [&] { load_idx_labels(d + "/label10", 10); },
                   "data_error",
                   {"/label10", "10"}},
                  {"IDX 2 images but 3 labels",
                   [&] { load_idx_dataset<float>(d + "/images", d + "/labels3"); },
                   "data_error",
                   {"3 labels", "2 images"}},
                  {"corrupt gzip stream",
                   [&] { read_idx(d + "/notgzip.gz"); },
                   "data_error",
                   {"/notgzip.gz", "gzip"}},
                  {"CIFAR-10 batch file missing",
                   [&] { load_cifar10_file<float>(d + "/nope.bin"); },
                   "data_error",
                   {"/nope.bin", "missing"}},
                  {"CIFAR-10 file of 3072 bytes (not a multiple of 3073)",
                   [&] { load_cifar10_file<float>(d + "/cifar_short.bin"); },
                   "data_error",
                   {"/cifar_short.bin", "3072 bytes", "3073"}},
                  {"CIFAR-10 empty file",
                   [&] { load_cifar10_file<float>(d + "/empty.bin"); },
                   "data_error",
                   {"/empty.bin", "0 bytes"}},
                  {"CIFAR-10 label byte 10",
                   [&] { load_cifar10_file<float>(d + "/cifar_label.bin"); },
                   "data_error",
                   {"/cifar_label.bin", "record 0 has label 10"}},
                  {"CIFAR-10 directory without the files",
                   [&] { load_cifar10<float>(d); },
                   "data_error",
                   {"data_batch_1.bin"}},
              },
              d);
}

TEST_CASE("bad input: probe settings", "[robust][bad-input]") {
  rng g(2);
  auto scalar_net = looks_linear_mlp<double>(small_spec(2, 4), g);  // 2 inputs
  mlp_spec s1 = small_spec(2, 4);
  s1.in = 1;
  auto net = looks_linear_mlp<double>(s1, g);
  check_cases("probe",
              {
                  {"sweep with 1 point",
                   [&] {
                     probe::sweep_options o;
                     o.points = 1;
                     probe::sweep(net, o);
                   },
                   "config_error",
                   {"at least 2 points, got 1"}},
                  {"sweep range [2, -2]",
                   [&] {
                     probe::sweep_options o;
                     o.from = 2;
                     o.to = -2;
                     probe::sweep(net, o);
                   },
                   "config_error",
                   {"reversed"}},
                  {"sweep range with NaN",
                   [&] {
                     probe::sweep_options o;
                     o.to = std::nan("");
                     probe::sweep(net, o);
                   },
                   "config_error",
                   {"finite"}},
                  {"1-D sweep of a network with 2 inputs",
                   [&] { probe::sweep(scalar_net); },
                   "shape_error",
                   {"sweep_line"}},
                  {"noise statistics of a 1-point sequence",
                   [&] { probe::analyse(Eigen::VectorXd::Ones(1)); },
                   "config_error",
                   {"analyse"}},
                  {"noise statistics of a sequence with NaN",
                   [&] {
                     Eigen::VectorXd v = Eigen::VectorXd::Ones(16);
                     v(3) = std::nan("");
                     probe::analyse(v);
                   },
                   "numeric_error",
                   {"analyse"}},
              },
              "");
}

TEST_CASE("bad input: training and checkpoints", "[robust][bad-input]") {
  test::temp_dir tmp;
  const std::string d = tmp.path();
  rng g(3);
  auto net = plain_relu_mlp<double>(small_spec(1, 4), g);
  softmax_cross_entropy<double> loss;
  sgd<double> opt(net.parameters(), {0.1});
  dataset<double> data;
  data.classes = 3;
  data.x = matrix<double>::Zero(2, 4);
  data.labels = {0, 1, 2, 3};
  save_checkpoint(d + "/ok.safetensors", net, opt, g, 0, 0);
  auto bytes = io::read_file(d + "/ok.safetensors");
  write_bytes(d + "/cut.safetensors", std::vector<unsigned char>(bytes.begin(), bytes.end() - 10));
  auto flipped = bytes;
  flipped[9] = '!';  // the quote opening the first key
  write_bytes(d + "/flipped.safetensors", flipped);
  write_bytes(d + "/random.safetensors", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1});
  auto wider = plain_relu_mlp<double>(small_spec(1, 5), g);
  sgd<double> wider_opt(wider.parameters(), {0.1});
  check_cases(
      "training/checkpoint",
      {
          {"label 3 in a 3-class training set",
           [&] {
             fit_options o;
             fit(net, loss, opt, schedule::constant(0.1), data, o);
           },
           "data_error",
           {"label 3 of sample 3", "outside [0, 3)"}},
          {"batch size 0",
           [&] {
             data.labels[3] = 0;
             fit_options o;
             o.batch_size = 0;
             fit(net, loss, opt, schedule::constant(0.1), data, o);
           },
           "config_error",
           {"batch size must be >= 1, got 0"}},
          {"negative learning rate",
           [&] { sgd<double>(net.parameters(), {-0.1}); },
           "config_error",
           {"learning rate"}},
          {"checkpoint file missing",
           [&] { load_checkpoint(d + "/nope.safetensors", net, opt, g); },
           "data_error",
           {"/nope.safetensors", "cannot open"}},
          {"checkpoint truncated by 10 bytes",
           [&] { load_checkpoint(d + "/cut.safetensors", net, opt, g); },
           "data_error",
           {"/cut.safetensors", "run past the end"}},
          {"checkpoint with a corrupted header byte",
           [&] { load_checkpoint(d + "/flipped.safetensors", net, opt, g); },
           "data_error",
           {"/flipped.safetensors", "invalid safetensors header"}},
          {"not a safetensors file (header length 2^63)",
           [&] { load_checkpoint(d + "/random.safetensors", net, opt, g); },
           "data_error",
           {"/random.safetensors", "header length field"}},
          {"checkpoint of a width-4 network into a width-5 network",
           [&] { load_checkpoint(d + "/ok.safetensors", wider, wider_opt, g); },
           "data_error",
           {"/ok.safetensors", "another network", "dense(2 -> 4, bias)", "dense(2 -> 5, bias)"}},
          {"checkpoint in a directory that does not exist",
           [&] { save_checkpoint(d + "/no/dir/ckpt.safetensors", net, opt, g, 0, 0); },
           "data_error",
           {"/no/dir/ckpt.safetensors", "No such file or directory"}},
      },
      d);
}
