// shatter: the layer interface: a map with kernels that take their buffers as arguments.
#ifndef SHATTER_LAYER_LAYER_HPP
#define SHATTER_LAYER_LAYER_HPP

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/shape.hpp"
#include "shatter/core/tensor_ref.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/exec/pool.hpp"
#include "shatter/layer/program.hpp"

namespace shatter {

/// How a tangent (forward-mode derivative) treats batch-norm statistics.
enum class batch_stats {
  fixed,    ///< the batch's mean and variance, held constant
  through,  ///< the batch's mean and variance, differentiated through
  running   ///< the running statistics (evaluation mode), constants
};

/// Tag for the constructors of weighted layers (dense, conv2d): leave the weights at zero
/// because the caller initialises them right away (network builders do), instead of drawing He
/// weights that would be overwritten.
struct no_init_t {};
inline constexpr no_init_t no_init{};

/// What a layer's backward kernel reads besides dL/dy: its forward input, its output, both or
/// neither. A plan keeps (or recomputes) only these.
struct backward_reads {
  bool input = false;
  bool output = false;
};

/// What a plan hands every kernel call besides the data: the threads (exec::context), the
/// layer's saved state for the current batch (saved_size() scalars: written by a training
/// forward, read by replay and backward) and workspace (workspace_size(n) scalars, shared by all
/// layers of a plan, contents undefined on entry).
template <class T>
struct kernel_env {
  exec::context exec;
  T* saved = nullptr;
  T* work = nullptr;
};

/// One differentiable map from a batch X (in_size() x n, one sample per column) to a batch Y
/// (out_size() x n). A layer owns its parameters (with their gradients) and running buffers and
/// knows its sample shapes; it owns no activations, gradients, scratch or threads: its kernels
/// take them as arguments, and an execution plan (network/plan.hpp) owns them.
/// Kernels: forward_kernel (Y from X), backward_kernel (dL/dX and the parameter gradients from
/// dL/dY, reading only what reads() names), tangent_kernel (the output tangent dY from X and
/// its tangent dX), and for replayable() layers replay_kernel (the training forward again from
/// the saved state, without side effects). Containers describe their data flow with emit() and
/// expose their children with for_each_child(), the one traversal everything uses.
/// Running one layer by itself: forward(x, m) and backward(dy) (a convenience that keeps its own
/// copies; networks run through a plan). Thread safety: not thread-safe; distinct layers (and
/// clones) may run on distinct threads.
template <class T>
class layer {
 public:
  layer() { require_scalar<T>(); }
  virtual ~layer() = default;

  /// Short name of the kind of layer ("dense", "crelu", "batch_norm", ...).
  virtual std::string kind() const = 0;
  /// A one-line description with sizes, used in messages: "dense(512 -> 256, bias)".
  virtual std::string describe() const { return kind(); }

  /// Shape of one input sample (features: n x 1 x 1); size 0 for an elementwise layer not yet
  /// connected.
  virtual image_shape input_shape() const = 0;
  /// Shape of one output sample.
  virtual image_shape output_shape() const = 0;
  /// Features per input sample.
  index in_size() const { return input_shape().size(); }
  /// Features per output sample.
  index out_size() const { return output_shape().size(); }

  /// Places the layer after something that produces samples of shape `in`: shape-free layers
  /// adopt it, others check it (shape_error naming `where`, the layer and both shapes).
  virtual void connect(const image_shape& in, const std::string& where) {
    require<shape_error>(in == input_shape(), where, " ", describe(), " takes samples of shape ",
                         input_shape().str(), " but its input has shape ", in.str());
  }

