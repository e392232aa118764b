// Memory and thread pressure: a scratch request the allocator refuses ends in std::bad_alloc and
// leaves the scratch buffer valid (the next product gives the same numbers and nothing else is
// written), and the worker pool runs its jobs on the threads the system lets it create (none at
// all under a process limit) with the same results. The thread limit is real: a child process
// of this executable runs under RLIMIT_NPROC = 1 as an unprivileged user.
#include <grp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <dirent.h>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "shatter/exec/pool.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/plan.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHATTER_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHATTER_TEST_SANITIZED 1
#endif
#endif

// The allocation failures provoked here must come back as null (then std::bad_alloc), not end
// the process, under AddressSanitizer too. Read by the sanitizer runtime; unused otherwise.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1";
}

using namespace shatter;

namespace {

/// A request no allocator grants (4 EiB, far beyond any address space a process gets).
constexpr std::size_t impossible_bytes = std::size_t(1) << 62;

/// Blocks of `bytes` filled with `fill`, taken from the allocator right after a scratch block was
/// (or, on a broken buffer, was wrongly) handed back: a freed block would be among them.
struct victims {
  std::vector<void*> blocks;
  std::size_t bytes;
  unsigned char fill;
  victims(std::size_t n, std::size_t b, unsigned char f) : bytes(b), fill(f) {
    for (std::size_t i = 0; i < n; ++i) {
      blocks.push_back(Eigen::internal::aligned_malloc(bytes));
      std::memset(blocks.back(), fill, bytes);
    }
  }
  ~victims() {
    for (void* p : blocks) Eigen::internal::aligned_free(p);
  }
  bool contains(const void* p) const {
    for (void* b : blocks)
      if (p >= b && p < static_cast<const char*>(b) + bytes) return true;
    return false;
  }
  /// Whether every block still holds only `fill`.
  bool intact() const {
    for (void* b : blocks)
      for (std::size_t i = 0; i < bytes; ++i)
        if (static_cast<const unsigned char*>(b)[i] != fill) return false;
    return true;
  }
};

matrix<double> random_matrix(shatter::index rows, shatter::index cols, std::uint64_t seed) {
  rng g(seed);
  matrix<double> m(rows, cols);
  for (shatter::index i = 0; i < m.size(); ++i) m(i) = g.normal();
  return m;
}

/// A 300-wide CReLU MLP: its products use the GEMM scratch of every participating thread.
sequential<double> product_net() {
  rng g(11);
  mlp_spec s;
  s.in = 64;
  s.width = 300;
  s.hidden_layers = 2;
  s.out = 10;
  return looks_linear_mlp<double>(s, g);
}

/// Threads of this process (entries of /proc/self/task).
int thread_count() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

}  // namespace

TEST_CASE("a scratch buffer that cannot grow keeps its block", "[pressure][memory]") {
  detail::scratch_buffer b;
  b.reserve(4096);
  void* const block = b.p;
  std::memset(block, 0x3c, 4096);
  REQUIRE_THROWS_AS(b.reserve(impossible_bytes), std::bad_alloc);
  CHECK(b.p == block);
  CHECK(b.bytes == 4096);
  // The block is still owned: new allocations of its size are other memory, and writing them
  // leaves the block's contents alone.
  victims others(4, 4096, 0xa5);
  CHECK_FALSE(others.contains(block));
  bool kept = true;
  for (std::size_t i = 0; i < 4096; ++i)
    kept = kept && static_cast<unsigned char*>(block)[i] == 0x3c;
  CHECK(kept);
  b.reserve(8192);  // growing works again
  CHECK(b.bytes == 8192);
  CHECK(others.intact());
}

TEST_CASE("a product after a refused scratch request gives the same numbers",
          "[pressure][memory]") {
  auto net = product_net();
  const matrix<double> x = random_matrix(64, 96, 5);
  plan<double> p(net, 96, plan_mode::eval, 2);
  const matrix<double> y0 = p.forward(x, mode::eval);
  detail::scratch_buffer& s = detail::thread_scratch();  // what this thread's products used
  const std::size_t had = s.bytes;
  void* const block = s.p;
  REQUIRE(had > 0);
  REQUIRE_THROWS_AS(s.reserve(impossible_bytes), std::bad_alloc);
  CHECK(s.p == block);
  CHECK(s.bytes == had);
  // Through the pool: the posting thread's reservation fails, the pool stays usable.
  auto job = [](shatter::index) {};
  REQUIRE_THROWS_AS(detail::parallel_blocks<double>(exec::context{2}, 4, impossible_bytes / 8, job),
                    std::bad_alloc);
  victims others(4, had, 0x5a);
  CHECK_FALSE(others.contains(block));
  const matrix<double> y1 = p.forward(x, mode::eval);
  CHECK((y1.array() == y0.array()).all());
  CHECK(others.intact());  // the product wrote only into its own scratch
}

