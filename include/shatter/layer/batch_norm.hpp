// shatter: batch normalisation over the batch (and spatial positions) per channel.
#ifndef SHATTER_LAYER_BATCH_NORM_HPP
#define SHATTER_LAYER_BATCH_NORM_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "shatter/core/communicator.hpp"
#include "shatter/exec/pool.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter {

/// How batch norm's backward pass treats the batch statistics in training mode.
enum class bn_gradient {
  through_batch_stats,  ///< differentiate through mean and variance (standard training)
  fixed_stats           ///< treat mean and variance as constants (each sample's own gradient)
};

/// Batch normalisation: y = gamma * (x - mu) / sqrt(var + eps) + beta, per channel.
/// Samples are `channels` x `spatial` values (channel-major, e.g. C x H x W images with
/// spatial = H W; spatial = 1 for dense features). In training mode mu and var (biased) are taken
/// over the batch and the spatial positions, and running averages are updated:
/// running = (1 - momentum) running + momentum * batch (the variance unbiased), as in PyTorch.
/// In evaluation mode the running statistics are used and backward treats them as constants.
/// The statistics of a forward are saved for backward (saved_size() = 2 channels + 1), which
/// reads the input and recomputes the normalised values from it; replay recomputes the output
/// from the input with the saved statistics. Each training forward also counts one batch
/// (batches_tracked(), PyTorch's `num_batches_tracked`; checkpoints keep it, nothing else reads
/// it). Thread safety: see layer.
/// Synchronized statistics (set_sync): in training mode mu and var are those of the global
/// batch, the union of every rank's batch (sums all-reduced: two reductions of `channels`
/// values in forward, one of 2 `channels` in backward, whose input gradient is then that of the
/// global batch's statistics). Every rank must run the same layers on the same shapes.
template <class T>
class batch_norm final : public layer<T> {
 public:
  /// `channels >= 1`, `spatial >= 1`, `eps > 0`, `0 <= momentum <= 1`.
  explicit batch_norm(index channels, index spatial = 1, T eps = T(1e-5), T momentum = T(0.1))
      : c_(channels), s_(spatial), eps_(eps), momentum_(momentum) {
    require<config_error>(channels >= 1 && spatial >= 1,
                          "batch_norm: channels and spatial size must be >= 1, got ", channels,
                          " and ", spatial);
    require<config_error>(eps > 0 && momentum >= 0 && momentum <= 1,
                          "batch_norm: need eps > 0 and momentum in [0, 1], got eps = ", eps,
                          ", momentum = ", momentum);
    shape_ = {c_, s_, 1};
    gamma_.setOnes(c_, 1);
    beta_.setZero(c_, 1);
    dgamma_.setZero(c_, 1);
    dbeta_.setZero(c_, 1);
    running_mean_.setZero(c_, 1);
    running_var_.setOnes(c_, 1);
    last_mean_.setZero(c_);
    last_inv_std_.setOnes(c_);
    batch_var_.setOnes(c_);
  }

  std::string kind() const override { return "batch_norm"; }
  std::string describe() const override {
    return s_ == 1 ? detail::cat("batch_norm(", c_, ")")
                   : detail::cat("batch_norm(", c_, " channels x ", s_, ")");
  }
  image_shape input_shape() const override { return shape_; }
  image_shape output_shape() const override { return shape_; }
  /// Takes samples of `channels` channels of `spatial` positions each (adopting their height and
  /// width), or, with spatial = 1, any sample of `channels` values (per-feature statistics).
  void connect(const image_shape& in, const std::string& where) override {
    const bool images = in.channels == c_ && in.spatial() == s_;
    const bool features = s_ == 1 && in.size() == c_;
    require<shape_error>(images || features, where, " ", describe(), " takes samples of ", c_,
                         " channels x ", s_, " positions but its input has shape ", in.str());
    shape_ = in;
  }
  backward_reads reads() const override { return {true, false}; }
  bool replayable() const override { return true; }
  bool in_place() const override { return true; }
  bool couples_samples() const override { return true; }
  index saved_size() const override { return 2 * c_ + 1; }

