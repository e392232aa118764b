// Builds a depth-8 looks-linear CReLU net and checks it is linear at initialisation.
#include <shatter/shatter.hpp>

#include <cstdio>

int main() {
  shatter::rng g(1);
  shatter::mlp_spec spec;
  spec.in = 4;
  spec.width = 16;
  spec.hidden_layers = 8;
  spec.out = 4;
  auto net = shatter::looks_linear_mlp<double>(spec, g);
  shatter::matrix<double> x = shatter::matrix<double>::Random(4, 3);
  const shatter::matrix<double> y = net.forward(x, shatter::mode::eval);
  const shatter::matrix<double> y2 =
      net.forward(shatter::matrix<double>(2 * x), shatter::mode::eval);
  const double err = (y2 - 2 * y).norm();
  net.forward(x, shatter::mode::train);  // a second plan: the unoptimised-build note stays single
  std::printf("shatter %s: linear at init, error %.3g\n", shatter::version, err);
  return err < 1e-9 ? 0 : 1;
}
