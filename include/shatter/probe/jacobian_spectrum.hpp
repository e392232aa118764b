// shatter: singular values of a network's input-output Jacobian (dynamical isometry).
#ifndef SHATTER_PROBE_JACOBIAN_SPECTRUM_HPP
#define SHATTER_PROBE_JACOBIAN_SPECTRUM_HPP

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/rng.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/layer/batch_norm.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/probe/sweep.hpp"

namespace shatter::probe {

/// How the Jacobian probes run a network. The Jacobian of sample i is J_i = d f(x_i) / d x_i
/// (out_size x in_size) with the batch-norm statistics as `bn` says:
/// bn_statistics::fixed (default): those of the batch x, held constant (so J_i depends on the
/// other samples only through them; a network with batch norm then needs >= 2 samples);
/// bn_statistics::running: the running statistics (evaluation mode). bn_statistics::through is
/// refused: J_i would not be a per-sample map.
struct jacobian_options {
  bn_statistics bn = bn_statistics::fixed;
  /// Largest batch of one tangent pass (samples times input directions); bounds the memory.
  index max_columns = 4096;
  /// Threads of the plans' kernels.
  int threads = shatter::threads();
};

/// Lanczos on J_i^T J_i: `steps` iterations (at most in_size) with full reorthogonalisation,
/// from a Gaussian start vector drawn from `seed`.
struct lanczos_options {
  index steps = 64;
  std::uint64_t seed = 1;
  jacobian_options jacobian;
};

/// Singular values from Lanczos for one sample: the square roots of the Ritz values of J^T J,
/// descending. The largest (and, less quickly, the smallest) converge first; with `steps` equal
/// to the rank they are exact up to rounding. Values below about sqrt(epsilon of T) times the
/// largest are at the operator's rounding level.
struct lanczos_result {
  Eigen::VectorXd singular_values;
  index steps = 0;  ///< iterations run (fewer than asked when an invariant subspace was found)
};

namespace detail {

template <class T>
void check_jacobian_input(layer<T>& net, const matrix<T>& x, const jacobian_options& o,
                          const char* who) {
  require<shape_error>(x.rows() == net.in_size() && x.cols() >= 1, who, ": the batch must be ",
                       net.in_size(), " x m (m >= 1, one sample per column), got ", x.rows(), " x ",
                       x.cols());
  require<numeric_error>(x.allFinite(), who, ": the batch has non-finite values");
  require<config_error>(o.bn != bn_statistics::through, who,
                        ": bn_statistics::through makes J_i depend on every sample; use fixed or "
                        "running");
  require<config_error>(o.max_columns >= 1 && o.threads >= 1, who,
                        ": max_columns and threads must be >= 1");
  bool coupled = false;
  for_each_leaf(net, [&](layer<T>& l) { coupled = coupled || l.couples_samples(); });
  require<config_error>(!coupled || o.bn == bn_statistics::running || x.cols() >= 2, who, ": ",
                        net.describe(),
                        " takes batch statistics: give at least 2 samples (or "
                        "bn_statistics::running)");
}

inline batch_stats tangent_stats(bn_statistics b) {
  return b == bn_statistics::running ? batch_stats::running : batch_stats::fixed;
}

/// Matrix-free products with every sample's Jacobian at once: apply(V) = [J_i v_i]_i through a
/// tangent plan, apply_transpose(U) = [J_i^T u_i]_i through the backward of one training-plan
/// forward (batch norm's gradient treating the statistics as `bn` says).
template <class T>
class jacobian_operator {
 public:
  jacobian_operator(layer<T>& net, const matrix<T>& x, const jacobian_options& o)
      : x_(x),
        stats_(tangent_stats(o.bn)),
        tangent_(net, x.cols(), plan_mode::tangent, o.threads),
        train_(net, x.cols(), plan_mode::train, o.threads) {
    for_each_leaf(net, [](layer<T>& l, const std::string&) {
      if (auto* bn = dynamic_cast<batch_norm<T>*>(&l))
        bn->set_gradient_mode(bn_gradient::fixed_stats);
    });
    train_.forward(x_, o.bn == bn_statistics::running ? mode::eval : mode::train);
  }
  Eigen::MatrixXd apply(const Eigen::MatrixXd& v) {
    const matrix<T> vt = v.template cast<T>();
    return tangent_.tangent(x_, vt, stats_).second.template cast<double>();
  }
  Eigen::MatrixXd apply_transpose(const Eigen::MatrixXd& u) {
    const matrix<T> ut = u.template cast<T>();
    return train_.backward(ut, true, false, true).template cast<double>();
  }

