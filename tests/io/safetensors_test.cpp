// Tests of the safetensors reader and writer: exact layout, a file written by an independent
// Python writer (struct + json), and rejection of every kind of malformed or truncated file.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/io/safetensors.hpp"
#include "temp_dir.hpp"

using namespace shatter;
using io::dtype;

namespace {

// Bytes of a file written by this Python program (not by shatter), so the reader is checked
// against an independent implementation of the format:
//   tensors = {"linear.weight": ("F32", [2, 3], struct.pack("<6f", .5, -1, 2, 3.25, -4.5, 6)),
//              "linear.bias": ("F64", [2], struct.pack("<2d", .125, -7)),
//              "steps": ("I64", [], struct.pack("<q", -42)), "bytes": ("U8", [4],
//              bytes([1,2,254,255])), "empty": ("F32", [0, 3], b"")}
//   header = {"__metadata__": {"format": "pt", "note": "caf\u00e9 \"quoted\""}} plus, per tensor,
//   {"dtype", "shape", "data_offsets"} in insertion order; file = struct.pack("<Q", len(h)) + h +
//   buffer with h = json.dumps(header).encode() (unpadded, spaces after separators, \u escapes).
const char python_fixture[] =
    "\xa2\x01\x00\x00\x00\x00\x00\x00\x7b\x22\x5f\x5f\x6d\x65\x74\x61\x64\x61\x74\x61\x5f\x5f\x22"
    "\x3a"
    "\x20\x7b\x22\x66\x6f\x72\x6d\x61\x74\x22\x3a\x20\x22\x70\x74\x22\x2c\x20\x22\x6e\x6f\x74\x65"
    "\x22"
    "\x3a\x20\x22\x63\x61\x66\x5c\x75\x30\x30\x65\x39\x20\x5c\x22\x71\x75\x6f\x74\x65\x64\x5c\x22"
    "\x22"
    "\x7d\x2c\x20\x22\x6c\x69\x6e\x65\x61\x72\x2e\x77\x65\x69\x67\x68\x74\x22\x3a\x20\x7b\x22\x64"
    "\x74"
    "\x79\x70\x65\x22\x3a\x20\x22\x46\x33\x32\x22\x2c\x20\x22\x73\x68\x61\x70\x65\x22\x3a\x20\x5b"
    "\x32"
    "\x2c\x20\x33\x5d\x2c\x20\x22\x64\x61\x74\x61\x5f\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x20\x5b"
    "\x30"
    "\x2c\x20\x32\x34\x5d\x7d\x2c\x20\x22\x6c\x69\x6e\x65\x61\x72\x2e\x62\x69\x61\x73\x22\x3a\x20"
    "\x7b"
    "\x22\x64\x74\x79\x70\x65\x22\x3a\x20\x22\x46\x36\x34\x22\x2c\x20\x22\x73\x68\x61\x70\x65\x22"
    "\x3a"
    "\x20\x5b\x32\x5d\x2c\x20\x22\x64\x61\x74\x61\x5f\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x20\x5b"
    "\x32"
    "\x34\x2c\x20\x34\x30\x5d\x7d\x2c\x20\x22\x73\x74\x65\x70\x73\x22\x3a\x20\x7b\x22\x64\x74\x79"
    "\x70"
    "\x65\x22\x3a\x20\x22\x49\x36\x34\x22\x2c\x20\x22\x73\x68\x61\x70\x65\x22\x3a\x20\x5b\x5d\x2c"
    "\x20"
    "\x22\x64\x61\x74\x61\x5f\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x20\x5b\x34\x30\x2c\x20\x34\x38"
    "\x5d"
    "\x7d\x2c\x20\x22\x62\x79\x74\x65\x73\x22\x3a\x20\x7b\x22\x64\x74\x79\x70\x65\x22\x3a\x20\x22"
    "\x55"
    "\x38\x22\x2c\x20\x22\x73\x68\x61\x70\x65\x22\x3a\x20\x5b\x34\x5d\x2c\x20\x22\x64\x61\x74\x61"
    "\x5f"
    "\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x20\x5b\x34\x38\x2c\x20\x35\x32\x5d\x7d\x2c\x20\x22\x65"
    "\x6d"
    "\x70\x74\x79\x22\x3a\x20\x7b\x22\x64\x74\x79\x70\x65\x22\x3a\x20\x22\x46\x33\x32\x22\x2c\x20"
    "\x22"
    "\x73\x68\x61\x70\x65\x22\x3a\x20\x5b\x30\x2c\x20\x33\x5d\x2c\x20\x22\x64\x61\x74\x61\x5f\x6f"
    "\x66"
    "\x66\x73\x65\x74\x73\x22\x3a\x20\x5b\x35\x32\x2c\x20\x35\x32\x5d\x7d\x7d\x00\x00\x00\x3f\x00"
    "\x00"
    "\x80\xbf\x00\x00\x00\x40\x00\x00\x50\x40\x00\x00\x90\xc0\x00\x00\xc0\x40\x00\x00\x00\x00\x00"
    "\x00"
    "\xc0\x3f\x00\x00\x00\x00\x00\x00\x1c\xc0\xd6\xff\xff\xff\xff\xff\xff\xff\x01\x02\xfe\xff";

std::vector<unsigned char> bytes_of(const char* p, std::size_t n) {
  return std::vector<unsigned char>(reinterpret_cast<const unsigned char*>(p),
                                    reinterpret_cast<const unsigned char*>(p) + n);
}

// A file made of a raw header text and a buffer of `buffer_size` zero bytes.
std::vector<unsigned char> raw_file(const std::string& header, std::size_t buffer_size) {
  std::vector<unsigned char> out(8 + header.size() + buffer_size, 0);
  io::detail::put_le<std::uint64_t>(out.data(), header.size());
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}

io::safetensors_file decode(const std::vector<unsigned char>& b) {
  return io::decode_safetensors(b.data(), b.size(), "test.safetensors");
}

io::safetensors_file sample_file() {
  io::safetensors_file f;
  matrix<float> w(2, 3);
  w << 1, 2, 3, 4, 5, 6;
  matrix<double> b(2, 1);
  b << -1.5, 2.25;
  f.tensors["0.weight"] = io::to_tensor(w);
  f.tensors["0.bias"] = io::to_tensor(b);
  f.tensors["rng"] = io::to_tensor(std::vector<std::uint64_t>{1, 2, 0xffffffffffffffffULL});
  f.tensors["flags"] = io::to_tensor(std::vector<std::uint8_t>{7, 0, 255});
  f.metadata["architecture"] = "dense(3 -> 2, bias)";
  f.metadata["tricky \"key\"\n"] = "tab\tand \\ backslash, caf\xc3\xa9, \x01";
  return f;
}

// Seconds of wall-clock time taken by f().
template <class F>
double seconds_of(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("safetensors: a file written by an independent Python writer reads back exactly") {
  const auto bytes = bytes_of(python_fixture, sizeof python_fixture - 1);
  REQUIRE(bytes.size() == 478);
  const auto f = decode(bytes);
  REQUIRE(f.tensors.size() == 5);
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.metadata.at("note") == "caf\xc3\xa9 \"quoted\"");

  const auto& w = f.at("linear.weight");
  CHECK(w.type == dtype::F32);
  CHECK(w.shape == std::vector<std::int64_t>{2, 3});
  const matrix<float> wm = io::to_matrix<float>(w, "linear.weight");
  matrix<float> expected(2, 3);
  expected << 0.5f, -1.0f, 2.0f, 3.25f, -4.5f, 6.0f;  // row-major in the file, [out, in]
  CHECK(wm == expected);

  const matrix<double> b = io::to_matrix<double>(f.at("linear.bias"), "linear.bias");
  REQUIRE(b.rows() == 2);
  REQUIRE(b.cols() == 1);
  CHECK(b(0, 0) == 0.125);
  CHECK(b(1, 0) == -7.0);

  CHECK(f.at("steps").shape.empty());
  CHECK(io::to_vector<std::int64_t>(f.at("steps"), "steps") == std::vector<std::int64_t>{-42});
  CHECK(io::to_vector<std::uint8_t>(f.at("bytes"), "bytes") ==
        std::vector<std::uint8_t>{1, 2, 254, 255});
  CHECK(f.at("empty").shape == std::vector<std::int64_t>{0, 3});
  CHECK(f.at("empty").data.empty());
}

TEST_CASE("safetensors: the writer's exact layout") {
  io::safetensors_file f;
  matrix<float> w(2, 2);
  w << 1, 2, 3, 4;
  f.tensors["w"] = io::to_tensor(w);
  f.tensors["n"] = io::to_tensor(std::vector<std::int64_t>{5});
  f.metadata["k"] = "v";
  const auto bytes = io::encode_safetensors(f);
  const std::string header =
      "{\"__metadata__\":{\"k\":\"v\"},"
      "\"n\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]}}";
  const std::size_t padded = (header.size() + 7) / 8 * 8;
  REQUIRE(bytes.size() == 8 + padded + 24);
  CHECK(io::detail::get_le<std::uint64_t>(bytes.data()) == padded);
  CHECK(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(header.size())) ==
        header);
  for (std::size_t i = header.size(); i < padded; ++i) CHECK(bytes[8 + i] == ' ');
  const unsigned char* data = bytes.data() + 8 + padded;
  CHECK(io::detail::get_le<std::int64_t>(data) == 5);
  // Row-major: 1 2 3 4 in the file for the matrix [[1, 2], [3, 4]].
  for (int i = 0; i < 4; ++i) CHECK(io::detail::get_le<float>(data + 8 + 4 * i) == float(i + 1));
  // Little-endian regardless of the host: 1.0f is 00 00 80 3f.
  CHECK(data[8] == 0x00);
  CHECK(data[9] == 0x00);
  CHECK(data[10] == 0x80);
  CHECK(data[11] == 0x3f);
}

