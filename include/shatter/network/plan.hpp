// shatter: the execution plan, which runs a network and owns every buffer it needs.
#ifndef SHATTER_NETWORK_PLAN_HPP
#define SHATTER_NETWORK_PLAN_HPP

#include <algorithm>
#include <climits>
#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

#include "shatter/core/build_note.hpp"
#include "shatter/core/error.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/layer/program.hpp"

namespace shatter {

/// What a plan is built to run.
enum class plan_mode {
  train,   ///< forward passes followed by backward (keeps what backward reads)
  eval,    ///< forward passes only: each activation lives until its last reader has run
  tangent  ///< forward passes carrying a tangent beside every activation (the probe)
};

/// Runs a network (any layer, containers included) for batches of up to `max_batch` samples,
/// and owns everything that takes: activation, gradient and scratch buffers, the layers' saved
/// state, and the number of threads the kernels use. Nothing it keeps points to caller memory:
/// a training forward copies its input when backward reads it.
///
/// Memory (plan_mode::train): the forward pass keeps only the values some backward kernel reads.
/// A value made by a replayable layer (activations, batch norm) is not kept when it is larger
/// than that layer's input or the input is available anyway (kept, or itself replayable from a
/// kept value): backward recomputes it from the input with the saved statistics. A conv ->
/// batch norm -> CReLU (or ReLU) unit keeps the convolution's output alone, since the batch-norm
/// and activation outputs are recomputed from it. Buffers are
/// reused as soon as their value is dead, and in_place() layers (activations, batch norm) write
/// over an input that dies with them, so evaluation of a chain needs two activation buffers.
/// Buffers are allocated by the first pass that needs them and reused afterwards: after one
/// forward and backward, passes allocate nothing.
///
/// The network must not change structure while a plan of it exists; parameters may change.
/// Thread safety: one thread at a time per plan, and not while another plan runs the same
/// network's layers.
template <class T>
class plan {
 public:
  /// Called after each layer's forward kernel with the layer and its output.
  using observer = std::function<void(const layer<T>&, const_batch_view<T>)>;
  /// What a tangent pass shows of each layer: its input and output and their tangents.
  struct tangent_step {
    const layer<T>& l;
    const_batch_view<T> x, dx, y, dy;
  };
  /// Called after each layer's tangent kernel.
  using tangent_observer = std::function<void(const tangent_step&)>;

  /// A plan of `net` for batches of at most `max_batch >= 1` samples, its kernels using
  /// `threads` threads of the block pool.
  plan(layer<T>& net, index max_batch, plan_mode pm, int threads = shatter::threads())
      : prog_(net.in_size()), mode_(pm), cap_(max_batch), threads_(threads) {
    detail::note_if_unoptimised();
    require<config_error>(max_batch >= 1, "plan: max_batch must be >= 1, got ", max_batch);
    require<config_error>(threads >= 1, "plan: threads must be >= 1, got ", threads);
    require<config_error>(net.in_size() >= 1, "plan: ", net.describe(),
                          " has no input size yet (connect its first layer)");
    net.emit(prog_, 0);
    analyse();
  }

  plan(const plan&) = delete;
  plan& operator=(const plan&) = delete;

  /// The network's output for x (in_size x n, n <= max_batch()) in mode m, valid until the next
  /// pass. `watch`, if given, sees every layer's output. Needs a train or eval plan.
  const_batch_view<T> forward(const_batch_view<T> x, mode m, const observer* watch = nullptr) {
    require<config_error>(mode_ != plan_mode::tangent,
                          "plan::forward: a tangent plan runs tangent(), not forward()");
    check_batch(x, "plan::forward");
    begin_pass(x.cols());
    enter_input(x);
    for (std::size_t i = 0; i < prog_.ops.size(); ++i) forward_op(int(i), m, watch);
    forwarded_ = true;
    return view(prog_.output());
  }

