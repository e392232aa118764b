// Shared helpers of the libFuzzer targets (not part of the library).
#ifndef SHATTER_FUZZ_COMMON_HPP
#define SHATTER_FUZZ_COMMON_HPP

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace shatter::fuzz {

/// A per-process scratch file for parsers that read from a path.
inline const std::string& scratch_path(const char* tag) {
  static const std::string p =
      std::string("/tmp/shatter_fuzz_") + tag + "_" + std::to_string(::getpid()) + ".bin";
  return p;
}

/// Writes the fuzz input to the scratch file and returns its path.
inline const std::string& to_file(const char* tag, const std::uint8_t* data, std::size_t size) {
  const std::string& p = scratch_path(tag);
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return p;
}

/// Aborts (a crash libFuzzer reports, with the input) when an invariant does not hold.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace shatter::fuzz

#endif  // SHATTER_FUZZ_COMMON_HPP
