// shatter: the mirrored looks-linear initialisation (Balduzzi et al. 2017).
#ifndef SHATTER_INIT_LOOKS_LINEAR_HPP
#define SHATTER_INIT_LOOKS_LINEAR_HPP

#include <cmath>
#include <string>

#include "shatter/activation/crelu.hpp"
#include "shatter/init/he.hpp"
#include "shatter/init/orthogonal.hpp"
#include "shatter/layer/dense.hpp"
#include "shatter/layer/global_avg_pool.hpp"

namespace shatter::init {

/// How the base matrix W0 of a looks-linear layer is drawn.
enum class ll_base {
  orthogonal,  ///< W0 (semi-)orthogonal: the whole linear-at-init network is norm-preserving
  he_normal    ///< W0 ~ N(0, 1/N), N = W0's fan-in (He's 2 / (2N) for the layer's fan-in 2N)
};

/// Mirrored looks-linear weights for a layer that consumes a CReLU output of 2N features:
/// W = [W0, -W0] with W0 of shape out x N, so W [relu(z); relu(-z)] = W0 z exactly. The two
/// halves are stored in one matrix but are independent trainable entries: their gradients differ
/// (dy relu(z)^T vs -dy relu(-z)^T), so the symmetry breaks at the first update.
/// Precondition: W.cols() even; `where` names the layer in the error otherwise.
template <class T>
void looks_linear(matrix<T>& w, rng& g, ll_base base = ll_base::orthogonal,
                  const std::string& where = "looks_linear") {
  require<shape_error>(w.size() > 0 && w.cols() % 2 == 0, where,
                       ": a looks-linear layer needs an even number of inputs [relu(z); relu(-z)],"
                       " got a ",
                       w.rows(), " x ", w.cols(), " weight matrix");
  const index n = w.cols() / 2;
  matrix<T> w0(w.rows(), n);
  if (base == ll_base::orthogonal)
    orthogonal(w0, g);
  else
    he_normal(w0, g, n, 1.0);
  w.leftCols(n) = w0;
  w.rightCols(n) = -w0;
}

/// Looks-linear initialisation of a dense layer fed by `producer`, which must be a CReLU, or a
/// global average pooling of a CReLU output (the classifier of a convnet), whose output size
/// equals the layer's input size; throws shape_error naming `where`, both layers and the sizes
/// otherwise. Pooling keeps CReLU's channel order, [relu(z) channels; relu(-z) channels], so the
/// pooled features are [mean relu(z); mean relu(-z)] and [W0, -W0] maps them to W0 mean(z): the
/// classifier is exactly linear in what the CReLU received. (A pooling layer cannot show what
/// feeds it: given one, the caller vouches that it pools a CReLU output; apply_looks_linear and
/// build_cifar check it.) Leaves the bias unchanged.
template <class T>
void looks_linear(dense<T>& layer, const shatter::layer<T>& producer, rng& g,
                  ll_base base = ll_base::orthogonal, const std::string& where = "looks_linear") {
  const bool pooled = dynamic_cast<const global_avg_pool<T>*>(&producer) != nullptr;
  require<shape_error>(dynamic_cast<const crelu<T>*>(&producer) != nullptr || pooled, where, " ",
                       layer.describe(),
                       ": looks-linear init needs a CReLU output (or its global average "
                       "pooling) as input, but the layer is fed by ",
                       producer.describe());
  require<shape_error>(producer.out_size() == layer.in_size(), where, " ", layer.describe(),
                       ": looks-linear init needs the CReLU output width (", producer.out_size(),
                       ") to equal the layer's input size (", layer.in_size(), ")");
  looks_linear(layer.weight(), g, base, detail::cat(where, " ", layer.describe()));
}

}  // namespace shatter::init

#endif  // SHATTER_INIT_LOOKS_LINEAR_HPP
