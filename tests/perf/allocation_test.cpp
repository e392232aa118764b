// A training step of a dense network allocates no heap memory after the first (warm-up) step:
// every buffer is sized once and reused. This executable replaces the global allocation
// functions (operator new and the C allocator, which Eigen uses) with counting versions; the
// counts are exact, not timing-based.
#include <malloc.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>

#include "shatter/core/threads.hpp"
#include "shatter/network/builders.hpp"

// Sanitizers bring their own allocator; replacing malloc under them is not supported, so the
// counting (and these tests) only run in ordinary builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHATTER_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SHATTER_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SHATTER_COUNT_ALLOCATIONS
#define SHATTER_COUNT_ALLOCATIONS 1
#endif

#if SHATTER_COUNT_ALLOCATIONS

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
/// Called for every counted allocation (a place for a debugger breakpoint).
__attribute__((noinline)) void counted_allocation() {
  allocations.fetch_add(1);
}
inline void note() {
  if (counting.load(std::memory_order_relaxed)) counted_allocation();
}
}  // namespace

// The C allocator (Eigen's aligned_malloc, std::vector through operator new, OpenMP runtime).
extern "C" {
void* malloc(std::size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(std::size_t m, std::size_t n) {
  note();
  return __libc_calloc(m, n);
}
void* realloc(void* p, std::size_t n) {
  note();
  return __libc_realloc(p, n);
}
void free(void* p) {
  __libc_free(p);
}
void* memalign(std::size_t a, std::size_t n) {
  note();
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  note();
  return __libc_memalign(a, n);
}
int posix_memalign(void** p, std::size_t a, std::size_t n) {
  note();
  *p = __libc_memalign(a, n);
  return *p ? 0 : ENOMEM;
}
}

// Global operator new: counted as well (it would reach malloc anyway; counting here is explicit).
void* operator new(std::size_t n) {
  note();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  note();
  return __libc_malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return operator new(n, t);
}
void operator delete(void* p) noexcept {
  __libc_free(p);
}
void operator delete[](void* p) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  __libc_free(p);
}

namespace {

/// Counts the allocations made while `f` runs.
template <class F>
long count_allocations(F&& f) {
  allocations = 0;
  counting = true;
  f();
  counting = false;
  return allocations.load();
}

/// One SGD training step with an inline mean-squared-error gradient (no library loss needed).
template <class T>
struct trainer {
  shatter::sequential<T> net;
  shatter::matrix<T> x, dy;
  std::vector<shatter::tensor_ref<T>> params;

  trainer(shatter::sequential<T> n, shatter::index batch, shatter::rng& g) : net(std::move(n)) {
    x.resize(net.in_size(), batch);
    for (shatter::index j = 0; j < x.cols(); ++j)
      for (shatter::index i = 0; i < x.rows(); ++i) x(i, j) = T(g.normal());
    dy.resize(net.out_size(), batch);
    params = net.parameters();
  }
  void step() {
    const auto& y = net.forward(x, shatter::mode::train);
    dy = y / T(y.cols());  // d/dy of sum(y^2) / (2 n); same shape every step: no reallocation
    net.backward(dy);
    for (auto& p : params) p.value->noalias() -= T(0.01) * *p.grad;
  }
};

template <class T>
void check_steady_state(shatter::sequential<T> net, shatter::index batch, bool input_grad) {
  shatter::rng g(7);
  trainer<T> t(std::move(net), batch, g);
  t.net.set_input_gradient(input_grad);
  t.step();  // warm-up sizes every buffer
  for (int threads : {1, 2}) {
    shatter::set_threads(threads);
    t.step();  // first step with this thread count (the OpenMP runtime sets up its team)
    INFO("threads " << threads);
    CHECK(count_allocations([&] {
            for (int s = 0; s < 3; ++s) t.step();
          }) == 0);
  }
  shatter::set_threads(1);
}

}  // namespace

TEST_CASE("the allocation counter sees Eigen, std and operator new allocations", "[perf]") {
  CHECK(count_allocations([] { shatter::matrix<float> m(64, 64); }) >= 1);
  CHECK(count_allocations([] { std::vector<int> v(10); }) >= 1);
  CHECK(count_allocations([] { delete new int(3); }) == 1);
  CHECK(count_allocations([] {}) == 0);
}

TEST_CASE("a CReLU looks-linear MLP training step allocates nothing after warm-up", "[perf]") {
  shatter::rng g(1);
  shatter::mlp_spec s;
  s.in = 300;
  s.width = 96;
  s.hidden_layers = 6;
  s.out = 10;
  check_steady_state(shatter::looks_linear_mlp<float>(s, g), 128, false);
  check_steady_state(shatter::looks_linear_mlp<double>(s, g), 33, true);
}

TEST_CASE("a ReLU MLP training step allocates nothing after warm-up", "[perf]") {
  shatter::rng g(2);
  shatter::mlp_spec s;
  s.in = 200;
  s.width = 256;
  s.hidden_layers = 4;
  s.out = 10;
  check_steady_state(shatter::plain_relu_mlp<float>(s, g), 128, false);
  s.bias = false;
  check_steady_state(shatter::plain_relu_mlp<double>(s, g), 64, true);
}

#else

TEST_CASE("allocation counting is off under sanitizers", "[perf]") {
  WARN("tests/perf: allocation counting needs the C allocator; skipped in sanitizer builds");
}

#endif  // SHATTER_COUNT_ALLOCATIONS
