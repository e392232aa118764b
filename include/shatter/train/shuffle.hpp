// shatter: the seeded sample order of each training epoch.
#ifndef SHATTER_TRAIN_SHUFFLE_HPP
#define SHATTER_TRAIN_SHUFFLE_HPP

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// Writes into `order` a permutation of 0..n-1 that depends only on (seed, epoch): a
/// Fisher-Yates shuffle driven by shatter::rng seeded with a mix of both. Because nothing else
/// is involved, a run resumed at any epoch sees exactly the order of an uninterrupted run, and
/// the result is the same with every compiler and standard library.
inline void epoch_order(std::uint64_t seed, std::int64_t epoch, index n,
                        std::vector<index>& order) {
  order.resize(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index(0));
  rng g(seed ^ (0x9e3779b97f4a7c15ULL * (static_cast<std::uint64_t>(epoch) + 1)));
  for (index i = n - 1; i > 0; --i) {
    const auto j = static_cast<index>(g.below(static_cast<std::uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
}

/// Writes 0..n-1 in order into `order` (training without shuffling).
inline void epoch_order_identity(index n, std::vector<index>& order) {
  order.resize(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index(0));
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_SHUFFLE_HPP
