// shatter: the 2-D gradient map, exact input-gradients of a network over a plane of inputs.
#ifndef SHATTER_PROBE_PLANE_HPP
#define SHATTER_PROBE_PLANE_HPP

#include <Eigen/Core>
#include <cmath>

#include "shatter/core/error.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/core/types.hpp"
#include "shatter/layer/layer.hpp"
#include "shatter/network/plan.hpp"
#include "shatter/probe/sweep.hpp"

namespace shatter::probe {

/// A plane of inputs x(s, t) = origin + s e1 + t e2.
struct plane_basis {
  Eigen::VectorXd origin, e1, e2;
};

/// The plane through three inputs a, b, c (not on one line): origin their centroid, e1 = b - a,
/// e2 = c - a, so that a, b and c sit at (s, t) = (-1/3, -1/3), (2/3, -1/3) and (-1/3, 2/3),
/// inside the default grid [-1, 1]^2. config_error for different sizes, non-finite values or
/// points on one line.
inline plane_basis plane_through(const Eigen::Ref<const Eigen::VectorXd>& a,
                                 const Eigen::Ref<const Eigen::VectorXd>& b,
                                 const Eigen::Ref<const Eigen::VectorXd>& c) {
  require<config_error>(a.size() >= 2 && a.size() == b.size() && a.size() == c.size(),
                        "probe::plane_through: three points of the same size >= 2 needed, got ",
                        a.size(), ", ", b.size(), ", ", c.size());
  require<config_error>(a.allFinite() && b.allFinite() && c.allFinite(),
                        "probe::plane_through: the points must be finite");
  plane_basis p{(a + b + c) / 3.0, b - a, c - a};
  const double n1 = p.e1.norm(), n2 = p.e2.norm();
  const double cosine = n1 > 0 && n2 > 0 ? p.e1.dot(p.e2) / (n1 * n2) : 1.0;
  require<config_error>(std::abs(cosine) < 1 - 1e-12,
                        "probe::plane_through: the three points lie on one line (or coincide)");
  return p;
}

/// The grid: s and t each over `points` evenly spaced values on [from, to]. An odd count puts a
/// grid point at the centre ((from + to) / 2 on both axes), where the correlation map is 1.
struct plane_options {
  double from = -1.0;
  double to = 1.0;
  index points = 65;
  /// Batch norms take the statistics of the whole grid (one batch), held fixed, or the running
  /// ones (bn_statistics::through is not offered: it would cost one backward pass per point).
  bn_statistics bn = bn_statistics::fixed;
};

/// The gradient map over the grid: element (i, j) belongs to s = coords(j), t = coords(i) (rows
/// follow t, columns s, as an image). grad_s = df/ds = e1 . grad f, grad_t = df/dt = e2 . grad f,
/// exact (forward mode, one tangent pass per direction). correlation(i, j) is the cosine between
/// the in-plane gradient (grad_s, grad_t) at (i, j) and at the centre point (points / 2, points /
/// 2): 1 where they point the same way, 0 where either is zero. For a 2-input network with e1,
/// e2 the unit axes, the in-plane gradient is the whole input gradient.
struct plane_result {
  Eigen::VectorXd coords;
  Eigen::MatrixXd output, grad_s, grad_t, correlation;
};

namespace detail {
inline void check_plane_options(const plane_options& o) {
  require<config_error>(std::isfinite(o.from) && std::isfinite(o.to) && o.from < o.to,
                        "probe::sweep_plane: need a finite range from < to, got [", o.from, ", ",
                        o.to, "]");
  require<config_error>(o.points >= 3 && o.points <= 4096,
                        "probe::sweep_plane: points per axis must be in [3, 4096], got ", o.points);
  require<config_error>(o.bn != bn_statistics::through,
                        "probe::sweep_plane: bn_statistics::through is not supported; use fixed "
                        "or running");
}

/// The cosine map of plane_result (see there).
inline Eigen::MatrixXd centre_cosine(const Eigen::MatrixXd& gs, const Eigen::MatrixXd& gt) {
  const index c = gs.rows() / 2;
  const double cs = gs(c, c), ct = gt(c, c), cn = std::sqrt(cs * cs + ct * ct);
  Eigen::MatrixXd r(gs.rows(), gs.cols());
  for (index i = 0; i < gs.rows(); ++i)
    for (index j = 0; j < gs.cols(); ++j) {
      const double n = std::sqrt(gs(i, j) * gs(i, j) + gt(i, j) * gt(i, j));
      r(i, j) = n > 0 && cn > 0 ? (gs(i, j) * cs + gt(i, j) * ct) / (n * cn) : 0.0;
    }
  return r;
}
}  // namespace detail

/// Sweeps a scalar-output network over the grid of `o` on the plane `p` (vectors of the
/// network's input size, e1 and e2 linearly independent) and returns f, its exact in-plane
/// gradient and the correlation map (see plane_result). All points form one batch (batch norms
/// see the grid's statistics, held fixed, unless o.bn is running); the network's state is
/// restored. Cost: two tangent passes over points^2 inputs. Throws config_error for bad options or
/// a degenerate plane, shape_error for a size mismatch or a non-scalar output, numeric_error when
/// an output or gradient is not finite.
template <class T>
plane_result sweep_plane(layer<T>& net, const plane_basis& p, const plane_options& o = {}) {
  detail::check_plane_options(o);
  const index d = net.in_size(), n = o.points, m = n * n;
  require<shape_error>(p.origin.size() == d && p.e1.size() == d && p.e2.size() == d,
                       "probe::sweep_plane: the plane's vectors must have the network's input "
                       "size ",
                       d, ", got ", p.origin.size(), ", ", p.e1.size(), ", ", p.e2.size());
  require<shape_error>(net.out_size() == 1,
                       "probe::sweep_plane: the network must have a scalar "
                       "output, ",
                       net.describe(), " has ", net.out_size());
  require<config_error>(p.origin.allFinite() && p.e1.allFinite() && p.e2.allFinite() &&
                            p.e1.norm() > 0 && p.e2.norm() > 0,
                        "probe::sweep_plane: the plane's vectors must be finite, e1 and e2 "
                        "non-zero");
  plane_result r;
  r.coords.resize(n);
  for (index i = 0; i < n; ++i) r.coords(i) = o.from + (o.to - o.from) * double(i) / double(n - 1);
  matrix<T> x(d, m), dx(d, m);
  for (index i = 0; i < n; ++i)  // row i: t = coords(i); column j: s = coords(j)
    for (index j = 0; j < n; ++j)
      x.col(i * n + j) = (p.origin + r.coords(j) * p.e1 + r.coords(i) * p.e2).template cast<T>();
  network_state_guard<T> guard(net);
  plan<T> pl(net, m, plan_mode::tangent, threads());
  const batch_stats stats =
      o.bn == bn_statistics::running ? batch_stats::running : batch_stats::fixed;
  auto pass = [&](const Eigen::VectorXd& e, Eigen::MatrixXd& grad, bool keep_output) {
    dx.colwise() = e.template cast<T>();
    const auto out = pl.tangent(x, dx, stats);
    grad.resize(n, n);
    if (keep_output) r.output.resize(n, n);
    for (index i = 0; i < n; ++i)
      for (index j = 0; j < n; ++j) {
        grad(i, j) = double(out.second(0, i * n + j));
        if (keep_output) r.output(i, j) = double(out.first(0, i * n + j));
      }
  };
  pass(p.e1, r.grad_s, true);
  pass(p.e2, r.grad_t, false);
  require<numeric_error>(r.output.allFinite() && r.grad_s.allFinite() && r.grad_t.allFinite(),
                         "probe::sweep_plane: a network output or gradient on the plane is not "
                         "finite");
  r.correlation = detail::centre_cosine(r.grad_s, r.grad_t);
  return r;
}

}  // namespace shatter::probe

#endif  // SHATTER_PROBE_PLANE_HPP