  /// Backpropagates dL/dY (out_size x n, for the last forward's batch) through the network:
  /// overwrites every parameter gradient (when `param_grads`) and returns dL/dX when
  /// `input_gradient` (else an empty view), valid until the next pass. Needs a train plan and a
  /// forward first; the values that forward kept are released.
  /// With `keep`, the forward's values stay for another backward of the same forward (a
  /// different dy), as the probe's Jacobian diagonal needs.
  const_batch_view<T> backward(const_batch_view<T> dy, bool input_gradient, bool param_grads = true,
                               bool keep = false) {
    require<config_error>(mode_ == plan_mode::train,
                          "plan::backward: needs a plan built for training (plan_mode::train)");
    require<error>(forwarded_,
                   "plan::backward: no forward pass to backpropagate (call forward "
                   "first; each forward allows one backward)");
    const int out = prog_.output();
    require<shape_error>(dy.rows() == prog_.rows[std::size_t(out)] && dy.cols() == n_,
                         "plan::backward: expects a ", prog_.rows[std::size_t(out)], " x ", n_,
                         " output gradient (the shape of the last forward's output), got ",
                         dy.rows(), " x ", dy.cols());
    forwarded_ = keep;
    keep_ = keep;
    dy_ = dy.data();
    want_input_grad_ = input_gradient;
    param_grads_ = param_grads;
    release(grad_[0]);  // the input gradient of an earlier backward of this forward
    std::fill(grad_.begin(), grad_.end(), -1);
    if (!needed_[std::size_t(out)] && !keep) drop(out);
    for (int i = int(prog_.ops.size()) - 1; i >= 0; --i) backward_op(i);
    if (!input_gradient) return const_batch_view<T>(nullptr, 0, 0);
    return grad_view(0);
  }

  /// The network's output and its tangent J dX for inputs x and tangents dx (both in_size x n),
  /// batch-norm statistics as `s` says; valid until the next pass. Needs a tangent plan.
  std::pair<const_batch_view<T>, const_batch_view<T>> tangent(
      const_batch_view<T> x, const_batch_view<T> dx, batch_stats s,
      const tangent_observer* watch = nullptr) {
    require<config_error>(mode_ == plan_mode::tangent,
                          "plan::tangent: needs a plan built for tangents (plan_mode::tangent)");
    check_batch(x, "plan::tangent");
    require<shape_error>(dx.rows() == x.rows() && dx.cols() == x.cols(),
                         "plan::tangent: the tangent must have the input's shape ", x.rows(), " x ",
                         x.cols(), ", got ", dx.rows(), " x ", dx.cols());
    begin_pass(x.cols());
    loc_[0] = acquire(0);
    view_w(0) = x;
    tangent_w(0) = dx;
    for (std::size_t i = 0; i < prog_.ops.size(); ++i) tangent_op(int(i), s, watch);
    const int out = prog_.output();
    return {view(out), tangent_view(out)};
  }

  /// The same passes for batches held in matrices.
  const_batch_view<T> forward(const matrix<T>& x, mode m, const observer* watch = nullptr) {
    return forward(view_of(x), m, watch);
  }
  const_batch_view<T> backward(const matrix<T>& dy, bool input_gradient, bool param_grads = true,
                               bool keep = false) {
    return backward(view_of(dy), input_gradient, param_grads, keep);
  }
  std::pair<const_batch_view<T>, const_batch_view<T>> tangent(
      const matrix<T>& x, const matrix<T>& dx, batch_stats s,
      const tangent_observer* watch = nullptr) {
    return tangent(view_of(x), view_of(dx), s, watch);
  }

  /// Largest batch the plan runs.
  index max_batch() const { return cap_; }
  plan_mode built_for() const { return mode_; }
  int threads() const { return threads_; }
  /// Bytes of activation, gradient, saved-state and workspace buffers allocated so far.
  std::size_t bytes() const {
    std::size_t b = (saved_.size() + work_.size()) * sizeof(T);
    for (const auto& s : slots_) b += std::size_t(s.data.size()) * sizeof(T);
    return b;
  }
  /// The program the plan runs.
  const program<T>& code() const { return prog_; }

 private:
  struct slot {
    vector<T> data;
    bool busy = false;
  };

  // ---- analysis (once, at construction) ----------------------------------------------------

  void analyse() {
    const std::size_t nv = std::size_t(prog_.values());
    last_fwd_use_.assign(nv, -1);
    for (std::size_t i = 0; i < prog_.ops.size(); ++i) {
      const auto& o = prog_.ops[i];
      last_fwd_use_[std::size_t(o.in)] = int(i);
      if (o.in2 >= 0) last_fwd_use_[std::size_t(o.in2)] = int(i);
    }
    saved_at_.assign(prog_.ops.size(), 0);
    index saved = 0, work = 0;
    const index cols = mode_ == plan_mode::tangent ? 2 * cap_ : cap_;
    for (std::size_t i = 0; i < prog_.ops.size(); ++i)
      if (layer<T>* l = prog_.ops[i].leaf) {
        saved_at_[i] = saved;
        saved += l->saved_size();
        work = std::max(work, l->workspace_size(cols));
      }
    saved_.assign(std::size_t(saved), T(0));
    work_.assign(std::size_t(work), T(0));
    loc_.assign(nv, -1);
    grad_.assign(nv, -1);
    needed_.assign(nv, false);
    recomputed_.assign(nv, false);
    if (mode_ == plan_mode::train) plan_backward_memory();
  }

