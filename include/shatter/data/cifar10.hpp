// shatter: the CIFAR-10 data set in its official binary format.
#ifndef SHATTER_DATA_CIFAR10_HPP
#define SHATTER_DATA_CIFAR10_HPP

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/file.hpp"
#include "shatter/core/shape.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/data/image_data.hpp"

namespace shatter {

/// Shape of a CIFAR-10 image: 3 channels (red, green, blue) of 32 x 32.
inline image_shape cifar10_shape() {
  return {3, 32, 32};
}

/// Bytes per record of the binary format: 1 label byte, then 1024 red, 1024 green and 1024 blue
/// bytes (each a row-major 32 x 32 plane), i.e. exactly shatter's channel-major column layout.
constexpr index cifar10_record_bytes = 3073;

/// Where to get the data, for error messages.
inline std::string cifar10_download_hint() {
  return "get the CIFAR-10 binary version (cifar-10-binary.tar.gz, 'CIFAR-10 binary version "
         "(suitable for C programs)') from https://www.cs.toronto.edu/~kriz/cifar.html and "
         "extract it; the directory cifar-10-batches-bin holds data_batch_1.bin ... "
         "data_batch_5.bin, test_batch.bin and batches.meta.txt";
}

namespace detail {
/// data_error naming the CIFAR-10 file unless `f` opened it (missing, unreadable, or not a
/// regular file).
inline void require_cifar10_file(const regular_file& f, const std::string& path) {
  require<data_error>(!f.irregular(), "CIFAR-10 file '", path, "' is ",
                      f.irregular() ? f.irregular() : "", ", not a regular file");
  require<data_error>(f.is_open(), "CIFAR-10 file '", path, "' is missing or cannot be opened (",
                      std::strerror(f.error()), "); ", cifar10_download_hint());
}
}  // namespace detail

/// Reads up to `max_records` records (all when negative) of one CIFAR-10 binary batch file
/// into a dataset: x is 3072 x n with pixel values scaled to [0, 1], labels in [0, 10).
/// Throws data_error naming the file when it is missing or unreadable, when it is not a regular
/// file (a FIFO, directory or device: refused without blocking), when its size is not a
/// positive multiple of 3073 bytes (truncated or not a CIFAR-10 file), or when a label byte is
/// outside 0-9 (naming the record and the value).
template <class T>
dataset<T> load_cifar10_file(const std::string& path, index max_records = -1) {
  detail::regular_file in(path);
  detail::require_cifar10_file(in, path);
  const std::uint64_t bytes = in.size();
  require<data_error>(
      bytes > 0 && bytes % cifar10_record_bytes == 0, "CIFAR-10 file '", path, "' has ", bytes,
      " bytes, which is not a positive multiple of the ", cifar10_record_bytes,
      "-byte record size (truncated, or not the binary version); ", cifar10_download_hint());
  index n = static_cast<index>(bytes / cifar10_record_bytes);
  if (max_records >= 0 && max_records < n) n = max_records;
  std::vector<unsigned char> buf(static_cast<std::size_t>(n * cifar10_record_bytes));
  const std::size_t got = in.read(buf.data(), buf.size());
  require<data_error>(got == buf.size(), "CIFAR-10 file '", path, "': read error after ", got,
                      " of ", buf.size(), " bytes",
                      in.error() ? std::string(": ") + std::strerror(in.error()) : "");
  dataset<T> d;
  d.classes = 10;
  d.x.resize(3072, n);
  d.labels.resize(static_cast<std::size_t>(n));
  const T scale = T(1) / T(255);
  for (index j = 0; j < n; ++j) {
    const unsigned char* rec = buf.data() + j * cifar10_record_bytes;
    require<data_error>(rec[0] <= 9, "CIFAR-10 file '", path, "': record ", j, " has label ",
                        int(rec[0]), ", outside 0-9 (corrupt file?)");
    d.labels[static_cast<std::size_t>(j)] = rec[0];
    for (index i = 0; i < 3072; ++i) d.x(i, j) = T(rec[1 + i]) * scale;
  }
  return d;
}

/// Reads the ten class names of batches.meta.txt (one per line; blank lines ignored).
/// data_error naming the file when it is missing or does not list exactly ten names.
inline std::vector<std::string> load_cifar10_classes(const std::string& dir) {
  const std::string path = dir + "/batches.meta.txt";
  detail::regular_file f(path);
  detail::require_cifar10_file(f, path);
  const std::vector<unsigned char> text = f.read_all();
  require<data_error>(f.error() == 0, "CIFAR-10 file '", path,
                      "': read error: ", std::strerror(f.error()));
  std::istringstream in(std::string(text.begin(), text.end()));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  require<data_error>(names.size() == 10, "CIFAR-10 file '", path, "' lists ", names.size(),
                      " class names, expected 10");
  return names;
}

/// The former result type of load_cifar10: the loaders' common image_data.
template <class T>
using cifar10 = image_data<T>;

/// Loads CIFAR-10 from `dir` (the extracted cifar-10-batches-bin) as image_data (shape
/// 3 x 32 x 32, pixels in [0, 1]): the training set is data_batch_1..5 in file order (50,000
/// images), the test set test_batch (10,000). Reads only the first o.train_limit training and
/// o.test_limit test images when these are >= 0 (quick runs), and standardizes both sets per
/// channel with the training set's statistics when o.normalize says so, as load_fashion_mnist
/// does. Files: data_batch_1.bin ... data_batch_5.bin, test_batch.bin, batches.meta.txt; any of
/// them missing, truncated or corrupt gives a data_error naming the file and where to get the
/// data.
template <class T>
image_data<T> load_cifar10(const std::string& dir, const load_options& o = {}) {
  detail::check_load_options(o, "load_cifar10");
  const index train_limit = o.train_limit;
  image_data<T> c;
  c.classes = load_cifar10_classes(dir);
  c.shape = cifar10_shape();
  std::vector<dataset<T>> parts;
  index have = 0;
  for (int b = 1; b <= 5; ++b) {
    const std::string path = dir + "/data_batch_" + std::to_string(b) + ".bin";
    if (train_limit >= 0 && have >= train_limit) {
      const detail::regular_file probe(path);
      detail::require_cifar10_file(probe, path);
      continue;
    }
    parts.push_back(load_cifar10_file<T>(path, train_limit >= 0 ? train_limit - have : -1));
    have += parts.back().size();
  }
  c.train.classes = 10;
  c.train.x.resize(3072, have);
  index at = 0;
  for (auto& p : parts) {
    c.train.x.middleCols(at, p.size()) = p.x;
    c.train.labels.insert(c.train.labels.end(), p.labels.begin(), p.labels.end());
    at += p.size();
  }
  c.test = load_cifar10_file<T>(dir + "/test_batch.bin", o.test_limit);
  detail::finish_image_data(c, o);
  return c;
}

/// The former signature: limits as load_options::train_limit and test_limit.
template <class T>
[[deprecated("use load_cifar10(dir, load_options)")]] image_data<T> load_cifar10(
    const std::string& dir, index train_limit, index test_limit = -1) {
  load_options o;
  o.train_limit = train_limit;
  o.test_limit = test_limit;
  return load_cifar10<T>(dir, o);
}

}  // namespace shatter

#endif  // SHATTER_DATA_CIFAR10_HPP
