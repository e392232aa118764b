// libFuzzer target: the CIFAR-10 binary batch reader (through a scratch file, as it reads a
// path). Any input must either load (labels in 0-9, pixels in [0, 1]) or be refused with
// shatter::data_error.
#include <cstdint>

#include "fuzz_common.hpp"
#include "shatter/data/cifar10.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shatter;
  const std::string& path = fuzz::to_file("cifar10", data, size);
  for (shatter::index limit : {shatter::index(-1), shatter::index(1)}) {
    try {
      const auto d = load_cifar10_file<float>(path, limit);
      fuzz::check(d.x.rows() == 3072 && static_cast<std::size_t>(d.x.cols()) == d.labels.size(),
                  "CIFAR-10 data set shape");
      for (auto l : d.labels) fuzz::check(l >= 0 && l <= 9, "CIFAR-10 label in range");
      fuzz::check(d.x.size() == 0 || (d.x.minCoeff() >= 0 && d.x.maxCoeff() <= 1),
                  "CIFAR-10 pixels in [0, 1]");
    } catch (const data_error&) {
    }
  }
  return 0;
}
