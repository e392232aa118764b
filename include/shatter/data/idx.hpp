// shatter: the IDX file format (MNIST, Fashion-MNIST), plain or gzip-compressed.
// Thread safety: every function here is reentrant (no shared state).
#ifndef SHATTER_DATA_IDX_HPP
#define SHATTER_DATA_IDX_HPP

// zlib is optional: define SHATTER_NO_ZLIB (CMake does when zlib is missing) to build without
// it; a gzip-compressed file is then refused with a data_error that says so.
#if !defined(SHATTER_NO_ZLIB) && defined(__has_include)
#if !__has_include(<zlib.h>)
#define SHATTER_NO_ZLIB
#endif
#endif
#ifndef SHATTER_NO_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/file.hpp"
#include "shatter/core/types.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/data/image_data.hpp"

namespace shatter {

/// An IDX array of unsigned bytes: its dimensions (outermost first) and its data in row-major
/// order. Only the unsigned-byte type (0x08) is supported, which is what MNIST-style sets use.
struct idx_array {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

/// Upper bound on the decompressed size of a gzip file read here (guards against gzip bombs).
constexpr std::size_t idx_max_bytes = std::size_t(1) << 31;

/// The bytes of a file; if it starts with the gzip magic (1f 8b) it is decompressed with zlib
/// (refused with a data_error saying so when built with SHATTER_NO_ZLIB).
/// data_error naming the file if it cannot be opened, is not a regular file (a FIFO, directory
/// or device, refused without blocking), is a truncated or corrupt gzip stream, or decompresses
/// to more than idx_max_bytes.
inline std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  detail::regular_file f(path);
  require<data_error>(!f.irregular(), path, ": is ", f.irregular() ? f.irregular() : "",
                      ", not a regular file");
  require<data_error>(f.is_open(), path,
                      ": cannot open file (missing or unreadable: ", std::strerror(f.error()), ")");
  std::vector<std::uint8_t> raw = f.read_all();
  require<data_error>(f.error() == 0, path, ": read error: ", std::strerror(f.error()));
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
#ifdef SHATTER_NO_ZLIB
  throw data_error(detail::cat(
      path,
      ": is gzip-compressed, but this program was built without zlib (SHATTER_NO_ZLIB); "
      "decompress it (gunzip -k) or install zlib (Debian: zlib1g-dev) and rebuild"));
#else
  std::vector<std::uint8_t> out;
  z_stream zs{};
  require<data_error>(inflateInit2(&zs, 15 + 16) == Z_OK, path, ": zlib initialisation failed");
  zs.next_in = raw.data();
  zs.avail_in = static_cast<uInt>(raw.size());  // IDX files are far below 4 GiB
  int rc = Z_OK;
  std::uint8_t chunk[1 << 16];
  while (rc != Z_STREAM_END) {
    zs.next_out = chunk;
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      const std::string why = rc == Z_BUF_ERROR ? "truncated gzip stream (unexpected end of file)"
                              : zs.msg          ? std::string("corrupt gzip data: ") + zs.msg
                                                : "corrupt gzip data";
      inflateEnd(&zs);
      throw data_error(detail::cat(path, ": ", why));
    }
    out.insert(out.end(), chunk, chunk + (sizeof chunk - zs.avail_out));
    if (out.size() > idx_max_bytes) {
      inflateEnd(&zs);
      throw data_error(detail::cat(path, ": decompresses to more than ", idx_max_bytes,
                                   " bytes; not an IDX file of a supported size"));
    }
  }
  inflateEnd(&zs);
  return out;
#endif
}

