// Inputs the loaders and the evaluation refuse or report, with their exact messages: a FIFO,
// directory or device where a data file or checkpoint belongs (refused at once, without blocking
// on the FIFO), IDX files with no images or with sizes whose product overflows, checkpoints with a
// negative epoch or step, and outputs that are not finite (no prediction, counted apart).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../io/temp_dir.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/idx.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/evaluate.hpp"

using namespace shatter;

namespace {

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// An IDX file of unsigned bytes with these sizes: header only, or with `fill` data bytes.
std::vector<unsigned char> idx_header(const std::vector<std::uint32_t>& dims, std::size_t fill) {
  std::vector<unsigned char> b = {0, 0, 8, static_cast<unsigned char>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
  b.insert(b.end(), fill, 1);
  return b;
}

/// The message of the data_error (or other shatter error) `f` throws; "no exception" if none.
/// Fails the test if `f` had to be unblocked: after 5 s a watchdog opens `fifo` for writing,
/// which releases an open() blocked on it (the loader then sees an empty file).
std::string message_of(const std::function<void()>& f, const std::string& fifo = "") {
  std::mutex m;
  std::condition_variable cv;
  bool finished = false, unblocked = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(m);
    if (fifo.empty() || cv.wait_for(lock, std::chrono::seconds(5), [&] { return finished; }))
      return;
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
    unblocked = fd >= 0;
  });
  std::string what = "no exception";
  try {
    f();
  } catch (const error& e) {
    what = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(m);
    finished = true;
  }
  cv.notify_all();
  watchdog.join();
  CHECK_FALSE(unblocked);  // the loader blocked in open() on the FIFO
  return what;
}

}  // namespace

TEST_CASE("loaders refuse a FIFO, a directory or a device without blocking, naming the file",
          "[robust][refused]") {
  test::temp_dir tmp;
  const std::string d = tmp.path();
  const std::string fifo = d + "/fifo", dir = d + "/dir", dev = "/dev/null";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  struct {
    std::string path, kind;
  } const specials[] = {
      {fifo, "a FIFO (named pipe)"}, {dir, "a directory"}, {dev, "a character device"}};
  for (const auto& s : specials) {
    INFO(s.path);
    CHECK(message_of([&] { load_cifar10_file<float>(s.path); }, fifo) ==
          "CIFAR-10 file '" + s.path + "' is " + s.kind + ", not a regular file");
    CHECK(message_of([&] { load_idx_images<float>(s.path); }, fifo) ==
          s.path + ": is " + s.kind + ", not a regular file");
    CHECK(message_of([&] { load_idx_labels(s.path); }, fifo) ==
          s.path + ": is " + s.kind + ", not a regular file");
    CHECK(message_of([&] { io::read_safetensors(s.path); }, fifo) ==
          "cannot read '" + s.path + "': it is " + s.kind + ", not a regular file");
    rng g(1);
    auto net = plain_relu_mlp<float>({}, g);
    sgd<float> opt(net.parameters(), {0.1});
    CHECK(message_of([&] { load_checkpoint(s.path, net, opt, g); }, fifo) ==
          "cannot read '" + s.path + "': it is " + s.kind + ", not a regular file");
  }
}

