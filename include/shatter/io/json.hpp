// shatter: a strict, bounded JSON parser (RFC 8259), enough for the safetensors header.
#ifndef SHATTER_IO_JSON_HPP
#define SHATTER_IO_JSON_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"

namespace shatter::io {

/// A parsed JSON value. Numbers keep their literal text (the caller converts them, e.g. with
/// json_nonnegative_integer), strings are UTF-8 with their escapes decoded. An object keeps its
/// members in document order, `keys[i]` naming `items[i]`; its keys are distinct.
struct json_value {
  enum kind_t { null_v, bool_v, number_v, string_v, array_v, object_v } kind = null_v;
  std::string text;  ///< a string's contents, or a number's literal text
  bool boolean = false;
  std::vector<json_value> items;  ///< array elements, or object values
  std::vector<std::string> keys;  ///< object keys (same order as items)
};

/// How to name a JSON text in error messages, and how deep it may nest. A message reads
/// "<context>: <what went wrong> at byte <offset + i>" followed, when `offset` is not 0, by
/// " (<document> byte <i>)", i being the position in the text.
struct json_options {
  std::string context = "invalid JSON";  ///< starts every message, e.g. "<path>: invalid header"
  std::string document = "JSON text";    ///< the text's name, e.g. "header" (end of header)
  std::uint64_t offset = 0;              ///< the text's byte offset in its file
  int max_depth = 16;                    ///< deepest nesting below the top-level value accepted
};

namespace detail {

/// The parser behind parse_json: recursive descent over [p, p + n), never reading outside it.
/// Nesting is bounded by json_options::max_depth, so the recursion depth is too. Each object
/// checks its keys for duplicates with an ordered set of member indices: O(log k) per key.
class json_parser {
 public:
  json_parser(const char* p, std::size_t n, const json_options& options)
      : begin_(p), p_(p), end_(p + n), options_(options) {}

  /// The whole text: one value, optionally surrounded by whitespace.
  json_value parse_document() {
    skip_ws();
    json_value v = parse_value(0);
    skip_ws();
    if (p_ != end_) fail("unexpected character after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail_at(const char* where, const std::string& what) const {
    const auto local = static_cast<std::uint64_t>(where - begin_);
    std::string at = cat(" at byte ", options_.offset + local);
    if (options_.offset != 0) at += cat(" (", options_.document, " byte ", local, ")");
    throw data_error(cat(options_.context, ": ", what, at));
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(p_, what); }

  bool at(char c) const { return p_ != end_ && *p_ == c; }
  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  void expect(char c) {
    if (p_ == end_) fail(cat("unexpected end of ", options_.document, " (expected '", c, "')"));
    if (*p_ != c) fail(cat("expected '", c, "'"));
    ++p_;
  }
  bool literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  json_value parse_value(int depth) {
    if (depth > options_.max_depth) fail("JSON nested too deeply");
    if (p_ == end_) fail(cat("unexpected end of ", options_.document));
    json_value v;
    const char c = *p_;
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      v.kind = json_value::string_v;
      v.text = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = json_value::number_v;
      v.text = parse_number();
    } else if (literal("true")) {
      v.kind = json_value::bool_v;
      v.boolean = true;
    } else if (literal("false")) {
      v.kind = json_value::bool_v;
    } else if (!literal("null")) {
      fail("unexpected character");
    }
    return v;
  }

  json_value parse_object(int depth) {
    json_value v;
    v.kind = json_value::object_v;
    expect('{');
    skip_ws();
    if (at('}')) {
      ++p_;
      return v;
    }
    // Indices into v.keys stay valid while v.keys grows (views into its strings would not).
    const auto by_key = [&v](std::size_t a, std::size_t b) { return v.keys[a] < v.keys[b]; };
    std::set<std::size_t, decltype(by_key)> seen(by_key);
    for (;;) {
      skip_ws();
      if (!at('"')) fail("expected a string key");
      const char* key_start = p_;
      v.keys.push_back(parse_string());
      if (!seen.insert(v.keys.size() - 1).second)
        fail_at(key_start, cat("duplicate key \"", v.keys.back(), "\""));
      skip_ws();
      expect(':');
      skip_ws();
      v.items.push_back(parse_value(depth + 1));
      skip_ws();
      if (!at(',')) break;
      ++p_;
    }
    expect('}');
    return v;
  }

  json_value parse_array(int depth) {
    json_value v;
    v.kind = json_value::array_v;
    expect('[');
    skip_ws();
    if (at(']')) {
      ++p_;
      return v;
    }
    for (;;) {
      skip_ws();
      v.items.push_back(parse_value(depth + 1));
      skip_ws();
      if (!at(',')) break;
      ++p_;
    }
    expect(']');
    return v;
  }