 private:
  const matrix<T>& x_;
  batch_stats stats_;
  plan<T> tangent_, train_;
};

}  // namespace detail

/// The exact input-output Jacobians J_i = d f(x_i) / d x_i (out_size x in_size, in double) at
/// every sample x_i (column) of x, in forward mode: the batch is repeated once per input
/// direction e_j with tangent e_j (repeating a batch leaves its statistics unchanged), in passes
/// of at most o.max_columns columns. Costs in_size tangent passes of one sample per sample: meant
/// for fully connected nets and small images. The network's state is left as it was. Throws
/// shape_error for a batch of the wrong size, config_error for bn_statistics::through or a single
/// sample through batch norm, numeric_error for non-finite inputs or Jacobians.
template <class T>
std::vector<Eigen::MatrixXd> jacobians(layer<T>& net, const matrix<T>& x,
                                       const jacobian_options& o = {}) {
  const char* who = "probe::jacobians";
  detail::check_jacobian_input(net, x, o, who);
  network_state_guard<T> guard(net);
  const index n = net.in_size(), m = x.cols(), out = net.out_size();
  const index per = std::max<index>(1, std::min<index>(n, o.max_columns / m));
  std::vector<Eigen::MatrixXd> jac(static_cast<std::size_t>(m), Eigen::MatrixXd(out, n));
  plan<T> p(net, per * m, plan_mode::tangent, o.threads);
  matrix<T> xs(n, per * m), dx(n, per * m);
  for (index r = 0; r < per; ++r) xs.middleCols(r * m, m) = x;
  for (index j0 = 0; j0 < n; j0 += per) {
    const index c = std::min(per, n - j0);
    dx.setZero();
    for (index r = 0; r < c; ++r) dx.row(j0 + r).segment(r * m, m).setOnes();
    const auto res =
        p.tangent(const_batch_view<T>(xs.data(), n, c * m),
                  const_batch_view<T>(dx.data(), n, c * m), detail::tangent_stats(o.bn));
    for (index r = 0; r < c; ++r)
      for (index i = 0; i < m; ++i)
        jac[std::size_t(i)].col(j0 + r) = res.second.col(r * m + i).template cast<double>();
  }
  for (index i = 0; i < m; ++i)
    require<numeric_error>(jac[std::size_t(i)].allFinite(), who, ": the Jacobian of sample ", i,
                           " is not finite");
  return jac;
}

/// The singular values of every sample's exact Jacobian (see jacobians), descending, min(out,
/// in) each, by Eigen's one-sided Jacobi SVD in double (accurate for tiny values; Eigen 3.4's
/// divide-and-conquer SVD returns NaN for some matrices with repeated singular values, such as
/// a ReLU layer's sqrt(2) and 0).
template <class T>
std::vector<Eigen::VectorXd> jacobian_singular_values(layer<T>& net, const matrix<T>& x,
                                                      const jacobian_options& o = {}) {
  std::vector<Eigen::VectorXd> out;
  for (const Eigen::MatrixXd& j : jacobians(net, x, o)) {
    out.push_back(Eigen::JacobiSVD<Eigen::MatrixXd>(j).singularValues());
    require<numeric_error>(out.back().allFinite(),
                           "probe::jacobian_singular_values: the SVD of "
                           "the Jacobian of sample ",
                           out.size() - 1, " is not finite");
  }
  return out;
}

namespace detail {
/// Singular values from the Lanczos tridiagonal (alpha, beta) of J^T J, descending. A template
/// (called with double) so that only programs that call it compile the eigensolver.
template <class Real>
Eigen::VectorXd ritz_singular_values(const std::vector<Real>& alpha,
                                     const std::vector<Real>& beta) {
  const index k = index(alpha.size());
  Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic> t =
      Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>::Zero(k, k);
  for (index i = 0; i < k; ++i) {
    t(i, i) = alpha[std::size_t(i)];
    if (i + 1 < k) t(i, i + 1) = t(i + 1, i) = beta[std::size_t(i)];
  }
  const auto theta = Eigen::SelfAdjointEigenSolver<decltype(t)>(t).eigenvalues();
  Eigen::VectorXd s(k);
  for (index i = 0; i < k; ++i) s(i) = std::sqrt(std::max(0.0, double(theta(k - 1 - i))));
  return s;
}
}  // namespace detail

/// Singular values of every sample's Jacobian J_i by Lanczos on J_i^T J_i, matrix-free: each
/// step is one tangent pass (J V, all samples at once) and one backward pass (J^T U) of the
/// batch; the Lanczos vectors (in double) are reorthogonalised twice against all earlier ones.
/// For convolutional nets whose Jacobian is too large to form. Errors as jacobians().
template <class T>
std::vector<lanczos_result> jacobian_lanczos(layer<T>& net, const matrix<T>& x,
                                             const lanczos_options& o = {}) {
  const char* who = "probe::jacobian_lanczos";
  detail::check_jacobian_input(net, x, o.jacobian, who);
  require<config_error>(o.steps >= 1, who, ": steps must be >= 1, got ", o.steps);
  network_state_guard<T> guard(net);
  detail::jacobian_operator<T> op(net, x, o.jacobian);
  const index n = net.in_size(), m = x.cols(), k = std::min(o.steps, n);
  const auto ms = static_cast<std::size_t>(m);
  const double tol = 100 * double(std::numeric_limits<T>::epsilon());
  std::vector<Eigen::MatrixXd> q(ms, Eigen::MatrixXd::Zero(n, k));
  std::vector<std::vector<double>> alpha(ms), beta(ms);
  std::vector<bool> done(ms, false);
  std::vector<double> scale(ms, 0.0);
  rng g(o.seed);
  Eigen::MatrixXd v(n, m);
  for (index i = 0; i < m; ++i) {
    for (index r = 0; r < n; ++r) v(r, i) = g.normal();
    v.col(i).normalize();
  }
  for (index step = 0; step < k; ++step) {
    for (index i = 0; i < m; ++i) q[std::size_t(i)].col(step) = v.col(i);
    Eigen::MatrixXd w = op.apply_transpose(op.apply(v));
    require<numeric_error>(w.allFinite(), who, ": J^T J v is not finite at step ", step);
    for (index i = 0; i < m; ++i) {
      if (done[std::size_t(i)]) {
        v.col(i).setZero();
        continue;
      }
      const auto basis = q[std::size_t(i)].leftCols(step + 1);
      auto wi = w.col(i);
      const double a = v.col(i).dot(wi);
      alpha[std::size_t(i)].push_back(a);
      scale[std::size_t(i)] = std::max(scale[std::size_t(i)], std::abs(a));
      for (int pass = 0; pass < 2; ++pass) wi -= basis * (basis.transpose() * wi);
      const double b = wi.norm();
      if (step + 1 == k || b <= tol * scale[std::size_t(i)]) {
        done[std::size_t(i)] = true;
        v.col(i).setZero();
        continue;
      }
      beta[std::size_t(i)].push_back(b);
      v.col(i) = wi / b;
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
  }
  std::vector<lanczos_result> res(ms);
  for (index i = 0; i < m; ++i) {
    res[std::size_t(i)].singular_values =
        detail::ritz_singular_values(alpha[std::size_t(i)], beta[std::size_t(i)]);
    res[std::size_t(i)].steps = index(alpha[std::size_t(i)].size());
  }
  return res;
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_JACOBIAN_SPECTRUM_HPP