  /// Selects how backward treats batch statistics in training mode (default: through them).
  void set_gradient_mode(bn_gradient g) { grad_mode_ = g; }
  bn_gradient gradient_mode() const { return grad_mode_; }
  /// Takes the training-mode statistics over the ranks of `c` (null: this process's batch
  /// only). `c` must outlive its use; evaluation mode and tangent_kernel stay per rank.
  void set_sync(communicator* c) { sync_ = c; }
  communicator* sync() const { return sync_; }

  void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode m,
                      const kernel_env<T>& env) override {
    this->check_input(x.rows(), x.cols());
    const bool batch = m == mode::train;
    if (batch && sync_) {
      synced_forward(x, y, env);
      return;
    }
    if (batch) check_batch(x.cols());
    for_channels(env, x.cols(), [&](index c) {
      if (batch) {
        channel_statistics(x, c);
        update_running(c, x.cols());
      } else {
        running_statistics(c);
      }
      if (env.saved) {
        env.saved[c] = last_mean_(c);
        env.saved[c_ + c] = last_inv_std_(c);
      }
      normalise(x, y, c, last_mean_(c), last_inv_std_(c));
    });
    if (env.saved) env.saved[2 * c_] = batch ? T(x.cols() * s_) : T(0);
    if (batch) ++batches_tracked_;
  }

  void replay_kernel(const_batch_view<T> x, batch_view<T> y, const kernel_env<T>& env) override {
    for_channels(env, x.cols(),
                 [&](index c) { normalise(x, y, c, env.saved[c], env.saved[c_ + c]); });
  }

  void backward_kernel(const_batch_view<T> x, const_batch_view<T>, const_batch_view<T> dy,
                       batch_view<T> dx, bool param_grads, const kernel_env<T>& env) override {
    // saved[2c]: the number of values per channel the statistics came from (0: running ones).
    const T count = env.saved[2 * c_];
    const T* mean = env.saved;
    const T* inv = env.saved + c_;
    const bool through = count != T(0) && grad_mode_ == bn_gradient::through_batch_stats;
    if (through && sync_ && dx.size() != 0) {
      synced_backward(x, dy, dx, param_grads, env);
      return;
    }
    for_channels(env, dy.cols(), [&](index c) {
      const auto g = dy.middleRows(c * s_, s_).array();
      const auto h = (x.middleRows(c * s_, s_).array() - mean[c]) * inv[c];
      const T sum_g = g.sum();
      const T sum_gh = (g * h).sum();
      if (param_grads) {
        dbeta_(c, 0) = sum_g;
        dgamma_(c, 0) = sum_gh;
      }
      if (dx.size() == 0) return;
      const T k = gamma_(c, 0) * inv[c];
      if (through)
        dx.middleRows(c * s_, s_).array() = k * (g - sum_g / count - h * (sum_gh / count));
      else
        dx.middleRows(c * s_, s_).array() = k * g;
    });
  }

  /// Batch statistics (fixed or differentiated through) or the running ones, as `s` says;
  /// running buffers are not updated. Through the statistics, per channel with xhat the
  /// normalised input and means over the batch and positions:
  /// dy = gamma / sigma (dx - mean(dx) - xhat mean(dx xhat)).
  void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                      batch_view<T> dy, batch_stats s, const kernel_env<T>& env) override {
    this->check_input(x.rows(), x.cols());
    if (s != batch_stats::running) check_batch(x.cols());
    const T count = T(x.cols() * s_);
    for_channels(env, x.cols(), [&](index c) {
      // With the running statistics nothing is written but y and dy (parts of a batch may run
      // concurrently); batch statistics are recorded as the last forward's.
      T mean = running_mean_(c, 0), inv = T(1) / std::sqrt(running_var_(c, 0) + eps_);
      if (s != batch_stats::running) {
        channel_statistics(x, c);
        mean = last_mean_(c);
        inv = last_inv_std_(c);
      }
      normalise(x, y, c, mean, inv);
      const T k = gamma_(c, 0) * inv;
      const auto d = dx.middleRows(c * s_, s_).array();
      if (s != batch_stats::through) {
        dy.middleRows(c * s_, s_).array() = k * d;
        return;
      }
      const auto h = (x.middleRows(c * s_, s_).array() - mean) * inv;
      const T mean_d = d.sum() / count, mean_dh = (d * h).sum() / count;
      dy.middleRows(c * s_, s_).array() = k * (d - mean_d - h * mean_dh);
    });
  }

  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "weight", &gamma_, &dgamma_});
    out.push_back({prefix + "bias", &beta_, &dbeta_});
  }
  void collect_buffers(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    out.push_back({prefix + "running_mean", &running_mean_, nullptr});
    out.push_back({prefix + "running_var", &running_var_, nullptr});
  }
  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<batch_norm>(*this); }

  /// Scale gamma and shift beta (channels x 1).
  matrix<T>& gamma() { return gamma_; }
  matrix<T>& beta() { return beta_; }
  /// Running mean and (unbiased) variance used in evaluation mode (channels x 1).
  matrix<T>& running_mean() { return running_mean_; }
  matrix<T>& running_var() { return running_var_; }
  /// Training forwards so far (PyTorch's `num_batches_tracked`); set when a checkpoint is
  /// loaded (n >= 0).
  std::int64_t batches_tracked() const { return batches_tracked_; }
  void set_batches_tracked(std::int64_t n) {
    require<config_error>(n >= 0, describe(), ": batches tracked must be >= 0, got ", n);
    batches_tracked_ = n;
  }
  /// Channels, spatial positions per channel, eps and momentum, as constructed.
  index channels() const { return c_; }
  index spatial() const { return s_; }
  T eps() const { return eps_; }
  T momentum() const { return momentum_; }
  /// Mean and 1/sqrt(var + eps) used by the last forward or tangent (per channel).
  const vector<T>& last_mean() const { return last_mean_; }
  const vector<T>& last_inv_std() const { return last_inv_std_; }

 private:
  /// Runs f(c) for every channel: in blocks of channels on the pool when the batch is large
  /// enough to pay for it. Channels are independent, so results do not depend on the threads.
  template <class F>
  void for_channels(const kernel_env<T>& env, index n, F&& f) const {
    const int t = detail::loop_threads(env.exec);
    const index blocks =
        t > 1 && c_ * s_ * n >= (index(1) << 15) ? std::min<index>(c_, 2 * index(t)) : 1;
    if (blocks <= 1) {
      for (index c = 0; c < c_; ++c) f(c);
      return;
    }
    detail::parallel_blocks<T>(env.exec, blocks, 0, [&](index b) {
      for (index c = c_ * b / blocks; c < c_ * (b + 1) / blocks; ++c) f(c);
    });
  }
  /// Training-mode forward with the global batch's statistics: the channel sums and the value
  /// count all-reduced, then the sums of squared deviations from the global mean.
  void synced_forward(const_batch_view<T> x, batch_view<T> y, const kernel_env<T>& env) {
    sums_.resize(c_ + 1);
    for_channels(env, x.cols(), [&](index c) { sums_(c) = x.middleRows(c * s_, s_).sum(); });
    sums_(c_) = T(x.cols() * s_);
    sync_->all_sum(sums_.data(), std::size_t(c_ + 1));
    const T count = sums_(c_);
    check_batch_count(count);
    for_channels(env, x.cols(), [&](index c) {
      last_mean_(c) = sums_(c) / count;
      batch_var_(c) = (x.middleRows(c * s_, s_).array() - last_mean_(c)).square().sum();
    });
    sync_->all_sum(batch_var_.data(), std::size_t(c_));
    for_channels(env, x.cols(), [&](index c) {
      batch_var_(c) /= count;
      last_inv_std_(c) = T(1) / std::sqrt(batch_var_(c) + eps_);
      update_running_count(c, count);
      if (env.saved) {
        env.saved[c] = last_mean_(c);
        env.saved[c_ + c] = last_inv_std_(c);
      }
      normalise(x, y, c, last_mean_(c), last_inv_std_(c));
    });
    if (env.saved) env.saved[2 * c_] = count;
    ++batches_tracked_;
  }
  /// Backward through the global batch's statistics: the sums of g and g xhat all-reduced.
  void synced_backward(const_batch_view<T> x, const_batch_view<T> dy, batch_view<T> dx,
                       bool param_grads, const kernel_env<T>& env) {
    const T count = env.saved[2 * c_];
    const T* mean = env.saved;
    const T* inv = env.saved + c_;
    sums_.resize(2 * c_);
    for_channels(env, dy.cols(), [&](index c) {
      const auto g = dy.middleRows(c * s_, s_).array();
      const auto h = (x.middleRows(c * s_, s_).array() - mean[c]) * inv[c];
      sums_(c) = g.sum();
      sums_(c_ + c) = (g * h).sum();
      if (param_grads) {  // this rank's share: the gradient all-reduce adds the others'
        dbeta_(c, 0) = sums_(c);
        dgamma_(c, 0) = sums_(c_ + c);
      }
    });
    sync_->all_sum(sums_.data(), std::size_t(2 * c_));
    for_channels(env, dy.cols(), [&](index c) {
      const auto g = dy.middleRows(c * s_, s_).array();
      const auto h = (x.middleRows(c * s_, s_).array() - mean[c]) * inv[c];
      const T k = gamma_(c, 0) * inv[c];
      dx.middleRows(c * s_, s_).array() = k * (g - sums_(c) / count - h * (sums_(c_ + c) / count));
    });
  }
  /// The global batch needs two values per channel.
  void check_batch_count(T count) const {
    if (count < T(2))
      throw shape_error(detail::cat(describe(),
                                    ": training mode needs at least 2 values per "
                                    "channel over all ranks, got ",
                                    count));
  }
  /// Batch statistics need two values per channel.
  void check_batch(index n) const {
    if (n * s_ < 2)  // (the message is built only on failure: no allocation in a training step)
      throw shape_error(detail::cat(describe(),
                                    ": training mode needs at least 2 values per channel, got a "
                                    "batch of ",
                                    n));
  }
  /// Channel c's batch mean and 1/sqrt(var + eps) (biased variance) into last_mean_ /
  /// last_inv_std_.
  void channel_statistics(const_batch_view<T> x, index c) {
    const index count = x.cols() * s_;
    const auto block = x.middleRows(c * s_, s_).array();
    const T mu = block.sum() / T(count);
    const T var = (block - mu).square().sum() / T(count);
    last_mean_(c) = mu;
    batch_var_(c) = var;
    last_inv_std_(c) = T(1) / std::sqrt(var + eps_);
  }
  /// running = (1 - momentum) running + momentum batch for channel c, the variance unbiased.
  void update_running(index c, index n) { update_running_count(c, T(n * s_)); }
  /// The same from the number of values per channel the batch statistics came from.
  void update_running_count(index c, T count) {
    running_mean_(c, 0) = (1 - momentum_) * running_mean_(c, 0) + momentum_ * last_mean_(c);
    running_var_(c, 0) =
        (1 - momentum_) * running_var_(c, 0) + momentum_ * batch_var_(c) * count / (count - 1);
  }
  void running_statistics(index c) {
    last_mean_(c) = running_mean_(c, 0);
    last_inv_std_(c) = T(1) / std::sqrt(running_var_(c, 0) + eps_);
  }
  /// y = gamma (x - mean) inv + beta for channel c.
  void normalise(const_batch_view<T> x, batch_view<T> y, index c, T mean, T inv) const {
    y.middleRows(c * s_, s_).array() =
        (x.middleRows(c * s_, s_).array() - mean) * inv * gamma_(c, 0) + beta_(c, 0);
  }

  index c_, s_;
  T eps_, momentum_;
  image_shape shape_;
  bn_gradient grad_mode_ = bn_gradient::through_batch_stats;
  matrix<T> gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
  vector<T> last_mean_, last_inv_std_, batch_var_;
  communicator* sync_ = nullptr;  ///< ranks whose batches share the statistics (null: none)
  vector<T> sums_;                ///< per-channel sums exchanged with the other ranks
  std::int64_t batches_tracked_ = 0;
};

namespace detail {
/// Appends the batch norms in `l` (itself, or those inside it), in layer order.
template <class T>
void append_batch_norms(layer<T>& l, std::vector<batch_norm<T>*>& out) {
  if (auto* bn = dynamic_cast<batch_norm<T>*>(&l)) out.push_back(bn);
  l.for_each_child([&out](const std::string&, layer<T>& c) { append_batch_norms(c, out); });
}
}  // namespace detail

/// The batch norms in `net` (containers walked), in layer order.
template <class T>
std::vector<batch_norm<T>*> batch_norms_of(layer<T>& net) {
  std::vector<batch_norm<T>*> out;
  detail::append_batch_norms(net, out);
  return out;
}

}  // namespace shatter

#endif  // SHATTER_LAYER_BATCH_NORM_HPP