TEST_CASE("safetensors: encode then decode is the identity") {
  const auto f = sample_file();
  const auto g = decode(io::encode_safetensors(f));
  CHECK(g.metadata == f.metadata);
  REQUIRE(g.tensors.size() == f.tensors.size());
  for (const auto& kv : f.tensors) {
    const auto& t = g.at(kv.first);
    CHECK(t.type == kv.second.type);
    CHECK(t.shape == kv.second.shape);
    CHECK(t.data == kv.second.data);
  }
  const matrix<float> w = io::to_matrix<float>(g.at("0.weight"), "0.weight");
  CHECK(w(1, 0) == 4.0f);
  CHECK(io::to_vector<std::uint64_t>(g.at("rng"), "rng")[2] == 0xffffffffffffffffULL);
}

TEST_CASE("safetensors: matrix shape convention (vectors 1-D, matrices [rows, cols], rank > 2)") {
  matrix<double> v(3, 1);
  v << 1, 2, 3;
  CHECK(io::to_tensor(v).shape == std::vector<std::int64_t>{3});
  matrix<double> m(3, 2);
  m << 1, 2, 3, 4, 5, 6;
  CHECK(io::to_tensor(m).shape == std::vector<std::int64_t>{3, 2});
  CHECK(io::to_matrix<double>(io::to_tensor(m), "m") == m);
  // F64 data read into float rounds; F32 into double is exact.
  CHECK(io::to_matrix<float>(io::to_tensor(m), "m") == m.cast<float>());
  // A rank-4 conv weight [out, c, kh, kw] becomes out x (c kh kw).
  io::tensor t;
  t.type = dtype::F32;
  t.shape = {2, 3, 2, 2};
  t.data.resize(2 * 3 * 2 * 2 * 4);
  for (int i = 0; i < 24; ++i) io::detail::put_le<float>(&t.data[4 * i], float(i));
  const matrix<float> c = io::to_matrix<float>(t, "conv.weight");
  REQUIRE(c.rows() == 2);
  REQUIRE(c.cols() == 12);
  CHECK(c(1, 5) == 17.0f);
}

