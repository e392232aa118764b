// The main demo: reproduces the shattered-gradients evidence of Balduzzi et al. (2017),
// Figures 1-3 and the depth rates, for the architectures fnn_relu, fnn_relu_bn, resnet,
// resnet_bn, crelu and crelu_ll. Writes a table to stdout, CSV files, gnuplot scripts and (when
// gnuplot is installed) PNG plots into the output folder.
//
//   shattering [--out DIR] [--seeds N] [--width W] [--points M] [--depths 1,2,4,...]
//              [--archs fnn_relu,resnet_bn,...] [--threads T] [--bias-std S]
//              [--bn-grad fixed|through|running]
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "shatter/core/threads.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/probe/noise.hpp"
#include "shatter/probe/sweep.hpp"
#include "shatter/probe/synthetic.hpp"
#include "shatter/probe/theory.hpp"
#include "shatter/probe/units.hpp"

namespace fs = std::filesystem;
using shatter::architecture;
using idx = shatter::index;
namespace probe = shatter::probe;
using scalar = float;  // the probe runs in single precision: fast, and ample for statistics

namespace {

struct config {
  std::string out = "shattering_out";
  int seeds = 20;
  idx width = 200;
  idx points = 256;
  std::vector<idx> depths{1, 2, 4, 8, 16, 24, 32, 50, 100, 200};
  std::vector<architecture> archs;
  int threads = 0;
  double bias_std = 0.5;
  probe::bn_statistics bn = probe::bn_statistics::fixed;
};

const char* usage_text =
    "usage: shattering [options]\n"
    "Reproduces the shattered-gradients figures (Balduzzi et al. 2017) and a depth sweep.\n"
    "  --out DIR        output folder for CSV, gnuplot scripts and PNGs (default shattering_out)\n"
    "  --seeds N        independent networks per configuration, >= 2 (default 20)\n"
    "  --width W        hidden units per layer, >= 1 (default 200)\n"
    "  --points M       sweep points on [-2, 2], >= 8 (default 256)\n"
    "  --depths LIST    comma-separated depths >= 1 (default 1,2,4,8,16,24,32,50,100,200)\n"
    "  --archs LIST     comma-separated architectures (default all:\n"
    "                   fnn_relu,fnn_relu_bn,resnet,resnet_bn,crelu,crelu_ll)\n"
    "  --threads T      worker threads, >= 1 (default: all cores)\n"
    "  --bias-std S     biases ~ N(0, S^2), S >= 0 (default 0.5; 0 makes bias-free nets\n"
    "                   degenerate on a 1-D input)\n"
    "  --bn-grad MODE   batch-norm statistics of the sweep batch held 'fixed' (default),\n"
    "                   differentiated 'through' (M backward passes per net: slow), or the\n"
    "                   'running' ones\n"
    "  --help           this message\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "shattering: " << msg << "\n" << usage_text;
  std::exit(2);
}

long parse_int(const std::string& opt, const std::string& v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || x < lo || x > hi)
    usage_error(opt + " needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "], got '" + v + "'");
  return x;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

