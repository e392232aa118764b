// shatter: the layer interface every building block of a network implements.
#ifndef SHATTER_LAYER_LAYER_HPP
#define SHATTER_LAYER_LAYER_HPP

#include <memory>
#include <string>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

/// A named view of one tensor a layer owns: a trainable parameter (with its gradient) or a
/// buffer such as batch-norm running statistics (`grad == nullptr`). Names are paths like
/// "3.weight" when collected from a network.
template <class T>
struct tensor_ref {
  std::string name;
  matrix<T>* value = nullptr;
  matrix<T>* grad = nullptr;
};

/// One differentiable map from a batch X (in_size x n, one sample per column) to a batch Y
/// (out_size x n). Contract:
/// - `forward(x, m)` returns a reference to the layer's own output buffer, valid until the next
///   forward; `x` must stay alive and unchanged until `backward` has run.
/// - `backward(dy)` takes dL/dY for the last forward, *overwrites* the parameter gradients with
///   dL/dparams and returns dL/dX (an empty matrix when the input gradient was switched off).
/// - A layer is not thread-safe; distinct layers (and clones) may run on distinct threads.
template <class T>
class layer {
 public:
  layer() { require_scalar<T>(); }
  virtual ~layer() = default;

  /// Short name of the kind of layer ("dense", "crelu", "batch_norm", ...).
  virtual std::string kind() const = 0;
  /// A one-line description with sizes, used in messages: "dense(512 -> 256, bias)".
  virtual std::string describe() const { return kind(); }

  /// Features per input sample; 0 for an elementwise layer not yet connected.
  virtual index in_size() const = 0;
  /// Features per output sample; 0 for an elementwise layer not yet connected.
  virtual index out_size() const = 0;

  /// Places the layer after something that produces `n` features per sample: elementwise layers
  /// adopt n, sized layers check it and throw shape_error naming `where` and both sizes.
  virtual void connect(index n, const std::string& where) {
    require<shape_error>(n == in_size(), where, " ", describe(), " takes ", in_size(),
                         " features per sample but its input has ", n);
  }

  /// Y = f(X); see the class contract.
  virtual const matrix<T>& forward(const matrix<T>& x, mode m) = 0;
  /// dL/dX from dL/dY; see the class contract.
  virtual const matrix<T>& backward(const matrix<T>& dy) = 0;

  /// Appends this layer's trainable parameters, names prefixed by `prefix`.
  virtual void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) {
    (void)prefix;
    (void)out;
  }
  /// Appends this layer's non-trainable state (running statistics), names prefixed by `prefix`.
  virtual void collect_buffers(const std::string& prefix, std::vector<tensor_ref<T>>& out) {
    (void)prefix;
    (void)out;
  }

  /// A deep copy (fresh caches; no reference to the original's input).
  virtual std::unique_ptr<layer<T>> clone() const = 0;

  /// Whether `backward` must compute dL/dX (true by default). A network switches it off for its
  /// first layer when nobody needs the input gradient, saving one matrix product.
  void set_input_gradient(bool needed) { input_gradient_ = needed; }
  bool input_gradient() const { return input_gradient_; }

  /// The output of the last forward call (empty before the first).
  virtual const matrix<T>& output() const { return y_; }

 protected:
  layer(const layer& other) : input_gradient_(other.input_gradient_) {}
  layer& operator=(const layer&) = delete;

  /// Checks that a batch has this layer's input size; names the layer in the message.
  void check_input(const matrix<T>& x) const {
    if (x.rows() == in_size()) return;  // the hot path builds no message
    require<shape_error>(x.rows() == in_size(), describe(), ": expected ", in_size(),
                         " features per sample (one sample per column), got a ", x.rows(), " x ",
                         x.cols(), " batch");
  }
  /// Checks that an output gradient matches the last forward's output shape.
  void check_output_grad(const matrix<T>& dy) const {
    if (dy.rows() == y_.rows() && dy.cols() == y_.cols() && x_ != nullptr) return;  // hot path
    require<shape_error>(dy.rows() == y_.rows() && dy.cols() == y_.cols(), describe(),
                         ": backward expects a ", y_.rows(), " x ", y_.cols(),
                         " output gradient (the shape of the last forward's output), got ",
                         dy.rows(), " x ", dy.cols());
    require<error>(x_ != nullptr, describe(), ": backward called before forward");
  }

  const matrix<T>* x_ = nullptr;  ///< the last forward's input (not owned)
  matrix<T> y_;                   ///< the last forward's output
  matrix<T> dx_;                  ///< the last backward's input gradient
  bool input_gradient_ = true;
};

}  // namespace shatter

#endif  // SHATTER_LAYER_LAYER_HPP