TEST_CASE("safetensors: wrong dtypes are refused with the tensor's name") {
  const auto f = sample_file();
  CHECK_THROWS_WITH(io::to_matrix<float>(f.at("rng"), "rng"),
                    Catch::Contains("'rng'") && Catch::Contains("U64"));
  CHECK_THROWS_AS(io::to_vector<std::int64_t>(f.at("rng"), "rng"), data_error);
  CHECK_THROWS_WITH(f.at("nope", "ckpt"), Catch::Contains("'nope'") && Catch::Contains("ckpt"));
}

TEST_CASE("safetensors: the writer refuses inconsistent tensors") {
  io::safetensors_file f;
  io::tensor t;
  t.type = dtype::F32;
  t.shape = {2};
  t.data.resize(4);
  f.tensors["bad"] = t;
  CHECK_THROWS_WITH(io::encode_safetensors(f), Catch::Contains("'bad'"));
  f.tensors.clear();
  f.tensors["__metadata__"] = io::to_tensor(std::vector<float>{1});
  CHECK_THROWS_AS(io::encode_safetensors(f), config_error);
}

TEST_CASE("safetensors: malformed headers are refused with data_error naming the problem") {
  struct bad_case {
    const char* what;
    std::string header;
    std::size_t buffer;
    const char* message;
  };
  const std::string ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  const std::vector<bad_case> cases = {
      {"not JSON", "{nope}", 0, "expected a string key"},
      {"truncated JSON", "{\"a\":{\"dtype\":\"F32\"", 0, "unexpected end of header"},
      {"not an object", "[1,2]", 0, "start with '{'"},
      {"trailing garbage", ok + "x", 8, "after the JSON value"},
      {"duplicate tensor",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, "duplicate key \"a\""},
      {"unknown dtype", "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'w': unknown dtype F33"},
      {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'w': unknown dtype"},
      {"missing field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 'w': needs"},
      {"unknown field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}",
       8, "tensor 'w': unknown field"},
      {"negative dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'w': shape entries must be non-negative"},
      {"fractional dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
       8, "tensor 'w': shape entries"},
      {"huge dimension",
       "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8,
       "tensor 'w': shape entries"},
      {"overflowing shape",
       "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
       "tensor 'w': shape [4294967296, 4294967296] has too many elements"},
      {"shape/offsets mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
       8, "tensor 'w': shape [3] of F32 needs 12 bytes"},
      {"offsets past the end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
       4, "tensor 'w': data_offsets [0, 8] run past the end"},
      {"offsets reversed", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
       "tensor 'w': data_offsets [8, 0] end before"},
      {"one offset", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0]}}", 0,
       "tensor 'w': data_offsets must be two"},
      {"overlap",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, "tensor 'b' at bytes [4, 8) overlaps"},
      {"gap",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
       12, "tensor 'b' at bytes [8, 12) leaves a gap"},
      {"trailing bytes", ok, 12, "4 bytes after the last tensor"},
      {"metadata not strings", "{\"__metadata__\":{\"epoch\":3}}", 0, "metadata \"epoch\""},
      {"metadata not an object", "{\"__metadata__\":[]}", 0, "\"__metadata__\" must be"},
      {"entry not an object", "{\"w\":[1]}", 0, "tensor 'w': entry is not"},
      {"bad escape", "{\"w\\q\":{}}", 0, "invalid escape"},
      {"unpaired surrogate", "{\"\\ud800\":{}}", 0, "unpaired surrogate"},
      {"invalid UTF-8", "{\"\xc3\x28\":{}}", 0, "invalid UTF-8"},
      {"overlong UTF-8", "{\"\xc0\xaf\":{}}", 0, "invalid UTF-8"},
      {"control character", "{\"a\nb\":{}}", 0, "control character"},
      {"deep nesting", "{\"__metadata__\":" + std::string(40, '[') + std::string(40, ']') + "}", 0,
       "nested too deeply"},
      {"leading zero", "{\"w\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", 1,
       "expected ']'"},
      {"trailing comma", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,],\"data_offsets\":[0,1]}}", 1,
       "unexpected character"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto bytes = raw_file(c.header, c.buffer);
    CHECK_THROWS_AS(decode(bytes), data_error);
    CHECK_THROWS_WITH(decode(bytes),
                      Catch::Contains(c.message) && Catch::Contains("test.safetensors"));
  }
  // The same headers, well-formed, are accepted (the cases above fail for the stated reason).
  CHECK(decode(raw_file(ok, 8)).tensors.size() == 1);
  CHECK(decode(raw_file(ok + "   ", 8)).tensors.size() == 1);
}