config parse_args(int argc, char** argv) {
  config c;
  c.archs.clear();
  for (const auto& n : shatter::architecture_names())
    c.archs.push_back(shatter::parse_architecture(n));
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    if (a == "--help" || a == "-h") {
      std::cout << usage_text;
      std::exit(0);
    }
    const auto eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a.rfind("--", 0) == 0) {
      static const char* known[] = {"--out",   "--seeds",   "--width",    "--points", "--depths",
                                    "--archs", "--threads", "--bias-std", "--bn-grad"};
      if (std::find(std::begin(known), std::end(known), a) == std::end(known))
        usage_error("unknown option " + a);
      if (i + 1 >= argc) usage_error("option " + a + " needs a value");
      v = argv[++i];
    } else {
      usage_error("unexpected argument '" + a + "'");
    }
    if (a == "--out") {
      if (v.empty()) usage_error("--out needs a folder name");
      c.out = v;
    } else if (a == "--seeds") {
      c.seeds = int(parse_int(a, v, 2, 100000));
    } else if (a == "--width") {
      c.width = parse_int(a, v, 1, 100000);
    } else if (a == "--points") {
      c.points = parse_int(a, v, 8, 1 << 20);
    } else if (a == "--threads") {
      c.threads = int(parse_int(a, v, 1, 1024));
    } else if (a == "--depths") {
      c.depths.clear();
      for (const auto& d : split(v)) c.depths.push_back(parse_int(a, d, 1, 100000));
      if (c.depths.empty()) usage_error("--depths needs at least one depth");
    } else if (a == "--archs") {
      c.archs.clear();
      for (const auto& n : split(v)) {
        try {
          c.archs.push_back(shatter::parse_architecture(n));
        } catch (const shatter::config_error& e) {
          usage_error(std::string("--archs: ") + e.what());
        }
      }
      if (c.archs.empty()) usage_error("--archs needs at least one architecture");
    } else if (a == "--bias-std") {
      char* end = nullptr;
      c.bias_std = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(c.bias_std >= 0) || !std::isfinite(c.bias_std))
        usage_error("--bias-std needs a finite number >= 0, got '" + v + "'");
    } else if (a == "--bn-grad") {
      if (v == "fixed")
        c.bn = probe::bn_statistics::fixed;
      else if (v == "through")
        c.bn = probe::bn_statistics::through;
      else if (v == "running")
        c.bn = probe::bn_statistics::running;
      else
        usage_error("--bn-grad must be fixed, through or running, got '" + v + "'");
    } else {
      usage_error("unknown option " + a);
    }
  }
  if (c.threads == 0) c.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// A network configuration probed over seeds.
struct net_key {
  architecture arch;
  idx depth;
  double beta;
  bool operator<(const net_key& o) const {
    return std::tie(arch, depth, beta) < std::tie(o.arch, o.depth, o.beta);
  }
};

/// Deterministic seed for (configuration, seed idx): independent of threads and job order.
std::uint64_t seed_of(const net_key& k, int s) {
  std::uint64_t h = 0x5ca77e7ed;
  for (std::uint64_t v : {std::uint64_t(k.arch), std::uint64_t(k.depth),
                          std::uint64_t(std::llround(k.beta * 1e6)), std::uint64_t(s)}) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

shatter::mlp_spec spec_of(const config& c, const net_key& k) {
  shatter::mlp_spec s;
  s.in = 1;
  s.out = 1;
  s.width = c.width;
  s.depth = k.depth;
  s.bias = true;
  s.bias_std = c.bias_std;
  s.beta = k.beta;
  return s;
}

/// Results of one configuration over all seeds.
struct net_result {
  std::vector<Eigen::VectorXd> grads;
  std::vector<probe::noise_stats> stats;
  std::string failure;  // non-empty when a seed's sweep failed (e.g. float overflow)
  probe::noise_summary summary;
};

std::string fmt(double x, int prec = 3) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << x;
  return s.str();
}
std::string gfmt(double x) {
  std::ostringstream s;
  s << std::setprecision(3) << x;
  return s.str();
}

bool have_gnuplot() {
  return std::system("command -v gnuplot > /dev/null 2>&1") == 0;
}

