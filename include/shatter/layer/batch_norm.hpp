// shatter: batch normalisation over the batch (and spatial positions) per channel.
#ifndef SHATTER_LAYER_BATCH_NORM_HPP
#define SHATTER_LAYER_BATCH_NORM_HPP

#include <cmath>

#include "shatter/layer/layer.hpp"

namespace shatter {

/// How batch norm's backward pass treats the batch statistics in training mode.
enum class bn_gradient {
  through_batch_stats,  ///< differentiate through mean and variance (standard training)
  fixed_stats           ///< treat mean and variance as constants (each sample's own gradient)
};

/// Batch normalisation: y = gamma * (x - mu) / sqrt(var + eps) + beta, per channel.
/// Input rows are `channels * spatial` (channel-major, e.g. C x H x W images with spatial = H W;
/// spatial = 1 for dense features). In training mode mu and var (biased) are taken over the batch
/// and the spatial positions, and running averages are updated:
/// running = (1 - momentum) running + momentum * batch (the variance unbiased), as in PyTorch.
/// In evaluation mode the running statistics are used and backward treats them as constants.
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
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
    gamma_.setOnes(c_, 1);
    beta_.setZero(c_, 1);
    dgamma_.setZero(c_, 1);
    dbeta_.setZero(c_, 1);
    running_mean_.setZero(c_, 1);
    running_var_.setOnes(c_, 1);
  }

  std::string kind() const override { return "batch_norm"; }
  std::string describe() const override {
    return s_ == 1 ? detail::cat("batch_norm(", c_, ")")
                   : detail::cat("batch_norm(", c_, " channels x ", s_, ")");
  }
  index in_size() const override { return c_ * s_; }
  index out_size() const override { return c_ * s_; }

  /// Selects how backward treats batch statistics in training mode (default: through them).
  void set_gradient_mode(bn_gradient g) { grad_mode_ = g; }
  bn_gradient gradient_mode() const { return grad_mode_; }

  const matrix<T>& forward(const matrix<T>& x, mode m) override {
    this->check_input(x);
    this->x_ = &x;
    const index n = x.cols();
    last_mode_ = m;
    mean_.resize(c_);
    inv_std_.resize(c_);
    if (m == mode::train) {
      const index count = n * s_;
      require<shape_error>(count >= 2, describe(),
                           ": training mode needs at least 2 values per channel, got a batch of ",
                           n);
      for (index c = 0; c < c_; ++c) {
        auto block = x.middleRows(c * s_, s_);
        const T mu = block.sum() / T(count);
        const T var = (block.array() - mu).square().sum() / T(count);
        mean_(c) = mu;
        inv_std_(c) = T(1) / std::sqrt(var + eps_);
        running_mean_(c, 0) = (1 - momentum_) * running_mean_(c, 0) + momentum_ * mu;
        running_var_(c, 0) =
            (1 - momentum_) * running_var_(c, 0) + momentum_ * var * T(count) / T(count - 1);
      }
    } else {
      for (index c = 0; c < c_; ++c) {
        mean_(c) = running_mean_(c, 0);
        inv_std_(c) = T(1) / std::sqrt(running_var_(c, 0) + eps_);
      }
    }
    xhat_.resize(x.rows(), n);
    this->y_.resize(x.rows(), n);
    for (index c = 0; c < c_; ++c) {
      auto rows = Eigen::seqN(c * s_, s_);
      xhat_(rows, Eigen::all).array() = (x(rows, Eigen::all).array() - mean_(c)) * inv_std_(c);
      this->y_(rows, Eigen::all).array() =
          xhat_(rows, Eigen::all).array() * gamma_(c, 0) + beta_(c, 0);
    }
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    const index n = dy.cols();
    const T count = T(n * s_);
    this->dx_.resize(dy.rows(), n);
    const bool through =
        last_mode_ == mode::train && grad_mode_ == bn_gradient::through_batch_stats;
    for (index c = 0; c < c_; ++c) {
      auto rows = Eigen::seqN(c * s_, s_);
      const auto g = dy(rows, Eigen::all).array();
      const auto h = xhat_(rows, Eigen::all).array();
      const T sum_g = g.sum();
      const T sum_gh = (g * h).sum();
      dbeta_(c, 0) = sum_g;
      dgamma_(c, 0) = sum_gh;
      const T k = gamma_(c, 0) * inv_std_(c);
      if (through) {
        this->dx_(rows, Eigen::all).array() = k * (g - sum_g / count - h * (sum_gh / count));
      } else {
        this->dx_(rows, Eigen::all).array() = k * g;
      }
    }
    return this->dx_;
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
  /// Mean and 1/sqrt(var + eps) used by the last forward (per channel).
  const vector<T>& last_mean() const { return mean_; }
  const vector<T>& last_inv_std() const { return inv_std_; }

 private:
  index c_, s_;
  T eps_, momentum_;
  bn_gradient grad_mode_ = bn_gradient::through_batch_stats;
  mode last_mode_ = mode::train;
  matrix<T> gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
  vector<T> mean_, inv_std_;
  matrix<T> xhat_;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_BATCH_NORM_HPP