  /// Which values backward reads, which of them the forward keeps and which are recomputed,
  /// and after which backward step each can be released.
  void plan_backward_memory() {
    for (const auto& o : prog_.ops)
      if (o.leaf) {
        const backward_reads r = o.leaf->reads();
        if (r.input) needed_[std::size_t(o.in)] = true;
        if (r.output) needed_[std::size_t(o.out)] = true;
      }
    for (int v = prog_.values() - 1; v > 0; --v) {
      if (!needed_[std::size_t(v)] || !replayable(v)) continue;
      const int u = prog_.ops[std::size_t(prog_.producer[std::size_t(v)])].in;
      if (prog_.rows[std::size_t(v)] > prog_.rows[std::size_t(u)] || derivable(u, 4)) {
        recomputed_[std::size_t(v)] = true;
        needed_[std::size_t(u)] = true;
      }
    }
    release_after_.assign(prog_.ops.size(), {});
    std::vector<int> last(std::size_t(prog_.values()), INT_MAX);
    for (int i = int(prog_.ops.size()) - 1; i >= 0; --i) {
      const auto& o = prog_.ops[std::size_t(i)];
      if (!o.leaf) continue;
      const backward_reads r = o.leaf->reads();
      if (r.input) mark_closure(o.in, i, last);
      if (r.output) mark_closure(o.out, i, last);
    }
    for (int v = 0; v < prog_.values(); ++v)
      if (last[std::size_t(v)] != INT_MAX)
        release_after_[std::size_t(last[std::size_t(v)])].push_back(v);
  }
  /// Whether value v is made by a replayable layer (from one input).
  bool replayable(int v) const {
    const int p = prog_.producer[std::size_t(v)];
    return p >= 0 && prog_.ops[std::size_t(p)].leaf && prog_.ops[std::size_t(p)].leaf->replayable();
  }
  /// Whether backward has value u at no memory cost: it is needed anyway, or replayable from
  /// such a value within `depth` replays (a ReLU's input, the batch-norm output, is replayable
  /// from the convolution output batch norm keeps).
  bool derivable(int u, int depth) const {
    if (needed_[std::size_t(u)]) return true;
    if (depth == 0 || !replayable(u)) return false;
    return derivable(prog_.ops[std::size_t(prog_.producer[std::size_t(u)])].in, depth - 1);
  }
  /// Records that backward step i reads v (and, for a recomputed v, what recomputing it reads).
  void mark_closure(int v, int i, std::vector<int>& last) const {
    for (;;) {
      int& l = last[std::size_t(v)];
      l = std::min(l, i);
      if (!recomputed_[std::size_t(v)]) return;
      v = prog_.ops[std::size_t(prog_.producer[std::size_t(v)])].in;
    }
  }

  // ---- buffers -----------------------------------------------------------------------------

  /// A free slot for value-sized data (rows of value v, times two in tangent plans): the
  /// smallest free one that fits without wasting more than an eighth of it, else a new one (a
  /// long-lived value in a slot twice its size would waste the difference for the whole pass).
  int acquire(int v) {
    const index per = prog_.rows[std::size_t(v)] * cap_;
    const index want = mode_ == plan_mode::tangent ? 2 * per : per;
    int best = -1;
    for (std::size_t s = 0; s < slots_.size(); ++s) {
      const index have = slots_[s].data.size();
      if (!slots_[s].busy && have >= want && have - want <= have / 8 &&
          (best < 0 || have < slots_[std::size_t(best)].data.size()))
        best = int(s);
    }
    if (best < 0) {
      slots_.emplace_back();
      slots_.back().data.resize(want);
      best = int(slots_.size()) - 1;
    }
    slots_[std::size_t(best)].busy = true;
    return best;
  }
  void release(int s) {
    if (s >= 0) slots_[std::size_t(s)].busy = false;
  }
  /// Releases value v's slot (its value is dead).
  void drop(int v) {
    if (v == 0 && loc_[0] < 0) return;  // the caller's input, not copied
    release(loc_[std::size_t(v)]);
    loc_[std::size_t(v)] = -1;
  }

