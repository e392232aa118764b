// shatter: data-parallel training over Open MPI: the communicator on an MPI communicator, and
// the process's MPI session (init, finalize, and a job that ends cleanly when a rank fails).
// Only this header needs MPI (mpi.h, libmpi): build with SHATTER_USE_MPI (CMake) or mpicxx.
#ifndef SHATTER_DIST_MPI_HPP
#define SHATTER_DIST_MPI_HPP

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "shatter/core/communicator.hpp"
#include "shatter/core/error.hpp"

namespace shatter {
namespace dist {

/// True when this process was started by Open MPI's mpirun (or another launcher that sets
/// OMPI_COMM_WORLD_SIZE or PMIX_RANK); a program then joins the job, and otherwise runs alone
/// without initialising MPI at all.
inline bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

namespace detail {
inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
}  // namespace detail

/// Ends the whole job: writes "<who> (rank r of n): <message>" on stderr and calls MPI_Abort
/// with `code` (nonzero), which makes mpirun kill every rank and exit nonzero. For a rank that
/// failed while the others may be waiting for it in a collective operation.
[[noreturn]] inline void abort_job(const std::string& who, const std::string& message,
                                   int code = 1) {
  std::fprintf(stderr, "%s (rank %d of %d): %s; ending the job\n", who.c_str(),
               detail::world_rank(), detail::world_size(), message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
  std::abort();  // not reached
}

/// The communicator of shatter over an MPI communicator (a duplicate of MPI_COMM_WORLD by
/// default). Sums use MPI_Allreduce with MPI_SUM (Open MPI gives every rank the same bits; the
/// result depends only on the values and the number of ranks); counts above INT_MAX are split.
/// `seconds()` is the time spent in its operations so far. MPI must be initialised (see
/// mpi_session) for its whole life. With set_timeout, a watchdog ends the job when one operation
/// waits too long for the other ranks (a rank that hangs rather than dies).
class mpi_communicator final : public communicator {
 public:
  explicit mpi_communicator(MPI_Comm base = MPI_COMM_WORLD) {
    MPI_Comm_dup(base, &comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~mpi_communicator() override {
    stop_watchdog();
    MPI_Comm_free(&comm_);
  }
  mpi_communicator(const mpi_communicator&) = delete;
  mpi_communicator& operator=(const mpi_communicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_sum(float* x, std::size_t n) override { reduce(x, n, MPI_FLOAT); }
  void all_sum(double* x, std::size_t n) override { reduce(x, n, MPI_DOUBLE); }
  void broadcast(float* x, std::size_t n, int root) override { bcast(x, n, MPI_FLOAT, root); }
  void broadcast(double* x, std::size_t n, int root) override { bcast(x, n, MPI_DOUBLE, root); }
  void broadcast(std::string& s, int root) override {
    unsigned long long n = s.size();
    bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root);
    s.resize(std::size_t(n));
    if (n) bcast(&s[0], std::size_t(n), MPI_CHAR, root);
  }
  /// Blocks until every rank has called it.
  void barrier() {
    const in_operation busy(since_);
    MPI_Barrier(comm_);
  }
  /// Wall time spent in this communicator's operations so far, in seconds.
  double seconds() const { return seconds_; }
  /// The underlying MPI communicator.
  MPI_Comm handle() const { return comm_; }

  /// Starts a watchdog thread: when one operation of this communicator has waited more than
  /// `seconds` (> 0) for the other ranks, it writes "<who> (rank r of n): waited S s ..." on
  /// stderr and ends this process with exit status 3 without MPI_Finalize, which makes mpirun
  /// end the whole job. Choose `seconds` above the longest legitimate wait (a checkpoint write
  /// or an evaluation on rank 0, data loading at the start). Call once.
  void set_timeout(double seconds, std::string who) {
    require<config_error>(seconds > 0 && !watchdog_.joinable(),
                          "mpi_communicator::set_timeout: needs seconds > 0, once; got ", seconds);
    timeout_ = seconds;
    who_ = std::move(who);
    watchdog_ = std::thread([this] { watch(); });
  }

 private:
  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  /// Marks the start (and, from its destructor, the end) of an operation for the watchdog.
  struct in_operation {
    std::atomic<std::int64_t>& since;
    explicit in_operation(std::atomic<std::int64_t>& s) : since(s) { since = now_ns(); }
    ~in_operation() { since = 0; }
  };
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_; })) {
      const std::int64_t since = since_;
      if (since == 0) continue;
      const double waited = double(now_ns() - since) * 1e-9;
      if (waited <= timeout_) continue;
      std::fprintf(stderr,
                   "%s (rank %d of %d): waited %.0f s in a collective operation for the other "
                   "ranks (timeout %.0f s); ending the job\n",
                   who_.c_str(), rank_, size_, waited, timeout_);
      std::fflush(stderr);
      std::_Exit(3);
    }
  }
  void stop_watchdog() {
    if (!watchdog_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
  }

  template <class V>
  void reduce(V* x, std::size_t n, MPI_Datatype type) {
    const in_operation busy(since_);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t at = 0; at < n; at += std::size_t(INT_MAX)) {
      const int k = int(std::min<std::size_t>(n - at, std::size_t(INT_MAX)));
      MPI_Allreduce(MPI_IN_PLACE, x + at, k, type, MPI_SUM, comm_);
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  template <class V>
  void bcast(V* x, std::size_t n, MPI_Datatype type, int root) {
    const in_operation busy(since_);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t at = 0; at < n; at += std::size_t(INT_MAX)) {
      const int k = int(std::min<std::size_t>(n - at, std::size_t(INT_MAX)));
      MPI_Bcast(x + at, k, type, root, comm_);
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double seconds_ = 0;
  std::atomic<std::int64_t> since_{0};  ///< start of the operation under way (0: none), in ns
  std::thread watchdog_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  double timeout_ = 0;
  std::string who_;
};

/// MPI for the life of a program: MPI_Init_thread (MPI_THREAD_FUNNELED: shatter's worker
/// threads never call MPI) on construction, MPI_Finalize on destruction. While it lives, an
/// exception that escapes main (std::terminate) ends the whole job through abort_job, naming
/// the rank, so that no rank waits forever for one that died; MPI errors are fatal (MPI's
/// default), and a rank killed by a signal makes mpirun end the job. One session per process.
class mpi_session {
 public:
  /// `who` names the program in abort messages.
  mpi_session(int& argc, char**& argv, std::string who) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    who_() = std::move(who);
    previous_ = std::set_terminate(on_terminate);
  }
  ~mpi_session() {
    std::set_terminate(previous_);
    MPI_Finalize();
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;

  /// This process's rank in MPI_COMM_WORLD.
  int rank() const { return detail::world_rank(); }
  /// The number of ranks in MPI_COMM_WORLD.
  int size() const { return detail::world_size(); }

 private:
  static std::string& who_() {
    static std::string w;
    return w;
  }
  [[noreturn]] static void on_terminate() {
    std::string what = "terminated";
    if (auto e = std::current_exception()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        what = std::string("uncaught exception: ") + x.what();
      } catch (...) {
        what = "uncaught exception";
      }
    }
    abort_job(who_(), what, 1);
  }
  std::terminate_handler previous_ = nullptr;
};

}  // namespace dist
}  // namespace shatter

#endif  // SHATTER_DIST_MPI_HPP
