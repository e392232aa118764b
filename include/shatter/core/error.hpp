// shatter: the exceptions the library throws for user errors.
#ifndef SHATTER_CORE_ERROR_HPP
#define SHATTER_CORE_ERROR_HPP

#include <sstream>
#include <stdexcept>
#include <string>
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
/// Concatenates its arguments with operator<< into one message string.
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream s;
  (s << ... << std::forward<Args>(args));
  return s.str();
}
}  // namespace detail

/// Throws E with a message built from the arguments unless cond holds.
template <class E = error, class... Args>
void require(bool cond, Args&&... args) {
  if (!cond) throw E(detail::cat(std::forward<Args>(args)...));
}

}  // namespace shatter

#endif  // SHATTER_CORE_ERROR_HPP
