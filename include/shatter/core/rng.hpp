// shatter: a small, portable, seedable random number generator.
#ifndef SHATTER_CORE_RNG_HPP
#define SHATTER_CORE_RNG_HPP

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace shatter {

/// xoshiro256** seeded by splitmix64, with uniform and normal draws of its own, so that the
/// same seed gives the same numbers with every compiler and standard library (std's
/// distributions are implementation-defined). The whole state is `state()`, for checkpoints.
/// Satisfies UniformRandomBitGenerator. Not thread-safe: give each thread its own rng.
class rng {
 public:
  using result_type = std::uint64_t;

  /// Seeds the four state words from `seed` with splitmix64.
  explicit rng(std::uint64_t seed = 0x5eed) { this->seed(seed); }

  /// Restarts the stream from `seed`.
  void seed(std::uint64_t seed) {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
    has_spare_ = false;
  }

  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  /// The next 64 random bits.
  result_type operator()() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

  /// Uniform double in [a, b).
  double uniform(double a, double b) { return a + (b - a) * uniform(); }

  /// Uniform integer in [0, n), n > 0 (Lemire's unbiased method).
  std::uint64_t below(std::uint64_t n) {
    __extension__ typedef unsigned __int128 u128;
    std::uint64_t x = (*this)();
    u128 m = static_cast<u128>(x) * n;
    std::uint64_t l = static_cast<std::uint64_t>(m);
    if (l < n) {
      const std::uint64_t t = (0 - n) % n;
      while (l < t) {
        x = (*this)();
        m = static_cast<u128>(x) * n;
        l = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Standard normal draw (Marsaglia polar method; the spare value is kept in the state).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2 * uniform() - 1;
      v = 2 * uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s == 0);
    const double f = std::sqrt(-2 * std::log(s) / s);
    spare_ = v * f;
    has_spare_ = true;
    return u * f;
  }

  /// Normal draw with mean `mean` and standard deviation `stddev`.
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  /// The complete state: the four xoshiro words, then the cached normal (bits) and its flag.
  std::array<std::uint64_t, 6> state() const {
    std::uint64_t spare_bits;
    static_assert(sizeof(spare_bits) == sizeof(spare_));
    std::memcpy(&spare_bits, &spare_, sizeof spare_);
    return {s_[0], s_[1], s_[2], s_[3], spare_bits, has_spare_ ? 1u : 0u};
  }

  /// Restores a state returned by `state()`.
  void set_state(const std::array<std::uint64_t, 6>& st) {
    for (int i = 0; i < 4; ++i) s_[i] = st[i];
    std::memcpy(&spare_, &st[4], sizeof spare_);
    has_spare_ = st[5] != 0;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
  double spare_ = 0;
  bool has_spare_ = false;
};

/// The calling thread's generator for layers that initialise themselves when constructed
/// (dense and conv2d: He-normal weights), seeded with the default seed when the thread first
/// uses it: the same program builds the same initial weights. Initialise with your own rng to
/// control the draws.
inline rng& construction_rng() {
  thread_local rng g;
  return g;
}

}  // namespace shatter

#endif  // SHATTER_CORE_RNG_HPP
