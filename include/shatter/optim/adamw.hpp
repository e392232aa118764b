// shatter: the AdamW optimiser (Adam with decoupled weight decay), PyTorch's defaults.
#ifndef SHATTER_OPTIM_ADAMW_HPP
#define SHATTER_OPTIM_ADAMW_HPP

#include <utility>
#include <vector>

#include "shatter/optim/adam.hpp"

namespace shatter {

/// Options of `adamw`; the defaults are `torch.optim.AdamW`'s (weight decay 0.01).
struct adamw_options {
  double lr = 1e-3;            ///< learning rate (>= 0)
  double beta1 = 0.9;          ///< first-moment decay in [0, 1)
  double beta2 = 0.999;        ///< second-moment decay in [0, 1)
  double eps = 1e-8;           ///< added to the denominator (> 0)
  double weight_decay = 0.01;  ///< lambda (>= 0), decoupled from the gradient
};

/// AdamW (Loshchilov and Hutter 2019) with `torch.optim.AdamW` semantics: at step t (1-based),
/// per parameter p with gradient g,
///   p *= 1 - lr lambda;   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;
///   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// Its kind is "adamw": a checkpoint of it does not load into `adam` (nor an Adam checkpoint into
/// it). State: "adam.m.<name>" and "adam.v.<name>" per parameter; t is `steps()`.
template <class T>
class adamw final : public detail::adam_base<T> {
 public:
  /// Binds `params`; config_error for an invalid option.
  adamw(std::vector<tensor_ref<T>> params, const adamw_options& o = {})
      : detail::adam_base<T>(std::move(params), to_adam(o), "adamw") {}

 private:
  static adam_options to_adam(const adamw_options& o) {
    adam_options a;
    a.lr = o.lr;
    a.beta1 = o.beta1;
    a.beta2 = o.beta2;
    a.eps = o.eps;
    a.weight_decay = o.weight_decay;
    a.decoupled_weight_decay = true;
    return a;
  }
};

}  // namespace shatter

#endif  // SHATTER_OPTIM_ADAMW_HPP
