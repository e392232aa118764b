// libFuzzer target: the IDX parser (Fashion-MNIST files), from memory and, for gzip input,
// through a scratch file (read_idx decompresses). Any input must either parse or be refused
// with shatter::data_error.
#include <cstdint>

#include "fuzz_common.hpp"
#include "shatter/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shatter;
  for (int nd : {0, 1, 3}) {
    try {
      const idx_array a = parse_idx(data, size, "fuzz", nd);
      std::uint64_t count = 1;
      for (auto d : a.dims) count *= d;
      fuzz::check(count == a.data.size(), "IDX data size matches the dimensions");
      fuzz::check(nd == 0 || static_cast<int>(a.dims.size()) == nd, "IDX dimension count");
    } catch (const data_error&) {
    }
  }
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    const std::string& path = fuzz::to_file("idx", data, size);
    try {
      (void)read_idx(path);
    } catch (const data_error&) {
    }
    try {
      (void)load_idx_images<float>(path);
    } catch (const data_error&) {
    }
    try {
      (void)load_idx_labels(path, 10);
    } catch (const data_error&) {
    }
  }
  return 0;
}
