// Times shatter's MPI sum (mpi_communicator::all_sum, MPI_Allreduce in place on floats) between
// the ranks of an mpirun job: for each count of floats on the command line, the median over
// `reps` calls after 3 warm-up calls, printed by rank 0 as "floats bytes median_ms".
//   mpirun -np 2 allreduce_time REPS COUNT...      (built by bench/mpi_throughput.sh)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "shatter/dist/mpi.hpp"

int main(int argc, char** argv) {
  shatter::dist::mpi_session session(argc, argv, "allreduce_time");
  shatter::dist::mpi_communicator comm;
  if (argc < 3) {
    if (comm.root()) std::fprintf(stderr, "usage: allreduce_time REPS COUNT...\n");
    return 2;
  }
  const int reps = std::max(1, std::atoi(argv[1]));
  for (int a = 2; a < argc; ++a) {
    const std::size_t n = std::size_t(std::atoll(argv[a]));
    std::vector<float> x(n, 1.0f);
    std::vector<double> ms;
    for (int r = 0; r < reps + 3; ++r) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.all_sum(x.data(), n);
      const double t =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r >= 3) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    double med = ms[ms.size() / 2];
    comm.broadcast(&med, 1, 0);
    if (comm.root()) std::printf("%zu %zu %.4f\n", n, n * sizeof(float), med);
  }
  return 0;
}
