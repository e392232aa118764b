// Trains a CIFAR-style convolutional network (resnet, plain_relu, plain_crelu, plain_crelu_ll)
// on CIFAR-10 (official binary version) or Fashion-MNIST, with SGD + momentum, weight decay, a
// cosine learning-rate schedule, crop + flip augmentation, a per-epoch JSON-lines log, a
// checkpoint after every epoch and --resume. Run with --help for the options.
//
//   cifar10 --arch plain_crelu_ll --depth 56 --epochs 10 --out runs/ll56
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "shatter/core/threads.hpp"
#include "shatter/data/augment.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/idx.hpp"
#include "shatter/data/normalize.hpp"
#include "shatter/io/checkpoint.hpp"
#include "shatter/loss/softmax_cross_entropy.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/optim/schedule.hpp"
#include "shatter/optim/sgd.hpp"
#include "shatter/train/evaluate.hpp"
#include "shatter/train/shuffle.hpp"

namespace fs = std::filesystem;
using T = float;
using idx = shatter::index;

namespace {

const char* kUsage = R"(usage: cifar10 [options]

Trains a CIFAR-style convnet (three stages of 16/32/64 channels, depth = 6n+2 weighted layers,
global average pooling, linear classifier) with SGD (momentum 0.9), weight decay, a cosine
learning-rate schedule and random-crop (4-pixel padding) + horizontal-flip augmentation.

  --data DIR          data directory (default ../shared/data/cifar-10-batches-bin; for
                      fashion-mnist the directory with the four IDX files, default
                      /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist)
  --dataset NAME      cifar10 (default) or fashion-mnist
  --arch NAME         resnet | plain_relu | plain_crelu | plain_crelu_ll (default plain_crelu_ll)
  --depth D           weighted layers, 6n+2: 8, 14, 20, 32, 44, 56, 110, 200, ... (default 20)
  --epochs E          epochs to train (default 10)
  --batch B           mini-batch size (default 128)
  --lr LR             peak learning rate (default 0.1)
  --weight-decay WD   L2 weight decay (default 5e-4)
  --momentum M        SGD momentum (default 0.9)
  --warmup E          linear warm-up over the first E epochs, may be fractional (default 0)
  --seed S            seed of initialisation, shuffling and augmentation (default 1)
  --threads T         threads for the matrix products (default 2)
  --limit-train N     use only the first N training images (quick runs)
  --limit-test N      evaluate on only the first N test images
  --no-augment        no crop/flip augmentation
  --out DIR           output directory: log.jsonl, checkpoint.safetensors, summary.json
                      (default shatter-out/cifar10)
  --resume            continue from DIR/checkpoint.safetensors (same options required)
  --help              this text
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "cifar10: " << msg << "\n\n" << kUsage;
  std::exit(2);
}

struct options {
  std::string data = "../shared/data/cifar-10-batches-bin";
  bool data_given = false;
  std::string dataset = "cifar10";
  std::string arch = "plain_crelu_ll";
  idx depth = 20;
  std::int64_t epochs = 10;
  idx batch = 128;
  double lr = 0.1, weight_decay = 5e-4, momentum = 0.9, warmup = 0;
  std::uint64_t seed = 1;
  int threads = 2;
  idx limit_train = -1, limit_test = -1;
  bool augment = true, resume = false;
  std::string out = "shatter-out/cifar10";
};

