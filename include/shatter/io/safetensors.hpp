// shatter: reading and writing the safetensors format (the format PyTorch's `safetensors` uses).
#ifndef SHATTER_IO_SAFETENSORS_HPP
#define SHATTER_IO_SAFETENSORS_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"
#include "shatter/io/atomic_file.hpp"

/// File format (https://github.com/huggingface/safetensors), exactly:
///   8 bytes  N, the header length, unsigned little-endian;
///   N bytes  a UTF-8 JSON object {"<name>": {"dtype": "F32", "shape": [2, 3],
///            "data_offsets": [begin, end]}, ..., "__metadata__": {"<key>": "<value>", ...}}
///            (may be padded with trailing spaces);
///   the byte buffer: each tensor's elements, row-major (C order), little-endian, at
///            [begin, end) relative to the start of the buffer. Tensors tile the buffer exactly:
///            contiguous, no overlap, no gap, nothing after the last one.
///
/// **Matrices.** shatter's matrices are column-major; `to_tensor` stores a rows x cols matrix as
/// the row-major tensor of shape [rows, cols] (so a dense weight W, out x in, is read by PyTorch
/// as the [out, in] `nn.Linear.weight`), and an n x 1 matrix (bias, batch-norm statistics) as
/// the 1-D shape [n], like PyTorch's biases. `to_matrix` inverts this; a tensor of rank > 2 such
/// as a conv weight [out, c, kh, kw] becomes out x (c kh kw), its rows being PyTorch's flattened
/// trailing dimensions.
namespace shatter::io {

/// Element types of the safetensors format.
enum class dtype { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64 };

/// The format's name of a dtype ("F32", ...).
inline const char* dtype_name(dtype t) {
  static const char* const names[] = {"BOOL", "U8",  "I8",  "U16", "I16", "F16", "BF16",
                                      "U32",  "I32", "F32", "U64", "I64", "F64"};
  return names[static_cast<int>(t)];
}

/// Bytes per element of a dtype.
inline std::size_t dtype_size(dtype t) {
  static const std::size_t sizes[] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
  return sizes[static_cast<int>(t)];
}

/// Parses a dtype name; returns false for a name the format does not define.
inline bool parse_dtype(const std::string& s, dtype& out) {
  for (int i = 0; i <= static_cast<int>(dtype::F64); ++i)
    if (s == dtype_name(static_cast<dtype>(i))) {
      out = static_cast<dtype>(i);
      return true;
    }
  return false;
}

/// The dtype storing scalars of type T (float: F32, double: F64, std::int64_t: I64, ...).
template <class T>
constexpr dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return dtype::F32;
  if constexpr (std::is_same_v<T, double>) return dtype::F64;
  if constexpr (std::is_same_v<T, std::int64_t>) return dtype::I64;
  if constexpr (std::is_same_v<T, std::uint64_t>) return dtype::U64;
  if constexpr (std::is_same_v<T, std::int32_t>) return dtype::I32;
  if constexpr (std::is_same_v<T, std::uint32_t>) return dtype::U32;
  if constexpr (std::is_same_v<T, std::uint8_t>) return dtype::U8;
  if constexpr (std::is_same_v<T, std::int8_t>) return dtype::I8;
  static_assert(std::is_arithmetic_v<T>, "dtype_of: unsupported element type");
  return dtype::U8;
}

/// One tensor: dtype, shape (row-major) and its elements as little-endian bytes.
/// Invariant (checked when written): data.size() == element_count() * dtype_size(type).
struct tensor {
  dtype type = dtype::F32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> data;

  /// Product of the shape (1 for a scalar of shape []).
  std::uint64_t element_count() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= static_cast<std::uint64_t>(d);
    return n;
  }
};