TEST_CASE("under an address-space limit, a convolution's scratch fails cleanly and then recovers",
          "[pressure][memory]") {
#ifdef SHATTER_TEST_SANITIZED
  WARN("skipped: sanitizer runtimes reserve address space an RLIMIT_AS would cut");
  return;
#else
  sequential<double> net;
  net.add(conv2d<double>({16, 32, 32}, 16, 3, 1, 1));
  const shatter::index n = 256;
  const matrix<double> x = random_matrix(16 * 32 * 32, n, 9);
  plan<double> p(net, n, plan_mode::eval, 2);
  const matrix<double> y0 = p.forward(x, mode::eval);  // default chunks: small scratch
  // Unbounded chunks: two of 128 images, each thread's scratch about 57 MB. glibc maps every
  // block above 32 MB on its own, so the request counts against the limit: 16 MB more than now.
  conv2d<double>::set_chunk_elements(shatter::index(1) << 40);
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_AS, &old) == 0);
  std::ifstream status("/proc/self/status");
  std::string line;
  std::size_t vm_kb = 0;
  while (std::getline(status, line))
    if (line.rfind("VmSize:", 0) == 0) vm_kb = std::stoul(line.substr(7));
  REQUIRE(vm_kb > 0);
  rlimit tight = old;
  tight.rlim_cur = (vm_kb + 16 * 1024) * 1024;
  bool refused = false;
  if (old.rlim_cur == RLIM_INFINITY || old.rlim_cur > tight.rlim_cur) {
    REQUIRE(::setrlimit(RLIMIT_AS, &tight) == 0);
    try {
      p.forward(x, mode::eval);
    } catch (const std::bad_alloc&) {
      refused = true;
    }
    REQUIRE(::setrlimit(RLIMIT_AS, &old) == 0);
  }
  CHECK(refused);
  conv2d<double>::set_chunk_elements(shatter::index(1) << 18);
  victims others(8, std::size_t(1) << 20, 0x77);
  const matrix<double> y1 = p.forward(x, mode::eval);  // same chunks as y0
  CHECK((y1.array() == y0.array()).all());
  CHECK(others.intact());
  conv2d<double>::set_chunk_elements(shatter::index(1) << 40);  // and the large scratch now fits
  const matrix<double> y2 = p.forward(x, mode::eval);
  CHECK((y2 - y0).cwiseAbs().maxCoeff() <= 1e-12 * (1 + y0.cwiseAbs().maxCoeff()));
  conv2d<double>::set_chunk_elements(shatter::index(1) << 18);
#endif
}

// Run by the next test in a child process whose thread creation the system refuses.
TEST_CASE("pressure child: products and parallel_for without threads", "[.pressure-child]") {
  if (!std::getenv("SHATTER_PRESSURE_CHILD")) return;  // only as the child of the test below
  try {
    std::thread t([] {});
    t.join();
    std::cout << "pressure child: thread creation is not refused here\n";
    std::cout.flush();
    std::_Exit(77);
  } catch (const std::system_error&) {
  }
  auto net = product_net();
  const matrix<double> x = random_matrix(64, 96, 5);
  plan<double> one(net, 96, plan_mode::train, 1), eight(net, 96, plan_mode::train, 8);
  const matrix<double> y1 = one.forward(x, mode::train);
  const matrix<double> y8 = eight.forward(x, mode::train);  // 7 workers wanted, none start
  const matrix<double> dx8 = eight.backward(y8, true);
  CHECK(thread_count() == 1);
  CHECK((y8 - y1).cwiseAbs().maxCoeff() <= 1e-12 * (1 + y1.cwiseAbs().maxCoeff()));
  std::vector<std::atomic<int>> hits(100);
  exec::parallel_for(100, 8, [&](shatter::index i) { hits[std::size_t(i)]++; });
  int once = 0;
  for (auto& h : hits) once += h.load() == 1;
  CHECK(once == 100);
  CHECK_THROWS_WITH(exec::parallel_for(10, 8,
                                       [](shatter::index i) {
                                         if (i == 3) throw std::runtime_error("job 3");
                                       }),
                    "job 3");
  // Threads allowed again: the pool starts its workers and gives the same bits.
  rlimit r{};
  REQUIRE(::getrlimit(RLIMIT_NPROC, &r) == 0);
  r.rlim_cur = r.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NPROC, &r) == 0);
  const matrix<double> again = eight.forward(x, mode::train);
  const matrix<double> dx_again = eight.backward(again, true);
  CHECK(thread_count() > 1);
  CHECK((again.array() == y8.array()).all());
  CHECK((dx_again.array() == dx8.array()).all());
}

TEST_CASE("the pool runs on the threads the system lets it create", "[pressure][threads]") {
  char self[PATH_MAX];
  const ::ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(len > 0);
  self[len] = '\0';
  // Everything the child needs is made before fork (only async-signal-safe calls after it).
  std::vector<std::string> env_text = {"SHATTER_PRESSURE_CHILD=1"};
  for (char** e = environ; *e; ++e) env_text.emplace_back(*e);
  std::vector<char*> env;
  for (auto& e : env_text) env.push_back(e.data());
  env.push_back(nullptr);
  char test_name[] = "pressure child: products and parallel_for without threads";
  char* const argv[] = {self, test_name, nullptr};
  std::cout.flush();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Root ignores RLIMIT_NPROC: become an unprivileged user first, then allow that user's
    // processes and threads (this child included) to number one: no thread can start.
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      ::_exit(76);
    rlimit r{};
    if (::getrlimit(RLIMIT_NPROC, &r) != 0) ::_exit(76);
    r.rlim_cur = 1;
    if (::setrlimit(RLIMIT_NPROC, &r) != 0) ::_exit(76);
    ::execve(self, argv, env.data());
    ::_exit(75);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  if (code == 77 || code == 76) {
    WARN("skipped: this system does not refuse threads to a child under RLIMIT_NPROC = 1"
         << (code == 76 ? " (could not drop root privileges or set the limit)" : ""));
    return;
  }
  INFO("the child's own report is above; exit code 75: it could not execute " << self);
  CHECK(code == 0);
}