  /// What backward_kernel reads besides dL/dy.
  virtual backward_reads reads() const = 0;
  /// Whether replay_kernel can recompute the training output cheaply from the input and the
  /// saved state (elementwise layers, batch norm): a plan may then drop the output after the
  /// forward pass and recompute it for backward.
  virtual bool replayable() const { return false; }
  /// Whether forward_kernel may write its output over its input (y and x the same buffer): true
  /// for layers that map each value to the value in the same place (activations, batch norm).
  virtual bool in_place() const { return false; }
  /// Whether a sample's output depends on the other samples of the batch (batch norm with batch
  /// statistics); when no layer does, a batch may be cut into parts that run independently.
  virtual bool couples_samples() const { return false; }
  /// Scalars of per-batch state a training forward saves for backward (batch statistics).
  virtual index saved_size() const { return 0; }
  /// Scalars of workspace a kernel call on n samples needs.
  virtual index workspace_size(index n) const {
    (void)n;
    return 0;
  }

  /// Y = f(X) in mode m (a training forward also writes the saved state and running buffers).
  virtual void forward_kernel(const_batch_view<T> x, batch_view<T> y, mode m,
                              const kernel_env<T>& env) = 0;
  /// The last training forward's Y again, from its input and saved state, with no side effects.
  /// Only called when replayable().
  virtual void replay_kernel(const_batch_view<T> x, batch_view<T> y, const kernel_env<T>& env) {
    forward_kernel(x, y, mode::train, env);
  }
  /// dL/dX (into dx, unless dx is empty) and, when `param_grads`, the parameter gradients
  /// (overwritten) from dL/dY, after the forward that produced y from x. x and y are empty
  /// unless reads() names them.
  virtual void backward_kernel(const_batch_view<T> x, const_batch_view<T> y, const_batch_view<T> dy,
                               batch_view<T> dx, bool param_grads, const kernel_env<T>& env) = 0;
  /// Y = f(X) and its tangent dY = J_f(X) dX (forward-mode derivative), statistics as `s` says.
  /// Changes no running buffer.
  virtual void tangent_kernel(const_batch_view<T> x, const_batch_view<T> dx, batch_view<T> y,
                              batch_view<T> dy, batch_stats s, const kernel_env<T>& env) = 0;

  /// Writes this layer's data flow into p, reading value `input`; returns the output value.
  /// A leaf writes itself; containers write their children and sums.
  virtual int emit(program<T>& p, int input) { return p.leaf(this, input, out_size()); }
  /// Calls f(name, child) for each direct child of a container (name as in parameter paths).
  virtual void for_each_child(const std::function<void(const std::string&, layer<T>&)>& f) {
    (void)f;
  }

  /// Appends this layer's trainable parameters (a container: its children's), names prefixed
  /// by `prefix`.
  virtual void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) {
    for_each_child([&](const std::string& name, layer<T>& c) {
      c.collect_parameters(prefix + name + ".", out);
    });
  }
  /// Appends this layer's non-trainable state (running statistics), names prefixed by `prefix`.
  virtual void collect_buffers(const std::string& prefix, std::vector<tensor_ref<T>>& out) {
    for_each_child(
        [&](const std::string& name, layer<T>& c) { c.collect_buffers(prefix + name + ".", out); });
  }

  /// A deep copy (no state of the convenience forward).
  virtual std::unique_ptr<layer<T>> clone() const = 0;

  /// Whether backward(dy) computes dL/dX (true by default).
  void set_input_gradient(bool needed) { input_gradient_ = needed; }
  bool input_gradient() const { return input_gradient_; }

  /// Runs this layer by itself on x: Y = f(X) in mode m. Keeps copies of what backward reads
  /// (never a pointer to x). Returns the output, valid until the next call.
  virtual const matrix<T>& forward(const matrix<T>& x, mode m);
  /// dL/dX from dL/dY for the last forward(x, m) (an empty matrix when input_gradient() is off),
  /// setting the parameter gradients. shape_error for a dy of the wrong shape, error when no
  /// forward came first.
  virtual const matrix<T>& backward(const matrix<T>& dy);
  /// The output of the last forward(x, m) (empty before the first).
  virtual const matrix<T>& output() const { return eager().y; }

 protected:
  layer(const layer& other) : input_gradient_(other.input_gradient_) {}
  layer& operator=(const layer&) = delete;

