// shatter: the concatenated rectified linear unit (CReLU).
#ifndef SHATTER_ACTIVATION_CRELU_HPP
#define SHATTER_ACTIVATION_CRELU_HPP

#include "shatter/layer/layer.hpp"
#include "shatter/layer/parallel.hpp"

namespace shatter {

/// CReLU: y = [relu(z); relu(-z)], stacked along the feature axis, so n inputs give 2n outputs
/// (rows 0..n-1 hold relu(z), rows n..2n-1 hold relu(-z); for images flattened channel-major
/// this is concatenation along channels). Since relu(z) - relu(-z) = z, a following layer with
/// weights [W0, -W0] computes W0 z: the looks-linear identity.
///
/// Derivative at z = 0: the gradient flows through the first half only, dy/dz = (1[z >= 0],
/// -1[z < 0]). Exactly one half passes it for every z, so d(relu(z) - relu(-z))/dz = 1
/// everywhere, including 0, and a looks-linear network's input gradient is exactly constant.
/// Thread safety: not thread-safe (forward and backward write the layer's buffers); distinct
/// instances, e.g. clones, may run on distinct threads concurrently.
template <class T>
class crelu final : public layer<T> {
 public:
  crelu() = default;
  std::string kind() const override { return "crelu"; }
  std::string describe() const override {
    return n_ ? detail::cat("crelu(", n_, " -> ", 2 * n_, ")") : "crelu";
  }
  index in_size() const override { return n_; }
  index out_size() const override { return 2 * n_; }
  void connect(index n, const std::string& where) override {
    if (n_ == 0) {
      require<shape_error>(n >= 1, where, " crelu: input size must be >= 1, got ", n);
      n_ = n;
    } else {
      layer<T>::connect(n, where);
    }
  }

  const matrix<T>& forward(const matrix<T>& x, mode) override {
    if (n_ == 0) n_ = x.rows();
    this->check_input(x);
    this->x_ = &x;
    this->y_.resize(2 * n_, x.cols());
    detail::parallel_columns(2 * n_, x.cols(), [&](index c0, index c1) {
      for (index c = c0; c < c1; ++c) {
        const auto z = x.col(c).array();
        this->y_.col(c).head(n_).array() = z.max(T(0));
        this->y_.col(c).tail(n_).array() = (-z).max(T(0));
      }
    });
    return this->y_;
  }

  const matrix<T>& backward(const matrix<T>& dy) override {
    this->check_output_grad(dy);
    this->dx_.resize(n_, dy.cols());
    const matrix<T>& x = *this->x_;
    detail::parallel_columns(2 * n_, dy.cols(), [&](index c0, index c1) {
      for (index c = c0; c < c1; ++c)
        this->dx_.col(c).array() =
            (x.col(c).array() >= T(0))
                .select(dy.col(c).head(n_).array(), -dy.col(c).tail(n_).array());
    });
    return this->dx_;
  }

  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<crelu>(*this); }

 private:
  index n_ = 0;
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_CRELU_HPP
