// shatter: common base of activations that act on each feature separately.
#ifndef SHATTER_ACTIVATION_ELEMENTWISE_HPP
#define SHATTER_ACTIVATION_ELEMENTWISE_HPP

#include "shatter/layer/layer.hpp"

namespace shatter {

/// Base of size-preserving activations: `out_size() == in_size()`. Constructed without a size,
/// it adopts the size of whatever it is connected to (or the first batch it sees).
template <class T>
class elementwise : public layer<T> {
 public:
  index in_size() const override { return n_; }
  index out_size() const override { return n_; }
  std::string describe() const override {
    return n_ ? detail::cat(this->kind(), "(", n_, ")") : this->kind();
  }
  void connect(index n, const std::string& where) override {
    if (n_ == 0) {
      require<shape_error>(n >= 1, where, " ", this->kind(), ": input size must be >= 1, got ", n);
      n_ = n;
    } else {
      layer<T>::connect(n, where);
    }
  }

 protected:
  explicit elementwise(index n = 0) : n_(n) {}
  /// Adopts the batch's size if not yet connected, then checks it; records the input.
  void begin_forward(const matrix<T>& x) {
    if (n_ == 0) n_ = x.rows();
    this->check_input(x);
    this->x_ = &x;
    this->y_.resize(x.rows(), x.cols());
  }
  /// Checks dy and sizes dx.
  void begin_backward(const matrix<T>& dy) {
    this->check_output_grad(dy);
    this->dx_.resize(dy.rows(), dy.cols());
  }
  index n_;
};

}  // namespace shatter

#endif  // SHATTER_ACTIVATION_ELEMENTWISE_HPP
