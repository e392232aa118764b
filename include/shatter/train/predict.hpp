// shatter: class probabilities (predict) and labels (classify) of a trained network, batch by
// batch in evaluation mode.
#ifndef SHATTER_TRAIN_PREDICT_HPP
#define SHATTER_TRAIN_PREDICT_HPP

#include <algorithm>
#include <cmath>
#include <string>

#include "shatter/core/error.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/data/dataset.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/network/plan.hpp"

namespace shatter {

namespace detail {
/// Runs `net` in mode::eval through one evaluation plan over the columns of x in batches of at
/// most `batch_size`, calling f(logits, first_column) for each batch. Errors: batch_size < 1 ->
/// config_error; x of the wrong height -> shape_error; a non-finite output -> numeric_error
/// naming the sample (a NaN or infinite logit predicts nothing).
template <class T, class F>
void eval_in_batches(layer<T>& net, const matrix<T>& x, index batch_size, const char* who, F&& f) {
  require<config_error>(batch_size >= 1, who, ": batch size must be >= 1, got ", batch_size);
  require<shape_error>(net.in_size() >= 1 && x.rows() == net.in_size(), who, ": the network takes ",
                       net.in_size(), " features per sample (one sample per column), got a ",
                       x.rows(), " x ", x.cols(), " matrix");
  if (x.cols() == 0) return;
  plan<T> p(net, std::min(batch_size, x.cols()), plan_mode::eval);
  for (index s = 0; s < x.cols(); s += batch_size) {
    const index n = std::min(batch_size, x.cols() - s);
    const const_batch_view<T> out =
        p.forward(const_batch_view<T>(x.data() + s * x.rows(), x.rows(), n), mode::eval);
    for (index j = 0; j < n; ++j)
      require<numeric_error>(out.col(j).allFinite(), who, ": the network's output for sample ",
                             s + j, " has a NaN or infinite entry (check the input and weights)");
    f(out, s);
  }
}
}  // namespace detail

/// Class probabilities: softmax(net(x)) column by column, p_ij = exp(z_ij - max_i z_ij) /
/// sum_k exp(z_kj - max_i z_ij), computed in evaluation mode (batch norm uses its running
/// statistics) in batches of `batch_size` samples through one evaluation plan; the result
/// (classes x samples, each column summing to 1) does not depend on the batch size.
/// x: features x samples. Errors: see detail::eval_in_batches (numeric_error for a non-finite
/// output, naming the sample).
template <class T>
matrix<T> predict(layer<T>& net, const matrix<T>& x, index batch_size = 1000) {
  matrix<T> p(net.out_size(), x.cols());
  detail::eval_in_batches(net, x, batch_size, "predict",
                          [&p](const const_batch_view<T>& z, index first) {
                            for (index j = 0; j < z.cols(); ++j) {
                              const T m = z.col(j).maxCoeff();
                              auto col = p.col(first + j);
                              col = (z.col(j).array() - m).exp().matrix();
                              col /= col.sum();
                            }
                          });
  return p;
}

/// Class probabilities of every sample of a data set (labels unused): predict(net, data.x).
template <class T>
matrix<T> predict(layer<T>& net, const dataset<T>& data, index batch_size = 1000) {
  return predict(net, data.x, batch_size);
}

/// Predicted classes: the argmax of each column of net(x) (the first on ties), which is the
/// argmax of predict's probabilities; evaluation mode, in batches as predict. One label per
/// column of x.
template <class T>
label_vector classify(layer<T>& net, const matrix<T>& x, index batch_size = 1000) {
  label_vector labels(static_cast<std::size_t>(x.cols()));
  detail::eval_in_batches(net, x, batch_size, "classify",
                          [&labels](const const_batch_view<T>& z, index first) {
                            for (index j = 0; j < z.cols(); ++j) {
                              index arg = 0;
                              z.col(j).maxCoeff(&arg);
                              labels[std::size_t(first + j)] = static_cast<std::int32_t>(arg);
                            }
                          });
  return labels;
}

/// Predicted classes of every sample of a data set (labels unused): classify(net, data.x).
template <class T>
label_vector classify(layer<T>& net, const dataset<T>& data, index batch_size = 1000) {
  return classify(net, data.x, batch_size);
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_PREDICT_HPP
