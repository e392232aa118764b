// Trains a CIFAR-style convolutional network (resnet, plain_relu, plain_crelu, plain_crelu_ll,
// plain_prelu_ll, plain_tat) on CIFAR-10 (official binary version) or Fashion-MNIST through
// shatter::fit, with SGD + momentum, weight decay, a cosine learning-rate schedule and crop +
// flip augmentation. The run lives in --out: checkpoint.safetensors (after every epoch),
// log.jsonl (a line per epoch, written after its checkpoint), summary.json; --resume continues it
// exactly; SIGINT/SIGTERM finish the step, checkpoint and say how to resume. Run with --help for
// the options. Built with SHATTER_USE_MPI, `mpirun -np N cifar10 ...` trains data-parallel on N
// ranks: --batch is the global batch, --threads the threads of each rank, output rank 0's.
//
//   cifar10 --arch plain_crelu_ll --depth 56 --epochs 10 --out runs/ll56
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "program_support.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/data/augment.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/idx.hpp"
#include "shatter/data/normalize.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/probe/training_probe.hpp"
#include "shatter/train/fit.hpp"
#include "shatter/train/stop.hpp"
#include "training_support.hpp"

using T = float;
using idx = shatter::index;
using program::json;
using program::usage_error;

namespace {

struct options {
  std::string data = "../shared/data/cifar-10-batches-bin";
  std::string dataset = "cifar10";
  std::string arch = "plain_crelu_ll";
  long long depth = 20, epochs = 10, batch = 128, limit_train = -1, limit_test = -1;
  long long checkpoint_every = 0;
  long long probe_every = 0, probe_lines = 4, probe_points = 64;
  double lr = 0.1, weight_decay = 5e-4, momentum = 0.9, warmup = 0;
  std::uint64_t seed = 1;
  int threads = 2;
  bool no_augment = false, resume = false, json_summary = false, sync_bn = false;
  std::string out = "shatter-out/cifar10";
};

/// The command line's options on `app` (checked by CLI11 validators where one option suffices).
void add_options(CLI::App& app, options& o) {
  using program::finite_in;
  using program::integer_in;
  const long long big = 1LL << 40;
  app.add_option("--data", o.data,
                 "data directory (CIFAR-10 binary files; for fashion-mnist the four IDX files, "
                 "default /usr/share/datasets/fashion-mnist)")
      ->type_name("DIR");
  app.add_option("--dataset", o.dataset, "cifar10 or fashion-mnist")
      ->check(program::one_of({"cifar10", "fashion-mnist"}));
  app.add_option("--arch", o.arch,
                 "resnet, plain_relu, plain_crelu, plain_crelu_ll, plain_prelu_ll or plain_tat")
      ->check(program::one_of(shatter::cifar_arch_names()));
  app.add_option("--depth", o.depth, "weighted layers, 6n+2: 8, 14, 20, 32, 44, 56, 110, 200")
      ->check(integer_in(8, 20000));
  app.add_option("--epochs", o.epochs, "epochs to train, >= 1")->check(integer_in(1, 1000000));
  app.add_option("--batch", o.batch, "mini-batch size, >= 2 (batch norm needs two samples)")
      ->check(integer_in(2, 1000000));
  app.add_option("--lr", o.lr, "peak learning rate, in (0, 10]")->check(finite_in(0, 10));
  app.add_option("--weight-decay", o.weight_decay, "L2 weight decay, in [0, 1]")
      ->check(finite_in(0, 1));
  app.add_option("--momentum", o.momentum, "SGD momentum, in [0, 1)")->check(finite_in(0, 1));
  app.add_option("--warmup", o.warmup,
                 "linear warm-up over the first E epochs, fractional allowed, at most --epochs")
      ->check(finite_in(0, 1000000));
  program::add_seed(app, o.seed);
  program::add_threads(app, o.threads);
  app.add_option("--limit-train", o.limit_train, "use only the first N training images, >= 2")
      ->check(integer_in(2, big));
  app.add_option("--limit-test", o.limit_test, "evaluate on only the first N test images, >= 1")
      ->check(integer_in(1, big));
  app.add_flag("--no-augment", o.no_augment, "no crop/flip augmentation");
  app.add_flag("--sync-bn", o.sync_bn,
               "under mpirun: batch norm statistics over the global batch (default: per rank)");
  program::add_out(app, o.out,
                   "run directory: checkpoint.safetensors, log.jsonl, summary.json, lock");
  app.add_flag("--resume", o.resume,
               "continue the run in --out from its checkpoint (same options required)");
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "also checkpoint every N steps (0: after each epoch only)")
      ->check(integer_in(0, big));
  app.add_option("--probe-every", o.probe_every,
                 "probe shattering every N steps (and at step 0) into OUT/probe.jsonl (0: off)")
      ->check(integer_in(0, big));
  app.add_option("--probe-lines", o.probe_lines,
                 "the probe's lines: between test images 2k and 2k+1, k < N (1 to 1000)")
      ->check(integer_in(1, 1000));
  app.add_option("--probe-points", o.probe_points, "points per probe line, 8 to 4096")
      ->check(integer_in(8, 4096));
  program::add_json(app, o.json_summary);
}

