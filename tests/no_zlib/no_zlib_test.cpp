// Built with SHATTER_NO_ZLIB (as CMake builds shatter when zlib is missing): the whole library
// compiles, plain IDX files load, and a gzip-compressed one is refused with a message saying why.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <vector>

#include "../io/temp_dir.hpp"
#include "shatter/shatter.hpp"

#ifndef SHATTER_NO_ZLIB
#error "this test is built with SHATTER_NO_ZLIB"
#endif

TEST_CASE("without zlib a gzip file is refused, naming the file and the cure") {
  shatter::test::temp_dir dir;
  const std::vector<std::uint8_t> labels{0, 0, 8, 1, 0, 0, 0, 2, 3, 4};  // IDX: 2 labels, 3 and 4
  const std::string plain = dir.file("labels"), gz = dir.file("labels.gz");
  std::ofstream(plain, std::ios::binary)
      .write(reinterpret_cast<const char*>(labels.data()), std::streamsize(labels.size()));
  const std::vector<std::uint8_t> gzip_magic{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  std::ofstream(gz, std::ios::binary)
      .write(reinterpret_cast<const char*>(gzip_magic.data()), std::streamsize(gzip_magic.size()));
  CHECK(shatter::load_idx_labels(plain) == shatter::label_vector{3, 4});
  CHECK_THROWS_AS(shatter::load_idx_labels(gz), shatter::data_error);
  CHECK_THROWS_WITH(shatter::load_idx_labels(gz), Catch::Contains(gz) &&
                                                      Catch::Contains("gzip-compressed") &&
                                                      Catch::Contains("without zlib"));
}