TEST_CASE("safetensors: broken length fields are refused") {
  auto bytes = io::encode_safetensors(sample_file());
  CHECK_THROWS_WITH(io::decode_safetensors(bytes.data(), 5, "f"), Catch::Contains("shorter than"));
  auto huge = bytes;
  io::detail::put_le<std::uint64_t>(huge.data(), ~std::uint64_t(0));
  CHECK_THROWS_WITH(decode(huge), Catch::Contains("header length field says"));
  auto big = raw_file("{}", io::max_header_bytes + 8);
  io::detail::put_le<std::uint64_t>(big.data(), io::max_header_bytes + 1);
  CHECK_THROWS_WITH(decode(big), Catch::Contains("exceeds the limit"));
  CHECK(decode(raw_file("{}", 0)).tensors.empty());
}

TEST_CASE("safetensors: every truncation of a valid file is detected") {
  const auto bytes = io::encode_safetensors(sample_file());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO("truncated to " << n << " of " << bytes.size() << " bytes");
    // A copy of exactly n bytes, so ASan catches any read past the end.
    const std::vector<unsigned char> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    CHECK_THROWS_AS(io::decode_safetensors(cut.data(), cut.size(), "cut"), data_error);
  }
}

TEST_CASE("safetensors: random corruption of the header never crashes") {
  const auto good = io::encode_safetensors(sample_file());
  const std::size_t header_end = 8 + io::detail::get_le<std::uint64_t>(good.data());
  rng g(123);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(g.below(3));
    for (int k = 0; k < flips; ++k)
      bytes[g.below(header_end)] = static_cast<unsigned char>(g.below(256));
    try {
      const auto f = decode(bytes);
      // Whatever was accepted is self-consistent: re-encoding and decoding gives the same tensors.
      const auto again = decode(io::encode_safetensors(f));
      CHECK(again.tensors.size() == f.tensors.size());
    } catch (const data_error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 2000);
}

