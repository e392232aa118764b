// shatter: the mirrored looks-linear initialisation for convolutions.
#ifndef SHATTER_INIT_LOOKS_LINEAR_CONV_HPP
#define SHATTER_INIT_LOOKS_LINEAR_CONV_HPP

#include <string>

#include "shatter/activation/crelu.hpp"
#include "shatter/init/looks_linear.hpp"
#include "shatter/layer/conv2d.hpp"

namespace shatter {
namespace detail {
/// Throws shape_error naming `where` and both layers unless `producer` is a CReLU whose output
/// is exactly the convolution's input (2 C channels of the conv's image size).
template <class T>
void require_crelu_producer(const conv2d<T>& conv, const layer<T>& producer,
                            const std::string& where, const char* what) {
  require<shape_error>(
      dynamic_cast<const crelu<T>*>(&producer) != nullptr, where, " ", conv.describe(), ": ", what,
      " needs a CReLU output as input, but the layer is fed by ", producer.describe());
  require<shape_error>(
      producer.out_size() == conv.in_size() && conv.input_shape().channels % 2 == 0, where, " ",
      conv.describe(), ": ", what, " needs the CReLU output (", producer.out_size(),
      " features) to equal the convolution's input (", conv.input_shape().str(), " = ",
      conv.in_size(), ") with an even channel count");
}
}  // namespace detail

namespace init {

/// Looks-linear initialisation of a convolution fed by `producer`, a CReLU producing its 2C
/// input channels [relu(z); relu(-z)]: W = [W0, -W0] along the input-channel axis, i.e. input
/// channel c and its mirror c + C get opposite kernels, so the convolution computes conv(W0, z)
/// exactly. W0 (out x C k k, the flattened kernel) is orthogonal or He-normal with fan-in C k k.
/// In the weight layout of conv2d the mirror is exactly the left/right column halves. Throws
/// shape_error naming `where` and both layers when the producer is not a CReLU of matching size.
/// Leaves the bias unchanged.
template <class T>
void looks_linear(conv2d<T>& conv, const layer<T>& producer, rng& g,
                  ll_base base = ll_base::orthogonal, const std::string& where = "looks_linear") {
  shatter::detail::require_crelu_producer(conv, producer, where, "looks-linear init");
  looks_linear(conv.weight(), g, base, shatter::detail::cat(where, " ", conv.describe()));
}

}  // namespace init
}  // namespace shatter

#endif  // SHATTER_INIT_LOOKS_LINEAR_CONV_HPP
