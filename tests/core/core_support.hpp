// Helpers shared by the core tests: running one layer's kernels directly, batch-norm freezing,
// finite differences and error measures (not part of the library).
#ifndef SHATTER_TESTS_CORE_SUPPORT_HPP
#define SHATTER_TESTS_CORE_SUPPORT_HPP

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "shatter/core/rng.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/layer.hpp"

namespace shatter::coretest {

using idx = shatter::index;

/// A rows x cols batch of standard normal values.
inline matrix<double> normal_matrix(idx rows, idx cols, rng& g, double sd = 1.0) {
  matrix<double> m(rows, cols);
  for (idx i = 0; i < m.size(); ++i) m(i) = g.normal() * sd;
  return m;
}

/// max |a - b| / max(1, max |b|): relative to the reference b's scale.
inline double rel_error(const matrix<double>& a, const matrix<double>& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return 1e300;
  if (b.size() == 0) return 0.0;
  return (a - b).cwiseAbs().maxCoeff() / std::max(1.0, b.cwiseAbs().maxCoeff());
}

/// max |a - b| (0 exactly when the two are bitwise equal up to the sign of zero); infinity for
/// different shapes. Reports a number, not two matrices, when a check fails.
inline double max_abs_diff(const matrix<double>& a, const matrix<double>& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return HUGE_VAL;
  if (a.size() == 0) return 0.0;
  return (a - b).cwiseAbs().maxCoeff();
}

/// The buffers a kernel call of layer l on n samples needs (saved state and workspace).
struct kernel_buffers {
  std::vector<double> saved, work;
  kernel_env<double> env(int threads = 1) {
    return {
        {threads}, saved.empty() ? nullptr : saved.data(), work.empty() ? nullptr : work.data()};
  }
};
inline kernel_buffers buffers_for(const layer<double>& l, idx n) {
  kernel_buffers b;
  b.saved.assign(std::size_t(std::max<idx>(1, l.saved_size())), 0.0);
  b.work.assign(std::size_t(std::max<idx>(1, l.workspace_size(n))), 0.0);
  return b;
}

/// y = f(x) through the layer's forward kernel in mode m.
inline matrix<double> run_forward(layer<double>& l, const matrix<double>& x, mode m,
                                  int threads = 1) {
  kernel_buffers b = buffers_for(l, x.cols());
  matrix<double> y(l.out_size(), x.cols());
  l.forward_kernel(const_batch_view<double>(x.data(), x.rows(), x.cols()),
                   batch_view<double>(y.data(), y.rows(), y.cols()), m, b.env(threads));
  return y;
}

/// y and dy from the layer's tangent kernel. With `adjacent`, x and dx (and y and dy) sit side
/// by side in one buffer, the layout a tangent plan uses (dense multiplies [X | dX] at once).
inline std::pair<matrix<double>, matrix<double>> run_tangent(layer<double>& l,
                                                             const matrix<double>& x,
                                                             const matrix<double>& dx,
                                                             batch_stats s, bool adjacent,
                                                             int threads = 1) {
  const idx n = x.cols(), in = x.rows(), out = l.out_size();
  kernel_buffers b = buffers_for(l, 2 * n);
  matrix<double> xin(in, 2 * n), yout(out, 2 * n);
  xin.leftCols(n) = x;
  xin.rightCols(n) = dx;
  yout.setConstant(std::nan(""));
  if (adjacent) {
    l.tangent_kernel(const_batch_view<double>(xin.data(), in, n),
                     const_batch_view<double>(xin.data() + in * n, in, n),
                     batch_view<double>(yout.data(), out, n),
                     batch_view<double>(yout.data() + out * n, out, n), s, b.env(threads));
    return {yout.leftCols(n), yout.rightCols(n)};
  }
  // Separate buffers (and in the other order in memory: dx before x), so no product may
  // assume adjacency.
  matrix<double> xs = x, dxs = dx, y(out, n), dy(out, n);
  y.setConstant(std::nan(""));
  dy.setConstant(std::nan(""));
  l.tangent_kernel(const_batch_view<double>(xs.data(), in, n),
                   const_batch_view<double>(dxs.data(), in, n),
                   batch_view<double>(y.data(), out, n), batch_view<double>(dy.data(), out, n), s,
                   b.env(threads));
  return {y, dy};
}

/// Central difference (f(x + h d) - f(x - h d)) / 2h of a batch map f along d.
inline matrix<double> central_difference(
    const std::function<matrix<double>(const matrix<double>&)>& f, const matrix<double>& x,
    const matrix<double>& d, double h = 1e-6) {
  const matrix<double> xp = x + h * d, xm = x - h * d;
  return (f(xp) - f(xm)) / (2 * h);
}

/// Sets every batch norm of l (a leaf or a container) to use, in evaluation mode, the statistics
/// it used in its last forward or tangent (running mean = last mean, running var such that
/// 1 / sqrt(var + eps) = last inv std, eps the default 1e-5).
inline void freeze_batch_norms(layer<double>& l) {
  for_each_leaf(l, [](layer<double>& leaf) {
    if (auto* bn = dynamic_cast<batch_norm<double>*>(&leaf)) {
      bn->running_mean() = bn->last_mean();
      const Eigen::VectorXd inv = bn->last_inv_std();
      bn->running_var() = (1.0 / inv.array().square() - 1e-5).matrix();
    }
  });
}

/// Random gamma, beta and running statistics for every batch norm of l.
inline void randomise_batch_norms(layer<double>& l, rng& g) {
  for_each_leaf(l, [&g](layer<double>& leaf) {
    if (auto* bn = dynamic_cast<batch_norm<double>*>(&leaf)) {
      for (idx c = 0; c < bn->gamma().rows(); ++c) {
        bn->gamma()(c, 0) = g.uniform(0.5, 1.5) * (g.uniform() < 0.2 ? -1 : 1);
        bn->beta()(c, 0) = g.normal() * 0.3;
        bn->running_mean()(c, 0) = g.normal() * 0.3;
        bn->running_var()(c, 0) = g.uniform(0.5, 2.0);
      }
    }
  });
}

/// Number of leaves of l for which pred holds.
template <class P>
idx count_leaves(layer<double>& l, P pred) {
  idx n = 0;
  for_each_leaf(l, [&](layer<double>& leaf) { n += pred(leaf) ? 1 : 0; });
  return n;
}

}  // namespace shatter::coretest

#endif  // SHATTER_TESTS_CORE_SUPPORT_HPP
