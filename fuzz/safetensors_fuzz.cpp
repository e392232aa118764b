// libFuzzer target: the safetensors parser. Any input must either be refused with
// shatter::data_error or decode to a file that re-encodes and decodes to the same tensors;
// any other exception, crash, sanitizer report or read out of bounds is a bug.
#include <cstdint>

#include "fuzz_common.hpp"
#include "shatter/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shatter;
  io::safetensors_file f;
  try {
    f = io::decode_safetensors(data, size, "fuzz");
  } catch (const data_error&) {
    return 0;
  }
  const auto bytes = io::encode_safetensors(f);
  const auto g = io::decode_safetensors(bytes.data(), bytes.size(), "re-encoded");
  fuzz::check(g.metadata == f.metadata, "metadata survive a round trip");
  fuzz::check(g.tensors.size() == f.tensors.size(), "tensor count survives a round trip");
  for (const auto& kv : f.tensors) {
    const auto& t = g.at(kv.first);
    fuzz::check(t.type == kv.second.type && t.shape == kv.second.shape &&
                    t.data == kv.second.data,
                "tensor survives a round trip");
    // Conversions to matrices either succeed or refuse with data_error.
    try {
      const auto m = io::to_matrix<float>(kv.second, kv.first);
      fuzz::check(static_cast<std::uint64_t>(m.size()) == kv.second.element_count(),
                  "matrix has every element");
    } catch (const data_error&) {
    }
  }
  return 0;
}
