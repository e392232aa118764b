// shatter: stochastic gradient descent with momentum, Nesterov momentum and weight decay.
#ifndef SHATTER_OPTIM_SGD_HPP
#define SHATTER_OPTIM_SGD_HPP

#include <memory>
#include <string>
#include <vector>

#include "shatter/exec/pool.hpp"
#include "shatter/optim/optimizer.hpp"

namespace shatter {

/// Options of `sgd`. Defaults: plain SGD with learning rate 0.01.
struct sgd_options {
  double lr = 0.01;           ///< learning rate (>= 0)
  double momentum = 0.0;      ///< momentum mu in [0, 1)
  bool nesterov = false;      ///< Nesterov momentum (requires momentum > 0)
  double weight_decay = 0.0;  ///< L2 coefficient lambda (>= 0), added to the gradient
};

/// SGD with PyTorch's `torch.optim.SGD` semantics (dampening 0): per parameter p with gradient g,
///   d = g + lambda p;  buf = mu buf + d  (buf starts at 0);
///   p -= lr * (nesterov ? d + mu buf : buf)      (without momentum: p -= lr d).
/// State: one momentum buffer per parameter ("momentum.<name>"), only when momentum > 0.
template <class T>
class sgd final : public optimizer<T> {
 public:
  /// Binds `params`; config_error for an invalid option (negative rate, momentum outside
  /// [0, 1), Nesterov without momentum, negative weight decay).
  sgd(std::vector<tensor_ref<T>> params, const sgd_options& o = {})
      : optimizer<T>(std::move(params), o.lr, "sgd"), o_(o) {
    require<config_error>(std::isfinite(o.momentum) && o.momentum >= 0 && o.momentum < 1,
                          "sgd: momentum must be in [0, 1), got ", o.momentum);
    require<config_error>(!o.nesterov || o.momentum > 0,
                          "sgd: Nesterov momentum requires momentum > 0");
    require<config_error>(std::isfinite(o.weight_decay) && o.weight_decay >= 0,
                          "sgd: weight decay must be finite and >= 0, got ", o.weight_decay);
    if (o.momentum > 0)
      for (const auto& p : this->params_)
        buf_.push_back(matrix<T>::Zero(p.value->rows(), p.value->cols()));
  }

  std::string kind() const override { return "sgd"; }

  void step() override {
    const T lr = T(this->lr_), mu = T(o_.momentum), wd = T(o_.weight_decay);
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      if (!buf_.empty()) this->check_shapes(k, buf_[k]);
      T* pd = this->params_[k].value->data();
      const T* gd = this->params_[k].grad->data();
      T* bd = buf_.empty() ? nullptr : buf_[k].data();
      // elementwise, so large parameters are updated in blocks on the thread pool
      detail::parallel_columns(detail::default_context(), 1, this->params_[k].value->size(),
                               [&](index c0, index c1) {
                                 using vec = Eigen::Array<T, Eigen::Dynamic, 1>;
                                 Eigen::Map<vec> p(pd + c0, c1 - c0);
                                 const Eigen::Map<const vec> g(gd + c0, c1 - c0);
                                 if (!bd) {
                                   if (wd != T(0))
                                     p -= lr * (g + wd * p);
                                   else
                                     p -= lr * g;
                                   return;
                                 }
                                 Eigen::Map<vec> b(bd + c0, c1 - c0);
                                 if (wd != T(0))
                                   b = mu * b + (g + wd * p);
                                 else
                                   b = mu * b + g;
                                 if (o_.nesterov) {
                                   if (wd != T(0))
                                     p -= lr * (g + wd * p + mu * b);
                                   else
                                     p -= lr * (g + mu * b);
                                 } else {
                                   p -= lr * b;
                                 }
                               });
    }
    ++this->steps_;
  }

  std::vector<tensor_ref<T>> state() override {
    std::vector<tensor_ref<T>> out;
    for (std::size_t k = 0; k < buf_.size(); ++k)
      out.push_back({"momentum." + this->params_[k].name, &buf_[k], nullptr});
    return out;
  }

  /// The options given at construction (the learning rate may have changed since).
  const sgd_options& options() const { return o_; }

 private:
  sgd_options o_;
  std::vector<matrix<T>> buf_;
};

}  // namespace shatter

#endif  // SHATTER_OPTIM_SGD_HPP
