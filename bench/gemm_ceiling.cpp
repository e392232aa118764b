// The sgemm ceiling of this machine: C = A B in fp32 for square sizes and for the shapes of the
// MLP workloads, with Eigen's own product and, when the library can be loaded at run time,
// OpenBLAS (cblas_sgemm via dlopen, so this program never needs to link a BLAS).
//   gemm/eigen/n:<N>/threads:<T>        square N x N x N
//   gemm/openblas/n:<N>/threads:<T>
//   gemm_shape/<impl>/m:<M>/n:<N>/k:<K>/threads:<T>   the MLP's products (batch 128)
// The counter GFLOPs counts 2 M N K flops per product. The ceiling for T threads is the best
// square figure over both implementations (bench/run_all.sh takes the maximum).
// When built with SHATTER_USE_BLAS (EIGEN_USE_BLAS), "eigen" products go to the linked BLAS.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <Eigen/Core>
#include <cstdio>

namespace {

using mat = Eigen::MatrixXf;

/// cblas_sgemm and openblas_set_num_threads looked up in libopenblas at run time.
struct openblas {
  using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                            int, float, float*, int);
  using threads_fn = void (*)(int);
  sgemm_fn sgemm = nullptr;
  threads_fn set_threads = nullptr;
  openblas() {
    for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"}) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      sgemm = reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"));
      set_threads = reinterpret_cast<threads_fn>(dlsym(h, "openblas_set_num_threads"));
      if (sgemm && set_threads) return;
      sgemm = nullptr;
    }
  }
  bool ok() const { return sgemm != nullptr; }
  void gemm(const mat& a, const mat& b, mat& c) const {
    constexpr int col_major = 102, no_trans = 111;
    sgemm(col_major, no_trans, no_trans, int(a.rows()), int(b.cols()), int(a.cols()), 1.0f,
          a.data(), int(a.rows()), b.data(), int(b.rows()), 0.0f, c.data(), int(c.rows()));
  }
};

const openblas& blas() {
  static const openblas b;
  return b;
}

template <bool Blas>
void run(benchmark::State& st, long m, long n, long k, int threads) {
  if (Blas && !blas().ok()) {
    st.SkipWithError("libopenblas.so.0 not found");
    return;
  }
  mat a = mat::Random(m, k), b = mat::Random(k, n), c(m, n);
  if (Blas) {
    blas().set_threads(threads);
    blas().gemm(a, b, c);
  } else {
    Eigen::setNbThreads(threads);
    c.noalias() = a * b;
  }
  for (auto _ : st) {
    if (Blas)
      blas().gemm(a, b, c);
    else
      c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k) * 1e-9,
                                             benchmark::Counter::kIsIterationInvariantRate);
}

template <bool Blas>
void bm_square(benchmark::State& st) {
  run<Blas>(st, st.range(0), st.range(0), st.range(0), int(st.range(1)));
}
template <bool Blas>
void bm_shape(benchmark::State& st) {
  run<Blas>(st, st.range(0), st.range(1), st.range(2), int(st.range(3)));
}

void square_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"});
  for (int threads : {1, 2})
    for (int n : {256, 512, 1024, 2048}) b->Args({n, threads});
}
void shape_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "threads"});
  for (int threads : {1, 2}) {
    b->Args({256, 128, 512, threads});   // forward W X, CReLU (and W^T dY: 512 x 128 x 256)
    b->Args({512, 128, 256, threads});   // backward dX = W^T dY, CReLU
    b->Args({256, 512, 128, threads});   // backward dW = dY X^T, CReLU
    b->Args({256, 128, 256, threads});   // ReLU forward/backward
    b->Args({256, 128, 3072, threads});  // first layer forward
  }
}

}  // namespace

BENCHMARK_TEMPLATE(bm_square, false)->Name("gemm/eigen")->Apply(square_args)->UseRealTime();
BENCHMARK_TEMPLATE(bm_square, true)->Name("gemm/openblas")->Apply(square_args)->UseRealTime();
BENCHMARK_TEMPLATE(bm_shape, false)->Name("gemm_shape/eigen")->Apply(shape_args)->UseRealTime();
BENCHMARK_TEMPLATE(bm_shape, true)->Name("gemm_shape/openblas")->Apply(shape_args)->UseRealTime();

BENCHMARK_MAIN();
