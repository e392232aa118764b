// `shattering conv`: the shattering probe on the CIFAR convnets. Each network (a CIFAR
// architecture at a depth, with or without batch norm, one seed) is swept along a line in image
// space, between two CIFAR-10 test images or along a random direction through one, and its
// input-gradient sequence gets the lag-1 autocorrelation and spectral slope of probe/noise.hpp.
// Writes conv_depth_sweep.csv (lines between image pairs), conv_depth_sweep_random.csv (random
// directions), a gnuplot script and conv_depth_sweep.png.
#ifndef SHATTER_EXAMPLES_CONV_SWEEP_HPP
#define SHATTER_EXAMPLES_CONV_SWEEP_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "program_support.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/data/cifar10.hpp"
#include "shatter/data/normalize.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/probe/noise.hpp"
#include "shatter/probe/sweep.hpp"

namespace conv_sweep {

using idx = shatter::index;
using program::json;
namespace fs = std::filesystem;
namespace probe = shatter::probe;

/// The command line of `shattering conv`.
struct config {
  std::string out = "shattering_out";
  std::string data = "../shared/data/cifar-10-batches-bin";
  bool generated = false;  ///< --generated: synthetic images even when the CIFAR files exist
  std::vector<std::string> archs = shatter::cifar_arch_names();
  std::vector<idx> depths{8, 14, 20, 32, 56, 110, 200};
  std::vector<bool> bn{false, true};
  std::vector<std::string> lines{"pairs", "random"};
  int seeds = 20;
  idx points = 128;
  idx width = 16;
  idx image = 32;  ///< generated images only; CIFAR images are 32 x 32
  int threads = 1;
  bool json = false;
};

/// One probed configuration (all seeds).
struct key {
  std::size_t line, arch;
  idx depth;
  bool bn;
};

/// What the seeds of one configuration gave.
struct result {
  key k;
  std::vector<probe::noise_stats> stats;
  std::string failure;
  probe::noise_summary summary;
};

inline std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> v;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) v.push_back(item);
  if (!text.empty() && text.back() == ',') v.push_back("");
  return v;
}

/// Parses `shattering conv ...` (argv[0] is "conv"); usage_error naming the option otherwise.
inline config parse_args(int argc, char** argv) {
  config c;
  std::string archs, depths = "8,14,20,32,56,110,200", bn = "both", lines = "both";
  bool quick = false;
  CLI::App app(
      "The shattering probe on the CIFAR convnets: lag-1 autocorrelation and spectral slope of\n"
      "the input gradient along lines in image space (between two CIFAR-10 test images, and\n"
      "along a random direction through one), against depth, with and without batch norm.",
      "shattering conv");
  program::configure(app);
  app.footer(
      "Writes conv_depth_sweep.csv (lines between image pairs), conv_depth_sweep_random.csv\n"
      "(random directions), conv_sweep.gp and conv_depth_sweep.png (with gnuplot) into --out.\n"
      "Without the CIFAR-10 files (or with --generated) it probes generated smooth images and\n"
      "says so. Exit codes: 0 done, 1 error, 2 bad command line.");
  program::add_out(app, c.out, "output folder");
  app.add_option("--data", c.data, "CIFAR-10 binary folder (test_batch.bin is read)")
      ->type_name("DIR");
  app.add_flag("--generated", c.generated, "probe generated images even if CIFAR-10 is there");
  app.add_option("--archs", archs, "comma-separated CIFAR architectures (default: all)")
      ->type_name("LIST");
  app.add_option("--depths", depths, "comma-separated depths 6n+2 in [8, 2000]")
      ->type_name("LIST")
      ->check(program::integer_list_in(8, 2000));
  app.add_option("--bn", bn, "batch norm: off, on or both")
      ->check(program::one_of({"off", "on", "both"}));
  app.add_option("--line", lines, "lines: pairs, random or both")
      ->check(program::one_of({"pairs", "random", "both"}));
  app.add_option("--seeds", c.seeds, "networks (and lines) per configuration, 2 to 10000")
      ->check(program::integer_in(2, 10000));
  app.add_option("--points", c.points, "points per line, 16 to 4096")
      ->check(program::integer_in(16, 4096));
  app.add_option("--width", c.width, "channels of the first stage, 1 to 256")
      ->check(program::integer_in(1, 256));
  app.add_option("--image", c.image, "side of generated images, a multiple of 4 in [8, 64]")
      ->check(program::integer_in(8, 64));
  app.add_flag("--quick", quick,
               "seconds-long preset for CI: width 4, 8x8 generated images, depths 8,14, "
               "3 seeds, 32 points (later options override it)");
  program::add_threads(app, c.threads);
  program::add_json(app, c.json);
  program::parse(app, argc, argv);
  if (quick) {  // the preset, then whatever was given explicitly
    if (!app.count("--width")) c.width = 4;
    if (!app.count("--image")) c.image = 8;
    if (!app.count("--depths")) depths = "8,14";
    if (!app.count("--seeds")) c.seeds = 3;
    if (!app.count("--points")) c.points = 32;
    c.generated = c.generated || !app.count("--data");
  }
  if (c.image % 4 != 0)
    throw program::usage_error("--image: needs a multiple of 4, got " + std::to_string(c.image));
  if (app.count("--archs") && archs.empty())
    throw program::usage_error("--archs: empty list (valid: resnet, plain_relu, ...)");
  if (!archs.empty()) {
    c.archs.clear();
    for (const auto& a : split(archs)) {
      try {
        shatter::parse_cifar_arch(a);
      } catch (const shatter::config_error& e) {
        throw program::usage_error(std::string("--archs: ") + e.what());
      }
      if (std::find(c.archs.begin(), c.archs.end(), a) == c.archs.end()) c.archs.push_back(a);
    }
  }
  c.depths.clear();
  for (long long d : program::parse_integer_list("--depths", depths, 8, 2000)) {
    if ((d - 2) % 6 != 0)
      throw program::usage_error("--depths: CIFAR depths are 6 n + 2 (8, 14, 20, ...), got " +
                                 std::to_string(d));
    if (std::find(c.depths.begin(), c.depths.end(), idx(d)) == c.depths.end())
      c.depths.push_back(idx(d));
  }
  c.bn = bn == "off"  ? std::vector<bool>{false}
         : bn == "on" ? std::vector<bool>{true}
                      : std::vector<bool>{false, true};
  c.lines = lines == "both" ? std::vector<std::string>{"pairs", "random"}
                            : std::vector<std::string>{lines};
  return c;
}