/// Parses an IDX array from memory: magic 0x00 0x00 <type 0x08> <ndims>, then ndims big-endian
/// uint32 sizes, then exactly prod(sizes) bytes. `what` names the source in messages. If
/// `expected_ndims` > 0 the array must have that many dimensions (images 3, labels 1).
/// data_error for a short header, a bad magic number, an unsupported type, a zero dimension
/// count, sizes whose nonzero entries multiply to more than idx_max_bytes, truncated data or
/// trailing bytes.
inline idx_array parse_idx(const std::uint8_t* bytes, std::size_t n, const std::string& what,
                           int expected_ndims = 0) {
  require<data_error>(n >= 4, what, ": too short for an IDX header (", n, " bytes)");
  const std::uint32_t magic = (std::uint32_t(bytes[0]) << 24) | (std::uint32_t(bytes[1]) << 16) |
                              (std::uint32_t(bytes[2]) << 8) | std::uint32_t(bytes[3]);
  char hex[11];
  std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(magic));
  if (expected_ndims > 0) {
    char want[11];
    std::snprintf(want, sizeof want, "0x%08x", 0x800u + static_cast<unsigned>(expected_ndims));
    require<data_error>(magic == 0x800u + static_cast<unsigned>(expected_ndims), what,
                        ": bad magic number ", hex, " (expected ", want,
                        expected_ndims == 1   ? " for an IDX label file"
                        : expected_ndims == 3 ? " for an IDX image file"
                                              : "",
                        ")");
  }
  require<data_error>(bytes[0] == 0 && bytes[1] == 0, what, ": bad magic number ", hex,
                      " (an IDX file starts with two zero bytes)");
  require<data_error>(bytes[2] == 0x08, what, ": IDX data type ", int(bytes[2]),
                      " is not supported (only unsigned bytes, 0x08)");
  const int nd = bytes[3];
  require<data_error>(nd >= 1, what, ": IDX file with 0 dimensions");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(nd);
  require<data_error>(n >= header, what, ": truncated header (", n, " bytes, ", header,
                      " needed for ", nd, " dimensions)");
  idx_array a;
  std::string dims_text;
  for (int d = 0; d < nd; ++d) {
    const std::uint8_t* p = bytes + 4 + 4 * d;
    a.dims.push_back((std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) |
                     (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]));
    dims_text += (d ? " x " : "") + std::to_string(a.dims.back());
  }
  // The nonzero sizes alone must fit, so that no product of sizes a caller forms (pixels per
  // image, say) can overflow, even when another size is 0.
  std::uint64_t nonzero = 1, count = 1;
  for (const std::uint32_t s : a.dims) {
    require<data_error>(s == 0 || nonzero <= idx_max_bytes / s, what, ": IDX dimensions ",
                        dims_text, " are too large (the nonzero sizes multiply to more than ",
                        idx_max_bytes, ")");
    if (s) nonzero *= s;
    count *= s;
  }
  const std::size_t body = n - header;
  require<data_error>(body >= count, what, ": truncated data: ", body, " bytes after the header, ",
                      count, " expected from the dimensions");
  require<data_error>(body == count, what, ": ", body - count, " unexpected bytes after the data (",
                      count, " expected)");
  a.data.assign(bytes + header, bytes + n);
  return a;
}

/// Reads an IDX file (plain or gzip-compressed); see parse_idx and read_maybe_gzip.
inline idx_array read_idx(const std::string& path, int expected_ndims = 0) {
  const auto bytes = read_maybe_gzip(path);
  return parse_idx(bytes.data(), bytes.size(), path, expected_ndims);
}

/// An IDX image file (magic 0x00000803: count x rows x cols bytes) as a (rows*cols) x count
/// matrix, one image per column, pixels row by row, scaled to [0, 1] (value / 255). data_error
/// naming the file when it holds no image or the images have no pixel.
template <class T>
matrix<T> load_idx_images(const std::string& path) {
  const idx_array a = read_idx(path, 3);
  const index count = a.dims[0], pixels = index(a.dims[1]) * index(a.dims[2]);
  require<data_error>(count >= 1, path, ": the IDX file holds 0 images (an empty data set)");
  require<data_error>(pixels >= 1, path, ": images of size ", a.dims[1], " x ", a.dims[2]);
  matrix<T> x(pixels, count);
  for (index j = 0; j < count; ++j)
    for (index i = 0; i < pixels; ++i)
      x(i, j) = T(a.data[static_cast<std::size_t>(j * pixels + i)]) / T(255);
  return x;
}

/// An IDX label file (magic 0x00000801: count bytes) as labels; each must be < classes
/// (data_error naming the file, the label and its position otherwise).
inline label_vector load_idx_labels(const std::string& path, index classes = 10) {
  const idx_array a = read_idx(path, 1);
  label_vector y(a.data.begin(), a.data.end());
  for (std::size_t j = 0; j < y.size(); ++j)
    require<data_error>(y[j] < classes, path, ": label ", y[j], " of item ", j, " is outside [0, ",
                        classes, ")");
  return y;
}