template <class V>
V parse_number(const std::string& opt, const std::string& text) {
  std::istringstream in(text);
  V v{};
  in >> v;
  if (!in || !in.eof()) usage_error("invalid value '" + text + "' for " + opt);
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--data") {
      o.data = value();
      o.data_given = true;
    } else if (a == "--dataset") {
      o.dataset = value();
      if (o.dataset != "cifar10" && o.dataset != "fashion-mnist")
        usage_error("--dataset must be cifar10 or fashion-mnist, got '" + o.dataset + "'");
    } else if (a == "--arch") {
      o.arch = value();
    } else if (a == "--depth") {
      o.depth = parse_number<idx>(a, value());
    } else if (a == "--epochs") {
      o.epochs = parse_number<std::int64_t>(a, value());
    } else if (a == "--batch") {
      o.batch = parse_number<idx>(a, value());
    } else if (a == "--lr") {
      o.lr = parse_number<double>(a, value());
    } else if (a == "--weight-decay") {
      o.weight_decay = parse_number<double>(a, value());
    } else if (a == "--momentum") {
      o.momentum = parse_number<double>(a, value());
    } else if (a == "--warmup") {
      o.warmup = parse_number<double>(a, value());
    } else if (a == "--seed") {
      o.seed = parse_number<std::uint64_t>(a, value());
    } else if (a == "--threads") {
      o.threads = parse_number<int>(a, value());
    } else if (a == "--limit-train") {
      o.limit_train = parse_number<idx>(a, value());
    } else if (a == "--limit-test") {
      o.limit_test = parse_number<idx>(a, value());
    } else if (a == "--no-augment") {
      o.augment = false;
    } else if (a == "--resume") {
      o.resume = true;
    } else if (a == "--out") {
      o.out = value();
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  try {
    shatter::parse_cifar_arch(o.arch);
  } catch (const shatter::config_error& e) {
    usage_error(e.what());
  }
  if (o.depth < 8 || (o.depth - 2) % 6 != 0)
    usage_error("--depth must be 6n+2 with n >= 1 (8, 14, 20, 56, 110, 200, ...), got " +
                std::to_string(o.depth));
  if (o.epochs < 0) usage_error("--epochs must be >= 0");
  if (o.batch < 2) usage_error("--batch must be >= 2 (batch norm needs two samples)");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) usage_error("--lr must be a positive number");
  if (!(o.weight_decay >= 0)) usage_error("--weight-decay must be >= 0");
  if (!(o.momentum >= 0 && o.momentum < 1)) usage_error("--momentum must be in [0, 1)");
  if (!(o.warmup >= 0)) usage_error("--warmup must be >= 0");
  if (o.threads < 1) usage_error("--threads must be >= 1");
  if (o.limit_train == 0 || o.limit_train < -1) usage_error("--limit-train must be >= 1");
  if (o.limit_test == 0 || o.limit_test < -1) usage_error("--limit-test must be >= 1");
  if (o.dataset == "fashion-mnist" && !o.data_given) o.data = shatter::fashion_mnist_default_dir();
  return o;
}

struct data {
  shatter::dataset<T> train, test;
  shatter::image_shape shape;
};

data load(const options& o) {
  data d;
  if (o.dataset == "cifar10") {
    auto c = shatter::load_cifar10<T>(o.data, o.limit_train, o.limit_test);
    d.train = std::move(c.train);
    d.test = std::move(c.test);
    d.shape = shatter::cifar10_shape();
  } else {
    auto f = shatter::load_fashion_mnist<T>(o.data);
    d.train = o.limit_train > 0 ? f.train.head(o.limit_train) : std::move(f.train);
    d.test = o.limit_test > 0 ? f.test.head(o.limit_test) : std::move(f.test);
    d.shape = {1, 28, 28};
  }
  const auto stats = shatter::channel_statistics(d.train.x, d.shape);
  shatter::normalize_channels(d.train.x, d.shape, stats);
  shatter::normalize_channels(d.test.x, d.shape, stats);
  return d;
}

std::string fmt_time(double s) {
  if (!std::isfinite(s) || s < 0) return "--";
  char buf[32];
  const long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

/// A one-line progress bar on stderr (redrawn in place on a terminal, a line every ~15 s
/// otherwise).
class progress_bar {
 public:
  progress_bar() : tty_(isatty(STDERR_FILENO) != 0) {}
  void start(std::int64_t epoch, std::int64_t epochs, std::int64_t total) {
    epoch_ = epoch;
    epochs_ = epochs;
    total_ = total;
    t0_ = last_ = clock::now();
  }
  void update(std::int64_t done, idx images, double loss, double acc, bool force = false) {
    const auto now = clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.25 : 15.0)) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double rate = el > 0 ? double(images) / el : 0;
    const double eta = done > 0 ? el / double(done) * double(total_ - done) : NAN;
    const int width = 24, fill = int(width * done / std::max<std::int64_t>(1, total_));
    char line[256];
    std::snprintf(line, sizeof line,
                  "epoch %lld/%lld [%s%s] %3d%% %lld/%lld  loss %.4f  acc %.3f  %.0f img/s  ETA %s",
                  (long long)epoch_ + 1, (long long)epochs_, std::string(fill, '#').c_str(),
                  std::string(width - fill, '.').c_str(),
                  int(100 * done / std::max<std::int64_t>(1, total_)), (long long)done,
                  (long long)total_, loss, acc, rate, fmt_time(eta).c_str());
    if (tty_)
      std::cerr << "\r" << line << "\033[K" << std::flush;
    else
      std::cerr << line << "\n" << std::flush;
  }
  void finish() {
    if (tty_) std::cerr << "\n";
  }

 private:
  using clock = std::chrono::steady_clock;
  bool tty_;
  std::int64_t epoch_ = 0, epochs_ = 0, total_ = 0;
  clock::time_point t0_, last_;
};

