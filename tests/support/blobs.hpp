// A small classification data set shared by the tests (not part of the library).
#ifndef SHATTER_TESTS_BLOBS_HPP
#define SHATTER_TESTS_BLOBS_HPP

#include <cstdint>

#include "shatter/core/rng.hpp"
#include "shatter/data/dataset.hpp"

namespace shatter::test {

/// n samples of 3 Gaussian blobs in d dimensions, labels 0..2.
inline dataset<double> blobs(index d, index n, std::uint64_t seed) {
  rng g(seed);
  matrix<double> centres(d, 3);
  for (index i = 0; i < centres.size(); ++i) centres(i) = 1.5 * g.normal();
  dataset<double> ds;
  ds.classes = 3;
  ds.x.resize(d, n);
  for (index j = 0; j < n; ++j) {
    const auto c = static_cast<std::int32_t>(g.below(3));
    ds.labels.push_back(c);
    for (index i = 0; i < d; ++i) ds.x(i, j) = centres(i, c) + 0.7 * g.normal();
  }
  return ds;
}

}  // namespace shatter::test

#endif  // SHATTER_TESTS_BLOBS_HPP
