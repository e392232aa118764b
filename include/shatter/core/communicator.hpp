// shatter: the collective operations data-parallel training needs (an interface; the MPI
// implementation is shatter/dist/mpi.hpp, so nothing here depends on MPI).
#ifndef SHATTER_CORE_COMMUNICATOR_HPP
#define SHATTER_CORE_COMMUNICATOR_HPP

#include <cstddef>
#include <string>

namespace shatter {

/// A group of `size()` processes ("ranks", numbered 0 .. size() - 1) that take part in the same
/// collective operations. Every operation is collective: all ranks call it, in the same order
/// and with the same sizes, or the job deadlocks. Results are identical on every rank (an
/// implementation must give every rank the same bits for a sum). Rank 0 is the root: it alone
/// writes files and prints progress in data-parallel training (see fit_options::comm).
/// Thread safety: one thread per process calls the operations.
class communicator {
 public:
  virtual ~communicator() = default;

  /// This process's rank, in [0, size()).
  virtual int rank() const = 0;
  /// Number of ranks (>= 1).
  virtual int size() const = 0;

  /// In place: x[i] <- sum over the ranks of their x[i], for i < n.
  virtual void all_sum(float* x, std::size_t n) = 0;
  /// In place: x[i] <- sum over the ranks of their x[i], for i < n.
  virtual void all_sum(double* x, std::size_t n) = 0;

  /// In place: every rank's x[0 .. n) <- rank `root`'s.
  virtual void broadcast(float* x, std::size_t n, int root) = 0;
  /// In place: every rank's x[0 .. n) <- rank `root`'s.
  virtual void broadcast(double* x, std::size_t n, int root) = 0;
  /// Every rank's `s` <- rank `root`'s (any length).
  virtual void broadcast(std::string& s, int root) = 0;

  /// True on rank 0.
  bool root() const { return rank() == 0; }
};

}  // namespace shatter

#endif  // SHATTER_CORE_COMMUNICATOR_HPP