/// Smooth random images (sums of random low-frequency plane waves per channel, plus a little
/// pixel noise), each channel scaled to mean 0 and variance 1: a stand-in for CIFAR-10.
inline shatter::matrix<float> generated_images(idx count, idx side, shatter::rng& g) {
  shatter::matrix<float> x(3 * side * side, count);
  const double pi = 3.14159265358979323846;
  for (idx n = 0; n < count; ++n)
    for (idx ch = 0; ch < 3; ++ch) {
      Eigen::VectorXd plane = Eigen::VectorXd::Zero(side * side);
      for (int w = 0; w < 6; ++w) {
        const double fx = g.uniform(-3, 3), fy = g.uniform(-3, 3), ph = g.uniform(0, 2 * pi);
        const double amp = g.normal();
        for (idx r = 0; r < side; ++r)
          for (idx col = 0; col < side; ++col)
            plane(r * side + col) +=
                amp * std::cos(2 * pi * (fx * double(col) + fy * double(r)) / double(side) + ph);
      }
      for (idx i = 0; i < plane.size(); ++i) plane(i) += 0.1 * g.normal();
      plane.array() -= plane.mean();
      plane /= std::sqrt(plane.squaredNorm() / double(plane.size())) + 1e-12;
      x.col(n).segment(ch * side * side, side * side) = plane.cast<float>();
    }
  return x;
}

/// The probe's images: 2 per seed from the CIFAR-10 test set (per-channel normalised), or
/// generated ones when the files are missing or --generated. Says which on stderr.
inline shatter::matrix<float> load_images(config& c, std::string& source) {
  const idx need = 2 * idx(c.seeds);
  if (!c.generated) {
    try {
      auto d = shatter::load_cifar10_file<float>(c.data + "/test_batch.bin", need);
      if (d.size() >= need) {
        const auto shape = shatter::cifar10_shape();
        shatter::normalize_channels(d.x, shape, shatter::channel_statistics(d.x, shape));
        c.image = 32;
        source = "CIFAR-10 test images (" + c.data + ")";
        return d.x;
      }
      std::cerr << "shattering conv: " << c.data << "/test_batch.bin has " << d.size()
                << " images, need " << need << "\n";
    } catch (const shatter::data_error& e) {
      std::cerr << "shattering conv: no CIFAR-10 images (" << e.what() << ")\n";
    }
  }
  source = "generated " + std::to_string(c.image) + "x" + std::to_string(c.image) +
           " smooth random images (not CIFAR-10)";
  std::cerr << "shattering conv: probing " << source << "\n";
  shatter::rng g(0xc1fa5);
  return generated_images(need, c.image, g);
}

