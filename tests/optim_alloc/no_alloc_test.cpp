// step() allocates nothing. Eigen allocates with malloc, so this executable (its only Eigen TU)
// builds Eigen with EIGEN_RUNTIME_NO_MALLOC and an eigen_assert that throws; operator new is
// counted as well for any std container.
#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                                             \
  do {                                                              \
    if (!(x)) throw std::runtime_error("eigen_assert failed: " #x); \
  } while (0)

#include <catch2/catch.hpp>

#include "shatter/optim/adam.hpp"
#include "shatter/optim/sgd.hpp"

// Sanitizers own operator new/delete: count them only in ordinary builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHATTER_TEST_COUNT_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SHATTER_TEST_COUNT_NEW 0
#endif
#endif
#ifndef SHATTER_TEST_COUNT_NEW
#define SHATTER_TEST_COUNT_NEW 1
#endif

namespace {
std::atomic<long> g_allocations{0};
}

#if SHATTER_TEST_COUNT_NEW
void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

TEST_CASE("optimiser steps do not allocate", "[optim][alloc]") {
  using shatter::matrix;
  matrix<float> w = matrix<float>::Ones(64, 32), dw = matrix<float>::Ones(64, 32);
  matrix<float> b = matrix<float>::Ones(64, 1), db = matrix<float>::Ones(64, 1);
  std::vector<shatter::tensor_ref<float>> ps{{"w", &w, &dw}, {"b", &b, &db}};
  shatter::sgd<float> s(ps, {0.01, 0.9, true, 1e-4});
  shatter::sgd<float> plain(ps, {0.01, 0.0, false, 1e-4});
  shatter::adam_options o;
  o.weight_decay = 1e-4;
  shatter::adam<float> a(ps, o);
  Eigen::internal::set_is_malloc_allowed(false);
  // The guard works: an Eigen allocation now throws.
  CHECK_THROWS(matrix<float>(w * 2.0f));
  const long before = g_allocations.load();
  CHECK_NOTHROW([&] {
    for (int i = 0; i < 3; ++i) {
      s.step();
      plain.step();
      a.step();
    }
  }());
  Eigen::internal::set_is_malloc_allowed(true);
  CHECK(g_allocations.load() - before == 0);
}
