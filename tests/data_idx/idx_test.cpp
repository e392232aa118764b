// IDX loader: small generated files (plain and gzip via zlib), every malformation, real data.
#include <zlib.h>
#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "shatter/data/idx.hpp"

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

namespace {

/// A scratch directory for this process, removed at exit.
struct scratch {
  fs::path path = fs::temp_directory_path() /
                  ("shatter_idx_test_" + std::to_string(static_cast<long>(::getpid())));
  scratch() { fs::create_directories(path); }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fs::path temp_dir() {
  static const scratch s;
  return s.path;
}

bytes idx(std::uint8_t ndims, const std::vector<std::uint32_t>& dims, const bytes& data) {
  bytes b{0, 0, 0x08, ndims};
  for (auto d : dims) {
    b.push_back(std::uint8_t(d >> 24));
    b.push_back(std::uint8_t(d >> 16));
    b.push_back(std::uint8_t(d >> 8));
    b.push_back(std::uint8_t(d));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::string write_plain(const std::string& name, const bytes& b) {
  const auto p = (temp_dir() / name).string();
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return p;
}

std::string write_gz(const std::string& name, const bytes& b) {
  const auto p = (temp_dir() / name).string();
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == int(b.size()));
  gzclose(f);
  return p;
}

bytes read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// 3 images of 2 x 2 with pixel values k*10 + i, and labels {2, 0, 9}.
bytes images3() {
  bytes px;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 4; ++i) px.push_back(std::uint8_t(k * 10 + i));
  px[11] = 255;
  return idx(3, {3, 2, 2}, px);
}
bytes labels3() {
  return idx(1, {3}, {2, 0, 9});
}

}  // namespace

TEST_CASE("IDX images and labels load from gzip and plain files", "[data][idx]") {
  for (bool gz : {true, false}) {
    const auto im = gz ? write_gz("im.gz", images3()) : write_plain("im", images3());
    const auto lb = gz ? write_gz("lb.gz", labels3()) : write_plain("lb", labels3());
    const auto d = shatter::load_idx_dataset<double>(im, lb);
    REQUIRE(d.x.rows() == 4);
    REQUIRE(d.x.cols() == 3);
    CHECK(d.labels == shatter::label_vector{2, 0, 9});
    CHECK(d.classes == 10);
    CHECK(d.x(1, 0) == 1.0 / 255);   // image 0, row 0, col 1
    CHECK(d.x(2, 1) == 12.0 / 255);  // image 1, row 1, col 0
    CHECK(d.x(3, 2) == 1.0);         // 255 -> 1
    CHECK(d.x.minCoeff() == 0.0);
  }
}

TEST_CASE("standardization uses the given statistics", "[data][idx]") {
  shatter::dataset<double> d;
  d.x.resize(2, 2);
  d.x << 0, 1, 2, 3;
  d.labels = {0, 1};
  const auto s = shatter::compute_pixel_statistics(d);
  CHECK(s.mean == Approx(1.5));
  CHECK(s.stddev == Approx(std::sqrt(1.25)));
  shatter::standardize(d, s);
  CHECK(d.x.sum() == Approx(0.0).margin(1e-15));
  CHECK(d.x.squaredNorm() / 4 == Approx(1.0));
}

TEST_CASE("malformed IDX files give data_error naming the file and the problem",
          "[data][idx][bad-input]") {
  using Catch::Contains;
  const auto lb = write_gz("ok_labels.gz", labels3());
  const auto im = write_gz("ok_images.gz", images3());

  CHECK_THROWS_WITH(shatter::load_idx_images<float>((temp_dir() / "nope.gz").string()),
                    Contains("nope.gz") && Contains("cannot open"));

  const auto swapped = write_gz("swapped.gz", labels3());
  CHECK_THROWS_WITH(shatter::load_idx_images<float>(swapped),
                    Contains("swapped.gz") && Contains("bad magic number 0x00000801") &&
                        Contains("expected 0x00000803"));
  CHECK_THROWS_WITH(shatter::load_idx_labels(im),
                    Contains("ok_images.gz") && Contains("bad magic number 0x00000803"));

  auto wrong_type = labels3();
  wrong_type[2] = 0x0d;
  CHECK_THROWS_WITH(shatter::parse_idx(wrong_type.data(), wrong_type.size(), "mem"),
                    Contains("mem") && Contains("type 13"));
  const bytes tiny{0, 0};
  CHECK_THROWS_WITH(shatter::parse_idx(tiny.data(), tiny.size(), "mem"), Contains("too short"));
  const bytes short_header{0, 0, 8, 3, 0, 0, 0, 1};
  CHECK_THROWS_WITH(shatter::parse_idx(short_header.data(), short_header.size(), "mem"),
                    Contains("truncated header"));

  auto truncated = images3();
  truncated.resize(truncated.size() - 5);
  CHECK_THROWS_WITH(
      shatter::load_idx_images<float>(write_gz("trunc_data.gz", truncated)),
      Contains("trunc_data.gz") && Contains("truncated data: 7 bytes") && Contains("12 expected"));
  CHECK_THROWS_WITH(shatter::load_idx_images<float>(write_plain("trunc_plain", truncated)),
                    Contains("truncated data"));

  auto trailing = labels3();
  trailing.push_back(1);
  CHECK_THROWS_WITH(shatter::load_idx_labels(write_plain("trailing", trailing)),
                    Contains("1 unexpected bytes"));

  // A gzip stream cut short, and one with corrupted compressed bytes.
  auto gz = read_all(im);
  const bytes cut(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2));
  CHECK_THROWS_WITH(shatter::load_idx_images<float>(write_plain("cut.gz", cut)),
                    Contains("cut.gz") && Contains("truncated gzip"));
  auto corrupt = gz;
  for (std::size_t i = 10; i < corrupt.size() - 8; ++i) corrupt[i] ^= 0x5a;
  CHECK_THROWS_AS(shatter::load_idx_images<float>(write_plain("corrupt.gz", corrupt)),
                  shatter::data_error);

