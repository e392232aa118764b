// shatter: the pieces of data-parallel training fit uses (shards of a global batch, broadcasts
// of the network's state, the bucketed gradient sum, errors agreed across ranks), over the
// communicator interface, so nothing here depends on MPI.
#ifndef SHATTER_TRAIN_DATA_PARALLEL_HPP
#define SHATTER_TRAIN_DATA_PARALLEL_HPP

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shatter/core/communicator.hpp"
#include "shatter/core/error.hpp"
#include "shatter/core/tensor_ref.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/train/run_directory.hpp"

namespace shatter {

/// The columns [first, first + count) of a global batch that one rank takes.
struct batch_shard {
  index first = 0;
  index count = 0;
};

/// Rank `rank` of `ranks` takes the samples [m rank / ranks, m (rank + 1) / ranks) of a global
/// batch of m: contiguous, disjoint, covering the batch, sizes differing by at most one.
inline batch_shard shard_of(index m, int rank, int ranks) {
  const index lo = m * rank / ranks, hi = m * (rank + 1) / ranks;
  return {lo, hi - lo};
}

/// Sets every batch norm of `net` to take its training statistics over the ranks of `c` (null:
/// per rank, as PyTorch's DistributedDataParallel does); returns how many layers it set.
template <class T>
index set_batch_norm_sync(sequential<T>& net, communicator* c) {
  const std::vector<batch_norm<T>*> norms = batch_norms_of<T>(net);
  for (batch_norm<T>* bn : norms) bn->set_sync(c);
  return index(norms.size());
}

/// Every rank's tensors <- rank `root`'s (values only; the shapes must agree already), packed
/// into one broadcast (one message latency however many tensors) through `scratch` (reused).
template <class T>
void broadcast_tensors(communicator& c, const std::vector<tensor_ref<T>>& ts,
                       std::vector<T>& scratch, int root = 0) {
  std::size_t n = 0;
  for (const auto& t : ts) n += std::size_t(t.value->size());
  if (n == 0) return;
  std::vector<T>& flat = scratch;
  flat.resize(n);
  T* at = flat.data();
  for (const auto& t : ts) at = std::copy(t.value->data(), t.value->data() + t.value->size(), at);
  c.broadcast(flat.data(), n, root);
  at = flat.data();
  for (const auto& t : ts) {
    std::copy(at, at + t.value->size(), t.value->data());
    at += t.value->size();
  }
}

/// broadcast_tensors with a scratch buffer of its own.
template <class T>
void broadcast_tensors(communicator& c, const std::vector<tensor_ref<T>>& ts, int root = 0) {
  std::vector<T> scratch;
  broadcast_tensors(c, ts, scratch, root);
}

/// Sums the gradients of `params` over the ranks, in place: packed in backward order (last
/// parameter first) into buckets of about `bucket_elements` values, one all-reduce per bucket,
/// always the same buckets in the same order, so the sums are reproducible. A tensor larger than
/// a bucket is reduced in place on its own. `seconds()` is the time spent in all_sum so far.
template <class T>
class gradient_reducer {
 public:
  explicit gradient_reducer(std::vector<tensor_ref<T>> params,
                            std::size_t bucket_elements = std::size_t(1) << 20)
      : params_(std::move(params)) {
    std::size_t fill = 0;
    for (std::size_t k = params_.size(); k-- > 0;) {
      const auto n = std::size_t(params_[k].grad->size());
      if (n >= bucket_elements || fill + n > bucket_elements) {
        if (fill) close_bucket(fill);
        fill = 0;
      }
      members_.push_back(k);
      fill += n;
      if (n >= bucket_elements) {
        close_bucket(fill);
        fill = 0;
      }
    }
    if (fill) close_bucket(fill);
  }

  /// Sums every bound gradient over the ranks of `c` (collective).
  void all_sum(communicator& c) {
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t begin = 0;
    for (const auto& b : buckets_) {
      if (b.end - begin == 1) {  // one tensor: in place, no copy
        auto& g = *params_[members_[begin]].grad;
        c.all_sum(g.data(), std::size_t(g.size()));
      } else {
        buffer_.resize(b.elements);
        std::size_t at = 0;
        for (std::size_t i = begin; i < b.end; ++i) {
          const auto& g = *params_[members_[i]].grad;
          std::copy(g.data(), g.data() + g.size(), buffer_.data() + at);
          at += std::size_t(g.size());
        }
        c.all_sum(buffer_.data(), at);
        at = 0;
        for (std::size_t i = begin; i < b.end; ++i) {
          auto& g = *params_[members_[i]].grad;
          std::copy(buffer_.data() + at, buffer_.data() + at + g.size(), g.data());
          at += std::size_t(g.size());
        }
      }
      begin = b.end;
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  /// Number of buckets (all-reduce calls per step).
  std::size_t buckets() const { return buckets_.size(); }
  /// Wall time spent in all_sum so far, in seconds.
  double seconds() const { return seconds_; }

 private:
  struct bucket {
    std::size_t end = 0;       ///< one past its last entry of members_
    std::size_t elements = 0;  ///< values in it
  };
  void close_bucket(std::size_t elements) { buckets_.push_back({members_.size(), elements}); }

  std::vector<tensor_ref<T>> params_;
  std::vector<std::size_t> members_;  ///< parameter indices in bucket order
  std::vector<bucket> buckets_;
  std::vector<T> buffer_;
  double seconds_ = 0;
};

namespace detail {
/// Runs `f` on the root rank only and makes every rank end the same way: if `f` threw a
/// shatter error there, every rank throws one of the same kind and message (so no rank waits
/// for a root that gave up). With `c` null, simply runs `f`.
template <class F>
void on_root_agreed(communicator* c, F&& f) {
  if (!c) {
    f();
    return;
  }
  std::string failure;  // kind letter + message; empty: success
  if (c->root()) {
    try {
      f();
    } catch (const run_refused& e) {
      failure = std::string("r") + e.what();
    } catch (const data_error& e) {
      failure = std::string("d") + e.what();
    } catch (const config_error& e) {
      failure = std::string("c") + e.what();
    } catch (const std::exception& e) {
      failure = std::string("e") + e.what();
    }
  }
  c->broadcast(failure, 0);
  if (failure.empty()) return;
  const std::string msg = failure.substr(1);
  switch (failure[0]) {
    case 'r':
      throw run_refused(msg);
    case 'd':
      throw data_error(msg);
    case 'c':
      throw config_error(msg);
    default:
      throw error(msg);
  }
}

/// True on every rank when `flag` is true on any of them (collective).
inline bool any_rank(communicator& c, bool flag) {
  double v = flag ? 1 : 0;
  c.all_sum(&v, 1);
  return v > 0;
}
}  // namespace detail

}  // namespace shatter

#endif  // SHATTER_TRAIN_DATA_PARALLEL_HPP