  // Digits [0-9]*; returns how many.
  std::ptrdiff_t digits() {
    const char* d = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ - d;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? : the literal text.
  std::string parse_number() {
    const char* start = p_;
    if (at('-')) ++p_;
    if (at('0')) {
      ++p_;
    } else if (digits() == 0) {
      fail("malformed number");
    }
    if (at('.')) {
      ++p_;
      if (digits() == 0) fail("malformed number");
    }
    if (at('e') || at('E')) {
      ++p_;
      if (at('+') || at('-')) ++p_;
      if (digits() == 0) fail("malformed number");
    }
    return std::string(start, p_);
  }

  std::string parse_string() {
    expect('"');
    std::string s;
    for (;;) {
      if (p_ == end_) fail("unterminated string");
      const char c = *p_;
      if (c == '"') {
        ++p_;
        return s;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        copy_utf8(s);
      } else if (c == '\\') {
        ++p_;
        parse_escape(s);
      } else {
        s += c;
        ++p_;
      }
    }
  }

  // The escape after a backslash: appends the character it stands for.
  void parse_escape(std::string& s) {
    if (p_ == end_) fail("unterminated escape");
    const char e = *p_++;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        s += e;
        return;
      case 'b':
        s += '\b';
        return;
      case 'f':
        s += '\f';
        return;
      case 'n':
        s += '\n';
        return;
      case 'r':
        s += '\r';
        return;
      case 't':
        s += '\t';
        return;
      case 'u':
        append_utf8(s, parse_unicode_escape());
        return;
      default:
        --p_;
        fail("invalid escape");
    }
  }

  // The code point of \uXXXX (after the "\u"), joining a surrogate pair \uD8xx\uDCxx into one.
  unsigned parse_unicode_escape() {
    const unsigned cp = hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired surrogate in \\u escape");
    if (cp < 0xD800 || cp > 0xDBFF) return cp;
    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("unpaired surrogate in \\u escape");
    p_ += 2;
    const unsigned lo = hex4();
    if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate in \\u escape");
    return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }

  unsigned hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      const char h = *p_;
      u <<= 4;
      if (h >= '0' && h <= '9')
        u |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        u |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        u |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("bad hex digit in \\u escape");
    }
    return u;
  }

  // Appends code point `cp` (< 0x110000, not a surrogate) encoded as UTF-8.
  static void append_utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Validates one UTF-8 encoded code point starting at p_ (first byte >= 0x80) and copies it:
  // no overlong forms, no surrogates, nothing above U+10FFFF.
  void copy_utf8(std::string& s) {
    const auto b0 = static_cast<unsigned char>(*p_);
    int extra = 0;
    unsigned cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      extra = 1, cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      extra = 2, cp = b0 & 0x0Fu;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      extra = 3, cp = b0 & 0x07u;
    } else {
      fail("invalid UTF-8");
    }
    if (end_ - p_ <= extra) fail("truncated UTF-8 sequence");
    for (int i = 1; i <= extra; ++i) {
      const auto b = static_cast<unsigned char>(p_[i]);
      if ((b & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3Fu);
    }
    const unsigned min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      fail("invalid UTF-8");
    s.append(p_, p_ + extra + 1);
    p_ += extra + 1;
  }

  template <class... A>
  static std::string cat(A&&... a) {
    return shatter::detail::cat(std::forward<A>(a)...);
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  const json_options& options_;
};

}  // namespace detail

/// Parses the JSON text [text, text + size): exactly one value, optionally surrounded by
/// whitespace. Strict (RFC 8259): no comments, no trailing commas, no leading zeros, valid UTF-8
/// (no overlong forms or surrogates), paired \u surrogates, no control characters in strings, no
/// duplicate keys in an object (compared after decoding escapes). Bounded: never reads outside
/// the text, nests at most `options.max_depth` levels. Time O(n log n) in the text's length.
/// Errors throw data_error naming the problem and its byte offset (see json_options).
/// Thread safety: reentrant.
inline json_value parse_json(const char* text, std::size_t size, const json_options& options = {}) {
  return detail::json_parser(text, size, options).parse_document();
}

/// Reads a JSON number written as a plain non-negative integer (no sign, fraction or exponent)
/// no greater than 2^63 - 1 into `out`; returns false (leaving `out`) for anything else.
inline bool json_nonnegative_integer(const json_value& v, std::uint64_t& out) {
  if (v.kind != json_value::number_v || v.text.empty() || v.text.size() > 19) return false;
  std::uint64_t x = 0;
  for (const char c : v.text) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (x > static_cast<std::uint64_t>(INT64_MAX)) return false;
  out = x;
  return true;
}

/// Appends `s` to `out` as a JSON string literal: quotes, `"` and `\` escaped, control characters
/// (< 0x20) as \u00XX, every other byte copied as is (so `s` should be UTF-8).
inline void append_json_string(std::string& out, const std::string& s) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace shatter::io

#endif  // SHATTER_IO_JSON_HPP