TEST_CASE("safetensors: files on disk, atomic replacement, missing file") {
  const std::string path = "test_io_safetensors_roundtrip.safetensors";
  std::remove(path.c_str());
  CHECK_THROWS_WITH(io::read_safetensors(path), Catch::Contains(path) && Catch::Contains("open"));
  io::write_safetensors(path, sample_file());
  auto f = io::read_safetensors(path);
  CHECK(f.tensors.size() == 4);
  f.tensors.erase("flags");
  io::write_safetensors(path, f);
  CHECK(io::read_safetensors(path).tensors.size() == 3);
  CHECK_THROWS_WITH(io::write_safetensors("no_such_dir_shatter/x.safetensors", f),
                    Catch::Contains("no_such_dir_shatter/x.safetensors"));
  std::remove(path.c_str());
}

TEST_CASE("safetensors: a file with 100,000 metadata keys loads in under a second") {
  io::safetensors_file f;
  for (int i = 0; i < 100000; ++i)
    f.metadata["key." + std::to_string(i)] = "value " + std::to_string(i);
  f.tensors["w"] = io::to_tensor(std::vector<float>{1, 2, 3});
  test::temp_dir dir;
  const std::string path = dir.file("many_keys.safetensors");
  io::write_safetensors(path, f);
  io::safetensors_file g;
  const double seconds = seconds_of([&] { g = io::read_safetensors(path); });
  INFO("load took " << seconds << " s");
  CHECK(g.metadata.size() == 100000);
  CHECK(g.metadata == f.metadata);
  CHECK(g.metadata.at("key.99999") == "value 99999");
  CHECK(io::to_vector<float>(g.at("w"), "w") == std::vector<float>{1, 2, 3});
#ifdef NDEBUG  // a Release build: the check is linearithmic, a quadratic one took ~50 s
  CHECK(seconds < 1.0);
#endif
}

TEST_CASE("safetensors: a duplicate among 100,000 metadata keys is refused at once, named") {
  std::string header = "{\"__metadata__\":{";
  for (int i = 0; i < 100000; ++i) header += "\"key." + std::to_string(i) + "\":\"v\",";
  const std::size_t repeated = header.size();  // where the repeated key starts in the header
  header += "\"key.50000\":\"again\"}}";
  test::temp_dir dir;
  const std::string path = dir.file("duplicate_keys.safetensors");
  const auto bytes = raw_file(header, 0);
  io::write_file_atomic(path, bytes.data(), bytes.size());
  std::string message;
  const double seconds = seconds_of([&] {
    try {
      (void)io::read_safetensors(path);
    } catch (const data_error& e) {
      message = e.what();
    }
  });
  INFO("refusal took " << seconds << " s");
  CHECK_THAT(message, Catch::Contains(path) && Catch::Contains("duplicate key \"key.50000\"") &&
                          Catch::Contains("at byte " + std::to_string(8 + repeated)));
#ifdef NDEBUG
  CHECK(seconds < 1.0);
#endif
}
