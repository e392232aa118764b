// Quickstart: a 20-layer plain CReLU network with the looks-linear initialisation (no skip
// connections, no batch norm) trained on Fashion-MNIST, printing progress and test accuracy.
//   usage: quickstart [data-dir] [epochs] [threads]      (defaults: Debian's copy, 2, 2)
#include <cstdlib>
#include <iostream>

#include "shatter/shatter.hpp"

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : shatter::fashion_mnist_default_dir();
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 2;
  shatter::set_threads(argc > 3 ? std::atoi(argv[3]) : 2);

  // 60000 training and 10000 test images of 784 pixels, standardised. A missing file gives a
  // message saying `apt-get install dataset-fashion-mnist`.
  auto data = shatter::load_fashion_mnist<float>(dir, /*standardise=*/true);

  // 20 hidden layers of 256 CReLU units (512 features each) plus the output layer. Looks-linear:
  // the net is exactly linear at initialisation, so its gradients are not shattered and plain
  // SGD trains all 21 layers without batch norm or skip connections.
  shatter::mlp_spec spec;
  spec.in = 784;
  spec.width = 256;
  spec.depth = 20;
  spec.out = 10;
  shatter::rng rng(42);
  auto net = shatter::looks_linear_mlp<float>(spec, rng);

  shatter::softmax_cross_entropy<float> loss;
  shatter::sgd<float> opt(net.parameters(), {/*lr=*/0.01, /*momentum=*/0.9});
  shatter::fit_options options;
  options.epochs = epochs;
  options.batch_size = 128;
  options.progress = &std::cout;
  const auto steps = epochs * ((data.train.size() + 127) / 128);
  const auto schedule = shatter::schedule::cosine(0.01, steps).with_warmup(100);

  const auto result = shatter::fit(net, loss, opt, schedule, data.train, data.test, options);
  double seconds = 0;
  for (const auto& e : result.epochs) seconds += e.seconds;
  std::cout << "test accuracy " << 100 * result.epochs.back().test.accuracy << "% after " << epochs
            << " epochs (" << static_cast<int>(seconds) << " s)\n";
} catch (const std::exception& e) {
  std::cerr << "quickstart: " << e.what() << "\n";
  return 1;
}