TEST_CASE("data set directories with a FIFO or directory in place of a file name that file",
          "[robust][refused]") {
  test::temp_dir tmp;
  const std::string d = tmp.path();
  SECTION("CIFAR-10: test_batch.bin is a FIFO, or a directory") {
    std::ofstream(d + "/batches.meta.txt") << "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    std::vector<unsigned char> record(3073, 0);
    for (int b = 1; b <= 5; ++b)
      write_bytes(d + "/data_batch_" + std::to_string(b) + ".bin", record);
    const std::string test = d + "/test_batch.bin";
    REQUIRE(::mkfifo(test.c_str(), 0600) == 0);
    CHECK(message_of(
              [&] {
                load_cifar10<float>(d, {2, 1});
              },
              test) == "CIFAR-10 file '" + test + "' is a FIFO (named pipe), not a regular file");
    REQUIRE(::unlink(test.c_str()) == 0);
    REQUIRE(::mkdir(test.c_str(), 0700) == 0);
    CHECK(message_of([&] { load_cifar10<float>(d); }) ==
          "CIFAR-10 file '" + test + "' is a directory, not a regular file");
    REQUIRE(::rmdir(test.c_str()) == 0);
    // A training file beyond the limit is only checked; a FIFO there must not block either.
    const std::string fifth = d + "/data_batch_5.bin";
    REQUIRE(::unlink(fifth.c_str()) == 0);
    REQUIRE(::mkfifo(fifth.c_str(), 0600) == 0);
    CHECK(message_of(
              [&] {
                load_cifar10<float>(d, {1, 1});
              },
              fifth) == "CIFAR-10 file '" + fifth + "' is a FIFO (named pipe), not a regular file");
    REQUIRE(::unlink(fifth.c_str()) == 0);
    const std::string meta = d + "/batches.meta.txt";
    REQUIRE(::unlink(meta.c_str()) == 0);
    REQUIRE(::mkfifo(meta.c_str(), 0600) == 0);
    CHECK(message_of(
              [&] {
                load_cifar10<float>(d, {1, 1});
              },
              meta) == "CIFAR-10 file '" + meta + "' is a FIFO (named pipe), not a regular file");
  }
  SECTION("Fashion-MNIST: the training images are a FIFO") {
    const std::string images = d + "/train-images-idx3-ubyte.gz";
    REQUIRE(::mkfifo(images.c_str(), 0600) == 0);
    write_bytes(d + "/train-labels-idx1-ubyte", idx_header({1}, 1));
    write_bytes(d + "/t10k-images-idx3-ubyte", idx_header({1, 28, 28}, 784));
    write_bytes(d + "/t10k-labels-idx1-ubyte", idx_header({1}, 1));
    CHECK(message_of([&] { load_fashion_mnist<float>(d); }, images) ==
          images + ": is a FIFO (named pipe), not a regular file");
  }
}

TEST_CASE("IDX files with no images or with overflowing sizes are refused, naming the file",
          "[robust][refused]") {
  test::temp_dir tmp;
  const std::string d = tmp.path();
  SECTION("0 images: the loader names the file (not the pixel statistics)") {
    write_bytes(d + "/train-images-idx3-ubyte", idx_header({0, 28, 28}, 0));
    write_bytes(d + "/train-labels-idx1-ubyte", idx_header({0}, 0));
    write_bytes(d + "/t10k-images-idx3-ubyte", idx_header({1, 28, 28}, 784));
    write_bytes(d + "/t10k-labels-idx1-ubyte", idx_header({1}, 1));
    CHECK(message_of([&] { load_fashion_mnist<float>(d); }) ==
          d + "/train-images-idx3-ubyte: the IDX file holds 0 images (an empty data set)");
    CHECK(read_idx(d + "/train-images-idx3-ubyte").dims ==
          std::vector<std::uint32_t>{0, 28, 28});  // a valid, empty IDX array
  }
  SECTION("0 x (2^32 - 1) x (2^32 - 1): refused before any product of sizes is formed") {
    const std::string path = d + "/huge";
    write_bytes(path, idx_header({0, 0xffffffffu, 0xffffffffu}, 0));
    const std::string msg = path +
                            ": IDX dimensions 0 x 4294967295 x 4294967295 are too large (the "
                            "nonzero sizes multiply to more than 2147483648)";
    CHECK(message_of([&] { load_idx_images<float>(path); }) == msg);
    CHECK(message_of([&] { read_idx(path); }) == msg);
  }
  SECTION("sizes multiplying to 2^31 + 2^16 are refused without reading a byte of data") {
    const auto b = idx_header({32769, 256, 256}, 0);
    CHECK(message_of([&] { parse_idx(b.data(), b.size(), "mem", 3); }) ==
          "mem: IDX dimensions 32769 x 256 x 256 are too large (the nonzero sizes multiply to "
          "more than 2147483648)");
    const auto ok = idx_header({32768, 256, 256}, 0);  // exactly at the limit: only truncated
    CHECK(message_of([&] { parse_idx(ok.data(), ok.size(), "mem", 3); }) ==
          "mem: truncated data: 0 bytes after the header, 2147483648 expected from the dimensions");
  }
}

