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
#include "shatter/io/json.hpp"

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

/// The shape as text, "[2, 3]".
inline std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace detail

/// Largest header accepted when reading (the reference implementation's limit, 100 MB).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

namespace detail {

/// Checks that `t` can be written under `name`: not the reserved "__metadata__", no negative
/// dimension, data size = element count x dtype size. Throws config_error otherwise.
inline void check_writable(const std::string& name, const tensor& t) {
  require<config_error>(name != "__metadata__",
                        "safetensors: \"__metadata__\" is reserved, not a tensor name");
  for (auto d : t.shape)
    require<config_error>(d >= 0, "safetensors: tensor '", name, "' has a negative dimension ",
                          shape_text(t.shape));
  require<config_error>(t.data.size() == t.element_count() * dtype_size(t.type),
                        "safetensors: tensor '", name, "' of shape ", shape_text(t.shape),
                        " and dtype ", dtype_name(t.type), " needs ",
                        t.element_count() * dtype_size(t.type), " bytes, has ", t.data.size());
}

/// A tensor of a safetensors_file with its name.
using named_tensor = std::pair<const std::string, tensor>;

/// The tensors of `file` (each checked by check_writable) in the order the writer stores them:
/// by decreasing element size, then by name, so each stays aligned to its element size.
inline std::vector<const named_tensor*> storage_order(const safetensors_file& file) {
  std::vector<const named_tensor*> order;
  for (const auto& kv : file.tensors) {
    check_writable(kv.first, kv.second);
    order.push_back(&kv);
  }
  std::stable_sort(order.begin(), order.end(), [](const named_tensor* a, const named_tensor* b) {
    return dtype_size(a->second.type) > dtype_size(b->second.type);
  });
  return order;
}

/// Appends the header member "__metadata__":{"<key>":"<value>",...}.
inline void append_metadata_json(std::string& h,
                                 const std::map<std::string, std::string>& metadata) {
  h += "\"__metadata__\":{";
  bool first = true;
  for (const auto& kv : metadata) {
    if (!first) h += ',';
    first = false;
    append_json_string(h, kv.first);
    h += ':';
    append_json_string(h, kv.second);
  }
  h += '}';
}

/// Appends the header member of one tensor stored at bytes [begin, begin + data size).
inline void append_entry_json(std::string& h, const named_tensor& kv, std::uint64_t begin) {
  append_json_string(h, kv.first);
  h += ":{\"dtype\":\"";
  h += dtype_name(kv.second.type);
  h += "\",\"shape\":[";
  for (std::size_t i = 0; i < kv.second.shape.size(); ++i) {
    if (i) h += ',';
    h += std::to_string(kv.second.shape[i]);
  }
  const std::uint64_t end = begin + kv.second.data.size();
  h += "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

/// The header for the tensors stored back to back in `order` from byte 0 of the buffer,
/// metadata first (when there is any), padded with spaces to a multiple of 8 bytes.
inline std::string header_json(const safetensors_file& file,
                               const std::vector<const named_tensor*>& order) {
  std::string h = "{";
  if (!file.metadata.empty()) append_metadata_json(h, file.metadata);
  std::uint64_t offset = 0;
  for (const auto* kv : order) {
    if (h.size() > 1) h += ',';
    append_entry_json(h, *kv, offset);
    offset += kv->second.data.size();
  }
  h += '}';
  while (h.size() % 8 != 0) h += ' ';
  return h;
}

}  // namespace detail

/// Serialises to the bytes of a safetensors file. Tensors are laid out by decreasing element size
/// and then by name (each stays aligned to its element size, as the reference writer does), the
/// header is padded with spaces to a multiple of 8 bytes. Throws config_error for a tensor whose
/// data size does not match shape x dtype, a negative dimension, or the reserved name
/// "__metadata__".
inline std::vector<unsigned char> encode_safetensors(const safetensors_file& file) {
  const std::vector<const detail::named_tensor*> order = detail::storage_order(file);
  const std::string h = detail::header_json(file, order);
  std::size_t buffer_size = 0;
  for (const auto* kv : order) buffer_size += kv->second.data.size();
  std::vector<unsigned char> out(8 + h.size() + buffer_size);
  detail::put_le<std::uint64_t>(out.data(), h.size());
  std::memcpy(out.data() + 8, h.data(), h.size());
  unsigned char* p = out.data() + 8 + h.size();
  for (const auto* kv : order) {
    if (!kv->second.data.empty()) std::memcpy(p, kv->second.data.data(), kv->second.data.size());
    p += kv->second.data.size();
  }
  return out;
}

namespace detail {

/// The header length N from the first 8 bytes, after checking that the file holds them and the
/// header, that N is within max_header_bytes and that the header starts with '{'.
inline std::uint64_t checked_header_length(const unsigned char* data, std::size_t size,
                                           const std::string& source) {
  require<data_error>(size >= 8, source, ": not a safetensors file: ", size,
                      " bytes, shorter than the 8-byte header length");
  const std::uint64_t n = get_le<std::uint64_t>(data);
  require<data_error>(n <= size - 8, source,
                      ": truncated or not a safetensors file: the header length field says ", n,
                      " bytes but only ", size - 8, " follow it");
  require<data_error>(n <= max_header_bytes, source, ": safetensors header of ", n,
                      " bytes exceeds the limit of ", max_header_bytes);
  require<data_error>(n >= 2 && data[8] == '{', source,
                      ": not a safetensors file: the header does not start with '{'");
  return n;
}

/// Copies the members of the "__metadata__" object `v`, which must all be strings, into `out`.
inline void read_metadata(const json_value& v, const std::string& source,
                          std::map<std::string, std::string>& out) {
  require<data_error>(v.kind == json_value::object_v, source,
                      ": \"__metadata__\" must be an object of strings");
  for (std::size_t k = 0; k < v.keys.size(); ++k) {
    require<data_error>(v.items[k].kind == json_value::string_v, source, ": metadata \"", v.keys[k],
                        "\" is not a string");
    out[v.keys[k]] = v.items[k].text;
  }
}

/// The fields of a tensor's header entry.
struct entry_fields {
  const json_value* dtype = nullptr;
  const json_value* shape = nullptr;
  const json_value* data_offsets = nullptr;
};

/// Finds the fields of the entry `v`: an object with exactly "dtype", "shape" and
/// "data_offsets" (the parser has refused repeated keys). `where` starts each message.
inline entry_fields entry_fields_of(const json_value& v, const std::string& where) {
  require<data_error>(v.kind == json_value::object_v, where, "entry is not a JSON object");
  entry_fields f;
  for (std::size_t k = 0; k < v.keys.size(); ++k) {
    if (v.keys[k] == "dtype")
      f.dtype = &v.items[k];
    else if (v.keys[k] == "shape")
      f.shape = &v.items[k];
    else if (v.keys[k] == "data_offsets")
      f.data_offsets = &v.items[k];
    else
      throw data_error(cat(where, "unknown field \"", v.keys[k], "\""));
  }
  require<data_error>(f.dtype && f.shape && f.data_offsets, where,
                      "needs the fields \"dtype\", \"shape\" and \"data_offsets\"");
  return f;
}

/// Reads the shape array `v` (at most 64 non-negative integers) into `shape` and returns its
/// element count; data_error when the count exceeds 2^60 (a shape with a 0 has no elements).
inline std::uint64_t read_shape(const json_value& v, const std::string& where,
                                std::vector<std::int64_t>& shape) {
  require<data_error>(v.kind == json_value::array_v, where, "shape is not an array");
  require<data_error>(v.items.size() <= 64, where, "shape has ", v.items.size(),
                      " dimensions (at most 64 accepted)");
  std::uint64_t count = 1;
  bool overflow = false, zero = false;
  for (const auto& d : v.items) {
    std::uint64_t x = 0;
    require<data_error>(json_nonnegative_integer(d, x), where,
                        "shape entries must be non-negative integers, got ",
                        d.kind == json_value::number_v ? d.text : "a non-number");
    shape.push_back(static_cast<std::int64_t>(x));
    if (x == 0) zero = true;
    if (x != 0 && count > (std::uint64_t(1) << 60) / x) overflow = true;
    count *= x;
  }
  if (zero) return 0;  // no elements, whatever the other dimensions
  require<data_error>(!overflow, where, "shape ", shape_text(shape), " has too many elements");
  return count;
}

/// A tensor's bytes [begin, end) within the byte buffer.
struct byte_range {
  std::uint64_t begin = 0, end = 0;
};

/// Reads "data_offsets" [begin, end] from `v`, checking begin <= end <= buffer_size.
inline byte_range read_offsets(const json_value& v, std::uint64_t buffer_size,
                               const std::string& where) {
  byte_range r;
  require<data_error>(v.kind == json_value::array_v && v.items.size() == 2 &&
                          json_nonnegative_integer(v.items[0], r.begin) &&
                          json_nonnegative_integer(v.items[1], r.end),
                      where, "data_offsets must be two non-negative integers [begin, end]");
  require<data_error>(r.begin <= r.end, where, "data_offsets [", r.begin, ", ", r.end,
                      "] end before they begin");
  require<data_error>(r.end <= buffer_size, where, "data_offsets [", r.begin, ", ", r.end,
                      "] run past the end of the data (", buffer_size,
                      " bytes): file truncated or corrupted");
  return r;
}

/// Reads the header entry `v` of one tensor and copies its bytes from the buffer; `range`
/// receives their place. `where` ("<source>: tensor '<name>': ") starts each message.
inline tensor read_tensor(const json_value& v, const unsigned char* buffer,
                          std::uint64_t buffer_size, const std::string& where, byte_range& range) {
  const entry_fields f = entry_fields_of(v, where);
  tensor t;
  require<data_error>(f.dtype->kind == json_value::string_v && parse_dtype(f.dtype->text, t.type),
                      where, "unknown dtype ",
                      f.dtype->kind == json_value::string_v ? f.dtype->text : "(not a string)");
  const std::uint64_t count = read_shape(*f.shape, where, t.shape);
  range = read_offsets(*f.data_offsets, buffer_size, where);
  const std::uint64_t bytes = count * dtype_size(t.type);  // count <= 2^60: no overflow
  require<data_error>(range.end - range.begin == bytes, where, "shape ", shape_text(t.shape),
                      " of ", dtype_name(t.type), " needs ", bytes, " bytes but data_offsets [",
                      range.begin, ", ", range.end, "] span ", range.end - range.begin);
  t.data.assign(buffer + range.begin, buffer + range.end);
  return t;
}

/// A decoded tensor's name and place in the buffer.
struct placed_tensor {
  const std::string* name;
  byte_range range;
};

/// Checks that the tensors tile [0, buffer_size) exactly: no overlap, no gap, no trailing bytes.
/// Sorts `placed` by position; O(n log n).
inline void check_tiling(std::vector<placed_tensor>& placed, std::uint64_t buffer_size,
                         const std::string& source) {
  std::sort(placed.begin(), placed.end(), [](const placed_tensor& a, const placed_tensor& b) {
    return a.range.begin != b.range.begin ? a.range.begin < b.range.begin
                                          : a.range.end < b.range.end;
  });
  std::uint64_t expected = 0;
  for (const auto& p : placed) {
    const byte_range& r = p.range;
    require<data_error>(r.begin >= expected, source, ": tensor '", *p.name, "' at bytes [", r.begin,
                        ", ", r.end, ") overlaps the previous tensor (ending at ", expected, ")");
    require<data_error>(r.begin == expected, source, ": tensor '", *p.name, "' at bytes [", r.begin,
                        ", ", r.end, ") leaves a gap after byte ", expected);
    expected = r.end;
  }
  require<data_error>(expected == buffer_size, source, ": ", buffer_size - expected,
                      " bytes after the last tensor are not described by the header");
}

}  // namespace detail

/// Parses the bytes of a safetensors file, checking everything and trusting nothing: the header
/// length against the size, the JSON (strict, UTF-8, see parse_json), every entry's keys, dtype,
/// shape (no negative or overflowing dimension) and data_offsets (begin <= end, end - begin =
/// elements x dtype size), and that the tensors tile the byte buffer exactly (no overlap, gap or
/// trailing bytes). Any violation throws data_error naming `source` and, where there is one, the
/// tensor (JSON errors give the byte offset in the file). Never reads outside [data, data +
/// size). Time O(n log n) in the file's size. Thread safety: reentrant.
inline safetensors_file decode_safetensors(const unsigned char* data, std::size_t size,
                                           const std::string& source = "safetensors") {
  const std::uint64_t n = detail::checked_header_length(data, size, source);
  const unsigned char* buffer = data + 8 + n;
  const std::uint64_t buffer_size = size - 8 - n;
  json_options options;
  options.context = source + ": invalid safetensors header";
  options.document = "header";
  options.offset = 8;
  const json_value root =
      parse_json(reinterpret_cast<const char*>(data + 8), static_cast<std::size_t>(n), options);
  require<data_error>(root.kind == json_value::object_v, source,
                      ": safetensors header is not a JSON object");
  safetensors_file file;
  std::vector<detail::placed_tensor> placed;
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    if (name == "__metadata__") {
      detail::read_metadata(root.items[i], source, file.metadata);
      continue;
    }
    detail::byte_range range;
    tensor t = detail::read_tensor(root.items[i], buffer, buffer_size,
                                   detail::cat(source, ": tensor '", name, "': "), range);
    const auto inserted = file.tensors.emplace(name, std::move(t));
    placed.push_back({&inserted.first->first, range});
  }
  detail::check_tiling(placed, buffer_size, source);
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
