// Tests of the strict JSON parser behind the safetensors reader: values, escapes and UTF-8,
// refusal of everything RFC 8259 does not allow, duplicate keys, nesting bound, error messages.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "shatter/io/json.hpp"

using namespace shatter;
using io::json_value;

namespace {

json_value parse(const std::string& text, const io::json_options& options = {}) {
  return io::parse_json(text.data(), text.size(), options);
}

}  // namespace

TEST_CASE("json: values of every kind, in document order") {
  const auto v = parse(
      " {\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"],\r\n\t\"b\": {},"
      " \"c\": []} ");
  REQUIRE(v.kind == json_value::object_v);
  REQUIRE(v.keys == std::vector<std::string>{"a", "b", "c"});
  const auto& a = v.items[0];
  REQUIRE(a.kind == json_value::array_v);
  REQUIRE(a.items.size() == 6);
  CHECK(a.items[0].kind == json_value::number_v);
  CHECK(a.items[0].text == "1");
  CHECK(a.items[1].text == "-2.5e3");  // numbers keep their literal text
  CHECK(a.items[2].kind == json_value::bool_v);
  CHECK(a.items[2].boolean);
  CHECK_FALSE(a.items[3].boolean);
  CHECK(a.items[4].kind == json_value::null_v);
  CHECK(a.items[5].kind == json_value::string_v);
  CHECK(a.items[5].text == "x\xc3\xa9\xf0\x9f\x98\x80\n");  // escapes decoded to UTF-8
  CHECK(v.items[1].kind == json_value::object_v);
  CHECK(v.items[1].keys.empty());
  CHECK(v.items[2].kind == json_value::array_v);
  CHECK(v.items[2].items.empty());
  CHECK(parse("\"caf\xc3\xa9\"").text == "caf\xc3\xa9");  // raw UTF-8 copied as is
  CHECK(parse("0").text == "0");
  CHECK(parse("-0.5E-7").text == "-0.5E-7");
}

TEST_CASE("json: everything RFC 8259 does not allow is refused, naming the problem") {
  struct bad_case {
    std::string text;
    const char* message;
  };
  const std::vector<bad_case> cases = {
      {"", "unexpected end of JSON text"},
      {"  ", "unexpected end of JSON text"},
      {"1 2", "after the JSON value"},
      {"[1,]", "unexpected character"},
      {"{\"a\":1,}", "expected a string key"},
      {"{'a':1}", "expected a string key"},
      {"{\"a\" 1}", "expected ':'"},
      {"[1 2]", "expected ']'"},
      {"// c\n1", "unexpected character"},
      {"01", "after the JSON value"},
      {"1.", "malformed number"},
      {".5", "unexpected character"},
      {"+1", "unexpected character"},
      {"-", "malformed number"},
      {"1e", "malformed number"},
      {"tru", "unexpected character"},
      {"\"abc", "unterminated string"},
      {"\"a\\", "unterminated escape"},
      {"\"\\x\"", "invalid escape"},
      {"\"\\u12g4\"", "bad hex digit"},
      {"\"\\u12\"", "truncated \\u escape"},
      {"\"\\udc00\"", "unpaired surrogate"},
      {"\"\\ud800x\"", "unpaired surrogate"},
      {"\"\\ud800\\u0041\"", "unpaired surrogate"},
      {"\"a\tb\"", "control character"},
      {"\"\x80\"", "invalid UTF-8"},
      {"\"\xc0\xaf\"", "invalid UTF-8"},          // overlong '/'
      {"\"\xed\xa0\x80\"", "invalid UTF-8"},      // encoded surrogate
      {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},  // above U+10FFFF
      {"\"\xe2\x82", "truncated UTF-8"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK_THROWS_AS(parse(c.text), data_error);
    CHECK_THROWS_WITH(parse(c.text), Catch::StartsWith("invalid JSON: ") &&
                                         Catch::Contains(c.message) &&
                                         Catch::Contains(" at byte "));
  }
}

TEST_CASE("json: duplicate keys are refused after decoding escapes, at the repeated key") {
  CHECK_THROWS_WITH(parse("{\"a\":1,\"b\":2,\"\\u0061\":3}"),
                    "invalid JSON: duplicate key \"a\" at byte 13");
  CHECK_THROWS_WITH(parse("{\"x\":{\"k\":1,\"k\":2}}"), Catch::Contains("duplicate key \"k\""));
  // The same key in different objects is no duplicate.
  const auto v = parse("{\"x\":{\"k\":1},\"y\":{\"k\":2}}");
  CHECK(v.items[1].keys == std::vector<std::string>{"k"});
}

TEST_CASE("json: messages name the context, the document and the offset in the file") {
  io::json_options o;
  o.context = "model.bin: invalid config";
  o.document = "config";
  o.offset = 100;
  CHECK_THROWS_WITH(parse("[1,", o),
                    "model.bin: invalid config: unexpected end of config at byte 103 (config "
                    "byte 3)");
}

TEST_CASE("json: nesting is bounded") {
  io::json_options o;
  o.max_depth = 2;
  CHECK(parse("[[1]]", o).items[0].items[0].text == "1");
  CHECK_THROWS_WITH(parse("[[[1]]]", o), Catch::Contains("nested too deeply"));
  CHECK_THROWS_WITH(parse("{\"a\":{\"b\":[1]}}", o), Catch::Contains("nested too deeply"));
  // The default bound refuses deep input without deep recursion.
  CHECK_THROWS_WITH(parse(std::string(100000, '[')), Catch::Contains("nested too deeply"));
}

TEST_CASE("json: non-negative integers up to 2^63 - 1") {
  std::uint64_t x = 7;
  CHECK(io::json_nonnegative_integer(parse("0"), x));
  CHECK(x == 0);
  CHECK(io::json_nonnegative_integer(parse("9223372036854775807"), x));
  CHECK(x == 9223372036854775807ULL);
  x = 7;
  for (const char* text : {"9223372036854775808", "18446744073709551616", "-1", "1e3", "1.0", "-0",
                           "\"1\"", "true", "[1]"}) {
    INFO(text);
    CHECK_FALSE(io::json_nonnegative_integer(parse(text), x));
  }
  CHECK(x == 7);  // left unchanged
}

TEST_CASE("json: append_json_string writes literals the parser reads back") {
  std::string all;
  for (int c = 1; c < 0x80; ++c) all += static_cast<char>(c);
  all += "caf\xc3\xa9 \xf0\x9f\x98\x80";
  all += '\0';
  std::string out = "[";
  io::append_json_string(out, all);
  out += ",";
  io::append_json_string(out, "");
  out += "]";
  CHECK(out.find('\n') == std::string::npos);  // control characters are escaped
  const auto v = parse(out);
  REQUIRE(v.items.size() == 2);
  CHECK(v.items[0].text == all);
  CHECK(v.items[1].text.empty());
  std::string q;
  io::append_json_string(q, "a\"b\\c\x1f");
  CHECK(q == "\"a\\\"b\\\\c\\u001f\"");
}