/// An image file and its label file as a dataset (pixels in [0, 1]); data_error naming both
/// files when the counts differ.
template <class T>
dataset<T> load_idx_dataset(const std::string& images, const std::string& labels,
                            index classes = 10) {
  dataset<T> d;
  d.x = load_idx_images<T>(images);
  d.labels = load_idx_labels(labels, classes);
  d.classes = classes;
  require<data_error>(static_cast<index>(d.labels.size()) == d.x.cols(), labels, ": ",
                      d.labels.size(), " labels but ", images, " has ", d.x.cols(), " images");
  return d;
}

/// Mean and standard deviation of all pixel values of a data set (for standardization).
struct pixel_statistics {
  double mean = 0;
  double stddev = 1;
};

/// The mean and standard deviation over every entry of d.x (stddev >= 1e-12).
template <class T>
pixel_statistics compute_pixel_statistics(const dataset<T>& d) {
  require<data_error>(!d.empty(), "compute_pixel_statistics: empty data set");
  const double n = static_cast<double>(d.x.size());
  const double mean = d.x.template cast<double>().sum() / n;
  const double var = (d.x.template cast<double>().array() - mean).square().sum() / n;
  return {mean, std::max(std::sqrt(var), 1e-12)};
}

/// x <- (x - mean) / stddev for every entry (use the training set's statistics for both sets).
template <class T>
void standardize(dataset<T>& d, const pixel_statistics& s) {
  d.x.array() = (d.x.array() - T(s.mean)) / T(s.stddev);
}

/// Where Debian's dataset-fashion-mnist package installs the files.
inline const char* fashion_mnist_default_dir() {
  return "/usr/share/datasets/fashion-mnist";
}

/// The former result type of load_fashion_mnist: the loaders' common image_data.
template <class T>
using fashion_mnist = image_data<T>;

/// The Fashion-MNIST class names, in label order.
inline const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
  return names;
}

/// Loads train-{images-idx3,labels-idx1}-ubyte[.gz] and t10k-... from `dir` (the .gz name is
/// tried first, then the uncompressed one) as image_data (shape 1 x 28 x 28, pixels in [0, 1]),
/// keeping the first o.train_limit / o.test_limit images when these are >= 0 and standardizing
/// both sets with the training set's statistics when o.normalize says so, as load_cifar10 does.
/// A missing file gives a data_error that names it and says how to get the data (`apt-get
/// install dataset-fashion-mnist`).
template <class T>
image_data<T> load_fashion_mnist(const std::string& dir = fashion_mnist_default_dir(),
                                 const load_options& o = {}) {
  detail::check_load_options(o, "load_fashion_mnist");
  auto find = [&](const std::string& stem) {
    for (const char* ext : {".gz", ""}) {
      const std::string p = dir + "/" + stem + ext;
      const detail::regular_file f(p);  // never opens a FIFO or device
      if (f.is_open() || f.irregular() || f.error() != ENOENT) return p;  // read_idx says why
    }
    throw data_error(detail::cat(dir, "/", stem, "[.gz]: file not found. Fashion-MNIST is in ",
                                 "Debian's package dataset-fashion-mnist (apt-get install ",
                                 "dataset-fashion-mnist, files in ", fashion_mnist_default_dir(),
                                 ")"));
  };
  image_data<T> f;
  const std::string train_images = find("train-images-idx3-ubyte");
  const std::string train_labels = find("train-labels-idx1-ubyte");
  const std::string test_images = find("t10k-images-idx3-ubyte");
  const std::string test_labels = find("t10k-labels-idx1-ubyte");
  f.train = load_idx_dataset<T>(train_images, train_labels);
  f.test = load_idx_dataset<T>(test_images, test_labels);
  require<data_error>(f.train.features() == f.test.features(), dir,
                      ": training and test images differ in size (", f.train.features(), " vs ",
                      f.test.features(), " pixels)");
  if (o.train_limit >= 0) f.train = f.train.head(o.train_limit);
  if (o.test_limit >= 0) f.test = f.test.head(o.test_limit);
  f.shape =
      f.train.features() == 784 ? image_shape{1, 28, 28} : image_shape{f.train.features(), 1, 1};
  f.classes = fashion_mnist_classes();
  detail::finish_image_data(f, o);
  return f;
}

/// The former signature: standardize selects normalization::standardize.
template <class T>
[[deprecated("use load_fashion_mnist(dir, load_options)")]] image_data<T> load_fashion_mnist(
    const std::string& dir, bool standardize) {
  load_options o;
  o.normalize = standardize ? normalization::standardize : normalization::none;
  return load_fashion_mnist<T>(dir, o);
}

}  // namespace shatter

#endif  // SHATTER_DATA_IDX_HPP