void write_matrix(const fs::path& p, const Eigen::MatrixXd& m) {
  std::ofstream f(p);
  for (idx i = 0; i < m.rows(); ++i) {
    for (idx j = 0; j < m.cols(); ++j) f << (j ? " " : "") << static_cast<float>(m(i, j));
    f << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  const config c = parse_args(argc, argv);
  const auto t_start = std::chrono::steady_clock::now();
  try {
    shatter::set_threads(1);  // parallelism is over networks; each product runs on one thread
    fs::create_directories(c.out);
    const fs::path out(c.out);
    probe::sweep_options so;
    so.points = c.points;
    so.bn = c.bn;
    probe::noise_options no;
    // R_adj: two adjacent inputs near t = 0.5 (t = 0 is special with batch norm: the first BN
    // centres every first-layer unit at the batch mean, so all their kinks sit at t = 0).
    const idx pair = (5 * c.points) / 8;

    // ---- Every configuration the figures and the sweep need, probed in one parallel pass.
    std::map<net_key, net_result> results;
    for (auto a : c.archs)
      for (auto d : c.depths) results[{a, d, 1.0}];
    const std::vector<idx> fig2_depths{2, 4, 8, 16, 24, 50};
    for (double beta : {1.0, 0.1})
      for (auto d : fig2_depths) {
        results[{architecture::resnet_bn, d, beta}];
        results[{architecture::resnet, d, beta}];
      }
    for (auto d : fig2_depths) {
      results[{architecture::fnn_relu_bn, d, 1.0}];
      results[{architecture::fnn_relu, d, 1.0}];
    }
    results[{architecture::fnn_relu, 1, 1.0}];
    results[{architecture::fnn_relu, 24, 1.0}];
    results[{architecture::fnn_relu_bn, 24, 1.0}];
    results[{architecture::resnet_bn, 50, 1.0}];
    results[{architecture::resnet, 50, 1.0}];

    struct job {
      net_key key;
      int seed;
      double cost;
    };
    std::vector<job> jobs;
    for (auto& [k, r] : results) {
      r.grads.resize(std::size_t(c.seeds));
      r.stats.resize(std::size_t(c.seeds));
      const double w = k.arch == architecture::crelu || k.arch == architecture::crelu_ll ? 2 : 1;
      for (int s = 0; s < c.seeds; ++s) jobs.push_back({k, s, w * double(k.depth)});
    }
    std::stable_sort(jobs.begin(), jobs.end(),
                     [](const job& a, const job& b) { return a.cost > b.cost; });
    std::cout << "shattering: probing " << results.size() << " configurations x " << c.seeds
              << " seeds (" << jobs.size() << " networks, width " << c.width << ", " << c.points
              << " points on [-2, 2]) on " << c.threads << " threads ..." << std::endl;
    std::mutex mu;
    std::atomic<std::size_t> done{0};
    const auto t_probe = std::chrono::steady_clock::now();
    shatter::exec::parallel_for(idx(jobs.size()), c.threads, [&](std::size_t i) {
      const job& j = jobs[i];
      net_result* r;
      {
        std::lock_guard<std::mutex> lock(mu);
        r = &results.at(j.key);
      }
      shatter::rng g(seed_of(j.key, j.seed));
      try {
        auto net = shatter::build<scalar>(j.key.arch, spec_of(c, j.key), g);
        auto sw = probe::sweep(net, so);
        r->stats[std::size_t(j.seed)] = probe::analyse(sw, no);
        r->grads[std::size_t(j.seed)] = std::move(sw.gradient);
      } catch (const shatter::numeric_error& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (r->failure.empty()) r->failure = e.what();
      }
      const std::size_t n = ++done;
      if (n % 200 == 0 || n == jobs.size()) {
        std::lock_guard<std::mutex> lock(mu);
        std::cout << "  " << n << " / " << jobs.size() << " networks, "
                  << fmt(seconds_since(t_probe), 1) << " s" << std::endl;
      }
    });
    std::size_t failed = 0;
    for (auto& [k, r] : results)
      if (r.failure.empty())
        r.summary = probe::summarise(r.stats, no);
      else
        ++failed;
    const double probe_seconds = seconds_since(t_probe);

    // ---- Depth sweep: table, CSV, theory beside the measurements.
    {
      std::ofstream csv(out / "depth_sweep.csv");
      csv << "arch,depth,width,points,seeds,lag1_mean,lag1_std,slope_mean,slope_std,verdict\n";
      std::ofstream th(out / "depth_sweep_theory.csv");
      th << "arch,depth,theory_formula,theory_R,seed_corr_adjacent\n";
      std::cout
          << "\nDepth sweep (width " << c.width << ", " << c.points << " points on [-2, 2], "
          << c.seeds << " seeds, biases ~ N(0, " << c.bias_std << "^2), BN statistics: "
          << (c.bn == probe::bn_statistics::fixed     ? "sweep batch, held fixed"
              : c.bn == probe::bn_statistics::through ? "sweep batch, differentiated through"
                                                      : "running")
          << ")\n"
          << "lag1 = autocorrelation of df/dx at neighbouring inputs (brown ~1, white ~0);\n"
          << "slope = log-log power-spectrum slope over f in (0, 1/4] (brown -2, white 0);\n"
          << "verdict: brown if slope <= -1.5 and lag1 >= 0.5, white if slope >= -0.5 and lag1 < "
             "0.5,\n  between otherwise; constant / two-valued for the degenerate cases;\n"
          << "theory R = predicted correlation after L layers; R_adj = correlation across "
             "seeds of the\ngradients at two adjacent inputs near t = 0.5.\n\n";
      std::cout << std::left << std::setw(12) << "arch" << std::right << std::setw(6) << "depth"
                << std::setw(17) << "lag1" << std::setw(17) << "slope"
                << "  " << std::left << std::setw(11) << "verdict" << std::right << std::setw(10)
                << "theory R" << std::setw(8) << "R_adj"
                << "  formula\n";
      for (auto a : c.archs) {
        for (auto d : c.depths) {
          const net_key k{a, d, 1.0};
          const auto& r = results.at(k);
          const auto theory = probe::theory::predicted(a, double(d));
          const std::string name = shatter::to_string(a);
          std::cout << std::left << std::setw(12) << name << std::right << std::setw(6) << d;
          if (!r.failure.empty()) {
            std::cout << "  failed: " << r.failure << "\n";
            csv << name << "," << d << "," << c.width << "," << c.points << "," << c.seeds
                << ",,,,,non-finite\n";
            continue;
          }
          const auto& s = r.summary;
          const double radj = probe::correlation_across_seeds(r.grads, pair, pair + 1);
          const std::string slope =
              s.slope_seeds ? fmt(s.slope_mean, 2) + " +- " + fmt(s.slope_std, 2) : "-";
          std::cout << std::setw(17) << (fmt(s.lag1_mean) + " +- " + fmt(s.lag1_std))
                    << std::setw(17) << slope << "  " << std::left << std::setw(11)
                    << probe::to_string(s.verdict) << std::right << std::setw(10)
                    << (theory ? gfmt(*theory) : "-") << std::setw(8) << fmt(radj) << "  "
                    << probe::theory::formula(a) << "\n";
          csv << name << "," << d << "," << c.width << "," << c.points << "," << c.seeds << ","
              << s.lag1_mean << "," << s.lag1_std << ",";
          if (s.slope_seeds)
            csv << s.slope_mean << "," << s.slope_std;
          else
            csv << ",";  // constant gradients have no spectral slope
          csv << "," << probe::to_string(s.verdict) << "\n";
          th << name << "," << d << "," << probe::theory::formula(a) << ","
             << (theory ? gfmt(*theory) : "") << "," << radj << "\n";
        }
        std::cout << "\n";
      }
    }

    // ---- Figure 1: gradient sequences and covariance matrices.
    shatter::rng noise_rng(20170227);
    const Eigen::VectorXd brown = probe::brown_noise(c.points, noise_rng);
    const Eigen::VectorXd white = probe::white_noise(c.points, noise_rng);
    struct series {
      std::string name, title;
      Eigen::VectorXd g;
    };
    auto grad0 = [&](architecture a, idx d) -> Eigen::VectorXd {
      const auto& r = results.at({a, d, 1.0});
      if (!r.failure.empty()) return Eigen::VectorXd::Zero(c.points);
      return r.grads[0];
    };
    const std::vector<series> fig1{
        {"one_layer", "(a) 1-layer feedforward", grad0(architecture::fnn_relu, 1)},
        {"fnn_relu_bn_24", "(b) 24-layer feedforward, BN", grad0(architecture::fnn_relu_bn, 24)},
        {"resnet_bn_50", "(c) 50-layer resnet, BN", grad0(architecture::resnet_bn, 50)},
        {"brown", "(d) brown noise", brown},
        {"white", "(e) white noise", white},
        {"fnn_relu_24", "(b') 24-layer feedforward, no BN", grad0(architecture::fnn_relu, 24)},
        {"resnet_50", "(c') 50-layer resnet, no BN", grad0(architecture::resnet, 50)}};
    {
      std::ofstream f(out / "figure1_gradients.csv");
      f << "t";
      for (const auto& s : fig1) f << "," << s.name;
      f << "\n";
      for (idx i = 0; i < c.points; ++i) {
        f << -2.0 + 4.0 * double(i) / double(c.points - 1);
        for (const auto& s : fig1) f << "," << s.g(i);
        f << "\n";
      }
      for (const auto& s : fig1)
        write_matrix(out / ("figure1_cov_" + s.name + ".dat"), probe::covariance_matrix(s.g));
      std::cout << "Figure 1 (seed 0 of each net; lag-1 of the plotted sequence):\n";
      for (const auto& s : fig1) {
        const auto st = probe::analyse(s.g, no);
        std::cout << "  " << std::left << std::setw(36) << s.title << std::right << " lag1 "
                  << std::setw(6) << fmt(st.lag1) << "  slope "
                  << (st.has_slope ? fmt(st.slope, 2) : std::string("-")) << "  "
                  << probe::to_string(st.verdict) << "\n";
      }
    }

    // ---- Figure 2: autocorrelation against lag.
    struct acf_panel {
      std::string title;
      architecture arch;
      double beta;
    };
    const std::vector<acf_panel> fig2{{"feedforward, BN", architecture::fnn_relu_bn, 1.0},
                                      {"resnet, BN, beta = 1", architecture::resnet_bn, 1.0},
                                      {"resnet, BN, beta = 0.1", architecture::resnet_bn, 0.1},
                                      {"feedforward, no BN", architecture::fnn_relu, 1.0},
                                      {"resnet, no BN, beta = 1", architecture::resnet, 1.0},
                                      {"resnet, no BN, beta = 0.1", architecture::resnet, 0.1}};
    {
      std::ofstream f(out / "figure2_acf.csv");
      f << "panel,arch,beta,depth,lag,acf_mean,acf_std\n";
      std::cout << "\nFigure 2 (mean autocorrelation at lags 1, 5, 20 over " << c.seeds
                << " seeds):\n";
      for (std::size_t p = 0; p < fig2.size(); ++p) {
        std::cout << "  " << std::left << std::setw(27) << fig2[p].title << std::right;
        for (auto d : fig2_depths) {
          const auto& r = results.at({fig2[p].arch, d, fig2[p].beta});
          if (!r.failure.empty()) {
            f << "\n\n";  // keep gnuplot's block idx aligned
            continue;
          }
          const auto& s = r.summary;
          for (idx l = 0; l < s.acf_mean.size(); ++l)
            f << p << "," << shatter::to_string(fig2[p].arch) << "," << fig2[p].beta << "," << d
              << "," << l << "," << s.acf_mean(l) << "," << s.acf_std(l) << "\n";
          f << "\n\n";
          auto at = [&](idx l) { return l < s.acf_mean.size() ? fmt(s.acf_mean(l), 2) : "-"; };
          std::cout << "  L=" << d << ": " << at(1) << "/" << at(5) << "/" << at(20);
        }
        std::cout << "\n";
      }
    }

    // ---- Figure 3: active and co-active proportions per layer, with and without BN.
    const idx fig3_depth = 50;
    struct activity_sum {
      std::vector<double> active, coactive;
    };
    std::map<architecture, activity_sum> fig3;
    {
      const auto t3 = std::chrono::steady_clock::now();
      const std::vector<architecture> fig3_archs{architecture::fnn_relu, architecture::fnn_relu_bn};
      for (auto a : fig3_archs)
        fig3[a] = {std::vector<double>(fig3_depth, 0.0), std::vector<double>(fig3_depth, 0.0)};
      probe::sweep_options ao = so;
      if (ao.bn == probe::bn_statistics::through) ao.bn = probe::bn_statistics::fixed;
      shatter::exec::parallel_for(idx(fig3_archs.size()) * c.seeds, c.threads, [&](std::size_t i) {
        const architecture a = fig3_archs[i / std::size_t(c.seeds)];
        const int s = int(i % std::size_t(c.seeds));
        const net_key k{a, fig3_depth, 1.0};
        shatter::rng g(seed_of(k, s));
        auto net = shatter::build<scalar>(a, spec_of(c, k), g);
        const auto act = probe::unit_activity(net, ao);
        std::lock_guard<std::mutex> lock(mu);
        for (std::size_t l = 0; l < act.size() && l < std::size_t(fig3_depth); ++l) {
          fig3[a].active[l] += act[l].active / c.seeds;
          fig3[a].coactive[l] += act[l].coactive / c.seeds;
        }
      });
      std::ofstream f(out / "figure3_activity.csv");
      f << "layer,active_no_bn,coactive_no_bn,active_bn,coactive_bn\n";
      for (idx l = 0; l < fig3_depth; ++l)
        f << l + 1 << "," << fig3[architecture::fnn_relu].active[std::size_t(l)] << ","
          << fig3[architecture::fnn_relu].coactive[std::size_t(l)] << ","
          << fig3[architecture::fnn_relu_bn].active[std::size_t(l)] << ","
          << fig3[architecture::fnn_relu_bn].coactive[std::size_t(l)] << "\n";
      std::cout << "\nFigure 3 (depth-" << fig3_depth << " feedforward nets, " << c.seeds
                << " seeds; idealisation: active 1/2, co-active 1/4):\n";
      std::cout << "  layer   active(no BN)  co-active(no BN)   active(BN)  co-active(BN)\n";
      for (idx l : {1, 2, 5, 10, 25, 50}) {
        const auto u = std::size_t(l - 1);
        std::cout << "  " << std::setw(5) << l << std::setw(15)
                  << fmt(fig3[architecture::fnn_relu].active[u]) << std::setw(18)
                  << fmt(fig3[architecture::fnn_relu].coactive[u]) << std::setw(13)
                  << fmt(fig3[architecture::fnn_relu_bn].active[u]) << std::setw(15)
                  << fmt(fig3[architecture::fnn_relu_bn].coactive[u]) << "\n";
      }
      std::cout << "  (" << fmt(seconds_since(t3), 1) << " s)\n";
    }

    // ---- Batch-norm statistics: held fixed (the default) against differentiated through.
    {
      const auto tb = std::chrono::steady_clock::now();
      const idx bn_depth = 24;
      const int bn_seeds = std::min(c.seeds, 4);
      // 'through' needs one backward pass per point, so its cost grows as points^2: compare at
      // 64 points. The coupling through the batch statistics is O(1/points), so the difference
      // at the default 256 points is smaller than the one shown.
      const idx bn_points = std::min<idx>(c.points, 64);
      const std::vector<architecture> bn_archs{architecture::fnn_relu_bn, architecture::resnet_bn};
      struct bn_cmp {
        double lag_fixed = 0, lag_through = 0, max_rel_diff = 0;
      };
      std::vector<bn_cmp> cmp(bn_archs.size() * std::size_t(bn_seeds));
      shatter::exec::parallel_for(idx(cmp.size()), c.threads, [&](std::size_t i) {
        const architecture a = bn_archs[i / std::size_t(bn_seeds)];
        const net_key k{a, bn_depth, 1.0};
        shatter::rng g(seed_of(k, int(i % std::size_t(bn_seeds))));
        auto net = shatter::build<scalar>(a, spec_of(c, k), g);
        probe::sweep_options f = so, t = so;
        f.points = t.points = bn_points;
        f.bn = probe::bn_statistics::fixed;
        t.bn = probe::bn_statistics::through;
        const auto rf = probe::sweep(net, f), rt = probe::sweep(net, t);
        cmp[i].lag_fixed = probe::analyse(rf, no).lag1;
        cmp[i].lag_through = probe::analyse(rt, no).lag1;
        cmp[i].max_rel_diff =
            (rf.gradient - rt.gradient).cwiseAbs().maxCoeff() / rf.gradient.cwiseAbs().maxCoeff();
      });
      std::cout << "\nBatch-norm statistics of the sweep batch held fixed (default) vs "
                   "differentiated through\n(depth "
                << bn_depth << ", " << bn_points << " points, " << bn_seeds
                << " seeds; 'through' costs one backward pass per point):\n";
      for (std::size_t a = 0; a < bn_archs.size(); ++a) {
        double lf = 0, lt = 0, d = 0;
        for (int sd = 0; sd < bn_seeds; ++sd) {
          const auto& x = cmp[a * std::size_t(bn_seeds) + std::size_t(sd)];
          lf += x.lag_fixed / bn_seeds;
          lt += x.lag_through / bn_seeds;
          d = std::max(d, x.max_rel_diff);
        }
        std::cout << "  " << std::left << std::setw(12) << shatter::to_string(bn_archs[a])
                  << std::right << " lag1 fixed " << fmt(lf) << ", through " << fmt(lt)
                  << ", largest gradient difference " << gfmt(d) << " of max|g|\n";
      }
      std::cout << "  (" << fmt(seconds_since(tb), 1) << " s)\n";
    }

    // ---- gnuplot scripts and PNGs.
    {
      std::ofstream g(out / "plots.gp");
      const std::string q = "\"";
      g << "# gnuplot script written by the shattering demo; run: gnuplot plots.gp (in this "
           "folder)\n"
        << "set datafile separator ','\nset terminal pngcairo noenhanced size 1800,700 font ',10'\n"
        << "set output 'figure1.png'\nset multiplot layout 2,5 title 'Figure 1: gradient df/dx "
           "along 256 inputs in [-2,2] (top) and covariance |(g-m)(g-m)^T|/var (bottom)'\n"
        << "set key off\n";
      auto fig1_block = [&](const std::vector<int>& cols) {
        for (int col : cols)
          g << "set title " << q << fig1[std::size_t(col)].title << q
            << "\nset xrange [-2:2]\nset autoscale y\nplot 'figure1_gradients.csv' using 1:"
            << col + 2 << " every ::1 with lines lw 1.2 lc rgb '#1f4e9c'\n";
        g << "set datafile separator whitespace\nunset xrange\nunset yrange\nset size ratio -1\n"
          << "unset colorbox\nset palette defined (0 'white', 1 '#1f4e9c', 2 'black')\n"
          << "set cbrange [0:2]\nunset xtics\nunset ytics\n";
        for (int col : cols)
          g << "set title " << q << fig1[std::size_t(col)].title << q << "\nplot 'figure1_cov_"
            << fig1[std::size_t(col)].name << ".dat' matrix with image\n";
        g << "set size noratio\nset xtics\nset ytics\nset datafile separator ','\nunset "
             "multiplot\n";
      };
      fig1_block({0, 1, 2, 3, 4});
      g << "set terminal pngcairo noenhanced size 1100,700 font ',10'\nset output "
           "'figure1_without_bn.png'\n"
        << "set multiplot layout 2,3 title 'Figure 1 without batch norm (1-D probe, biases drawn "
           "from N(0, "
        << c.bias_std << "^2))'\n";
      fig1_block({0, 5, 6});

      g << "set terminal pngcairo noenhanced size 1500,850 font ',10'\nset output 'figure2.png'\n"
        << "set multiplot layout 2,3 title 'Figure 2: autocorrelation of df/dx against lag (mean "
           "over "
        << c.seeds
        << " seeds)'\nset key top right\nset xlabel 'lag'\nset ylabel 'autocorrelation'\n"
        << "set yrange [-0.3:1.05]\nset xrange [0:" << std::min<idx>(c.points - 1, 64) << "]\n";
      for (std::size_t p = 0; p < fig2.size(); ++p) {
        g << "set title '" << fig2[p].title << "'\nplot ";
        for (std::size_t b = 0; b < fig2_depths.size(); ++b)
          g << (b ? ", " : "") << "'figure2_acf.csv' index " << p * fig2_depths.size() + b
            << " using 5:6 with lines lw 1.5 title 'L = " << fig2_depths[b] << "'";
        g << "\n";
      }
      g << "unset multiplot\nunset xrange\nunset yrange\n";

      g << "set terminal pngcairo noenhanced size 1200,500 font ',10'\nset output 'figure3.png'\n"
        << "set multiplot layout 1,2 title 'Figure 3: unit activity per layer of depth-"
        << fig3_depth << " ReLU nets (" << c.seeds << " seeds)'\n"
        << "set xlabel 'layer'\nset ylabel 'proportion'\nset yrange [0:1]\nset key top left\n"
        << "set title 'proportion of units active for an input'\nplot 'figure3_activity.csv' every "
           "::1 using 1:2 with linespoints pt 7 ps 0.5 title 'no BN', '' every ::1 using 1:4 with "
           "linespoints pt 7 ps 0.5 title 'BN', 0.5 dt 2 lc rgb 'gray' title '1/2'\n"
        << "set title 'proportion of units co-active for a pair of inputs'\nplot "
           "'figure3_activity.csv' every ::1 using 1:3 with linespoints pt 7 ps 0.5 title 'no BN', "
           "'' every ::1 using 1:5 with linespoints pt 7 ps 0.5 title 'BN', 0.25 dt 2 lc rgb "
           "'gray' title '1/4'\nunset multiplot\nunset yrange\n";

      g << "set terminal pngcairo noenhanced size 1400,600 font ',10'\nset output "
           "'depth_sweep.png'\n"
        << "set multiplot layout 1,2 title 'Depth sweep: width " << c.width << ", " << c.points
        << " points, " << c.seeds << " seeds (mean +- std); dashed: theory R(L)'\n"
        << "set logscale x\nset xlabel 'depth L'\nset key bottom left\nset xrange [0.8:"
        << *std::max_element(c.depths.begin(), c.depths.end()) * 1.25 << "]\n"
        << "set title 'lag-1 autocorrelation of df/dx'\nset ylabel 'lag-1'\nset yrange "
           "[-0.1:1.05]\nplot ";
      const char* colours[] = {"#d62728", "#ff7f0e", "#1f77b4", "#17becf", "#9467bd", "#2ca02c"};
      for (std::size_t i = 0; i < c.archs.size(); ++i) {
        const auto name = shatter::to_string(c.archs[i]);
        const auto col = colours[static_cast<std::size_t>(c.archs[i]) % 6];
        g << (i ? ", " : "") << "'depth_sweep.csv' using (strcol(1) eq '" << name
          << "' ? $2 : 1/0):6:7 with yerrorlines lc rgb '" << col << "' pt 7 ps 0.6 title '" << name
          << "'";
      }
      g << ", 2**(-x) dt 2 lc rgb '#d62728' title 'theory 2^-L', 1/sqrt(x) dt 2 lc rgb '#17becf' "
           "title 'theory 1/sqrt(L)', 0.75**x dt 2 lc rgb '#1f77b4' title 'theory (3/4)^L'\n"
        << "set title 'power-spectrum slope (brown -2, white 0)'\nset ylabel 'slope'\nset yrange "
           "[-2.5:0.7]\n"
        << "set key top left\nplot ";
      for (std::size_t i = 0; i < c.archs.size(); ++i) {
        const auto name = shatter::to_string(c.archs[i]);
        const auto col = colours[static_cast<std::size_t>(c.archs[i]) % 6];
        g << (i ? ", " : "") << "'depth_sweep.csv' using (strcol(1) eq '" << name
          << "' ? $2 : 1/0):8:9 with yerrorlines lc rgb '" << col << "' pt 7 ps 0.6 title '" << name
          << "'";
      }
      g << ", -2 dt 3 lc rgb 'brown' title 'brown', 0 dt 3 lc rgb 'gray' title 'white'\n"
        << "unset multiplot\n";
    }
    if (have_gnuplot()) {
      const std::string cmd = "cd '" + c.out + "' && gnuplot plots.gp";
      if (std::system(cmd.c_str()) != 0)
        std::cout << "\nnote: gnuplot failed; the CSV files and plots.gp are in " << c.out << "\n";
      else
        std::cout << "\nPlots: " << (out / "figure1.png").string() << ", figure1_without_bn.png, "
                  << "figure2.png, figure3.png, depth_sweep.png\n";
    } else {
      std::cout << "\nnote: gnuplot not found, no PNGs made. Install it (apt-get install "
                   "gnuplot-nox) and run: cd "
                << c.out << " && gnuplot plots.gp\n";
    }
    std::cout << "CSV: " << (out / "depth_sweep.csv").string()
              << ", depth_sweep_theory.csv, figure1_gradients.csv, figure2_acf.csv, "
                 "figure3_activity.csv\n"
              << "Time: probing " << fmt(probe_seconds, 1) << " s, total "
              << fmt(seconds_since(t_start), 1) << " s on " << c.threads << " threads\n";
    if (failed > 0) {
      std::cerr << "shattering: error: " << failed
                << " configuration(s) produced non-finite outputs or gradients (see the table)\n";
      return 1;
    }
  } catch (const shatter::error& e) {
    std::cerr << "shattering: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "shattering: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
