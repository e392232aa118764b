// Quickstart: a 20-layer plain CReLU network with the looks-linear initialisation (no skip
// connections, no batch norm) trained on Fashion-MNIST through shatter::fit, printing progress
// on stderr and the test accuracy on stdout. The run lives in --out (checkpoint after every
// epoch, log.jsonl); --resume continues it; Ctrl-C checkpoints and says how to resume. Built with
// SHATTER_USE_MPI, `mpirun -np N quickstart ...` trains data-parallel on N ranks (the same global
// batch of 128; --threads per rank; output rank 0's).
//   quickstart [--data DIR] [--epochs N] [--threads N] [--out DIR] [--json] ... (--help)
#include <iostream>
#include <string>

#include "program_support.hpp"
#include "shatter/shatter.hpp"
#include "training_support.hpp"

using program::json;
using program::usage_error;

namespace {

struct options {
  std::string data = shatter::fashion_mnist_default_dir();
  long long epochs = 2, limit_train = -1, limit_test = -1;
  double lr = 0.01;
  std::uint64_t seed = 42;
  int threads = 2;
  std::string out = "shatter-out/quickstart";
  bool resume = false, json_summary = false;
};

void add_options(CLI::App& app, options& o) {
  using program::integer_in;
  app.add_option("--data", o.data, "directory with Debian's Fashion-MNIST IDX files")
      ->type_name("DIR");
  app.add_option("--epochs", o.epochs, "epochs to train, >= 1")->check(integer_in(1, 1000000));
  app.add_option("--lr", o.lr, "peak learning rate, in (0, 10]")->check(program::finite_in(0, 10));
  app.add_option("--limit-train", o.limit_train, "use only the first N training images, >= 128")
      ->check(integer_in(128, 1LL << 40));
  app.add_option("--limit-test", o.limit_test, "evaluate on only the first N test images")
      ->check(integer_in(1, 1LL << 40));
  program::add_seed(app, o.seed);
  program::add_threads(app, o.threads);
  program::add_out(app, o.out, "run directory: checkpoint.safetensors, log.jsonl, lock");
  app.add_flag("--resume", o.resume, "continue the run in --out from its checkpoint");
  program::add_json(app, o.json_summary);
}

int run(const options& o, int argc, char** argv) {
  shatter::handle_stop_signals();
  shatter::set_threads(o.threads);
  program::check_regular_files("--data", o.data,
                               {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"});
  // 60000 training and 10000 test images of 784 pixels, standardized. A missing file gives a
  // message saying `apt-get install dataset-fashion-mnist`.
  shatter::load_options lo;
  lo.normalize = shatter::normalization::standardize;
  auto data = shatter::load_fashion_mnist<float>(o.data, lo);
  if (o.limit_train > 0) data.train = data.train.head(o.limit_train);
  if (o.limit_test > 0) data.test = data.test.head(o.limit_test);
  if (data.train.size() < 128)
    throw usage_error("--data: the training set has " + std::to_string(data.train.size()) +
                      " images, fewer than one batch of 128");

  // 20 hidden layers of 256 CReLU units (512 features each) plus the output layer. Looks-linear:
  // the net is exactly linear at initialisation, so its gradients are not shattered and plain
  // SGD trains all 21 layers without batch norm or skip connections.
  shatter::mlp_spec spec;
  spec.in = 784;
  spec.width = 256;
  spec.hidden_layers = 20;
  spec.out = 10;
  shatter::rng rng(o.seed);
  auto net = shatter::looks_linear_mlp<float>(spec, rng);

  shatter::softmax_cross_entropy<float> loss;
  shatter::sgd<float> opt(net.parameters(), {/*lr=*/o.lr, /*momentum=*/0.9});
  shatter::run_options f;
  f.epochs = o.epochs;
  f.batch_size = 128;
  f.seed = o.seed;
  f.progress = &std::cerr;  // rank 0's alone under mpirun
  f.comm = program::this_job().comm;
  f.stop = &shatter::stop_signal;
  f.run_dir = o.out;
  f.resume = o.resume;
  f.config = {{"lr", program::json_line(o.lr)},
              {"limit-train", std::to_string(o.limit_train)},
              {"limit-test", std::to_string(o.limit_test)}};
  // A cosine over the whole run after 100 steps of warm-up.
  const double lr = o.lr;
  const shatter::schedule_for_run schedule = [lr](const shatter::run_length& r) {
    return shatter::schedule::cosine(lr, r.total_steps).with_warmup(100);
  };
  shatter::fit_result result;
  try {
    result = shatter::fit(net, loss, opt, schedule, data.train, data.test, f);
  } catch (const shatter::run_refused& e) {
    throw usage_error(std::string(o.resume ? "--resume" : "--out") + ": " + e.what());
  }
  if (result.stopped) return program::report_stop("quickstart", result, argc, argv);
  if (result.already_finished && program::this_job().root())
    std::cerr << "quickstart: the run in " << o.out << " already finished; nothing changed\n";
  const auto& rec = result.record;
  std::cout << "test accuracy " << 100 * rec.last_test_accuracy << "% after " << rec.last_epoch + 1
            << " epochs (" << static_cast<int>(rec.seconds) << " s)\n";
  if (o.json_summary)
    program::print_json_line(json{{"epochs", rec.last_epoch + 1},
                                  {"test_acc", program::json_number(rec.last_test_accuracy)},
                                  {"test_loss", program::json_number(rec.last_test_loss)},
                                  {"best_test_acc", program::json_number(rec.best_test_accuracy)},
                                  {"seconds", program::json_number(rec.seconds)},
                                  {"out", o.out}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return program::run_training_main("quickstart", argc, argv, [&] {
    options o;
    CLI::App app{
        "Trains a 20-layer looks-linear CReLU MLP (no batch norm, no skip connections) "
        "on Fashion-MNIST.",
        "quickstart"};
    program::configure(app);
    add_options(app, o);
    program::parse(app, argc, argv);
    if (!(o.lr > 0)) throw usage_error("--lr must be > 0, got 0");
    return run(o, argc, argv);
  });
}
