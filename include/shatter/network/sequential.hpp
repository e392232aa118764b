// shatter: a feedforward network, a run-time sequence of layers.
#ifndef SHATTER_NETWORK_SEQUENTIAL_HPP
#define SHATTER_NETWORK_SEQUENTIAL_HPP

#include <memory>
#include <utility>
#include <vector>

#include "shatter/layer/layer.hpp"
#include "shatter/network/container.hpp"

namespace shatter {

/// A feedforward network: layers applied in order, depth fixed at run time. It is itself a
/// layer, so it nests (the branch of a residual block is a sequential). Copying deep-copies the
/// layers. forward/backward run through plans the network keeps (see container); to control
/// batch size, memory or threads, or to take tangents, build a shatter::plan of it.
/// Thread safety: one thread at a time per network; copies are independent and may train
/// concurrently, and several threads may copy (clone) one network that nobody modifies.
template <class T>
class sequential : public container<T> {
 public:
  sequential() = default;
  sequential(const sequential& other) : container<T>(other) {
    layers_.reserve(other.layers_.size());
    for (const auto& l : other.layers_) layers_.push_back(l->clone());
  }
  sequential(sequential&& other) noexcept : container<T>(other) { layers_.swap(other.layers_); }
  sequential& operator=(sequential other) noexcept {
    layers_.swap(other.layers_);
    this->set_input_gradient(other.input_gradient());
    this->invalidate();
    return *this;
  }

  /// Appends a layer, connecting it to the current output shape (shape-free layers adopt it,
  /// others must match: shape_error naming the layer's position and both shapes). Returns the
  /// layer.
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
      const image_shape s = layers_.back()->output_shape();
      if (s.size() > 0) l->connect(s, detail::cat("layer ", layers_.size(), ":"));
    }
    layers_.push_back(std::move(l));
    this->invalidate();
  }

  std::string kind() const override { return "sequential"; }
  std::string describe() const override {
    return detail::cat("sequential(", layers_.size(), " layers, ", this->in_size(), " -> ",
                       this->out_size(), ")");
  }
  image_shape input_shape() const override {
    return layers_.empty() ? image_shape{0, 1, 1} : layers_.front()->input_shape();
  }
  image_shape output_shape() const override {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
      if ((*it)->out_size() > 0) return (*it)->output_shape();
    return {0, 1, 1};
  }
  void connect(const image_shape& in, const std::string& where) override {
    require<config_error>(!layers_.empty(), where, " empty sequential: nothing to connect");
    layers_.front()->connect(in, where);
    for (std::size_t i = 1; i < layers_.size(); ++i)
      layers_[i]->connect(layers_[i - 1]->output_shape(), detail::cat(where, " layer ", i, ":"));
    this->invalidate();
  }

  int emit(program<T>& p, int input) override {
    require<config_error>(!layers_.empty(), "sequential: an empty network has nothing to run");
    for (auto& l : layers_) input = l->emit(p, input);
    return input;
  }
  void for_each_child(const std::function<void(const std::string&, layer<T>&)>& f) override {
    for (std::size_t i = 0; i < layers_.size(); ++i) f(std::to_string(i), *layers_[i]);
  }

  /// All trainable parameters with their gradients, named "<layer>.<name>" (nested with dots).
  std::vector<tensor_ref<T>> parameters() {
    std::vector<tensor_ref<T>> out;
    this->collect_parameters("", out);
    return out;
  }
  /// All non-trainable state (batch-norm running statistics), named like parameters.
  std::vector<tensor_ref<T>> buffers() {
    std::vector<tensor_ref<T>> out;
    this->collect_buffers("", out);
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