/// Deterministic seed of a network: independent of threads and job order.
inline std::uint64_t seed_of(const std::string& arch, idx depth, bool bn, int s) {
  std::uint64_t h = 0xc0471e7;
  for (char ch : arch) h = h * 1099511628211ULL ^ std::uint64_t(ch);
  for (std::uint64_t v : {std::uint64_t(depth), std::uint64_t(bn), std::uint64_t(s)})
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

/// A CIFAR net with a scalar output: its logits projected on a random unit vector (a linear map,
/// which changes nothing about shattering).
inline shatter::sequential<float> scalar_net(const config& c, const std::string& arch, idx depth,
                                             bool bn, shatter::rng& g) {
  shatter::cifar_spec s;
  s.weighted_layers = depth;
  s.input = {3, c.image, c.image};
  s.width = c.width;
  s.batch_norm = bn;
  auto net = shatter::build_cifar<float>(shatter::parse_cifar_arch(arch), s, g);
  shatter::dense<float> proj(s.classes, 1, false, shatter::no_init);
  Eigen::VectorXd w(s.classes);
  for (idx i = 0; i < w.size(); ++i) w(i) = g.normal();
  proj.weight() = (w / w.norm()).transpose().cast<float>();
  net.add(std::move(proj));
  return net;
}

/// Seed s's line: from image 2s to image 2s + 1 (t in [0, 1]), or through image 2s along a
/// Gaussian direction of the same length (t in [-1/2, 1/2]).
inline void line_of(const shatter::matrix<float>& images, const std::string& line, int s,
                    Eigen::VectorXd& u, Eigen::VectorXd& v, probe::sweep_options& o) {
  const Eigen::VectorXd a = images.col(2 * s).cast<double>(),
                        b = images.col(2 * s + 1).cast<double>();
  v = b - a;
  if (line == "pairs") {
    u = a;
    o.from = 0;
    o.to = 1;
    return;
  }
  shatter::rng g(0xd1ec7 + std::uint64_t(s));
  Eigen::VectorXd r(a.size());
  for (idx i = 0; i < r.size(); ++i) r(i) = g.normal();
  v = r * (v.norm() / r.norm());
  u = a;
  o.from = -0.5;
  o.to = 0.5;
}

/// Relative cost of a configuration (for scheduling the longest jobs first).
inline double cost_of(const std::string& arch, idx depth) {
  return double(depth) * (arch.find("crelu") != std::string::npos ? 2.0 : 1.0);
}

/// Probes every configuration over all seeds in parallel (one network per job).
inline std::vector<result> probe_all(const config& c, const shatter::matrix<float>& images) {
  std::vector<result> results;
  for (std::size_t l = 0; l < c.lines.size(); ++l)
    for (std::size_t a = 0; a < c.archs.size(); ++a)
      for (bool bn : c.bn)
        for (idx d : c.depths) {
          result r;
          r.k = {l, a, d, bn};
          r.stats.resize(std::size_t(c.seeds));
          results.push_back(std::move(r));
        }
  struct job {
    std::size_t r;
    int seed;
    double cost;
  };
  std::vector<job> jobs;
  for (std::size_t i = 0; i < results.size(); ++i)
    for (int s = 0; s < c.seeds; ++s)
      jobs.push_back({i, s, cost_of(c.archs[results[i].k.arch], results[i].k.depth)});
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const job& x, const job& y) { return x.cost > y.cost; });
  std::mutex mu;
  std::atomic<std::size_t> done{0};
  const auto t0 = std::chrono::steady_clock::now();
  shatter::exec::parallel_for(idx(jobs.size()), c.threads, [&](std::size_t i) {
    const job& j = jobs[i];
    result& r = results[j.r];
    const std::string& arch = c.archs[r.k.arch];
    shatter::rng g(seed_of(arch, r.k.depth, r.k.bn, j.seed));
    try {
      auto net = scalar_net(c, arch, r.k.depth, r.k.bn, g);
      Eigen::VectorXd u, v;
      probe::sweep_options o;
      o.points = c.points;
      line_of(images, c.lines[r.k.line], j.seed, u, v, o);
      r.stats[std::size_t(j.seed)] = probe::analyse(probe::sweep_line(net, u, v, o));
    } catch (const shatter::numeric_error& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (r.failure.empty()) r.failure = e.what();
    }
    const std::size_t n = ++done;
    if (n % 50 == 0 || n == jobs.size()) {
      std::lock_guard<std::mutex> lock(mu);
      std::cerr << "  " << n << " / " << jobs.size() << " networks, "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                << " s" << std::endl;
    }
  });
  for (auto& r : results)
    if (r.failure.empty()) r.summary = probe::summarise(r.stats);
  return results;
}

