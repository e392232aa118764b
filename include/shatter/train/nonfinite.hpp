// shatter: locating NaN and infinity in a network (the training loop's non-finite guard).
#ifndef SHATTER_TRAIN_NONFINITE_HPP
#define SHATTER_TRAIN_NONFINITE_HPP

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "shatter/network/plan.hpp"
#include "shatter/network/sequential.hpp"

namespace shatter {

/// Where a non-finite value was found: a description such as
/// "parameter '5.weight' of layer 5 dense(64 -> 64, bias)"; empty when everything is finite.
struct nonfinite_location {
  std::string where;
  bool found() const { return !where.empty(); }
};

namespace detail {
/// "layer i <describe>" for a parameter name "i.rest" of `net` (nested names keep the top index).
template <class T>
std::string layer_of(const sequential<T>& net, const std::string& name) {
  char* end = nullptr;
  const unsigned long i = std::strtoul(name.c_str(), &end, 10);
  if (end == name.c_str() || i >= net.size()) return "network";
  return cat("layer ", i, " ", net[i].describe());
}
}  // namespace detail

/// The first parameter, in backward order (from the output towards the input, the order in
/// which backpropagation produces them), whose gradient holds a NaN or infinity: where a
/// non-finite gradient appeared first, before spreading to earlier layers.
template <class T>
nonfinite_location find_nonfinite_gradient(sequential<T>& net) {
  const auto ps = net.parameters();
  for (auto it = ps.rbegin(); it != ps.rend(); ++it)
    if (!it->grad->allFinite())
      return {detail::cat("parameter '", it->name, "' of ", detail::layer_of(net, it->name))};
  return {};
}

/// Why a forward pass on the batch x went non-finite: the first layer (in forward order)
/// whose output holds a NaN or infinity when x runs through the network again in mode m, with
/// the first parameter of the network whose value is non-finite if any; empty if every output
/// and parameter is finite (then the loss itself overflowed). The network's buffers (running
/// statistics) are left as they were.
template <class T>
nonfinite_location find_nonfinite_forward(sequential<T>& net, const matrix<T>& x,
                                          mode m = mode::train) {
  std::vector<const layer<T>*> order;
  std::vector<std::string> paths;
  for_each_leaf(net, [&](layer<T>& l, const std::string& path) {
    order.push_back(&l);
    paths.push_back(path);
  });
  std::string where;
  {
    std::vector<tensor_ref<T>> buffers = net.buffers();
    std::vector<matrix<T>> saved;
    for (auto& b : buffers) saved.push_back(*b.value);
    typename plan<T>::observer watch = [&](const layer<T>& l, const_batch_view<T> y) {
      if (!where.empty() || y.allFinite()) return;
      const auto at = std::find(order.begin(), order.end(), &l) - order.begin();
      where = detail::cat("output of layer ", paths[std::size_t(at)], " ", l.describe());
    };
    plan<T> p(net, std::max<index>(1, x.cols()), plan_mode::eval);
    p.forward(const_batch_view<T>(x.data(), x.rows(), x.cols()), m, &watch);
    for (std::size_t i = 0; i < buffers.size(); ++i) *buffers[i].value = saved[i];
  }
  for (const auto& p : net.parameters())
    if (!p.value->allFinite()) {
      where += detail::cat(where.empty() ? "" : "; ", "value of parameter '", p.name, "' of ",
                           detail::layer_of(net, p.name));
      break;
    }
  return {where};
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_NONFINITE_HPP
