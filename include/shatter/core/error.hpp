// shatter: the exceptions the library throws for user errors.
#ifndef SHATTER_CORE_ERROR_HPP
#define SHATTER_CORE_ERROR_HPP

#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace shatter {

/// Base of every exception shatter throws for a user error (bad shape, option, file or value).
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Incompatible sizes: composing layers, feeding a batch, initialising a weight matrix.
class shape_error : public error {
 public:
  using error::error;
};

/// An invalid option or configuration value (depth 0, negative learning rate, ...).
class config_error : public error {
 public:
  using error::error;
};

/// A missing, truncated or malformed file.
class data_error : public error {
 public:
  using error::error;
};

/// A NaN or infinity where a finite number is required.
class numeric_error : public error {
 public:
  using error::error;
};

namespace detail {
/// Appends a signed integer in decimal (as operator<< writes it).
inline void append_signed(std::string& out, long long v) {
  out += std::to_string(v);
}
/// Appends an unsigned integer in decimal.
inline void append_unsigned(std::string& out, unsigned long long v) {
  out += std::to_string(v);
}
/// Appends a floating-point value as operator<< writes it by default (%g, 6 significant digits).
inline void append_floating(std::string& out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  out += buf;
}
/// Appends one argument of cat as operator<< would write it. Strings, characters, integers and
/// floating-point values go through the few non-template functions above (one copy per
/// program, so that the hundreds of distinct messages in the headers stay cheap to compile);
/// anything else is streamed.
template <class A>
void append(std::string& out, const A& a) {
  using D = std::decay_t<A>;
  if constexpr (std::is_convertible_v<const A&, std::string_view>)
    out += std::string_view(a);
  else if constexpr (std::is_same_v<D, char> || std::is_same_v<D, signed char> ||
                     std::is_same_v<D, unsigned char>)
    out += static_cast<char>(a);
  else if constexpr (std::is_same_v<D, bool>)
    out += a ? '1' : '0';
  else if constexpr (std::is_integral_v<D> && std::is_signed_v<D>)
    append_signed(out, static_cast<long long>(a));
  else if constexpr (std::is_integral_v<D>)
    append_unsigned(out, static_cast<unsigned long long>(a));
  else if constexpr (std::is_same_v<D, float> || std::is_same_v<D, double>)
    append_floating(out, static_cast<double>(a));
  else {
    std::ostringstream s;
    s << a;
    out += s.str();
  }
}

/// Concatenates its arguments, each written as operator<< writes it, into one message string.
template <class... Args>
std::string cat(const Args&... args) {
  std::string out;
  (append(out, args), ...);
  return out;
}
}  // namespace detail

/// Throws E with a message built from the arguments unless cond holds.
template <class E = error, class... Args>
void require(bool cond, Args&&... args) {
  if (!cond) throw E(detail::cat(args...));
}

}  // namespace shatter

#endif  // SHATTER_CORE_ERROR_HPP