TEST_CASE("a checkpoint with a negative epoch or step is refused and changes nothing",
          "[robust][refused]") {
  test::temp_dir tmp;
  rng g(5);
  auto net = plain_relu_mlp<double>({}, g);
  sgd<double> opt(net.parameters(), {0.1, 0.9});
  const std::string good = tmp.file("good.safetensors");
  save_checkpoint(good, net, opt, g, 3, 40);
  for (const char* key : {"shatter.epoch", "shatter.step"}) {
    INFO(key);
    io::safetensors_file f = io::read_safetensors(good);
    f.metadata[key] = std::string(key) == "shatter.epoch" ? "-3" : "-1";
    const std::string bad = tmp.file("bad.safetensors");
    io::write_safetensors(bad, f);
    rng g2(9);
    auto other = plain_relu_mlp<double>({}, g2);
    sgd<double> other_opt(other.parameters(), {0.5, 0.9});
    const matrix<double> before = *other.parameters()[0].value;
    const auto state = g2.state();
    CHECK(message_of([&] { load_checkpoint(bad, other, other_opt, g2); }) ==
          bad + ": checkpoint metadata \"" + key + "\" = " + f.metadata[key] + " is negative");
    CHECK((*other.parameters()[0].value).cwiseEqual(before).all());
    CHECK(g2.state() == state);
    CHECK(other_opt.learning_rate() == 0.5);
  }
  CHECK(message_of([&] { save_checkpoint(good, net, opt, g, -3, 0); }) ==
        "save_checkpoint: epoch and step must be >= 0, got -3 and 0");
  CHECK(load_checkpoint(good, net, opt, g).epoch == 3);  // the good file is still there
}

TEST_CASE("outputs that are not finite are no prediction: counted apart, never correct",
          "[robust][refused]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  SECTION("correct_count and nonfinite_count") {
    matrix<double> z(3, 5);
    z.col(0) << nan, nan, nan;  // label 0: argmax would say 0
    z.col(1) << 2, 1, 0;        // label 0: correct
    z.col(2) << nan, 5, 1;      // label 1
    z.col(3) << inf, 0, 0;      // label 0
    z.col(4) << 0, 1, -inf;     // label 1
    const label_vector y = {0, 0, 1, 0, 1};
    CHECK(correct_count(z, y) == 1);
    CHECK(nonfinite_count(z) == 4);
    CHECK(accuracy(z, y) == 0.2);
  }
  SECTION("evaluate over batches") {
    rng g(1);
    sequential<double> net;
    auto& layer = net.add(dense<double>(2, 3));
    layer.weight() << 1, 0, 0, 1, -1, -1;
    layer.bias().setZero();
    softmax_cross_entropy<double> loss;
    dataset<double> data;
    data.classes = 3;
    data.x.resize(2, 5);
    data.x << 1, nan, 0, nan, 2,  //
        0, nan, 1, nan, 0;
    data.labels = {0, 0, 2, 0, 0};  // samples 0 and 4 right, 2 wrong, 1 and 3 no prediction
    const evaluation e = evaluate(net, loss, data, 2);
    CHECK(e.samples == 5);
    CHECK(e.nonfinite == 2);
    CHECK(e.accuracy == 0.4);
    CHECK(std::isnan(e.loss));
  }
}
