// shatter: the block pool, the one place where shatter's kernels run in parallel.
#ifndef SHATTER_EXEC_POOL_HPP
#define SHATTER_EXEC_POOL_HPP

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "shatter/core/types.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace shatter::exec {

/// What an execution plan hands every kernel it runs: how many threads of the block pool the
/// kernel may use (the caller included). Kernels take it as an argument and never read a global.
struct context {
  int threads = 1;
};

}  // namespace shatter::exec

namespace shatter::detail {

/// Aligned scratch bytes that grow on request and are otherwise reused.
struct scratch_buffer {
  void* p = nullptr;
  std::size_t bytes = 0;
  scratch_buffer() = default;
  scratch_buffer(const scratch_buffer&) = delete;
  scratch_buffer& operator=(const scratch_buffer&) = delete;
  ~scratch_buffer() { Eigen::internal::aligned_free(p); }
  /// Grows to at least n bytes (contents not kept). Allocates before freeing, so a failed
  /// allocation (std::bad_alloc) leaves the old block valid and the buffer usable.
  void reserve(std::size_t n) {
    if (n <= bytes) return;
    void* fresh = Eigen::internal::aligned_malloc(n);
    Eigen::internal::aligned_free(p);
    p = fresh;
    bytes = n;
  }
};

/// The calling thread's scratch: a pool worker's own buffer while it runs a block (sized by the
/// thread that posted the job), otherwise a thread_local buffer of the calling thread.
inline scratch_buffer*& bound_scratch() {
  thread_local scratch_buffer* bound = nullptr;
  return bound;
}
inline scratch_buffer& thread_scratch() {
  if (scratch_buffer* b = bound_scratch()) return *b;
  thread_local scratch_buffer own;  // first touched here: a pool worker never creates one
  return own;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

/// A small pool of worker threads for block-parallel loops, built so that a busy machine costs
/// little: the thread that posts a job works on it too and claims blocks one at a time like the
/// workers, so it never waits for a worker the system has not scheduled; it waits only for
/// blocks a worker has actually started. Workers spin briefly for the next job, then sleep.
/// One job at a time: a caller that finds the pool busy (another thread's job, or a nested call
/// from inside a block) runs its loop on its own.
class block_pool {
 public:
  static block_pool& instance() {
    static block_pool pool;
    return pool;
  }

  /// Runs f(i) for every i in [0, n) on up to `threads` threads (the caller included), each
  /// participant with at least `scratch_bytes` of scratch (see thread_scratch). f must not throw.
  template <class F>
  void run(index n, int threads, std::size_t scratch_bytes, F& f) {
    thread_scratch().reserve(scratch_bytes);
    bool expected = false;
    if (threads <= 1 || n <= 1 || inside_block() ||
        !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      for (index i = 0; i < n; ++i) f(i);
      return;
    }
    int workers = 0;
    try {
      workers = ensure_workers(threads - 1);
      for (int w = 0; w < workers; ++w) buffers_[std::size_t(w)]->reserve(scratch_bytes);
    } catch (...) {
      busy_.store(false, std::memory_order_release);
      throw;
    }
    fn_ = [](void* ctx, index i) { (*static_cast<F*>(ctx))(i); };
    ctx_ = &f;
    n_.store(n, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    active_workers_ = workers;
    const std::uint64_t gen = (word_.load(std::memory_order_relaxed) >> 32) + 1;
    // seq_cst store and load pair with the sleeping worker's seq_cst increment and load: either
    // it sees the new job or this sees it asleep (no lost wake-up).
    word_.store(gen << 32, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(m_);
      cv_.notify_all();
    }
    inside_block() = true;
    const index mine = work(gen);
    inside_block() = false;
    // Wait for the blocks workers claimed (spin, then yield the CPU to them).
    for (int spins = 0; done_.load(std::memory_order_acquire) + mine < n; ++spins) {
      if (spins < 200000)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    busy_.store(false, std::memory_order_release);
  }

  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;
  ~block_pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  block_pool() = default;

  static bool& inside_block() {
    thread_local bool inside = false;
    return inside;
  }

  /// Starts workers up to `want` (never stops any); returns how many to use: fewer when the
  /// system refuses to create a thread (the loop then runs on the threads there are).
  int ensure_workers(int want) {
    while (int(threads_.size()) < want) {
      if (buffers_.size() == threads_.size())
        buffers_.push_back(std::make_unique<scratch_buffer>());
      scratch_buffer* own = buffers_.back().get();
      const int id = int(threads_.size());
      try {
        threads_.emplace_back([this, id, own] { worker(id, own); });
      } catch (const std::system_error&) {
        break;
      }
    }
    return std::min(want, int(threads_.size()));
  }

  /// Claims and runs blocks of job `gen` until none is left; returns how many it ran (the
  /// poster counts its own; workers add theirs to done_).
  index work(std::uint64_t gen) {
    index ran = 0;
    std::uint64_t w = word_.load(std::memory_order_acquire);
    for (;;) {
      if ((w >> 32) != gen) break;
      const index i = index(w & 0xffffffffu);
      if (i >= n_.load(std::memory_order_relaxed)) break;
      if (word_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        fn_(ctx_, i);
        ++ran;
        w = word_.load(std::memory_order_acquire);
      }
    }
    return ran;
  }

  void worker(int id, scratch_buffer* own) {
    bound_scratch() = own;
    inside_block() = true;  // a block's own loops run serially
    std::uint64_t seen = 0;
    for (;;) {
      std::uint64_t gen = word_.load(std::memory_order_acquire) >> 32;
      for (int spins = 0; gen == seen && spins < 20000; ++spins) {
        cpu_relax();
        gen = word_.load(std::memory_order_acquire) >> 32;
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(m_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_.wait(lock, [&] {
          gen = word_.load(std::memory_order_seq_cst) >> 32;
          return stop_ || gen != seen;
        });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        if (stop_) return;
      }
      seen = gen;
      if (id >= active_workers_) continue;
      const index ran = work(gen);
      if (ran) done_.fetch_add(ran, std::memory_order_release);
    }
  }

  std::atomic<bool> busy_{false};
  std::atomic<std::uint64_t> word_{0};  ///< job generation (high 32 bits), next block (low 32)
  std::atomic<index> n_{0};
  std::atomic<index> done_{0};
  void (*fn_)(void*, index) = nullptr;
  void* ctx_ = nullptr;
  int active_workers_ = 0;
  std::atomic<int> sleepers_{0};
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<scratch_buffer>> buffers_;
};

/// Threads a loop may use under context c: c.threads, and 1 inside an OpenMP parallel region.
inline int loop_threads(const exec::context& c) {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;
#endif
  return c.threads < 1 ? 1 : c.threads;
}

/// The context of code that runs outside a plan (optimisers): Eigen::nbThreads() threads (see
/// shatter::set_threads).
inline exec::context default_context() {
  return {Eigen::nbThreads()};
}

/// Runs f(i) for i in [0, n) on the threads of context c from the block pool (the caller
/// included; blocks are claimed one at a time, so a thread the system preempts holds up at most
/// the block it is in), or in order on one thread. Every participant first has scratch for
/// `scratch` scalars of type T (gemm_scratch). f must not throw.
template <class T, class F>
void parallel_blocks(const exec::context& c, index n, std::size_t scratch, F&& f) {
  block_pool::instance().run(n, loop_threads(c), scratch * sizeof(T), f);
}

/// Runs f(c0, c1) over column ranges covering [0, cols) of a matrix with `rows` rows: in blocks
/// on the block pool when the matrix is large enough to pay for it (elementwise layers), otherwise
/// once over all columns. f must not throw.
template <class F>
void parallel_columns(const exec::context& c, index rows, index cols, F&& f) {
  const int threads = loop_threads(c);
  const index blocks = threads > 1 && rows * cols >= (index(1) << 15)
                           ? std::min<index>(cols, 4 * index(threads))
                           : index(1);
  if (blocks <= 1) {
    f(index(0), cols);
    return;
  }
  auto run = [&](index b) { f(cols * b / blocks, cols * (b + 1) / blocks); };
  block_pool::instance().run(blocks, threads, 0, run);
}

}  // namespace shatter::detail

namespace shatter::exec {

/// Runs fn(i) once for every i in [0, n) on up to `threads` threads of shatter's block pool (the
/// calling thread included), handing out indices in order; kernels that fn runs stay on fn's
/// thread. The first exception fn throws is rethrown once every index has run. For independent
/// jobs such as probing many networks, one per index.
template <class F>
void parallel_for(index n, int threads, F&& fn) {
  std::exception_ptr failure;
  std::mutex m;
  auto run = [&](index i) {
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!failure) failure = std::current_exception();
    }
  };
  detail::block_pool::instance().run(n, threads < 1 ? 1 : threads, 0, run);
  if (failure) std::rethrow_exception(failure);
}

}  // namespace shatter::exec

#endif  // SHATTER_EXEC_POOL_HPP
