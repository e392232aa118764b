// shatter: the templates that the optional compiled companion library (shatter::compiled)
// instantiates for float and double, declared `extern template` for its users.
//
// A program linked with shatter::compiled (CMake defines SHATTER_COMPILED for it) includes this
// header at the end of shatter/shatter.hpp: its translation units then call the library's copies
// of the layers, networks, plans, losses, optimisers, builders, initialisers, fit, evaluate,
// predict and summary instead of compiling them again (a unit that builds a net and trains it
// with fit compiles in a fraction of the time). Without the library, define nothing: everything
// is instantiated where it is used, as for any header-only library.
#ifndef SHATTER_COMPILED_HPP
#define SHATTER_COMPILED_HPP

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/identity.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tanh.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/init/he.hpp"
#include "shatter/init/looks_linear.hpp"
#include "shatter/init/orthogonal.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/flatten.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/max_pool2d.hpp"
#include "shatter/layer/subsample_pad.hpp"
#include "shatter/loss/mse.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/branch_sum.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/network/summary.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/evaluate.hpp"
#include "shatter/train/fit.hpp"
#include "shatter/train/predict.hpp"

/// The list of instantiations for scalar T, each preceded by KW: `extern template` declares
/// them (here), `template` defines them (src/compiled.cpp).
#define SHATTER_COMPILED_TEMPLATES(KW, T)                                                        \
  KW class layer<T>;                                                                             \
  KW class container<T>;                                                                         \
  KW class sequential<T>;                                                                        \
  KW class residual<T>;                                                                          \
  KW class branch_sum<T>;                                                                        \
  KW class plan<T>;                                                                              \
  KW class dense<T>;                                                                             \
  KW class conv2d<T>;                                                                            \
  KW class batch_norm<T>;                                                                        \
  KW class crelu<T>;                                                                             \
  KW class prelu<T>;                                                                             \
  KW class activation<T, relu_op<T>>;                                                            \
  KW class activation<T, leaky_relu_op<T>>;                                                      \
  KW class activation<T, tanh_op<T>>;                                                            \
  KW class activation<T, identity_op<T>>;                                                        \
  KW class global_avg_pool<T>;                                                                   \
  KW class max_pool2d<T>;                                                                        \
  KW class flatten<T>;                                                                           \
  KW class subsample_pad<T>;                                                                     \
  KW class softmax_cross_entropy<T>;                                                             \
  KW class mse<T>;                                                                               \
  KW class optimizer<T>;                                                                         \
  KW class sgd<T>;                                                                               \
  KW class adam<T>;                                                                              \
  KW void init::he_normal<T>(matrix<T>&, rng&, index, double);                                   \
  KW void init::orthogonal<T>(matrix<T>&, rng&, double);                                         \
  KW void init::looks_linear<T>(matrix<T>&, rng&, init::ll_base, const std::string&);            \
  KW void init::looks_linear<T>(dense<T>&, const layer<T>&, rng&, init::ll_base,                 \
                                const std::string&);                                             \
  KW sequential<T> plain_relu_mlp<T>(const mlp_spec&, rng&);                                     \
  KW sequential<T> plain_crelu_mlp<T>(const mlp_spec&, rng&);                                    \
  KW sequential<T> looks_linear_mlp<T>(const mlp_spec&, rng&, init::ll_base);                    \
  KW sequential<T> resnet_mlp<T>(const mlp_spec&, rng&);                                         \
  KW sequential<T> prelu_ll_mlp<T>(const mlp_spec&, rng&, init::ll_base);                        \
  KW sequential<T> tat_mlp<T>(const mlp_spec&, rng&, double, init::ll_base);                     \
  KW sequential<T> build<T>(architecture, mlp_spec, rng&);                                       \
  KW sequential<T> build_cifar<T>(cifar_arch, const cifar_spec&, rng&);                          \
  KW model_summary summary<T>(layer<T>&);                                                        \
  KW matrix<T> predict<T>(layer<T>&, const matrix<T>&, index);                                   \
  KW matrix<T> predict<T>(layer<T>&, const dataset<T>&, index);                                  \
  KW label_vector classify<T>(layer<T>&, const matrix<T>&, index);                               \
  KW label_vector classify<T>(layer<T>&, const dataset<T>&, index);                              \
  KW evaluation evaluate<T, softmax_cross_entropy<T>>(sequential<T>&, softmax_cross_entropy<T>&, \
                                                      const dataset<T>&, index);                 \
  SHATTER_COMPILED_FIT(KW, T, fit_options)                                                       \
  SHATTER_COMPILED_FIT(KW, T, run_options)

/// fit's overloads without a batch transform, for scalar T and options type O.
#define SHATTER_COMPILED_FIT(KW, T, O)                                                           \
  KW fit_result fit(sequential<T>&, softmax_cross_entropy<T>&, optimizer<T>&, const schedule&,   \
                    const dataset<T>&, const dataset<T>&, const O&);                             \
  KW fit_result fit(sequential<T>&, softmax_cross_entropy<T>&, optimizer<T>&,                    \
                    const schedule_for_run&, const dataset<T>&, const dataset<T>&, const O&);    \
  KW fit_result fit(sequential<T>&, softmax_cross_entropy<T>&, optimizer<T>&, const dataset<T>&, \
                    const dataset<T>&, const O&);                                                \
  KW fit_result fit(sequential<T>&, softmax_cross_entropy<T>&, optimizer<T>&, const schedule&,   \
                    const dataset<T>&, const O&);                                                \
  KW fit_result fit(sequential<T>&, softmax_cross_entropy<T>&, optimizer<T>&, const dataset<T>&, \
                    const O&);

#ifdef SHATTER_COMPILED
namespace shatter {
SHATTER_COMPILED_TEMPLATES(extern template, float)
SHATTER_COMPILED_TEMPLATES(extern template, double)
}  // namespace shatter
#endif

#endif  // SHATTER_COMPILED_HPP
