// shatter: a one-time note on stderr when the program was compiled without optimisation.
#ifndef SHATTER_CORE_BUILD_NOTE_HPP
#define SHATTER_CORE_BUILD_NOTE_HPP

#include <atomic>
#include <cstdio>

namespace shatter::detail {

/// Prints once per program, on the first plan built (every forward, fit and probe goes through
/// one), that the code was compiled without optimisation (__OPTIMIZE__ undefined: -O0, a CMake
/// build without CMAKE_BUILD_TYPE) and runs about 20x slower than at -O2 (Eigen's kernels rely
/// on inlining). Define SHATTER_NO_UNOPTIMISED_NOTE to silence it.
inline void note_if_unoptimised() {
#if !defined(__OPTIMIZE__) && !defined(SHATTER_NO_UNOPTIMISED_NOTE)
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    std::fputs(
        "shatter: note: this program was compiled without optimisation and runs about 20x "
        "slower; build with -O2 (CMake: -DCMAKE_BUILD_TYPE=Release), or define "
        "SHATTER_NO_UNOPTIMISED_NOTE to silence this note\n",
        stderr);
#endif
}

}  // namespace shatter::detail

#endif  // SHATTER_CORE_BUILD_NOTE_HPP
