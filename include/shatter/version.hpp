// shatter: the library version (CMake reads its project version from this file).
#ifndef SHATTER_VERSION_HPP
#define SHATTER_VERSION_HPP

#define SHATTER_VERSION_MAJOR 0
#define SHATTER_VERSION_MINOR 1
#define SHATTER_VERSION_PATCH 0

namespace shatter {
/// The library version as "major.minor.patch".
inline constexpr const char* version = "0.1.0";
}  // namespace shatter

#endif  // SHATTER_VERSION_HPP