  T* data_of(int v) const {
    if (v == 0 && loc_[0] < 0) return const_cast<T*>(input_);
    require<error>(loc_[std::size_t(v)] >= 0, "plan: internal error: value ", v, " is not held");
    return const_cast<T*>(slots_[std::size_t(loc_[std::size_t(v)])].data.data());
  }
  const_batch_view<T> view(int v) const {
    return const_batch_view<T>(data_of(v), prog_.rows[std::size_t(v)], n_);
  }
  batch_view<T> view_w(int v) { return batch_view<T>(data_of(v), prog_.rows[std::size_t(v)], n_); }
  /// The tangent of value v in a tangent plan: right after the value in the same slot.
  batch_view<T> tangent_w(int v) {
    const index r = prog_.rows[std::size_t(v)];
    return batch_view<T>(data_of(v) + r * n_, r, n_);
  }
  const_batch_view<T> tangent_view(int v) const {
    const index r = prog_.rows[std::size_t(v)];
    return const_batch_view<T>(data_of(v) + r * n_, r, n_);
  }
  const_batch_view<T> grad_view(int v) const {
    if (v == prog_.output()) return const_batch_view<T>(dy_, prog_.rows[std::size_t(v)], n_);
    const auto& s = slots_[std::size_t(grad_[std::size_t(v)])];
    return const_batch_view<T>(s.data.data(), prog_.rows[std::size_t(v)], n_);
  }
  batch_view<T> slot_view(int s, int v) {
    return batch_view<T>(slots_[std::size_t(s)].data.data(), prog_.rows[std::size_t(v)], n_);
  }
  kernel_env<T> env(int i) {
    return {{threads_}, saved_.data() + saved_at_[std::size_t(i)], work_.data()};
  }

  // ---- passes ------------------------------------------------------------------------------

  void check_batch(const_batch_view<T> x, const char* who) const {
    require<shape_error>(x.rows() == prog_.rows[0], who, ": the network takes ", prog_.rows[0],
                         " features per sample (one sample per column), got a ", x.rows(), " x ",
                         x.cols(), " batch");
    require<shape_error>(x.cols() <= cap_, who, ": a batch of ", x.cols(),
                         " samples, but the plan was built for at most ", cap_);
  }
  /// Every buffer free, the batch size set.
  void begin_pass(index n) {
    for (auto& s : slots_) s.busy = false;
    std::fill(loc_.begin(), loc_.end(), -1);
    std::fill(grad_.begin(), grad_.end(), -1);
    forwarded_ = false;
    n_ = n;
  }
  /// The input: copied when backward reads it, else read in place during this pass.
  void enter_input(const_batch_view<T> x) {
    input_ = x.data();
    if (mode_ == plan_mode::train && needed_[0]) {
      loc_[0] = acquire(0);
      view_w(0) = x;
    }
  }
  void forward_op(int i, mode m, const observer* watch) {
    const auto& o = prog_.ops[std::size_t(i)];
    const const_batch_view<T> x = view(o.in);
    if (o.leaf && o.leaf->in_place() && dies_here(o.in, i) && loc_[std::size_t(o.in)] >= 0 &&
        prog_.rows[std::size_t(o.in)] == prog_.rows[std::size_t(o.out)]) {
      loc_[std::size_t(o.out)] = loc_[std::size_t(o.in)];  // the output takes the input's place
      loc_[std::size_t(o.in)] = -1;
    } else {
      loc_[std::size_t(o.out)] = acquire(o.out);
    }
    if (o.leaf)
      o.leaf->forward_kernel(x, view_w(o.out), m, env(i));
    else
      view_w(o.out) = x + o.beta * view(o.in2);
    if (watch && o.leaf) (*watch)(*o.leaf, view(o.out));
    for (int u : {o.in, o.in2})
      if (dies_here(u, i)) drop(u);
  }
  /// Whether op i is the last forward reader of value u and nothing keeps u for backward.
  bool dies_here(int u, int i) const {
    return u >= 0 && last_fwd_use_[std::size_t(u)] == i && !kept(u);
  }
  /// Whether value u stays held after the forward pass: backward reads it and does not
  /// recompute it.
  bool kept(int u) const {
    return mode_ == plan_mode::train && needed_[std::size_t(u)] && !recomputed_[std::size_t(u)];
  }
  void tangent_op(int i, batch_stats s, const tangent_observer* watch) {
    const auto& o = prog_.ops[std::size_t(i)];
    loc_[std::size_t(o.out)] = acquire(o.out);
    if (o.leaf) {
      o.leaf->tangent_kernel(view(o.in), tangent_view(o.in), view_w(o.out), tangent_w(o.out), s,
                             env(i));
    } else {
      view_w(o.out) = view(o.in) + o.beta * view(o.in2);
      tangent_w(o.out) = tangent_view(o.in) + o.beta * tangent_view(o.in2);
    }
    if (watch && o.leaf)
      (*watch)({*o.leaf, view(o.in), tangent_view(o.in), view(o.out), tangent_view(o.out)});
    for (int u : {o.in, o.in2})
      if (u >= 0 && last_fwd_use_[std::size_t(u)] == i) drop(u);
  }

