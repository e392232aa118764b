// CIFAR-10 loader on generated files in the official format, bad files, the real shared copy,
// per-channel normalisation and crop/flip augmentation.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "shatter/data/augment.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/idx.hpp"
#include "shatter/data/normalize.hpp"

using namespace shatter;
namespace fs = std::filesystem;
using Idx = Eigen::Index;

namespace {

/// A fresh temporary directory, removed at scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("shatter-cifar-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

/// The byte at pixel i (0..3071) of record r of file f, chosen to identify all three.
unsigned char pixel(int f, int r, int i) {
  return static_cast<unsigned char>((f * 31 + r * 7 + i) % 256);
}

/// Writes `n` records with labels (f + r) % 10 to `path`.
void write_batch(const fs::path& path, int f, int n, int bad_label_at = -1) {
  std::ofstream out(path, std::ios::binary);
  for (int r = 0; r < n; ++r) {
    const unsigned char label = r == bad_label_at ? 10 : static_cast<unsigned char>((f + r) % 10);
    out.put(static_cast<char>(label));
    for (int i = 0; i < 3072; ++i) out.put(static_cast<char>(pixel(f, r, i)));
  }
}

void write_set(const fs::path& dir, int per_file = 3) {
  for (int b = 1; b <= 5; ++b)
    write_batch(dir / ("data_batch_" + std::to_string(b) + ".bin"), b, per_file);
  write_batch(dir / "test_batch.bin", 0, per_file);
  std::ofstream meta(dir / "batches.meta.txt");
  for (const char* c :
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"})
    meta << c << "\n";
  meta << "\n";
}

}  // namespace

TEST_CASE("CIFAR-10 loader reads generated files in the official binary layout") {
  temp_dir t;
  write_set(t.path);
  const auto c = load_cifar10<float>(t.str());
  REQUIRE(c.classes.size() == 10);
  CHECK(c.classes[0] == "airplane");
  CHECK(c.classes[9] == "truck");
  REQUIRE(c.train.size() == 15);
  REQUIRE(c.test.size() == 3);
  CHECK(c.train.features() == 3072);
  CHECK(c.train.classes == 10);
  for (int b = 1; b <= 5; ++b)
    for (int r = 0; r < 3; ++r) {
      const Idx j = (b - 1) * 3 + r;
      CHECK(c.train.labels[std::size_t(j)] == (b + r) % 10);
      for (int i : {0, 1, 1023, 1024, 2047, 2048, 3071})
        CHECK(c.train.x(i, j) == Approx(pixel(b, r, i) / 255.0f));
    }
  CHECK(c.test.labels[2] == 2);
  CHECK(c.test.x(5, 1) == Approx(pixel(0, 1, 5) / 255.0f));

  const auto some = load_cifar10<double>(t.str(), {4, 2});
  CHECK(some.train.size() == 4);
  CHECK(some.train.labels[3] == (2 + 0) % 10);  // first record of data_batch_2
  CHECK(some.test.size() == 2);
}

TEST_CASE("both image loaders return image_data and standardize with the same options") {
  static_assert(std::is_same_v<decltype(load_cifar10<float>("")),
                               decltype(load_fashion_mnist<float>("", load_options{}))>);
  temp_dir t;
  write_set(t.path);
  const auto raw = load_cifar10<double>(t.str(), {6, 3});
  load_options o{6, 3, normalization::standardize};
  const auto c = load_cifar10<double>(t.str(), o);
  CHECK(c.shape == image_shape{3, 32, 32});
  // the training set's per-channel statistics, applied to both sets
  const auto stats = channel_statistics(raw.train.x, raw.shape);
  for (std::size_t ch = 0; ch < 3; ++ch) {
    CHECK(c.statistics.mean[ch] == stats.mean[ch]);
    CHECK(raw.statistics.stddev[ch] == stats.stddev[ch]);  // computed without normalising too
    const auto block = c.train.x.middleRows(Idx(ch) * 1024, 1024).array();
    CHECK(block.mean() == Approx(0).margin(1e-12));
    CHECK(std::sqrt(block.square().mean()) == Approx(1).epsilon(1e-12));
    const Idx j = 2, i = Idx(ch) * 1024 + 17;
    CHECK(c.test.x(i, j) ==
          Approx((raw.test.x(i, j) - stats.mean[ch]) / stats.stddev[ch]).epsilon(1e-12));
  }
  CHECK_THROWS_AS(load_cifar10<double>(t.str(), {-2, 3}), config_error);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const auto old = load_cifar10<double>(t.str(), 6, 3);  // the former signature
#pragma GCC diagnostic pop
  CHECK(old.train.x == raw.train.x);
  CHECK(old.test.labels == raw.test.labels);
}

TEST_CASE("CIFAR-10 loader: missing, truncated and corrupt files give errors naming the file") {
  temp_dir t;
  write_set(t.path);
  fs::remove(t.path / "data_batch_3.bin");
  CHECK_THROWS_WITH(load_cifar10<float>(t.str()),
                    Catch::Contains("data_batch_3.bin") && Catch::Contains("missing") &&
                        Catch::Contains("cs.toronto.edu/~kriz/cifar.html"));
  // Even when the limit means the file is not read, its absence is reported.
  CHECK_THROWS_AS(load_cifar10<float>(t.str(), load_options{2}), data_error);

  write_set(t.path);
  {
    std::ofstream cut(t.path / "data_batch_2.bin", std::ios::binary | std::ios::app);
    cut.put('x');  // 3 * 3073 + 1 bytes
  }
  CHECK_THROWS_WITH(load_cifar10<float>(t.str()), Catch::Contains("data_batch_2.bin") &&
                                                      Catch::Contains("9220 bytes") &&
                                                      Catch::Contains("3073"));
  std::ofstream(t.path / "data_batch_2.bin", std::ios::binary | std::ios::trunc);  // empty
  CHECK_THROWS_WITH(load_cifar10<float>(t.str()), Catch::Contains("data_batch_2.bin"));

  write_set(t.path);
  write_batch(t.path / "test_batch.bin", 0, 3, 1);
  CHECK_THROWS_WITH(load_cifar10<float>(t.str()), Catch::Contains("test_batch.bin") &&
                                                      Catch::Contains("record 1") &&
                                                      Catch::Contains("label 10"));

  write_set(t.path);
  std::ofstream(t.path / "batches.meta.txt", std::ios::trunc) << "airplane\nautomobile\n";
  CHECK_THROWS_WITH(load_cifar10<float>(t.str()),
                    Catch::Contains("batches.meta.txt") && Catch::Contains("2 class names"));
  CHECK_THROWS_WITH(load_cifar10_file<float>(t.str() + "/nope.bin"),
                    Catch::Contains("nope.bin") && Catch::Contains("binary version"));
}

TEST_CASE("CIFAR-10 shared copy: first labels match the official release") {
  const std::string dir = std::string(SHATTER_SHARED_DATA_DIR) + "/cifar-10-batches-bin";
  if (!fs::exists(dir + "/data_batch_1.bin")) {
    WARN("skipped: no CIFAR-10 copy at " << dir);
    return;
  }
  const auto c = load_cifar10<float>(dir, {10, 10});
  const std::vector<std::int32_t> train{6, 9, 9, 4, 1, 1, 2, 7, 8, 3};
  const std::vector<std::int32_t> test{3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
  CHECK(c.train.labels == train);
  CHECK(c.test.labels == test);
  CHECK(c.classes[6] == "frog");
  CHECK(c.train.x.minCoeff() >= 0);
  CHECK(c.train.x.maxCoeff() <= 1);
  CHECK(fs::file_size(dir + "/data_batch_1.bin") == 10000u * 3073u);
}

TEST_CASE("per-channel normalisation gives zero mean and unit deviation per channel") {
  rng g(41);
  const image_shape shape{3, 4, 5};
  matrix<double> x(60, 7);
  for (Idx j = 0; j < x.cols(); ++j)
    for (Idx i = 0; i < x.rows(); ++i) x(i, j) = 10.0 * double(i / 20) + g.normal() * (1 + i / 20);
  const auto s = channel_statistics(x, shape);
  CHECK(s.mean[2] == Approx(20).margin(1));
  normalize_channels(x, shape, s);
  const auto after = channel_statistics(x, shape);
  for (int c = 0; c < 3; ++c) {
    CHECK(after.mean[c] == Approx(0).margin(1e-12));
    CHECK(after.stddev[c] == Approx(1).epsilon(1e-12));
  }
  matrix<double> wrong(59, 1);
  CHECK_THROWS_AS(channel_statistics(wrong, shape), shape_error);
}

TEST_CASE("crop with zero padding and flip: shifted (mirrored) copies, reproducible by seed") {
  const image_shape shape{2, 5, 6};
  matrix<double> x(60, 50);
  for (Idx j = 0; j < x.cols(); ++j)
    for (Idx i = 0; i < x.rows(); ++i) x(i, j) = 1 + i + 100 * j;
  matrix<double> y, y2;
  rng g(5), g2(5), mirror_rng(5);
  random_crop_flip(x, y, shape, 2, true, g);
  random_crop_flip(x, y2, shape, 2, true, g2);
  CHECK(y == y2);
  Idx flipped = 0, shifted = 0;
  for (Idx s = 0; s < x.cols(); ++s) {
    const Idx dy = Idx(mirror_rng.below(5)) - 2, dx = Idx(mirror_rng.below(5)) - 2;
    const bool flip = mirror_rng.below(2) == 1;
    flipped += flip;
    shifted += dy != 0 || dx != 0;
    for (Idx c = 0; c < 2; ++c)
      for (Idx i = 0; i < 5; ++i)
        for (Idx jj = 0; jj < 6; ++jj) {
          const Idx iy = i + dy, ix = (flip ? 5 - jj : jj) + dx;
          const double want =
              iy >= 0 && iy < 5 && ix >= 0 && ix < 6 ? x((c * 5 + iy) * 6 + ix, s) : 0.0;
          REQUIRE(y((c * 5 + i) * 6 + jj, s) == want);
        }
  }
  CHECK(flipped > 10);
  CHECK(flipped < 40);
  CHECK(shifted > 30);
  random_crop_flip(x, y, shape, 0, false, g);
  CHECK(y == x);
}