/// The one place that writes a checkpoint (network, optimiser, RNG, epoch, step, run options).
void save(const fs::path& path, shatter::sequential<T>& net, shatter::sgd<T>& opt,
          const shatter::rng& g, std::int64_t epoch, std::int64_t step,
          const std::map<std::string, std::string>& meta) {
  shatter::save_checkpoint(path.string(), net, opt, g, epoch, step, meta);
}

int run(const options& o) {
  shatter::set_threads(o.threads);
  const data d = load(o);
  shatter::rng g(o.seed);
  shatter::cifar_spec spec;
  spec.depth = o.depth;
  spec.input = d.shape;
  spec.classes = 10;
  const auto arch = shatter::parse_cifar_arch(o.arch);
  const auto tb = std::chrono::steady_clock::now();
  shatter::sequential<T> net = shatter::build_cifar<T>(arch, spec, g);
  const double build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tb).count();
  net.set_input_gradient(false);
  shatter::sgd_options so;
  so.lr = o.lr;
  so.momentum = o.momentum;
  so.weight_decay = o.weight_decay;
  shatter::sgd<T> opt(net.parameters(), so);

  const idx n = d.train.size();
  const std::int64_t per_epoch = (n + o.batch - 1) / o.batch;
  const std::int64_t total_steps = std::max<std::int64_t>(1, per_epoch * o.epochs);
  shatter::schedule sched = shatter::schedule::cosine(o.lr, total_steps);
  const auto warm = std::int64_t(std::llround(o.warmup * double(per_epoch)));
  if (warm > 0) sched = sched.with_warmup(warm, 0.1);

  fs::create_directories(o.out);
  const fs::path ckpt = fs::path(o.out) / "checkpoint.safetensors";
  const fs::path log_path = fs::path(o.out) / "log.jsonl";
  const std::map<std::string, std::string> meta{{"dataset", o.dataset},
                                                {"arch", o.arch},
                                                {"depth", std::to_string(o.depth)},
                                                {"batch", std::to_string(o.batch)},
                                                {"epochs", std::to_string(o.epochs)},
                                                {"seed", std::to_string(o.seed)},
                                                {"limit_train", std::to_string(o.limit_train)}};
  std::int64_t epoch0 = 0, step = 0;
  if (o.resume) {
    if (!fs::exists(ckpt)) {
      std::cerr << "cifar10: --resume: no checkpoint " << ckpt << "\n";
      return 2;
    }
    shatter::checkpoint_info info;
    try {
      info = shatter::load_checkpoint(ckpt.string(), net, opt, g);
    } catch (const shatter::data_error& e) {
      std::string what = e.what();
      if (what.size() > 400) what = what.substr(0, 400) + " ...";
      std::cerr << "cifar10: --resume: " << ckpt.string()
                << " does not fit this run (different --arch or --depth?): " << what << "\n";
      return 2;
    }
    for (const auto& [k, v] : meta) {
      if (k == "epochs") continue;
      auto it = info.metadata.find(k);
      if (it == info.metadata.end() || it->second != v) {
        std::cerr << "cifar10: --resume: the checkpoint was written with " << k << " = "
                  << (it == info.metadata.end() ? "?" : it->second) << ", this run has " << v
                  << "\n";
        return 2;
      }
    }
    epoch0 = info.epoch;
    step = info.step;
    std::cerr << "resumed from " << ckpt << " after epoch " << epoch0 << " (step " << step << ")\n";
  } else {
    std::ofstream(log_path, std::ios::trunc);
  }
  std::cerr << "cifar10: " << o.arch << " depth " << o.depth << " (" << net.parameter_count()
            << " parameters, built in " << std::fixed << std::setprecision(1) << build_ms
            << " ms), " << n << " training / " << d.test.size() << " test images, batch " << o.batch
            << ", lr " << std::defaultfloat << o.lr << ", " << o.threads << " threads\n";

  shatter::softmax_cross_entropy<T> loss;
  std::vector<idx> order;
  shatter::matrix<T> raw, xb;
  shatter::label_vector yb;
  progress_bar bar;
  double last_test = NAN, best_test = 0, total_secs = 0;
  std::ofstream log(log_path, std::ios::app);
  for (std::int64_t epoch = epoch0; epoch < o.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    shatter::epoch_order(o.seed, epoch, n, order);
    shatter::rng aug(o.seed * 0x9e3779b97f4a7c15ULL + std::uint64_t(epoch) + 1);
    bar.start(epoch, o.epochs, per_epoch);
    double lsum = 0;
    idx seen = 0, correct = 0;
    for (std::int64_t b = 0; b < per_epoch; ++b) {
      const idx first = b * o.batch, m = std::min(o.batch, n - first);
      if (m < 2) break;  // a trailing single image cannot be batch-normalised
      raw.resize(d.train.features(), m);
      yb.resize(std::size_t(m));
      for (idx k = 0; k < m; ++k) {
        const idx j = order[std::size_t(first + k)];
        raw.col(k) = d.train.x.col(j);
        yb[std::size_t(k)] = d.train.labels[std::size_t(j)];
      }
      if (o.augment)
        shatter::random_crop_flip(raw, xb, d.shape, 4, true, aug);
      else
        xb = raw;
      opt.set_learning_rate(sched.lr_at(step));
      const auto& y = net.forward(xb, shatter::mode::train);
      const double l = loss.forward(y, yb);
      if (!std::isfinite(l)) {
        bar.finish();
        std::cerr << "cifar10: the loss became " << l << " at epoch " << epoch + 1 << ", step "
                  << step + 1 << " (diverged; try a smaller --lr or --warmup)\n";
        log << "{\"epoch\": " << epoch + 1 << ", \"diverged\": true, \"step\": " << step + 1
            << "}\n";
        return 3;
      }
      correct += shatter::correct_count(y, yb);
      net.backward(loss.gradient());
      opt.step();
      ++step;
      lsum += l * double(m);
      seen += m;
      bar.update(b + 1, seen, lsum / double(seen), double(correct) / double(seen),
                 b + 1 == per_epoch);
    }
    bar.finish();
    const double train_secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // in batches of the training batch size: a forward pass's memory grows with the batch, and
    // a deep net's training batch is known to fit
    shatter::softmax_cross_entropy<T> test_loss;
    const shatter::evaluation te = shatter::evaluate(net, test_loss, d.test, o.batch);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total_secs += secs;
    last_test = te.accuracy;
    best_test = std::max(best_test, te.accuracy);
    char line[512];
    std::snprintf(line, sizeof line,
                  "{\"epoch\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, \"test_loss\": "
                  "%.6f, \"test_acc\": %.6f, \"seconds\": %.2f, \"train_images_per_second\": "
                  "%.1f, \"lr\": %.6g, \"step\": %lld, \"arch\": \"%s\", \"depth\": %lld}",
                  (long long)epoch + 1, lsum / double(seen), double(correct) / double(seen),
                  te.loss, te.accuracy, secs, double(seen) / train_secs, opt.learning_rate(),
                  (long long)step, o.arch.c_str(), (long long)o.depth);
    log << line << "\n" << std::flush;
    std::cerr << "epoch " << epoch + 1 << "/" << o.epochs << ": train loss " << std::setprecision(4)
              << lsum / double(seen) << " acc " << double(correct) / double(seen) << " | test loss "
              << te.loss << " acc " << te.accuracy << " | " << std::setprecision(1) << std::fixed
              << secs << " s" << std::defaultfloat << "\n";
    save(ckpt, net, opt, g, epoch + 1, step, meta);
  }
  std::ofstream summary(fs::path(o.out) / "summary.json", std::ios::trunc);
  char line[512];
  std::snprintf(line, sizeof line,
                "{\"arch\": \"%s\", \"depth\": %lld, \"epochs\": %lld, \"train_images\": %lld, "
                "\"test_images\": %lld, \"final_test_acc\": %.6f, \"best_test_acc\": %.6f, "
                "\"seconds_this_run\": %.1f, \"parameters\": %lld}",
                o.arch.c_str(), (long long)o.depth, (long long)o.epochs, (long long)n,
                (long long)d.test.size(), last_test, best_test, total_secs,
                (long long)net.parameter_count());
  summary << line << "\n";
  std::cout << "summary: " << line << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  try {
    return run(o);
  } catch (const shatter::data_error& e) {
    std::cerr << "cifar10: " << e.what() << "\n";
    if (o.dataset == "cifar10")
      std::cerr << "cifar10: point the program at the extracted directory with --data DIR "
                   "(default ../shared/data/cifar-10-batches-bin)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "cifar10: " << e.what() << "\n";
    return 1;
  }
}