  CHECK_THROWS_WITH(
      shatter::load_idx_labels(write_gz("big_label.gz", idx(1, {3}, {2, 10, 1}))),
      Contains("big_label.gz") && Contains("label 10 of item 1") && Contains("[0, 10)"));
  const auto two = write_gz("two_labels.gz", idx(1, {2}, {1, 1}));
  CHECK_THROWS_WITH(shatter::load_idx_dataset<float>(im, two), Contains("two_labels.gz") &&
                                                                   Contains("2 labels but") &&
                                                                   Contains("has 3 images"));
  CHECK_THROWS_WITH(
      shatter::load_fashion_mnist<float>(temp_dir().string()),
      Contains("train-images-idx3-ubyte") && Contains("apt-get install dataset-fashion-mnist"));
}

TEST_CASE("the real Fashion-MNIST files load (when installed)", "[data][idx][fashion-mnist]") {
  const std::string dir = shatter::fashion_mnist_default_dir();
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) {
    WARN("skipped: " << dir << " not found (apt-get install dataset-fashion-mnist)");
    return;
  }
  shatter::load_options o;
  o.normalize = shatter::normalization::standardize;
  const auto f = shatter::load_fashion_mnist<float>(dir, o);
  CHECK(f.train.size() == 60000);
  CHECK(f.test.size() == 10000);
  CHECK(f.train.features() == 784);
  std::vector<int> count(10, 0);
  for (auto y : f.train.labels) ++count[static_cast<std::size_t>(y)];
  for (int c : count) CHECK(c == 6000);  // Fashion-MNIST is balanced
  CHECK(f.statistics.mean.at(0) == Approx(0.2860).margin(1e-3));
  CHECK(f.statistics.stddev.at(0) == Approx(0.3530).margin(1e-3));
  CHECK(f.train.x.cast<double>().mean() == Approx(0.0).margin(1e-5));
  CHECK(f.shape == shatter::image_shape{1, 28, 28});
  CHECK(f.classes.size() == 10);
}