/// The CSV of one line kind, with the exact header of the convnet depth sweep.
inline std::string csv_of(const config& c, const std::vector<result>& results, std::size_t line) {
  std::ostringstream csv;
  csv << "arch,depth,bn,points,seeds,lag1_mean,lag1_std,slope_mean,slope_std,verdict\n";
  for (const auto& r : results) {
    if (r.k.line != line) continue;
    csv << c.archs[r.k.arch] << "," << r.k.depth << "," << (r.k.bn ? "on" : "off") << ","
        << c.points << "," << c.seeds << ",";
    if (!r.failure.empty()) {
      csv << ",,,,non-finite\n";
      continue;
    }
    const auto& s = r.summary;
    csv << s.lag1_mean << "," << s.lag1_std << ",";
    if (s.slope_seeds)
      csv << s.slope_mean << "," << s.slope_std;
    else
      csv << ",";
    csv << "," << probe::to_string(s.verdict) << "\n";
  }
  return csv.str();
}

inline std::string csv_name(const std::string& line) {
  return line == "pairs" ? "conv_depth_sweep.csv" : "conv_depth_sweep_random.csv";
}

/// The table on stdout: one row per configuration.
inline void print_table(const config& c, const std::vector<result>& results,
                        const std::string& source) {
  auto f3 = [](double x) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(3) << x;
    return s.str();
  };
  std::cout << "Convnet depth sweep: " << source << ", width " << c.width << ", " << c.points
            << " points per line, " << c.seeds << " seeds (mean +- std)\n";
  for (std::size_t l = 0; l < c.lines.size(); ++l) {
    std::cout << "\nlines "
              << (c.lines[l] == "pairs" ? "between two images"
                                        : "along a random "
                                          "direction")
              << ":\n"
              << std::left << std::setw(16) << "arch" << std::right << std::setw(6) << "depth"
              << std::setw(4) << "bn" << std::setw(17) << "lag1" << std::setw(17) << "slope"
              << "  verdict\n";
    for (const auto& r : results) {
      if (r.k.line != l) continue;
      std::cout << std::left << std::setw(16) << c.archs[r.k.arch] << std::right << std::setw(6)
                << r.k.depth << std::setw(4) << (r.k.bn ? "on" : "off");
      if (!r.failure.empty()) {
        std::cout << "  failed: " << r.failure << "\n";
        continue;
      }
      const auto& s = r.summary;
      std::cout << std::setw(17) << f3(s.lag1_mean) + " +- " + f3(s.lag1_std) << std::setw(17)
                << (s.slope_seeds ? f3(s.slope_mean) + " +- " + f3(s.slope_std) : "-") << "  "
                << probe::to_string(s.verdict) << "\n";
    }
  }
}

