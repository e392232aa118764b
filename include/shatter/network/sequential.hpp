// shatter: a feedforward network, a run-time sequence of layers.
#ifndef SHATTER_NETWORK_SEQUENTIAL_HPP
#define SHATTER_NETWORK_SEQUENTIAL_HPP

#include <memory>
#include <utility>
#include <vector>

#include "shatter/layer/layer.hpp"

namespace shatter {

/// A feedforward network: layers applied in order, depth fixed at run time. It is itself a layer,
/// so it nests (the branch of a residual block is a sequential). Copying deep-copies the layers.
/// Forward keeps each layer's output (see `layer::output`) for backward and for probes.
/// Thread safety: one thread at a time per network (forward/backward write every layer's
/// buffers); copies are independent and may train concurrently, and several threads may copy
/// (clone) one network that nobody modifies meanwhile.
template <class T>
class sequential : public layer<T> {
 public:
  sequential() = default;
  sequential(const sequential& other) : layer<T>(other) {
    layers_.reserve(other.layers_.size());
    for (const auto& l : other.layers_) layers_.push_back(l->clone());
  }
  sequential(sequential&&) noexcept = default;
  sequential& operator=(sequential other) noexcept {
    layers_.swap(other.layers_);
    this->input_gradient_ = other.input_gradient_;
    return *this;
  }

  /// Appends a layer, connecting it to the current output size (elementwise layers adopt it,
  /// others must match: shape_error naming the layer's position otherwise). Returns the layer.
  template <class L>
  L& add(L l) {
    static_assert(std::is_base_of_v<layer<T>, L>, "sequential::add: not a shatter::layer<T>");
    auto p = std::make_unique<L>(std::move(l));
    L& ref = *p;
    add(std::unique_ptr<layer<T>>(std::move(p)));
    return ref;
  }
  /// Appends an owned layer (see the templated overload).
  void add(std::unique_ptr<layer<T>> l) {
    require<config_error>(l != nullptr, "sequential::add: null layer");
    if (!layers_.empty()) {
      const index n = layers_.back()->out_size();
      if (n > 0) l->connect(n, detail::cat("layer ", layers_.size(), ":"));
    }
    layers_.push_back(std::move(l));
  }

  std::string kind() const override { return "sequential"; }
  std::string describe() const override {
    return detail::cat("sequential(", layers_.size(), " layers, ", in_size(), " -> ", out_size(),
                       ")");
  }
  index in_size() const override { return layers_.empty() ? 0 : layers_.front()->in_size(); }
  index out_size() const override {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
      if ((*it)->out_size() > 0) return (*it)->out_size();
    return 0;
  }
  void connect(index n, const std::string& where) override {
    require<shape_error>(!layers_.empty(), where, " empty sequential");
    layers_.front()->connect(n, where);
    for (std::size_t i = 1; i < layers_.size(); ++i)
      layers_[i]->connect(layers_[i - 1]->out_size(), detail::cat(where, " layer ", i, ":"));
  }

  /// Runs all layers; returns the last layer's output buffer. Precondition: not empty.
  const matrix<T>& forward(const matrix<T>& x, mode m) override {
    require<config_error>(!layers_.empty(), "sequential: forward on an empty network");
    require<shape_error>(x.rows() == in_size() || in_size() == 0, "network input: expected ",
                         in_size(), " features per sample (one sample per column), got a ",
                         x.rows(), " x ", x.cols(), " batch");
    this->x_ = &x;
    const matrix<T>* h = &x;
    for (auto& l : layers_) h = &l->forward(*h, m);
    return *h;
  }

  /// Backpropagates dL/dY through all layers (setting every parameter gradient) and returns
  /// dL/dX, or an empty matrix when `input_gradient()` is off.
  const matrix<T>& backward(const matrix<T>& dy) override {
    require<config_error>(!layers_.empty(), "sequential: backward on an empty network");
    layers_.front()->set_input_gradient(this->input_gradient_);
    const matrix<T>* g = &dy;
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) g = &(*it)->backward(*g);
    return *g;
  }

  /// Output of the last forward (the last layer's buffer).
  const matrix<T>& output() const override {
    require<config_error>(!layers_.empty(), "sequential: no layers");
    return layers_.back()->output();
  }

  void collect_parameters(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      layers_[i]->collect_parameters(detail::cat(prefix, i, "."), out);
  }
  void collect_buffers(const std::string& prefix, std::vector<tensor_ref<T>>& out) override {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      layers_[i]->collect_buffers(detail::cat(prefix, i, "."), out);
  }

  /// All trainable parameters with their gradients, named "<layer>.<name>" (nested with dots).
  std::vector<tensor_ref<T>> parameters() {
    std::vector<tensor_ref<T>> out;
    collect_parameters("", out);
    return out;
  }
  /// All non-trainable state (batch-norm running statistics), named like parameters.
  std::vector<tensor_ref<T>> buffers() {
    std::vector<tensor_ref<T>> out;
    collect_buffers("", out);
    return out;
  }
  /// Total number of trainable scalars.
  index parameter_count() {
    index n = 0;
    for (auto& p : parameters()) n += p.value->size();
    return n;
  }

  std::unique_ptr<layer<T>> clone() const override { return std::make_unique<sequential>(*this); }

  /// Number of layers (activations and batch norms count as layers here).
  std::size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  /// The i-th layer; throws for i out of range.
  layer<T>& operator[](std::size_t i) {
    require<config_error>(i < layers_.size(), "sequential: layer index ", i, " out of range (size ",
                          layers_.size(), ")");
    return *layers_[i];
  }
  const layer<T>& operator[](std::size_t i) const {
    require<config_error>(i < layers_.size(), "sequential: layer index ", i, " out of range (size ",
                          layers_.size(), ")");
    return *layers_[i];
  }

 private:
  std::vector<std::unique_ptr<layer<T>>> layers_;
};

}  // namespace shatter

#endif  // SHATTER_NETWORK_SEQUENTIAL_HPP
