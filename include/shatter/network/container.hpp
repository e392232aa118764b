// shatter: the common base of layers made of layers (sequential, residual, branch_sum).
#ifndef SHATTER_NETWORK_CONTAINER_HPP
#define SHATTER_NETWORK_CONTAINER_HPP

#include <memory>
#include <string>

#include "shatter/core/threads.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/network/plan.hpp"

namespace shatter {

/// A layer made of other layers. It has no kernels of its own: it describes its data flow
/// (emit) and children (for_each_child), and a plan runs it. forward(x, m) and backward(dy) run
/// it through plans it keeps: a training plan for mode::train (keeping what backward reads) and
/// an evaluation plan for mode::eval (two activation buffers for a chain), each rebuilt when a
/// batch is larger than it was built for, the thread count changes or the structure changes.
/// The output and input gradient are copied out of the plan (small for a classifier).
template <class T>
class container : public layer<T> {
 public:
  backward_reads reads() const override { return {}; }
  void forward_kernel(const_batch_view<T>, batch_view<T>, mode, const kernel_env<T>&) override {
    not_a_leaf();
  }
  void backward_kernel(const_batch_view<T>, const_batch_view<T>, const_batch_view<T>, batch_view<T>,
                       bool, const kernel_env<T>&) override {
    not_a_leaf();
  }
  void tangent_kernel(const_batch_view<T>, const_batch_view<T>, batch_view<T>, batch_view<T>,
                      batch_stats, const kernel_env<T>&) override {
    not_a_leaf();
  }

  /// Runs the container on x in mode m through its training or evaluation plan; returns the
  /// output (a copy, valid until the next call). Nothing refers to x afterwards.
  const matrix<T>& forward(const matrix<T>& x, mode m) override {
    if (this->in_size() == 0) this->connect({x.rows(), 1, 1}, "network input:");
    if (x.rows() != this->in_size())  // (the message is built only on failure: no allocation)
      throw shape_error(detail::cat("network input: expected ", this->in_size(),
                                    " features per sample (one sample per column), got a ",
                                    x.rows(), " x ", x.cols(), " batch"));
    std::unique_ptr<plan<T>>& p = m == mode::train ? train_ : eval_;
    if (!p || p->max_batch() < x.cols() || p->threads() != threads())
      p = std::make_unique<plan<T>>(*this, std::max<index>(1, x.cols()),
                                    m == mode::train ? plan_mode::train : plan_mode::eval);
    last_ = nullptr;
    out_ = p->forward(const_batch_view<T>(x.data(), x.rows(), x.cols()), m);
    if (m == mode::train) last_ = p.get();
    return out_;
  }

  /// dL/dX from dL/dY after a training-mode forward (an empty matrix when input_gradient() is
  /// off), setting every parameter gradient. error when no training forward came first;
  /// shape_error for a dy of the wrong shape.
  const matrix<T>& backward(const matrix<T>& dy) override {
    if (last_ == nullptr)
      throw error(detail::cat(this->describe(),
                              ": backward called before forward (backward needs a forward in "
                              "mode::train; for other modes run a shatter::plan yourself)"));
    plan<T>* p = last_;
    last_ = nullptr;
    const auto dx =
        p->backward(const_batch_view<T>(dy.data(), dy.rows(), dy.cols()), this->input_gradient());
    dx_ = dx;
    return dx_;
  }
  const matrix<T>& output() const override { return out_; }

 protected:
  container() = default;
  container(const container& other) : layer<T>(other) {}
  /// Drops the plans (after a change of structure).
  void invalidate() {
    train_.reset();
    eval_.reset();
    last_ = nullptr;
  }

 private:
  [[noreturn]] void not_a_leaf() const {
    throw config_error(
        detail::cat(this->describe(), ": a container has no kernels; run it through a plan"));
  }

  std::unique_ptr<plan<T>> train_, eval_;
  plan<T>* last_ = nullptr;
  matrix<T> out_, dx_;
};

}  // namespace shatter

#endif  // SHATTER_NETWORK_CONTAINER_HPP