  /// Value v held again for backward: recomputed from its producer's input if it was dropped.
  void materialize(int v) {
    if (loc_[std::size_t(v)] >= 0 || (v == 0 && input_held())) return;
    require<error>(recomputed_[std::size_t(v)], "plan: internal error: value ", v, " was lost");
    const int p = prog_.producer[std::size_t(v)];
    const auto& o = prog_.ops[std::size_t(p)];
    materialize(o.in);
    loc_[std::size_t(v)] = acquire(v);
    o.leaf->replay_kernel(view(o.in), view_w(v), env(p));
  }
  bool input_held() const { return loc_[0] >= 0; }

  void backward_op(int i) {
    const auto& o = prog_.ops[std::size_t(i)];
    const const_batch_view<T> g = grad_view(o.out);
    if (o.leaf) {
      backward_leaf(i, g);
    } else {
      accumulate(o.in, g, T(1));
      accumulate(o.in2, g, o.beta);
    }
    if (o.out != prog_.output()) release(grad_[std::size_t(o.out)]);
    grad_[std::size_t(o.out)] = -1;
    for (int v : release_after_[std::size_t(i)])
      if (!keep_ || recomputed_[std::size_t(v)]) drop(v);
  }
  void backward_leaf(int i, const_batch_view<T> g) {
    const auto& o = prog_.ops[std::size_t(i)];
    const backward_reads r = o.leaf->reads();
    if (r.input) materialize(o.in);
    if (r.output) materialize(o.out);
    const const_batch_view<T> none(nullptr, 0, 0);
    int target = -1, tmp = -1;  // the slot dL/dx goes to: dL/d(in) itself, or a temporary
    if (wants_grad(o.in)) {
      if (grad_[std::size_t(o.in)] < 0)
        target = grad_[std::size_t(o.in)] = acquire(o.in);
      else
        target = tmp = acquire(o.in);
    }
    batch_view<T> dx = target >= 0 ? slot_view(target, o.in) : no_batch<T>();
    o.leaf->backward_kernel(r.input ? view(o.in) : none, r.output ? view(o.out) : none, g, dx,
                            param_grads_, env(i));
    if (tmp >= 0) {
      slot_view(grad_[std::size_t(o.in)], o.in) += slot_view(tmp, o.in);
      release(tmp);
    }
  }
  bool wants_grad(int v) const { return v != 0 || want_input_grad_; }
  /// dL/dv += beta g.
  void accumulate(int v, const_batch_view<T> g, T beta) {
    if (!wants_grad(v)) return;
    if (grad_[std::size_t(v)] < 0) {
      grad_[std::size_t(v)] = acquire(v);
      slot_view(grad_[std::size_t(v)], v) = beta * g;
    } else {
      slot_view(grad_[std::size_t(v)], v) += beta * g;
    }
  }

  program<T> prog_;
  plan_mode mode_;
  index cap_;
  int threads_;
  index n_ = 0;
  std::vector<slot> slots_;
  std::vector<int> loc_, grad_, last_fwd_use_;
  std::vector<bool> needed_, recomputed_;
  std::vector<std::vector<int>> release_after_;
  std::vector<index> saved_at_;
  std::vector<T> saved_, work_;
  const T* input_ = nullptr;
  const T* dy_ = nullptr;
  bool forwarded_ = false, want_input_grad_ = true, param_grads_ = true, keep_ = false;
};

}  // namespace shatter

#endif  // SHATTER_NETWORK_PLAN_HPP