/// The contents of a safetensors file: named tensors and string metadata. Thread safety: a
/// value type; concurrent reads of one object are safe, writes need exclusive access.
struct safetensors_file {
  std::map<std::string, tensor> tensors;
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`; data_error naming it (and `source`, e.g. the path) if absent.
  const tensor& at(const std::string& name, const std::string& source = "safetensors") const {
    auto it = tensors.find(name);
    require<data_error>(it != tensors.end(), source, ": no tensor named '", name, "'");
    return it->second;
  }
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
};

namespace detail {

/// Stores an arithmetic value as little-endian bytes (independent of the host's byte order).
template <class T>
void put_le(unsigned char* out, T v) {
  using U = std::conditional_t<
      sizeof(T) == 8, std::uint64_t,
      std::conditional_t<sizeof(T) == 4, std::uint32_t,
                         std::conditional_t<sizeof(T) == 2, std::uint16_t, std::uint8_t>>>;
  U u;
  std::memcpy(&u, &v, sizeof u);
  for (std::size_t i = 0; i < sizeof u; ++i) out[i] = static_cast<unsigned char>(u >> (8 * i));
}

/// Reads a little-endian arithmetic value.
template <class T>
T get_le(const unsigned char* in) {
  using U = std::conditional_t<
      sizeof(T) == 8, std::uint64_t,
      std::conditional_t<sizeof(T) == 4, std::uint32_t,
                         std::conditional_t<sizeof(T) == 2, std::uint16_t, std::uint8_t>>>;
  U u = 0;
  for (std::size_t i = 0; i < sizeof u; ++i) u |= static_cast<U>(static_cast<U>(in[i]) << (8 * i));
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

/// A JSON value, just enough for safetensors headers (numbers kept as their text).
struct json_value {
  enum kind_t { null_v, bool_v, number_v, string_v, array_v, object_v } kind = null_v;
  std::string text;  ///< string contents, or a number's literal text
  bool boolean = false;
  std::vector<json_value> items;  ///< array elements, or object values
  std::vector<std::string> keys;  ///< object keys (same order as items)
};

/// A strict, bounded JSON parser (RFC 8259: no comments, no trailing commas, valid UTF-8, no
/// duplicate keys, nesting at most 16 deep). Errors throw data_error with the byte offset.
class json_parser {
 public:
  json_parser(const char* p, std::size_t n, std::string source)
      : begin_(p), p_(p), end_(p + n), source_(std::move(source)) {}

  json_value parse_document() {
    skip_ws();
    json_value v = parse_value(0);
    skip_ws();
    if (p_ != end_) fail("unexpected character after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw data_error(
        cat(source_, ": invalid safetensors header: ", what, " at header byte ", p_ - begin_));
  }
  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  void expect(char c) {
    if (p_ == end_) fail(cat("unexpected end of header (expected '", c, "')"));
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
    if (depth > 16) fail("JSON nested too deeply");
    if (p_ == end_) fail("unexpected end of header");
    json_value v;
    const char c = *p_;
    if (c == '{') {
      v.kind = json_value::object_v;
      ++p_;
      skip_ws();
      if (p_ != end_ && *p_ == '}') {
        ++p_;
        return v;
      }
      for (;;) {
        skip_ws();
        if (p_ == end_ || *p_ != '"') fail("expected a string key");
        std::string key = parse_string();
        if (std::find(v.keys.begin(), v.keys.end(), key) != v.keys.end())
          fail(cat("duplicate key \"", key, "\""));
        skip_ws();
        expect(':');
        skip_ws();
        v.items.push_back(parse_value(depth + 1));
        v.keys.push_back(std::move(key));
        skip_ws();
        if (p_ != end_ && *p_ == ',') {
          ++p_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = json_value::array_v;
      ++p_;
      skip_ws();
      if (p_ != end_ && *p_ == ']') {
        ++p_;
        return v;
      }
      for (;;) {
        skip_ws();
        v.items.push_back(parse_value(depth + 1));
        skip_ws();
        if (p_ != end_ && *p_ == ',') {
          ++p_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = json_value::string_v;
      v.text = parse_string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = json_value::number_v;
      v.text = parse_number();
      return v;
    }
    if (literal("true")) {
      v.kind = json_value::bool_v;
      v.boolean = true;
      return v;
    }
    if (literal("false")) {
      v.kind = json_value::bool_v;
      return v;
    }
    if (literal("null")) return v;
    fail("unexpected character");
  }

  std::string parse_number() {
    const char* start = p_;
    auto digits = [&] {
      const char* d = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      return p_ - d;
    };
    if (*p_ == '-') ++p_;
    if (p_ != end_ && *p_ == '0') {
      ++p_;
    } else if (digits() == 0) {
      fail("malformed number");
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (digits() == 0) fail("malformed number");
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (digits() == 0) fail("malformed number");
    }
    return std::string(start, p_);
  }

  unsigned hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = *p_++;
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

  // Validates one UTF-8 encoded code point starting at p_ (first byte >= 0x80) and copies it.
  void copy_utf8(std::string& s) {
    const auto b0 = static_cast<unsigned char>(*p_);
    int extra;
    unsigned cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      extra = 1;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      extra = 2;
      cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      extra = 3;
      cp = b0 & 0x07;
    } else {
      fail("invalid UTF-8");
    }
    if (end_ - p_ <= extra) fail("truncated UTF-8 sequence");
    for (int i = 1; i <= extra; ++i) {
      const auto b = static_cast<unsigned char>(p_[i]);
      if ((b & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    const unsigned min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      fail("invalid UTF-8");
    s.append(p_, p_ + extra + 1);
    p_ += extra + 1;
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
        continue;
      }
      ++p_;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (p_ == end_) fail("unterminated escape");
      const char e = *p_++;
      switch (e) {
        case '"':
          s += '"';
          break;
        case '\\':
          s += '\\';
          break;
        case '/':
          s += '/';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'n':
          s += '\n';
          break;
        case 'r':
          s += '\r';
          break;
        case 't':
          s += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
              fail("unpaired surrogate in \\u escape");
            p_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(s, cp);
          break;
        }
        default:
          fail("invalid escape");
      }
    }
  }

  template <class... A>
  static std::string cat(A&&... a) {
    return shatter::detail::cat(std::forward<A>(a)...);
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::string source_;
};

/// Appends `s` as a JSON string literal.
inline void json_string(std::string& out, const std::string& s) {
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

/// Parses a non-negative JSON integer (no fraction, no exponent) that fits in 2^63 - 1.
inline bool json_to_u63(const json_value& v, std::uint64_t& out) {
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

/// The shape as text, "[2, 3]".
inline std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace detail

/// Largest header accepted when reading (the reference implementation's limit, 100 MB).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

/// Serialises to the bytes of a safetensors file. Tensors are laid out by decreasing element size
/// and then by name (each stays aligned to its element size, as the reference writer does), the
/// header is padded with spaces to a multiple of 8 bytes. Throws config_error for a tensor whose
/// data size does not match shape x dtype, a negative dimension, or the reserved name
/// "__metadata__".
inline std::vector<unsigned char> encode_safetensors(const safetensors_file& file) {
  std::vector<const std::pair<const std::string, tensor>*> order;
  for (const auto& kv : file.tensors) {
    require<config_error>(kv.first != "__metadata__",
                          "safetensors: \"__metadata__\" is reserved, not a tensor name");
    for (auto d : kv.second.shape)
      require<config_error>(d >= 0, "safetensors: tensor '", kv.first,
                            "' has a negative dimension ", detail::shape_text(kv.second.shape));
    require<config_error>(
        kv.second.data.size() == kv.second.element_count() * dtype_size(kv.second.type),
        "safetensors: tensor '", kv.first, "' of shape ", detail::shape_text(kv.second.shape),
        " and dtype ", dtype_name(kv.second.type), " needs ",
        kv.second.element_count() * dtype_size(kv.second.type), " bytes, has ",
        kv.second.data.size());
    order.push_back(&kv);
  }
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return dtype_size(a->second.type) > dtype_size(b->second.type);
  });
  std::string h = "{";
  bool first = true;
  if (!file.metadata.empty()) {
    h += "\"__metadata__\":{";
    for (const auto& kv : file.metadata) {
      if (!first) h += ',';
      first = false;
      detail::json_string(h, kv.first);
      h += ':';
      detail::json_string(h, kv.second);
    }
    h += '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto* kv : order) {
    if (!first) h += ',';
    first = false;
    detail::json_string(h, kv->first);
    h += ":{\"dtype\":\"";
    h += dtype_name(kv->second.type);
    h += "\",\"shape\":[";
    for (std::size_t i = 0; i < kv->second.shape.size(); ++i) {
      if (i) h += ',';
      h += std::to_string(kv->second.shape[i]);
    }
    const std::uint64_t end = offset + kv->second.data.size();
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  h += '}';
  while (h.size() % 8 != 0) h += ' ';
  std::vector<unsigned char> out(8 + h.size() + offset);
  detail::put_le<std::uint64_t>(out.data(), h.size());
  std::memcpy(out.data() + 8, h.data(), h.size());
  unsigned char* p = out.data() + 8 + h.size();
  for (const auto* kv : order) {
    if (!kv->second.data.empty()) std::memcpy(p, kv->second.data.data(), kv->second.data.size());
    p += kv->second.data.size();
  }
  return out;
}

/// Parses the bytes of a safetensors file, checking everything and trusting nothing: the header
/// length against the size, the JSON (strict, UTF-8), every entry's keys, dtype, shape (no
/// negative or overflowing dimension) and data_offsets (begin <= end, end - begin = elements x
/// dtype size), and that the tensors tile the byte buffer exactly (no overlap, gap or trailing
/// bytes). Any violation throws data_error naming `source` and, where there is one, the tensor.
/// Never reads outside [data, data + size). Thread safety: reentrant.
inline safetensors_file decode_safetensors(const unsigned char* data, std::size_t size,
                                           const std::string& source = "safetensors") {
  using detail::json_value;
  require<data_error>(size >= 8, source, ": not a safetensors file: ", size,
                      " bytes, shorter than the 8-byte header length");
  const std::uint64_t n = detail::get_le<std::uint64_t>(data);
  require<data_error>(n <= size - 8, source,
                      ": truncated or not a safetensors file: the header "
                      "length field says ",
                      n, " bytes but only ", size - 8, " follow it");
  require<data_error>(n <= max_header_bytes, source, ": safetensors header of ", n,
                      " bytes exceeds the limit of ", max_header_bytes);
  require<data_error>(n >= 2 && data[8] == '{', source,
                      ": not a safetensors file: the header does not start with '{'");
  const std::uint64_t buffer_size = size - 8 - n;
  const unsigned char* buffer = data + 8 + n;

  detail::json_parser parser(reinterpret_cast<const char*>(data + 8), static_cast<std::size_t>(n),
                             source);
  const json_value root = parser.parse_document();
  require<data_error>(root.kind == json_value::object_v, source,
                      ": safetensors header is not a JSON object");

  struct entry {
    const std::string* name;
    std::uint64_t begin, end;
  };
  std::vector<entry> entries;
  safetensors_file file;
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    const json_value& v = root.items[i];
    if (name == "__metadata__") {
      require<data_error>(v.kind == json_value::object_v, source,
                          ": \"__metadata__\" must be an object of strings");
      for (std::size_t k = 0; k < v.keys.size(); ++k) {
        require<data_error>(v.items[k].kind == json_value::string_v, source, ": metadata \"",
                            v.keys[k], "\" is not a string");
        file.metadata[v.keys[k]] = v.items[k].text;
      }
      continue;
    }
    const std::string where = detail::cat(source, ": tensor '", name, "': ");
    require<data_error>(v.kind == json_value::object_v, where, "entry is not a JSON object");
    const json_value* dt = nullptr;
    const json_value* shape = nullptr;
    const json_value* offsets = nullptr;
    for (std::size_t k = 0; k < v.keys.size(); ++k) {
      if (v.keys[k] == "dtype")
        dt = &v.items[k];
      else if (v.keys[k] == "shape")
        shape = &v.items[k];
      else if (v.keys[k] == "data_offsets")
        offsets = &v.items[k];
      else
        throw data_error(detail::cat(where, "unknown field \"", v.keys[k], "\""));
    }
    require<data_error>(dt && shape && offsets, where,
                        "needs the fields \"dtype\", \"shape\" and \"data_offsets\"");
    tensor t;
    require<data_error>(dt->kind == json_value::string_v && parse_dtype(dt->text, t.type), where,
                        "unknown dtype ",
                        dt->kind == json_value::string_v ? dt->text : "(not a string)");
    require<data_error>(shape->kind == json_value::array_v, where, "shape is not an array");
    require<data_error>(shape->items.size() <= 64, where, "shape has ", shape->items.size(),
                        " dimensions (at most 64 accepted)");
    std::uint64_t count = 1;
    bool overflow = false, zero = false;
    for (const auto& d : shape->items) {
      std::uint64_t x = 0;
      require<data_error>(detail::json_to_u63(d, x), where,
                          "shape entries must be non-negative integers, got ",
                          d.kind == json_value::number_v ? d.text : "a non-number");
      t.shape.push_back(static_cast<std::int64_t>(x));
      if (x == 0) zero = true;
      if (x != 0 && count > (std::uint64_t(1) << 60) / x) overflow = true;
      count *= x;
    }
    if (zero) count = 0, overflow = false;  // no elements, whatever the other dimensions
    require<data_error>(!overflow, where, "shape ", detail::shape_text(t.shape),
                        " has too many elements");
    std::uint64_t b = 0, e = 0;
    require<data_error>(offsets->kind == json_value::array_v && offsets->items.size() == 2 &&
                            detail::json_to_u63(offsets->items[0], b) &&
                            detail::json_to_u63(offsets->items[1], e),
                        where, "data_offsets must be two non-negative integers [begin, end]");
    require<data_error>(b <= e, where, "data_offsets [", b, ", ", e, "] end before they begin");
    require<data_error>(e <= buffer_size, where, "data_offsets [", b, ", ", e,
                        "] run past the end of the data (", buffer_size,
                        " bytes): file truncated or corrupted");
    const std::uint64_t bytes = count * dtype_size(t.type);
    require<data_error>(e - b == bytes, where, "shape ", detail::shape_text(t.shape), " of ",
                        dtype_name(t.type), " needs ", bytes, " bytes but data_offsets [", b, ", ",
                        e, "] span ", e - b);
    t.data.assign(buffer + b, buffer + e);
    auto res = file.tensors.emplace(name, std::move(t));
    entries.push_back({&res.first->first, b, e});
  }
  std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  for (const auto& en : entries) {
    require<data_error>(en.begin >= expected, source, ": tensor '", *en.name, "' at bytes [",
                        en.begin, ", ", en.end, ") overlaps the previous tensor (ending at ",
                        expected, ")");
    require<data_error>(en.begin == expected, source, ": tensor '", *en.name, "' at bytes [",
                        en.begin, ", ", en.end, ") leaves a gap after byte ", expected);
    expected = en.end;
  }
  require<data_error>(expected == buffer_size, source, ": ", buffer_size - expected,
                      " bytes after the last tensor are not described by the header");
  return file;
}

/// Reads and validates a safetensors file (see decode_safetensors); data_error names the path.
inline safetensors_file read_safetensors(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file(path);
  return decode_safetensors(bytes.data(), bytes.size(), path);
}

/// Writes a safetensors file atomically (see write_file_atomic and encode_safetensors).
inline void write_safetensors(const std::string& path, const safetensors_file& file) {
  const std::vector<unsigned char> bytes = encode_safetensors(file);
  write_file_atomic(path, bytes.data(), bytes.size());
}

/// The safetensors shape of a matrix: [rows] for a single column, [rows, cols] otherwise.
template <class T>
std::vector<std::int64_t> shape_of(const matrix<T>& m) {
  if (m.cols() == 1) return {static_cast<std::int64_t>(m.rows())};
  return {static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())};
}

/// A matrix as a row-major tensor of its scalar type (see the file-format note above):
/// shape [rows] for one column, [rows, cols] otherwise; element (i, j) at row-major index i cols+j.
template <class T>
tensor to_tensor(const matrix<T>& m) {
  tensor t;
  t.type = dtype_of<T>();
  t.shape = shape_of(m);
  t.data.resize(static_cast<std::size_t>(m.size()) * sizeof(T));
  unsigned char* p = t.data.data();
  for (index i = 0; i < m.rows(); ++i)
    for (index j = 0; j < m.cols(); ++j, p += sizeof(T)) detail::put_le<T>(p, m(i, j));
  return t;
}

/// A 1-D tensor from a list of values (dtype_of<V>()).
template <class V>
tensor to_tensor(const std::vector<V>& values) {
  tensor t;
  t.type = dtype_of<V>();
  t.shape = {static_cast<std::int64_t>(values.size())};
  t.data.resize(values.size() * sizeof(V));
  for (std::size_t i = 0; i < values.size(); ++i)
    detail::put_le<V>(&t.data[i * sizeof(V)], values[i]);
  return t;
}

/// The elements of a tensor of dtype dtype_of<V>() as a flat row-major list; data_error naming
/// `name` when the dtype differs.
template <class V>
std::vector<V> to_vector(const tensor& t, const std::string& name) {
  require<data_error>(t.type == dtype_of<V>(), "tensor '", name, "' has dtype ", dtype_name(t.type),
                      ", expected ", dtype_name(dtype_of<V>()));
  std::vector<V> out(t.data.size() / sizeof(V));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = detail::get_le<V>(&t.data[i * sizeof(V)]);
  return out;
}

/// Converts an F32 or F64 tensor to a matrix of T (rounding F64 to float when T is float): rank 0
/// -> 1 x 1, rank 1 [n] -> n x 1, rank 2 [r, c] -> r x c, rank k > 2 [d0, ...] -> d0 x (d1 ...).
/// data_error naming `name` for any other dtype or an inconsistent tensor.
template <class T>
matrix<T> to_matrix(const tensor& t, const std::string& name) {
  require<data_error>(t.type == dtype::F32 || t.type == dtype::F64, "tensor '", name,
                      "' has dtype ", dtype_name(t.type), ", expected F32 or F64");
  const std::size_t es = dtype_size(t.type);
  require<data_error>(t.data.size() == t.element_count() * es, "tensor '", name,
                      "': ", t.data.size(), " bytes for shape ", detail::shape_text(t.shape));
  index rows = 1, cols = 1;
  if (!t.shape.empty()) {
    rows = static_cast<index>(t.shape[0]);
    for (std::size_t i = 1; i < t.shape.size(); ++i) cols *= static_cast<index>(t.shape[i]);
  }
  matrix<T> m(rows, cols);
  const unsigned char* p = t.data.data();
  for (index i = 0; i < rows; ++i)
    for (index j = 0; j < cols; ++j, p += es)
      m(i, j) = t.type == dtype::F32 ? static_cast<T>(detail::get_le<float>(p))
                                     : static_cast<T>(detail::get_le<double>(p));
  return m;
}

}  // namespace shatter::io

#endif  // SHATTER_IO_SAFETENSORS_HPP
