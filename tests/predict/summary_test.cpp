// The model summary: rows, parameter total and the printed table.
#include <catch2/catch.hpp>

#include <sstream>

#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/network/summary.hpp"

using idx = shatter::index;

namespace {
template <class T>
idx parameter_scalars(shatter::sequential<T>& net) {
  idx n = 0;
  for (const auto& p : net.parameters()) n += p.value->size();
  return n;
}
}  // namespace

TEST_CASE("summary of a small net prints an exact table") {
  shatter::sequential<float> net;
  net.add(shatter::dense<float>(4, 3));
  net.add(shatter::crelu<float>());
  net.add(shatter::batch_norm<float>(6));
  net.add(shatter::dense<float>(6, 2, false));
  std::ostringstream os;
  os << shatter::summary(net);
  CHECK(os.str() ==
        "name  layer                output  parameters\n"
        "0     dense(4 -> 3, bias)       3          15\n"
        "1     crelu(3 -> 6)             6           0\n"
        "2     batch_norm(6)             6          12\n"
        "3     dense(6 -> 2)             2          12\n"
        "total parameters: 39 (buffers: 12 scalars)\n");
}

TEST_CASE("summary totals equal the network's parameter sizes (MLPs and CIFAR convnets)") {
  shatter::rng g(3);
  shatter::mlp_spec s;
  s.in = 7;
  s.width = 5;
  s.hidden_layers = 3;
  s.out = 2;
  s.batch_norm = true;
  auto mlp = shatter::resnet_mlp<float>(s, g);
  const auto ms = shatter::summary(mlp);
  CHECK(ms.total_parameters == parameter_scalars(mlp));
  CHECK(ms.rows.back().output.size() == 2);

  shatter::cifar_spec c;
  c.weighted_layers = 8;
  c.width = 4;
  c.input = {3, 8, 8};
  for (auto a : {shatter::cifar_arch::resnet, shatter::cifar_arch::plain_crelu_ll}) {
    auto net = shatter::build_cifar<float>(a, c, g);
    const auto cs = shatter::summary(net);
    CHECK(cs.total_parameters == parameter_scalars(net));
    idx sum = 0;
    for (const auto& r : cs.rows) sum += r.parameters;
    CHECK(sum == cs.total_parameters);
    CHECK(cs.rows.front().output == shatter::image_shape{4, 8, 8});
    CHECK(cs.rows.back().output == shatter::image_shape{10, 1, 1});
    std::ostringstream os;
    os << cs;
    CHECK(os.str().find("4 x 8 x 8") != std::string::npos);
  }
}
