// shatter: evaluating a network's loss and accuracy on a data set, batch by batch.
#ifndef SHATTER_TRAIN_EVALUATE_HPP
#define SHATTER_TRAIN_EVALUATE_HPP

#include <algorithm>

#include "shatter/data/dataset.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/sequential.hpp"

namespace shatter {

/// Mean loss and accuracy of a network over a data set.
struct evaluation {
  double loss = 0;      ///< mean per-sample loss
  double accuracy = 0;  ///< fraction of samples whose output argmax equals the label
  index samples = 0;    ///< number of samples evaluated (0: nothing was evaluated)
  index nonfinite = 0;  ///< samples whose output has a NaN or infinite entry (never correct)
};

/// Runs `net` in mode::eval over `data` in batches of `batch_size` columns and returns the mean
/// loss (each batch's mean loss weighted by its size), the accuracy and the number of samples
/// whose output has a NaN or infinite entry (such an output is no prediction: it never counts as
/// correct). `loss` is any loss with
/// `T forward(const matrix<T>&, const label_vector&)` (softmax_cross_entropy, mse). An empty
/// data set gives samples = 0. Errors: batch_size < 1 -> config_error; shapes and labels as the
/// network and the loss check them.
template <class T, class Loss>
evaluation evaluate(sequential<T>& net, Loss& loss, const dataset<T>& data,
                    index batch_size = 1000) {
  require<config_error>(batch_size >= 1, "evaluate: batch size must be >= 1, got ", batch_size);
  evaluation e;
  if (data.empty()) return e;
  require<shape_error>(static_cast<index>(data.labels.size()) == data.size(),
                       "evaluate: ", data.labels.size(), " labels for ", data.size(), " samples");
  matrix<T> xb;
  label_vector yb;
  double total = 0;
  index correct = 0;
  for (index s = 0; s < data.size(); s += batch_size) {
    const index n = std::min(batch_size, data.size() - s);
    xb = data.x.middleCols(s, n);
    yb.assign(data.labels.begin() + s, data.labels.begin() + s + n);
    const matrix<T>& out = net.forward(xb, mode::eval);
    total += static_cast<double>(loss.forward(out, yb)) * static_cast<double>(n);
    correct += correct_count(out, yb);
    e.nonfinite += nonfinite_count(out);
  }
  e.samples = data.size();
  e.loss = total / static_cast<double>(e.samples);
  e.accuracy = static_cast<double>(correct) / static_cast<double>(e.samples);
  return e;
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_EVALUATE_HPP