/// gnuplot script: one row of panels per line kind (lag-1 and slope against depth); solid lines
/// with batch norm, dashed without.
inline std::string plot_script(const config& c, const std::string& source) {
  std::ostringstream g;
  const char* colours[] = {"#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"};
  g << "# written by shattering conv; run: gnuplot conv_sweep.gp (in this folder)\n"
    << "set datafile separator ','\nset terminal pngcairo noenhanced size 1400,"
    << 80 + 480 * c.lines.size() << " font ',10'\nset output 'conv_depth_sweep.png'\n"
    << "set multiplot layout " << c.lines.size() << ",2 title 'CIFAR convnets: " << source
    << ", width " << c.width << ", " << c.points << " points, " << c.seeds
    << " seeds (mean +- std); solid: BN, dashed: no BN'\n"
    << "set logscale x\nset xlabel 'depth'\nset key outside right\nset xrange [7:"
    << double(*std::max_element(c.depths.begin(), c.depths.end())) * 1.2 << "]\n";
  for (const auto& line : c.lines) {
    const std::string file = csv_name(line);
    const std::string what = line == "pairs" ? "between two images" : "random direction";
    for (int panel = 0; panel < 2; ++panel) {
      const int col = panel == 0 ? 6 : 8;
      g << "set title '"
        << (panel == 0 ? "lag-1 autocorrelation"
                       : "spectral slope (brown -2, "
                         "white 0)")
        << ", lines " << what << "'\nset ylabel '" << (panel == 0 ? "lag-1" : "slope") << "'\n"
        << (panel == 0 ? "set yrange [-0.1:1.05]\n" : "set yrange [-3:0.7]\n") << "plot ";
      bool first = true;
      for (std::size_t a = 0; a < c.archs.size(); ++a)
        for (bool bn : c.bn) {
          g << (first ? "" : ", ") << "'" << file << "' using (strcol(1) eq '" << c.archs[a]
            << "' && strcol(3) eq '" << (bn ? "on" : "off") << "' ? $2 : 1/0):" << col << ":"
            << col + 1 << " with yerrorlines lc rgb '" << colours[a % 6] << "' dt " << (bn ? 1 : 2)
            << " pt 7 ps 0.5 title '" << c.archs[a] << (bn ? " BN" : "") << "'";
          first = false;
        }
      g << "\n";
    }
  }
  g << "unset multiplot\n";
  return g.str();
}

/// Runs `shattering conv`: probes, writes the CSVs and the plot; exit code.
inline int run(int argc, char** argv) {
  config c = parse_args(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  shatter::set_threads(1);  // parallel over networks
  program::make_output_dir(c.out);
  std::string source;
  const auto images = load_images(c, source);
  std::size_t nets =
      c.lines.size() * c.archs.size() * c.bn.size() * c.depths.size() * std::size_t(c.seeds);
  std::cerr << "shattering conv: " << nets << " networks on " << c.threads << " threads ..."
            << std::endl;
  const auto results = probe_all(c, images);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const fs::path dir(c.out);
  std::vector<std::string> files;
  for (std::size_t l = 0; l < c.lines.size(); ++l) {
    program::write_file(dir / csv_name(c.lines[l]), csv_of(c, results, l));
    files.push_back(csv_name(c.lines[l]));
  }
  program::write_file(dir / "conv_sweep.gp", plot_script(c, source));
  print_table(c, results, source);
  std::string note;
  std::vector<std::string> plots;
  try {
    fs::remove(dir / "conv_depth_sweep.png");
    const auto st = program::run_program({"gnuplot", "conv_sweep.gp"}, dir);
    if (!st.ok()) throw program::io_error("gnuplot conv_sweep.gp failed (" + st.describe() + ")");
    if (!program::png_complete(dir / "conv_depth_sweep.png"))
      throw program::io_error("gnuplot did not write conv_depth_sweep.png completely");
    plots.push_back("conv_depth_sweep.png");
  } catch (const program::program_not_found&) {
    note = "gnuplot not found, no PNG made (apt-get install gnuplot-nox; gnuplot conv_sweep.gp)";
    std::cerr << "shattering conv: note: " << note << "\n";
  }
  std::size_t failed = 0;
  for (const auto& r : results) failed += !r.failure.empty();
  std::cout << "\nFiles in " << c.out << ": ";
  for (const auto& f : files) std::cout << f << ", ";
  std::cout << "conv_sweep.gp" << (plots.empty() ? "" : ", conv_depth_sweep.png") << "\n";
  std::cerr << "Time: " << std::fixed << std::setprecision(1) << seconds << " s probing " << nets
            << " networks on " << c.threads << " threads\n";
  if (c.json)
    program::print_json_line(json{{"program", "shattering conv"},
                                  {"images", source},
                                  {"networks", nets},
                                  {"failed_configurations", failed},
                                  {"files", files},
                                  {"plots", plots},
                                  {"seconds", program::json_number(seconds)}});
  if (failed > 0) {
    std::cerr << "shattering conv: error: " << failed
              << " configuration(s) produced non-finite outputs or gradients (see the table)\n";
    return 1;
  }
  return 0;
}

}  // namespace conv_sweep

#endif  // SHATTER_EXAMPLES_CONV_SWEEP_HPP
