// shatter: umbrella header, includes the whole public API.
// Include only the headers you use to keep compile times down; this one is for convenience.
#ifndef SHATTER_SHATTER_HPP
#define SHATTER_SHATTER_HPP

#include "shatter/version.hpp"

#include "shatter/core/build_note.hpp"
#include "shatter/core/error.hpp"
#include "shatter/core/file.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/shape.hpp"
#include "shatter/core/tensor_ref.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"

#include "shatter/exec/pool.hpp"

#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/conv2d.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/flatten.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/layer/max_pool2d.hpp"
#include "shatter/layer/program.hpp"
#include "shatter/layer/subsample_pad.hpp"

#include "shatter/activation/crelu.hpp"
#include "shatter/activation/elementwise.hpp"
#include "shatter/activation/identity.hpp"
#include "shatter/activation/leaky_relu.hpp"
#include "shatter/activation/prelu.hpp"
#include "shatter/activation/relu.hpp"
#include "shatter/activation/tanh.hpp"
#include "shatter/activation/tat.hpp"

#include "shatter/init/delta_orthogonal.hpp"
#include "shatter/init/glorot.hpp"
#include "shatter/init/he.hpp"
#include "shatter/init/looks_linear.hpp"
#include "shatter/init/looks_linear_conv.hpp"
#include "shatter/init/orthogonal.hpp"

#include "shatter/network/branch_sum.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/network/container.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/network/residual.hpp"
#include "shatter/network/sequential.hpp"
#include "shatter/network/summary.hpp"

#include "shatter/data/augment.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/data/idx.hpp"
#include "shatter/data/image_data.hpp"
#include "shatter/data/normalize.hpp"
#include "shatter/loss/mse.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/optim/adam.hpp"
#include "shatter/optim/optimizer.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/evaluate.hpp"
#include "shatter/train/fit.hpp"
#include "shatter/train/fit_record.hpp"
#include "shatter/train/nonfinite.hpp"
#include "shatter/train/predict.hpp"
#include "shatter/train/run_directory.hpp"
#include "shatter/train/shuffle.hpp"
#include "shatter/train/stop.hpp"

#include "shatter/io/atomic_file.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/io/json.hpp"
#include "shatter/io/safetensors.hpp"

#include "shatter/probe/jacobian_spectrum.hpp"
#include "shatter/probe/noise.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/probe/synthetic.hpp"
#include "shatter/probe/theory.hpp"
#include "shatter/probe/units.hpp"

// With the compiled companion library (shatter::compiled): its instantiations, declared extern.
#include "shatter/compiled.hpp"

#endif  // SHATTER_SHATTER_HPP