/// Checks that need several options or the file system; usage_error naming the option.
void check_options(options& o, bool data_given) {
  if ((o.depth - 2) % 6 != 0)
    throw usage_error("--depth must be 6n+2 with n >= 1 (8, 14, 20, 56, 110, 200, ...), got " +
                      std::to_string(o.depth));
  if (!(o.lr > 0)) throw usage_error("--lr must be > 0, got 0");
  if (!(o.momentum < 1)) throw usage_error("--momentum must be < 1, got 1");
  if (o.warmup > double(o.epochs))
    throw usage_error("--warmup " + program::json_line(o.warmup) +
                      " is longer than the run (--epochs " + std::to_string(o.epochs) + ")");
  if (o.dataset == "fashion-mnist" && !data_given) o.data = shatter::fashion_mnist_default_dir();
  // A FIFO, directory or device where a data file belongs would block or mislead the loader.
  program::check_regular_files(
      "--data", o.data,
      o.dataset == "cifar10"
          ? std::vector<std::string>{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                     "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                     "batches.meta.txt"}
          : std::vector<std::string>{"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"});
  struct stat st {};
  const std::string ckpt = o.out + "/checkpoint.safetensors";
  if (::stat(ckpt.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw usage_error("--out: '" + ckpt + "' is " + shatter::detail::file_kind(st.st_mode) +
                      ", not a regular file");
}

struct data {
  shatter::dataset<T> train, test;
  shatter::image_shape shape;
};

/// Loads and normalises the data (per-channel statistics of the training images).
data load(const options& o) {
  data d;
  shatter::load_options lo;
  lo.train_limit = o.limit_train > 0 ? o.limit_train : -1;
  lo.test_limit = o.limit_test > 0 ? o.limit_test : -1;
  lo.normalize = shatter::normalization::standardize;  // per channel, training statistics
  auto loaded = o.dataset == "cifar10" ? shatter::load_cifar10<T>(o.data, lo)
                                       : shatter::load_fashion_mnist<T>(o.data, lo);
  d.train = std::move(loaded.train);
  d.test = std::move(loaded.test);
  d.shape = loaded.shape;
  if (o.batch > d.train.size())
    throw usage_error("--batch " + std::to_string(o.batch) + " is larger than the training set (" +
                      std::to_string(d.train.size()) + " images" +
                      (o.limit_train > 0 ? ", --limit-train" : "") + ")");
  return d;
}

/// The options that change the result, as stored in each checkpoint and compared on resume.
std::map<std::string, std::string> run_config(const options& o) {
  auto num = [](double v) { return program::json_line(v); };
  return {{"dataset", o.dataset},
          {"arch", o.arch},
          {"depth", std::to_string(o.depth)},
          {"epochs", std::to_string(o.epochs)},
          {"batch", std::to_string(o.batch)},
          {"lr", num(o.lr)},
          {"momentum", num(o.momentum)},
          {"weight-decay", num(o.weight_decay)},
          {"warmup", num(o.warmup)},
          {"augment", o.no_augment ? "no" : "yes"},
          {"seed", std::to_string(o.seed)},
          {"limit-train", std::to_string(o.limit_train)},
          {"limit-test", std::to_string(o.limit_test)}};
}

/// The summary of the run (summary.json and the --json line).
json summary(const options& o, const shatter::fit_result& r, const data& d, idx parameters) {
  const auto& rec = r.record;
  return json{{"arch", o.arch},
              {"depth", o.depth},
              {"epochs", o.epochs},
              {"epochs_done", rec.last_epoch + 1},
              {"finished", rec.finished},
              {"train_images", d.train.size()},
              {"test_images", d.test.size()},
              {"final_test_acc", program::json_number(rec.last_test_accuracy)},
              {"final_test_loss", program::json_number(rec.last_test_loss)},
              {"best_test_acc", program::json_number(rec.best_test_accuracy)},
              {"best_epoch", rec.best_epoch + 1},
              {"skipped_batches", rec.skipped_total},
              {"seconds", program::json_number(rec.seconds)},
              {"parameters", parameters},
              {"out", o.out}};
}

/// fit's options for this run: the run directory, the stop flag, the log line.
shatter::run_options run_options_for(const options& o) {
  shatter::run_options f;
  f.epochs = o.epochs;
  f.batch_size = o.batch;
  f.seed = o.seed;
  f.eval_batch_size = o.batch;  // a deep net's training batch is known to fit in memory
  f.progress = &std::cerr;      // rank 0's alone under mpirun
  f.progress_every = 20;
  f.comm = program::this_job().comm;  // --batch is the global batch, split over the ranks
  f.sync_batch_norm = o.sync_bn;
  f.stop = &shatter::stop_signal;
  f.run_dir = o.out;
  f.resume = o.resume;
  f.checkpoint_every = o.checkpoint_every;
  f.config = run_config(o);
  f.log_line = [o](const shatter::epoch_report& e) {
    return program::json_line(
        json{{"epoch", e.epoch + 1},
             {"train_loss", program::json_number(e.train_loss)},
             {"train_acc", program::json_number(e.train_accuracy)},
             {"test_loss", program::json_number(e.test.loss)},
             {"test_acc", program::json_number(e.test.accuracy)},
             {"seconds", program::json_number(e.seconds)},
             {"train_images_per_second", program::json_number(e.samples_per_second)},
             {"lr", program::json_number(e.learning_rate)},
             {"step", e.step},
             {"skipped_batches", e.skipped_batches},
             {"arch", o.arch},
             {"depth", o.depth}});
  };
  return f;
}

/// Shattering during training (--probe-every): probes the network on lines between fixed test
/// images and appends one JSON line per probe to OUT/probe.jsonl. The step-0 probe is taken
/// before training and written with the first step's, once fit has accepted the run directory;
/// a resumed run first drops the lines an interrupted session wrote after its checkpoint.
class probe_log {
 public:
  probe_log(const options& o, const data& d, shatter::sequential<T>& net)
      : path_(o.out + "/probe.jsonl") {
    const idx n = 2 * idx(o.probe_lines);
    if (d.test.size() < n)
      throw usage_error("--probe-lines " + std::to_string(o.probe_lines) + " needs " +
                        std::to_string(n) + " test images, there are " +
                        std::to_string(d.test.size()));
    shatter::rng g(o.seed ^ 0x9e0be5ULL);
    Eigen::VectorXd w(net.out_size());
    for (idx i = 0; i < w.size(); ++i) w(i) = g.normal();
    shatter::probe::training_probe_options po;
    po.every = o.probe_every;
    po.points = o.probe_points;
    probe_ = std::make_unique<shatter::probe::training_probe<T>>(net, d.test.x.leftCols(n), w, po);
    resume_ = o.resume;
    if (!o.resume) pending_.push_back(probe_->probe(0));
    probe_->on_record = [this](const shatter::probe::training_probe_record& r) {
      pending_.push_back(r);
      flush();
    };
  }
  /// The fit callback.
  void operator()(shatter::step_report& r) {
    if (first_) start(r.step);
    (*probe_)(r);
    flush();
  }

 private:
  /// A new run starts the file afresh; a resumed one keeps the lines of earlier sessions with a
  /// step before `step` (the first of this session).
  void start(std::int64_t step) {
    first_ = false;
    if (!resume_) {
      program::write_file(path_, "");
      return;
    }
    std::ifstream in(path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      // A line whose step cannot be read (cut short by a crash) is dropped with the rest.
      const auto at = line.find("\"step\":");
      long long s = step;
      try {
        if (at != std::string::npos) s = std::stoll(line.substr(at + 7));
      } catch (const std::exception&) {
      }
      if (s < step) kept += line + "\n";
    }
    in.close();
    program::write_file(path_, kept);
  }
  void flush() {
    if (first_ || pending_.empty()) return;
    std::ofstream out(path_, std::ios::app);
    for (const auto& r : pending_) out << shatter::probe::to_json_line(r) << "\n";
    out.flush();
    if (!out) throw program::io_error("cannot write '" + path_ + "'");
    pending_.clear();
  }
  std::string path_;
  std::unique_ptr<shatter::probe::training_probe<T>> probe_;
  std::vector<shatter::probe::training_probe_record> pending_;
  bool first_ = true, resume_ = false;
};

/// Trains (or resumes) the run; maps a refused run directory to a usage error naming --out.
shatter::fit_result train(const options& o, const data& d, shatter::sequential<T>& net) {
  shatter::sgd_options so;
  so.lr = o.lr;
  so.momentum = o.momentum;
  so.weight_decay = o.weight_decay;
  shatter::sgd<T> opt(net.parameters(), so);
  shatter::softmax_cross_entropy<T> loss;
  const double warmup = o.warmup;
  const double lr = o.lr;
  const shatter::schedule_for_run sched = [lr, warmup](const shatter::run_length& r) {
    auto s = shatter::schedule::cosine(lr, r.total_steps);
    const auto warm = std::int64_t(std::llround(warmup * double(r.steps_per_epoch)));
    return warm > 0 ? s.with_warmup(warm, 0.1) : s;
  };
  shatter::matrix<T> crop;
  auto augment = [&](shatter::matrix<T>& x, shatter::label_vector&, shatter::rng& g) {
    if (o.no_augment) return;
    shatter::random_crop_flip(x, crop, d.shape, 4, true, g);
    x.swap(crop);
  };
  shatter::run_options fo = run_options_for(o);
  std::unique_ptr<probe_log> probes;
  if (o.probe_every > 0) {
    probes = std::make_unique<probe_log>(o, d, net);
    fo.on_step = [&probes](shatter::step_report& r) { (*probes)(r); };
  }
  try {
    return shatter::fit(net, loss, opt, sched, d.train, d.test, fo, augment);
  } catch (const shatter::run_refused& e) {
    throw usage_error(std::string(o.resume ? "--resume" : "--out") + ": " + e.what());
  }
}

int run(const options& o, int argc, char** argv) {
  shatter::handle_stop_signals();
  shatter::set_threads(o.threads);
  data d;
  try {
    d = load(o);
  } catch (const shatter::data_error& e) {
    throw shatter::data_error(std::string(e.what()) +
                              (o.dataset == "cifar10"
                                   ? "\n(point the program at the extracted CIFAR-10 binary "
                                     "directory with --data DIR)"
                                   : ""));
  }
  shatter::rng g(o.seed);
  shatter::cifar_spec spec;
  spec.weighted_layers = o.depth;
  spec.input = d.shape;
  spec.classes = 10;
  auto net = shatter::build_cifar<T>(shatter::parse_cifar_arch(o.arch), spec, g);
  const auto& job = program::this_job();
  if (job.root())
    std::cerr << "cifar10: " << o.arch << " depth " << o.depth << " (" << net.parameter_count()
              << " parameters), " << d.train.size() << " training / " << d.test.size()
              << " test images, batch " << o.batch << ", lr " << o.lr << ", " << o.threads
              << " threads"
              << (job.size > 1 ? " per rank x " + std::to_string(job.size) + " ranks" : "")
              << ", run directory " << o.out << "\n";
  const shatter::fit_result r = train(o, d, net);
  const json s = summary(o, r, d, net.parameter_count());
  if (r.already_finished) {
    if (job.root())
      std::cerr << "cifar10: the run in " << o.out << " already finished (" << o.epochs
                << " epochs); nothing changed\n";
  } else if (r.stopped) {
    return program::report_stop("cifar10", r, argc, argv);
  } else if (job.root()) {
    program::write_file(o.out + "/summary.json", s.dump(2) + "\n");
  }
  std::cout << "final test accuracy " << r.record.last_test_accuracy << ", best "
            << r.record.best_test_accuracy << " (epoch " << r.record.best_epoch + 1 << ")\n";
  if (o.json_summary) program::print_json_line(s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return program::run_training_main("cifar10", argc, argv, [&] {
    options o;
    CLI::App app{
        "Trains a CIFAR-style convnet (three stages of 16/32/64 channels, depth = 6n+2 "
        "weighted layers, global average pooling, linear classifier) with SGD, weight "
        "decay, a cosine learning-rate schedule and random-crop + flip augmentation.",
        "cifar10"};
    program::configure(app);
    add_options(app, o);
    program::parse(app, argc, argv);
    check_options(o, app.count("--data") > 0);
    return run(o, argc, argv);
  });
}
