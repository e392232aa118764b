// shatter: the Adam optimiser (with L2 or decoupled weight decay).
#ifndef SHATTER_OPTIM_ADAM_HPP
#define SHATTER_OPTIM_ADAM_HPP

#include <cmath>
#include <string>
#include <vector>

#include "shatter/exec/pool.hpp"
#include "shatter/optim/optimizer.hpp"

namespace shatter {

/// Options of `adam`; the defaults are PyTorch's.
struct adam_options {
  double lr = 1e-3;                     ///< learning rate (>= 0)
  double beta1 = 0.9;                   ///< first-moment decay in [0, 1)
  double beta2 = 0.999;                 ///< second-moment decay in [0, 1)
  double eps = 1e-8;                    ///< added to the denominator (> 0)
  double weight_decay = 0.0;            ///< lambda (>= 0)
  bool decoupled_weight_decay = false;  ///< false: L2 as torch.optim.Adam; true: AdamW
};

namespace detail {

/// The Adam update shared by `adam` and `adamw` (see adam): options, moments, the step.
template <class T>
class adam_base : public optimizer<T> {
 public:
  /// "adamw" with decoupled weight decay (whichever class), else "adam": the two keep the same
  /// state but compute different updates, so a checkpoint of one does not load into the other.
  std::string kind() const override { return o_.decoupled_weight_decay ? "adamw" : "adam"; }

  void step() override {
    const double t = static_cast<double>(this->steps_ + 1);
    const T b1 = T(o_.beta1), b2 = T(o_.beta2), wd = T(o_.weight_decay), eps = T(o_.eps);
    const T step_size = T(this->lr_ / (1 - std::pow(o_.beta1, t)));
    const T inv_sqrt_bc2 = T(1 / std::sqrt(1 - std::pow(o_.beta2, t)));
    const bool l2 = wd != T(0) && !o_.decoupled_weight_decay;
    const T lr = T(this->lr_);
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      this->check_shapes(k, m_[k]);
      T* pd = this->params_[k].value->data();
      const T* gd = this->params_[k].grad->data();
      T* md = m_[k].data();
      T* vd = v_[k].data();
      // elementwise, so large parameters are updated in blocks on the thread pool
      detail::parallel_columns(
          detail::default_context(), 1, this->params_[k].value->size(), [&](index c0, index c1) {
            using vec = Eigen::Array<T, Eigen::Dynamic, 1>;
            Eigen::Map<vec> p(pd + c0, c1 - c0), m(md + c0, c1 - c0), v(vd + c0, c1 - c0);
            const Eigen::Map<const vec> g(gd + c0, c1 - c0);
            if (wd != T(0) && o_.decoupled_weight_decay) p *= T(1) - lr * wd;
            if (l2) {
              m = b1 * m + (T(1) - b1) * (g + wd * p);
              v = b2 * v + (T(1) - b2) * (g + wd * p).square();
            } else {
              m = b1 * m + (T(1) - b1) * g;
              v = b2 * v + (T(1) - b2) * g.square();
            }
            p -= step_size * m / (v.sqrt() * inv_sqrt_bc2 + eps);
          });
    }
    ++this->steps_;
  }

  std::vector<tensor_ref<T>> state() override {
    std::vector<tensor_ref<T>> out;
    for (std::size_t k = 0; k < m_.size(); ++k) {
      out.push_back({"adam.m." + this->params_[k].name, &m_[k], nullptr});
      out.push_back({"adam.v." + this->params_[k].name, &v_[k], nullptr});
    }
    return out;
  }

  /// The options given at construction (the learning rate may have changed since).
  const adam_options& options() const { return o_; }

 protected:
  /// Binds `params`; config_error naming `who` for an invalid option.
  adam_base(std::vector<tensor_ref<T>> params, const adam_options& o, const char* who)
      : optimizer<T>(std::move(params), o.lr, who), o_(o) {
    require<config_error>(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, who,
                          ": beta1 and beta2 must be in [0, 1), got ", o.beta1, " and ", o.beta2);
    require<config_error>(std::isfinite(o.eps) && o.eps > 0, who, ": eps must be > 0, got ", o.eps);
    require<config_error>(std::isfinite(o.weight_decay) && o.weight_decay >= 0, who,
                          ": weight decay must be finite and >= 0, got ", o.weight_decay);
    for (const auto& p : this->params_) {
      m_.push_back(matrix<T>::Zero(p.value->rows(), p.value->cols()));
      v_.push_back(matrix<T>::Zero(p.value->rows(), p.value->cols()));
    }
  }

 private:
  adam_options o_;
  std::vector<matrix<T>> m_, v_;
};

}  // namespace detail

/// Adam with PyTorch's `torch.optim.Adam` semantics: at step t (1-based), per parameter p,
///   d = g + lambda p  (decoupled, as AdamW: p *= 1 - lr lambda, d = g);
///   m = b1 m + (1 - b1) d;   v = b2 v + (1 - b2) d^2;
///   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// State: "adam.m.<name>" and "adam.v.<name>" per parameter; t is `steps()`. Its kind is "adam",
/// or "adamw" with decoupled_weight_decay (prefer shatter::adamw, optim/adamw.hpp, which has
/// AdamW's defaults).
template <class T>
class adam final : public detail::adam_base<T> {
 public:
  /// Binds `params`; config_error for an invalid option.
  adam(std::vector<tensor_ref<T>> params, const adam_options& o = {})
      : detail::adam_base<T>(std::move(params), o, "adam") {}
};

}  // namespace shatter

#endif  // SHATTER_OPTIM_ADAM_HPP