  /// He-normal weights N(0, 2 / fan_in) from construction_rng(): the default initialisation of
  /// weighted layers, so that no layer starts at zero by accident.
  static void he_initialise(matrix<T>& w, index fan_in) {
    rng& g = construction_rng();
    const double sd = std::sqrt(2.0 / double(fan_in));
    for (index i = 0; i < w.size(); ++i) w.data()[i] = T(g.normal() * sd);
  }

  /// Checks that a batch has this layer's input size; names the layer in the message.
  void check_input(index rows, index cols) const {
    if (rows == in_size()) return;  // the hot path builds no message
    require<shape_error>(false, describe(), ": expected ", in_size(),
                         " features per sample (one sample per column), got a ", rows, " x ", cols,
                         " batch");
  }

 private:
  /// The copies of the convenience path (forward(x, m) / backward(dy)).
  struct eager_state {
    matrix<T> x, y, dx;
    std::vector<T> saved, work;
    bool ready = false;
  };
  eager_state& eager() const {
    if (!eager_) eager_ = std::make_unique<eager_state>();
    return *eager_;
  }

  bool input_gradient_ = true;
  mutable std::unique_ptr<eager_state> eager_;
};

template <class T>
const matrix<T>& layer<T>::forward(const matrix<T>& x, mode m) {
  eager_state& e = eager();
  if (in_size() == 0) connect({x.rows(), 1, 1}, "input:");
  check_input(x.rows(), x.cols());
  e.ready = false;
  e.saved.resize(std::size_t(saved_size()));
  e.work.resize(std::size_t(workspace_size(x.cols())));
  e.x = x;  // first: x may be this layer's own last output, which the kernel overwrites
  e.y.resize(out_size(), x.cols());
  const kernel_env<T> env{{threads()}, e.saved.data(), e.work.data()};
  forward_kernel(const_batch_view<T>(e.x.data(), e.x.rows(), e.x.cols()),
                 batch_view<T>(e.y.data(), e.y.rows(), e.y.cols()), m, env);
  e.ready = true;
  return e.y;
}

template <class T>
const matrix<T>& layer<T>::backward(const matrix<T>& dy) {
  eager_state& e = eager();
  if (!e.ready) throw error(detail::cat(describe(), ": backward called before forward"));
  if (dy.rows() != e.y.rows() || dy.cols() != e.y.cols())
    throw shape_error(detail::cat(describe(), ": backward expects a ", e.y.rows(), " x ",
                                  e.y.cols(),
                                  " output gradient (the shape of the last forward's output), got ",
                                  dy.rows(), " x ", dy.cols()));
  const index n = dy.cols();
  e.work.resize(std::size_t(workspace_size(n)));
  if (input_gradient_)
    e.dx.resize(in_size(), n);
  else
    e.dx.resize(0, 0);
  const kernel_env<T> env{{threads()}, e.saved.data(), e.work.data()};
  backward_kernel(const_batch_view<T>(e.x.data(), e.x.rows(), n),
                  const_batch_view<T>(e.y.data(), e.y.rows(), n),
                  const_batch_view<T>(dy.data(), dy.rows(), n),
                  batch_view<T>(e.dx.data(), e.dx.rows(), e.dx.cols()), true, env);
  return e.dx;
}

/// Calls f(leaf, path) for every layer of l without children (the layers with kernels), in
/// forward order, depth-first through for_each_child; path is the leaf's name in parameter
/// paths ("12.branch.3"; "" for l itself when it is a leaf).
template <class T, class F>
void for_each_leaf(layer<T>& l, F&& f, const std::string& path = "") {
  bool container = false;
  l.for_each_child([&](const std::string& name, layer<T>& c) {
    container = true;
    for_each_leaf(c, f, path.empty() ? name : path + "." + name);
  });
  if (container) return;
  if constexpr (std::is_invocable_v<F&, layer<T>&, const std::string&>)
    f(l, path);
  else
    f(l);
}

}  // namespace shatter

#endif  // SHATTER_LAYER_LAYER_HPP
