// The main demo: reproduces the shattered-gradients evidence of Balduzzi et al. (2017),
// Figures 1-3 and the depth rates, for the architectures plain_relu, plain_relu_bn, resnet,
// resnet_bn, plain_crelu, plain_crelu_ll, plain_prelu_ll and plain_tat (the former names fnn_relu,
// fnn_relu_bn, crelu, crelu_ll, prelu_ll and tat are still accepted by --archs). Writes tables to
// stdout, CSV files, a gnuplot script and (when gnuplot is installed) PNG plots into the output
// folder; progress and messages go to stderr.
//
//   shattering [--out DIR] [--seeds N] [--width W] [--points M] [--depths 1,2,4,...]
//              [--archs plain_relu,resnet_bn,...] [--threads T] [--bias-std S]
//              [--bn-grad fixed|through|running] [--json]
//   shattering conv [--archs ...] [--depths 8,20,...] [--bn off|on|both] [--line pairs|random|both]
//              [--seeds N] [--points M] [--quick] ...   (the CIFAR convnets; see conv_sweep.hpp)
//   shattering plane [--archs ...] [--depths 1,24,50,200] [--points 65] [--seeds 3] ...
//              (2-D gradient maps of 2-input nets; see plane_maps.hpp)
//
// --depths and --archs restrict every network it probes: a figure panel is drawn only from a
// requested architecture at a requested depth (Figure 3 and the batch-norm comparison use the
// requested depth nearest to their own).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "conv_sweep.hpp"
#include "plane_maps.hpp"
#include "program_support.hpp"
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
using program::json;
namespace probe = shatter::probe;
using scalar = float;  // the probe runs in single precision: fast, and ample for statistics

namespace {

struct config {
  std::string out = "shattering_out";
  int seeds = 20;
  idx width = 200;
  idx points = 256;
  std::vector<idx> depths{1, 2, 4, 8, 16, 24, 32, 50, 100, 200};
  std::vector<architecture> archs;  // all of them unless --archs
  int threads = 1;
  double bias_std = 0.5;
  probe::bn_statistics bn = probe::bn_statistics::fixed;
  bool json = false;

  bool has(architecture a) const { return std::count(archs.begin(), archs.end(), a) > 0; }
  bool has(idx d) const { return std::count(depths.begin(), depths.end(), d) > 0; }
  /// Whether the run may probe architecture a at depth d.
  bool wants(architecture a, idx d) const { return has(a) && has(d); }
  /// The requested depth nearest to `preferred` (the smaller one on a tie).
  idx nearest_depth(idx preferred) const {
    idx best = depths.front();
    for (idx d : depths) {
      const idx dist = std::abs(d - preferred), best_dist = std::abs(best - preferred);
      if (dist < best_dist || (dist == best_dist && d < best)) best = d;
    }
    return best;
  }
};

const char* description =
    "Reproduces the shattered-gradients figures (Balduzzi et al. 2017) and a depth sweep:\n"
    "tables on stdout, CSV files, a gnuplot script and PNGs in --out.";
const char* footer =
    "--depths and --archs restrict every network probed: a figure panel is drawn only from a\n"
    "requested architecture at a requested depth; Figure 3 and the batch-norm comparison use\n"
    "the requested depth nearest to 50 and 24. Progress goes to stderr.\n"
    "Exit codes: 0 done, 1 error (I/O, memory, non-finite results), 2 bad command line.";

template <class T>
std::string join(const std::vector<T>& v, const char* sep = ",") {
  std::ostringstream s;
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? sep : "") << v[i];
  return s.str();
}

/// Splits a comma-separated list of architecture names; usage_error naming --archs otherwise.
std::vector<architecture> parse_archs(const std::string& text) {
  std::vector<architecture> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    const std::string name = text.substr(start, comma - start);
    try {
      const architecture a = shatter::parse_architecture(name);
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    } catch (const shatter::config_error& e) {
      throw program::usage_error(std::string("--archs: ") + e.what());
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

config parse_args(int argc, char** argv) {
  config c;
  std::string depths = join(c.depths), archs = join(shatter::architecture_names());
  std::string bn = "fixed";
  CLI::App app(description, "shattering");
  program::configure(app);
  app.footer(footer);
  program::add_out(app, c.out, "output folder for CSV files, plots.gp and PNGs");
  app.add_option("--seeds", c.seeds, "independent networks per configuration, 2 to 100000")
      ->check(program::integer_in(2, 100000));
  app.add_option("--width", c.width, "hidden units per layer, 1 to 100000")
      ->check(program::integer_in(1, 100000));
  app.add_option("--points", c.points, "sweep points on [-2, 2], 8 to 1048576")
      ->check(program::integer_in(8, 1 << 20));
  app.add_option("--depths", depths, "comma-separated depths, each 1 to 100000")
      ->type_name("LIST")
      ->check(program::integer_list_in(1, 100000));
  app.add_option("--archs", archs, "comma-separated architectures")
      ->type_name("LIST")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            try {
              parse_archs(s);
            } catch (const program::usage_error& e) {
              return std::string(e.what()).substr(std::string("--archs: ").size());
            }
            return {};
          },
          ""));
  program::add_threads(app, c.threads);
  app.add_option("--bias-std", c.bias_std,
                 "biases ~ N(0, S^2), S in [0, 1e6]; 0 makes 1-D nets degenerate")
      ->type_name("S")
      ->check(program::finite_in(0, 1e6));
  app.add_option("--bn-grad", bn,
                 "BN statistics of the sweep batch: fixed, through (slow) or running")
      ->type_name("MODE")
      ->check(program::one_of({"fixed", "through", "running"}));
  program::add_json(app, c.json);
  program::parse(app, argc, argv);

  c.depths.clear();
  for (long long d : program::parse_integer_list("--depths", depths, 1, 100000))
    if (!c.has(idx(d))) c.depths.push_back(idx(d));
  c.archs = parse_archs(archs);
  c.bn = bn == "through"   ? probe::bn_statistics::through
         : bn == "running" ? probe::bn_statistics::running
                           : probe::bn_statistics::fixed;
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
  s.hidden_layers = k.depth;
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
using result_map = std::map<net_key, net_result>;

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

/// A panel of Figure 1: a network's gradient (seed 0), or a synthetic noise sequence.
struct series {
  std::string name, title;
  std::optional<net_key> net;  // empty for the noise references
  Eigen::VectorXd g;
};

/// A panel of Figure 2: autocorrelation curves of one architecture and beta over depths.
struct acf_panel {
  std::string title;
  architecture arch;
  double beta;
};

/// What the figures draw, restricted to the requested architectures and depths.
struct figure_plan {
  std::vector<series> fig1;  // every panel whose network was requested, and the noise
  bool fig1_bn = false, fig1_no_bn = false;  // whether each Figure 1 image has a network panel
  std::vector<acf_panel> fig2;
  std::vector<idx> fig2_depths;
  std::vector<architecture> fig3_archs;
  idx fig3_depth = 50;
  std::vector<architecture> bn_archs;
  idx bn_depth = 24;
};

figure_plan plan_figures(const config& c) {
  figure_plan f;
  const std::vector<series> fig1{
      {"one_layer", "(a) 1-layer feedforward", net_key{architecture::plain_relu, 1, 1.0}, {}},
      {"plain_relu_bn_24",
       "(b) 24-layer feedforward, BN",
       net_key{architecture::plain_relu_bn, 24, 1.0},
       {}},
      {"resnet_bn_50", "(c) 50-layer resnet, BN", net_key{architecture::resnet_bn, 50, 1.0}, {}},
      {"brown", "(d) brown noise", std::nullopt, {}},
      {"white", "(e) white noise", std::nullopt, {}},
      {"plain_relu_24",
       "(b') 24-layer feedforward, no BN",
       net_key{architecture::plain_relu, 24, 1.0},
       {}},
      {"resnet_50", "(c') 50-layer resnet, no BN", net_key{architecture::resnet, 50, 1.0}, {}}};
  for (const auto& s : fig1) {
    if (s.net && !c.wants(s.net->arch, s.net->depth)) continue;
    f.fig1.push_back(s);
    if (s.net && (s.name == "one_layer" || s.name == "plain_relu_24" || s.name == "resnet_50"))
      f.fig1_no_bn = true;
    if (s.net && s.name != "plain_relu_24" && s.name != "resnet_50") f.fig1_bn = true;
  }
  if (!f.fig1_bn)  // the noise references belong to figure1.png only
    f.fig1.erase(
        std::remove_if(f.fig1.begin(), f.fig1.end(), [](const series& s) { return !s.net; }),
        f.fig1.end());
  const std::vector<acf_panel> fig2{{"feedforward, BN", architecture::plain_relu_bn, 1.0},
                                    {"resnet, BN, beta = 1", architecture::resnet_bn, 1.0},
                                    {"resnet, BN, beta = 0.1", architecture::resnet_bn, 0.1},
                                    {"feedforward, no BN", architecture::plain_relu, 1.0},
                                    {"resnet, no BN, beta = 1", architecture::resnet, 1.0},
                                    {"resnet, no BN, beta = 0.1", architecture::resnet, 0.1}};
  for (idx d : {2, 4, 8, 16, 24, 50})
    if (c.has(d)) f.fig2_depths.push_back(d);
  for (const auto& p : fig2)
    if (c.has(p.arch) && !f.fig2_depths.empty()) f.fig2.push_back(p);
  for (auto a : {architecture::plain_relu, architecture::plain_relu_bn})
    if (c.has(a)) f.fig3_archs.push_back(a);
  f.fig3_depth = c.nearest_depth(50);
  for (auto a : {architecture::plain_relu_bn, architecture::resnet_bn})
    if (c.has(a)) f.bn_archs.push_back(a);
  f.bn_depth = c.nearest_depth(24);
  return f;
}

/// Every configuration the depth sweep and Figures 1-2 need (Figures 1 and 2 only add beta = 0.1
/// resnets of requested architectures and depths).
result_map plan_configurations(const config& c, const figure_plan& f) {
  result_map results;
  for (auto a : c.archs)
    for (auto d : c.depths) results[{a, d, 1.0}];
  for (const auto& p : f.fig2)
    for (auto d : f.fig2_depths) results[{p.arch, d, p.beta}];
  for (const auto& s : f.fig1)
    if (s.net) results[*s.net];
  return results;
}

/// Probes every configuration over all seeds in one parallel pass; returns the networks probed.
std::size_t probe_all(const config& c, result_map& results, const probe::sweep_options& so,
                      const probe::noise_options& no) {
  struct job {
    net_key key;
    int seed;
    double cost;
  };
  std::vector<job> jobs;
  for (auto& [k, r] : results) {
    r.grads.resize(std::size_t(c.seeds));
    r.stats.resize(std::size_t(c.seeds));
    const double w =
        k.arch == architecture::plain_crelu || k.arch == architecture::plain_crelu_ll ? 2 : 1;
    for (int s = 0; s < c.seeds; ++s) jobs.push_back({k, s, w * double(k.depth)});
  }
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const job& a, const job& b) { return a.cost > b.cost; });
  std::cerr << "shattering: probing " << results.size() << " configurations x " << c.seeds
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
      std::cerr << "  " << n << " / " << jobs.size() << " networks, "
                << fmt(seconds_since(t_probe), 1) << " s" << std::endl;
    }
  });
  for (auto& [k, r] : results)
    if (r.failure.empty()) r.summary = probe::summarise(r.stats, no);
  return jobs.size();
}

/// The output folder: every file goes through write_file and is listed once written.
struct outputs {
  fs::path dir;
  std::vector<std::string> written;
  void write(const std::string& name, const std::string& text) {
    program::write_file(dir / name, text);
    written.push_back(name);
  }
};

std::string matrix_text(const Eigen::MatrixXd& m) {
  std::ostringstream f;
  for (idx i = 0; i < m.rows(); ++i) {
    for (idx j = 0; j < m.cols(); ++j) f << (j ? " " : "") << static_cast<float>(m(i, j));
    f << "\n";
  }
  return f.str();
}

void print_sweep_legend(const config& c) {
  std::cout << "\nDepth sweep (width " << c.width << ", " << c.points << " points on [-2, 2], "
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
  std::cout << std::left << std::setw(16) << "arch" << std::right << std::setw(6) << "depth"
            << std::setw(17) << "lag1" << std::setw(17) << "slope"
            << "  " << std::left << std::setw(11) << "verdict" << std::right << std::setw(10)
            << "theory R" << std::setw(8) << "R_adj"
            << "  formula\n";
}

/// Depth sweep: table, CSV, theory beside the measurements; one JSON row per configuration.
json depth_sweep(const config& c, const result_map& results, outputs& out) {
  // R_adj: two adjacent inputs near t = 0.5 (t = 0 is special with batch norm: the first BN
  // centres every first-layer unit at the batch mean, so all their kinks sit at t = 0).
  const idx pair = (5 * c.points) / 8;
  std::ostringstream csv, th;
  csv << "arch,depth,width,points,seeds,lag1_mean,lag1_std,slope_mean,slope_std,verdict\n";
  th << "arch,depth,theory_formula,theory_R,seed_corr_adjacent\n";
  json rows = json::array();
  print_sweep_legend(c);
  for (auto a : c.archs) {
    for (auto d : c.depths) {
      const auto& r = results.at({a, d, 1.0});
      const auto theory = probe::theory::predicted(a, double(d));
      const std::string name = shatter::to_string(a);
      json row = {{"arch", name}, {"depth", d}};
      std::cout << std::left << std::setw(16) << name << std::right << std::setw(6) << d;
      if (!r.failure.empty()) {
        std::cout << "  failed: " << r.failure << "\n";
        csv << name << "," << d << "," << c.width << "," << c.points << "," << c.seeds
            << ",,,,,non-finite\n";
        row["verdict"] = "non-finite";
        row["error"] = r.failure;
        rows.push_back(row);
        continue;
      }
      const auto& s = r.summary;
      const double radj = probe::correlation_across_seeds(r.grads, pair, pair + 1);
      const std::string slope =
          s.slope_seeds ? fmt(s.slope_mean, 2) + " +- " + fmt(s.slope_std, 2) : "-";
      std::cout << std::setw(17) << (fmt(s.lag1_mean) + " +- " + fmt(s.lag1_std)) << std::setw(17)
                << slope << "  " << std::left << std::setw(11) << probe::to_string(s.verdict)
                << std::right << std::setw(10) << (theory ? gfmt(*theory) : "-") << std::setw(8)
                << fmt(radj) << "  " << probe::theory::formula(a) << "\n";
      csv << name << "," << d << "," << c.width << "," << c.points << "," << c.seeds << ","
          << s.lag1_mean << "," << s.lag1_std << ",";
      if (s.slope_seeds)
        csv << s.slope_mean << "," << s.slope_std;
      else
        csv << ",";  // constant gradients have no spectral slope
      csv << "," << probe::to_string(s.verdict) << "\n";
      th << name << "," << d << "," << probe::theory::formula(a) << ","
         << (theory ? gfmt(*theory) : "") << "," << radj << "\n";
      row["lag1_mean"] = program::json_number(s.lag1_mean);
      row["lag1_std"] = program::json_number(s.lag1_std);
      row["slope_mean"] = s.slope_seeds ? program::json_number(s.slope_mean) : json(nullptr);
      row["slope_std"] = s.slope_seeds ? program::json_number(s.slope_std) : json(nullptr);
      row["verdict"] = probe::to_string(s.verdict);
      row["theory_R"] = theory ? program::json_number(*theory) : json(nullptr);
      row["R_adj"] = program::json_number(radj);
      rows.push_back(row);
    }
    std::cout << "\n";
  }
  out.write("depth_sweep.csv", csv.str());
  out.write("depth_sweep_theory.csv", th.str());
  return rows;
}

/// Figure 1: gradient sequences (seed 0 of each requested net) and covariance matrices.
void figure1(const config& c, const result_map& results, figure_plan& f, outputs& out,
             const probe::noise_options& no) {
  if (f.fig1.empty()) return;
  shatter::rng noise_rng(20170227);
  const Eigen::VectorXd brown = probe::brown_noise(c.points, noise_rng);
  const Eigen::VectorXd white = probe::white_noise(c.points, noise_rng);
  for (auto& s : f.fig1) {
    if (!s.net) {
      s.g = s.name == "brown" ? brown : white;
      continue;
    }
    const auto& r = results.at(*s.net);
    s.g = r.failure.empty() ? r.grads[0] : Eigen::VectorXd::Zero(c.points);
  }
  std::ostringstream csv;
  csv << "t";
  for (const auto& s : f.fig1) csv << "," << s.name;
  csv << "\n";
  for (idx i = 0; i < c.points; ++i) {
    csv << -2.0 + 4.0 * double(i) / double(c.points - 1);
    for (const auto& s : f.fig1) csv << "," << s.g(i);
    csv << "\n";
  }
  out.write("figure1_gradients.csv", csv.str());
  for (const auto& s : f.fig1)
    out.write("figure1_cov_" + s.name + ".dat", matrix_text(probe::covariance_matrix(s.g)));
  std::cout << "Figure 1 (seed 0 of each net; lag-1 of the plotted sequence):\n";
  for (const auto& s : f.fig1) {
    const auto st = probe::analyse(s.g, no);
    std::cout << "  " << std::left << std::setw(36) << s.title << std::right << " lag1 "
              << std::setw(6) << fmt(st.lag1) << "  slope "
              << (st.has_slope ? fmt(st.slope, 2) : std::string("-")) << "  "
              << probe::to_string(st.verdict) << "\n";
  }
}

/// Figure 2: autocorrelation against lag, one block per (panel, depth) in figure2_acf.csv.
void figure2(const config& c, const result_map& results, const figure_plan& f, outputs& out) {
  if (f.fig2.empty()) return;
  std::ostringstream csv;
  csv << "panel,arch,beta,depth,lag,acf_mean,acf_std\n";
  std::cout << "\nFigure 2 (mean autocorrelation at lags 1, 5, 20 over " << c.seeds << " seeds):\n";
  for (std::size_t p = 0; p < f.fig2.size(); ++p) {
    std::cout << "  " << std::left << std::setw(27) << f.fig2[p].title << std::right;
    for (auto d : f.fig2_depths) {
      const auto& r = results.at({f.fig2[p].arch, d, f.fig2[p].beta});
      if (!r.failure.empty()) {
        csv << "\n\n";  // keep gnuplot's block index aligned
        continue;
      }
      const auto& s = r.summary;
      for (idx l = 0; l < s.acf_mean.size(); ++l)
        csv << p << "," << shatter::to_string(f.fig2[p].arch) << "," << f.fig2[p].beta << "," << d
            << "," << l << "," << s.acf_mean(l) << "," << s.acf_std(l) << "\n";
      csv << "\n\n";
      auto at = [&](idx l) { return l < s.acf_mean.size() ? fmt(s.acf_mean(l), 2) : "-"; };
      std::cout << "  L=" << d << ": " << at(1) << "/" << at(5) << "/" << at(20);
    }
    std::cout << "\n";
  }
  out.write("figure2_acf.csv", csv.str());
}

/// Figure 3: active and co-active proportions per layer, with and without BN.
void figure3(const config& c, const probe::sweep_options& so, const figure_plan& f, outputs& out) {
  if (f.fig3_archs.empty()) return;
  const auto t3 = std::chrono::steady_clock::now();
  const idx depth = f.fig3_depth;
  struct activity_sum {
    std::vector<double> active, coactive;
  };
  std::map<architecture, activity_sum> fig3;
  for (auto a : f.fig3_archs)
    fig3[a] = {std::vector<double>(std::size_t(depth), 0.0),
               std::vector<double>(std::size_t(depth), 0.0)};
  probe::sweep_options ao = so;
  if (ao.bn == probe::bn_statistics::through) ao.bn = probe::bn_statistics::fixed;
  std::mutex mu;
  shatter::exec::parallel_for(idx(f.fig3_archs.size()) * c.seeds, c.threads, [&](std::size_t i) {
    const architecture a = f.fig3_archs[i / std::size_t(c.seeds)];
    const int s = int(i % std::size_t(c.seeds));
    const net_key k{a, depth, 1.0};
    shatter::rng g(seed_of(k, s));
    auto net = shatter::build<scalar>(a, spec_of(c, k), g);
    const auto act = probe::unit_activity(net, ao);
    std::lock_guard<std::mutex> lock(mu);
    for (std::size_t l = 0; l < act.size() && l < std::size_t(depth); ++l) {
      fig3[a].active[l] += act[l].active / c.seeds;
      fig3[a].coactive[l] += act[l].coactive / c.seeds;
    }
  });
  // A column of an architecture that was not requested stays empty.
  auto cell = [&](architecture a, bool active, std::size_t l) {
    if (!fig3.count(a)) return std::string();
    std::ostringstream s;
    s << (active ? fig3[a].active[l] : fig3[a].coactive[l]);
    return s.str();
  };
  auto shown = [&](architecture a, bool active, std::size_t l) {
    return fig3.count(a) ? fmt(active ? fig3[a].active[l] : fig3[a].coactive[l]) : "-";
  };
  const architecture no_bn = architecture::plain_relu, bn = architecture::plain_relu_bn;
  std::ostringstream csv;
  csv << "layer,active_no_bn,coactive_no_bn,active_bn,coactive_bn\n";
  for (std::size_t l = 0; l < std::size_t(depth); ++l)
    csv << l + 1 << "," << cell(no_bn, true, l) << "," << cell(no_bn, false, l) << ","
        << cell(bn, true, l) << "," << cell(bn, false, l) << "\n";
  out.write("figure3_activity.csv", csv.str());
  std::cout << "\nFigure 3 (depth-" << depth << " feedforward nets, " << c.seeds
            << " seeds; idealisation: active 1/2, co-active 1/4):\n";
  std::cout << "  layer   active(no BN)  co-active(no BN)   active(BN)  co-active(BN)\n";
  for (idx l : {1, 2, 5, 10, 25, 50}) {
    if (l > depth) break;
    const auto u = std::size_t(l - 1);
    std::cout << "  " << std::setw(5) << l << std::setw(15) << shown(no_bn, true, u)
              << std::setw(18) << shown(no_bn, false, u) << std::setw(13) << shown(bn, true, u)
              << std::setw(15) << shown(bn, false, u) << "\n";
  }
  std::cout << "  (" << fmt(seconds_since(t3), 1) << " s)\n";
}

/// Batch-norm statistics of the sweep batch held fixed (the default) against differentiated
/// through, on the requested BN architectures.
void bn_comparison(const config& c, const probe::sweep_options& so, const probe::noise_options& no,
                   const figure_plan& f) {
  if (f.bn_archs.empty()) return;
  const auto tb = std::chrono::steady_clock::now();
  const idx bn_depth = f.bn_depth;
  const int bn_seeds = std::min(c.seeds, 4);
  // 'through' needs one backward pass per point, so its cost grows as points^2: compare at
  // 64 points. The coupling through the batch statistics is O(1/points), so the difference
  // at the default 256 points is smaller than the one shown.
  const idx bn_points = std::min<idx>(c.points, 64);
  struct bn_cmp {
    double lag_fixed = 0, lag_through = 0, max_rel_diff = 0;
  };
  std::vector<bn_cmp> cmp(f.bn_archs.size() * std::size_t(bn_seeds));
  shatter::exec::parallel_for(idx(cmp.size()), c.threads, [&](std::size_t i) {
    const architecture a = f.bn_archs[i / std::size_t(bn_seeds)];
    const net_key k{a, bn_depth, 1.0};
    shatter::rng g(seed_of(k, int(i % std::size_t(bn_seeds))));
    auto net = shatter::build<scalar>(a, spec_of(c, k), g);
    probe::sweep_options fo = so, t = so;
    fo.points = t.points = bn_points;
    fo.bn = probe::bn_statistics::fixed;
    t.bn = probe::bn_statistics::through;
    const auto rf = probe::sweep(net, fo), rt = probe::sweep(net, t);
    cmp[i].lag_fixed = probe::analyse(rf, no).lag1;
    cmp[i].lag_through = probe::analyse(rt, no).lag1;
    cmp[i].max_rel_diff =
        (rf.gradient - rt.gradient).cwiseAbs().maxCoeff() / rf.gradient.cwiseAbs().maxCoeff();
  });
  std::cout << "\nBatch-norm statistics of the sweep batch held fixed (default) vs "
               "differentiated through\n(depth "
            << bn_depth << ", " << bn_points << " points, " << bn_seeds
            << " seeds; 'through' costs one backward pass per point):\n";
  for (std::size_t a = 0; a < f.bn_archs.size(); ++a) {
    double lf = 0, lt = 0, d = 0;
    for (int sd = 0; sd < bn_seeds; ++sd) {
      const auto& x = cmp[a * std::size_t(bn_seeds) + std::size_t(sd)];
      lf += x.lag_fixed / bn_seeds;
      lt += x.lag_through / bn_seeds;
      d = std::max(d, x.max_rel_diff);
    }
    std::cout << "  " << std::left << std::setw(16) << shatter::to_string(f.bn_archs[a])
              << std::right << " lag1 fixed " << fmt(lf) << ", through " << fmt(lt)
              << ", largest gradient difference " << gfmt(d) << " of max|g|\n";
  }
  std::cout << "  (" << fmt(seconds_since(tb), 1) << " s)\n";
}

/// gnuplot's string literal for s (double quotes; backslash and quote escaped).
std::string gp_string(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') q += '\\';
    q += ch;
  }
  return q + "\"";
}

/// "set multiplot layout R,C" for n panels, up to `cols` per row.
std::string layout(std::size_t n, std::size_t cols) {
  const std::size_t c = std::min(n, cols), r = (n + cols - 1) / cols;
  return "set multiplot layout " + std::to_string(r) + "," + std::to_string(c);
}

/// The Figure 1 images: gradients on top, covariance matrices below, one column per panel.
void plot_figure1(std::ostream& g, const config& c, const figure_plan& f,
                  std::vector<std::string>& pngs) {
  auto block = [&](const std::vector<std::string>& names, const std::string& size,
                   const std::string& png, const std::string& title) {
    std::vector<std::size_t> cols;
    for (const auto& n : names)
      for (std::size_t i = 0; i < f.fig1.size(); ++i)
        if (f.fig1[i].name == n) cols.push_back(i);
    g << "set terminal pngcairo noenhanced size " << size << " font ',10'\nset output '" << png
      << "'\n"
      << "set multiplot layout 2," << cols.size() << " title " << gp_string(title) << "\n"
      << "set key off\n";
    for (std::size_t col : cols)
      g << "set title " << gp_string(f.fig1[col].title)
        << "\nset xrange [-2:2]\nset autoscale y\nplot 'figure1_gradients.csv' using 1:" << col + 2
        << " every ::1 with lines lw 1.2 lc rgb '#1f4e9c'\n";
    g << "set datafile separator whitespace\nunset xrange\nunset yrange\nset size ratio -1\n"
      << "unset colorbox\nset palette defined (0 'white', 1 '#1f4e9c', 2 'black')\n"
      << "set cbrange [0:2]\nunset xtics\nunset ytics\n";
    for (std::size_t col : cols)
      g << "set title " << gp_string(f.fig1[col].title) << "\nplot 'figure1_cov_"
        << f.fig1[col].name << ".dat' matrix with image\n";
    g << "set size noratio\nset xtics\nset ytics\nset datafile separator ','\nunset "
         "multiplot\n";
    pngs.push_back(png);
  };
  std::ostringstream wo;
  wo << "Figure 1 without batch norm (1-D probe, biases drawn from N(0, " << c.bias_std << "^2))";
  if (f.fig1_bn)
    block({"one_layer", "plain_relu_bn_24", "resnet_bn_50", "brown", "white"}, "1800,700",
          "figure1.png",
          "Figure 1: gradient df/dx along " + std::to_string(c.points) +
              " inputs in [-2,2] (top) and covariance |(g-m)(g-m)^T|/var (bottom)");
  if (f.fig1_no_bn)
    block({"one_layer", "plain_relu_24", "resnet_50"}, "1100,700", "figure1_without_bn.png",
          wo.str());
}

void plot_figure2(std::ostream& g, const config& c, const figure_plan& f,
                  std::vector<std::string>& pngs) {
  g << "set terminal pngcairo noenhanced size 1500,850 font ',10'\nset output 'figure2.png'\n"
    << layout(f.fig2.size(), 3)
    << " title 'Figure 2: autocorrelation of df/dx against lag (mean over " << c.seeds
    << " seeds)'\nset key top right\nset xlabel 'lag'\nset ylabel 'autocorrelation'\n"
    << "set yrange [-0.3:1.05]\nset xrange [0:" << std::min<idx>(c.points - 1, 64) << "]\n";
  for (std::size_t p = 0; p < f.fig2.size(); ++p) {
    g << "set title '" << f.fig2[p].title << "'\nplot ";
    for (std::size_t b = 0; b < f.fig2_depths.size(); ++b)
      g << (b ? ", " : "") << "'figure2_acf.csv' index " << p * f.fig2_depths.size() + b
        << " using 5:6 with lines lw 1.5 title 'L = " << f.fig2_depths[b] << "'";
    g << "\n";
  }
  g << "unset multiplot\nunset xrange\nunset yrange\n";
  pngs.push_back("figure2.png");
}

void plot_figure3(std::ostream& g, const config& c, const figure_plan& f,
                  std::vector<std::string>& pngs) {
  auto curves = [&](int no_bn_col, int bn_col, const char* ref, const char* ref_title) {
    std::string s = "plot ";
    for (auto a : f.fig3_archs) {
      const bool bn = a == architecture::plain_relu_bn;
      s += "'figure3_activity.csv' every ::1 using 1:" + std::to_string(bn ? bn_col : no_bn_col) +
           " with linespoints pt 7 ps 0.5 title '" + (bn ? "BN" : "no BN") + "', ";
    }
    return s + ref + " dt 2 lc rgb 'gray' title '" + ref_title + "'\n";
  };
  g << "set terminal pngcairo noenhanced size 1200,500 font ',10'\nset output 'figure3.png'\n"
    << "set multiplot layout 1,2 title 'Figure 3: unit activity per layer of depth-" << f.fig3_depth
    << " ReLU nets (" << c.seeds << " seeds)'\n"
    << "set xlabel 'layer'\nset ylabel 'proportion'\nset yrange [0:1]\nset key top left\n"
    << "set title 'proportion of units active for an input'\n"
    << curves(2, 4, "0.5", "1/2")
    << "set title 'proportion of units co-active for a pair of inputs'\n"
    << curves(3, 5, "0.25", "1/4") << "unset multiplot\nunset yrange\n";
  pngs.push_back("figure3.png");
}

void plot_depth_sweep(std::ostream& g, const config& c, std::vector<std::string>& pngs) {
  const char* colours[] = {"#d62728", "#ff7f0e", "#1f77b4", "#17becf",
                           "#9467bd", "#2ca02c", "#8c564b", "#e377c2"};
  auto curves = [&](int mean_col) {
    std::ostringstream s;
    for (std::size_t i = 0; i < c.archs.size(); ++i) {
      const auto name = shatter::to_string(c.archs[i]);
      const auto col = colours[static_cast<std::size_t>(c.archs[i]) % 8];
      s << (i ? ", " : "") << "'depth_sweep.csv' using (strcol(1) eq '" << name
        << "' ? $2 : 1/0):" << mean_col << ":" << mean_col + 1 << " with yerrorlines lc rgb '"
        << col << "' pt 7 ps 0.6 title '" << name << "'";
    }
    return s.str();
  };
  g << "set terminal pngcairo noenhanced size 1400,600 font ',10'\nset output "
       "'depth_sweep.png'\n"
    << "set multiplot layout 1,2 title 'Depth sweep: width " << c.width << ", " << c.points
    << " points, " << c.seeds << " seeds (mean +- std); dashed: theory R(L)'\n"
    << "set logscale x\nset xlabel 'depth L'\nset key bottom left\nset xrange [0.8:"
    << *std::max_element(c.depths.begin(), c.depths.end()) * 1.25 << "]\n"
    << "set title 'lag-1 autocorrelation of df/dx'\nset ylabel 'lag-1'\nset yrange "
       "[-0.1:1.05]\nplot "
    << curves(6)
    << ", 2**(-x) dt 2 lc rgb '#d62728' title 'theory 2^-L', 1/sqrt(x) dt 2 lc rgb '#17becf' "
       "title 'theory 1/sqrt(L)', 0.75**x dt 2 lc rgb '#1f77b4' title 'theory (3/4)^L'\n"
    << "set title 'power-spectrum slope (brown -2, white 0)'\nset ylabel 'slope'\nset yrange "
       "[-2.5:0.7]\n"
    << "set key top left\nplot " << curves(8)
    << ", -2 dt 3 lc rgb 'brown' title 'brown', 0 dt 3 lc rgb 'gray' title 'white'\n"
    << "unset multiplot\n";
  pngs.push_back("depth_sweep.png");
}

/// Writes plots.gp for the figures this run drew; returns the PNGs it makes.
std::vector<std::string> write_plot_script(const config& c, const figure_plan& f, outputs& out) {
  std::ostringstream g;
  std::vector<std::string> pngs;
  g << "# gnuplot script written by the shattering demo; run: gnuplot plots.gp (in this "
       "folder)\n"
    << "set datafile separator ','\n";
  if (!f.fig1.empty()) plot_figure1(g, c, f, pngs);
  if (!f.fig2.empty()) plot_figure2(g, c, f, pngs);
  if (!f.fig3_archs.empty()) plot_figure3(g, c, f, pngs);
  plot_depth_sweep(g, c, pngs);
  out.write("plots.gp", g.str());
  return pngs;
}

/// Runs gnuplot on plots.gp in the output folder (no shell) and checks every PNG it must make.
/// Returns the PNGs made, or a note when gnuplot is not installed; throws io_error when gnuplot
/// fails or a PNG is missing or cut short.
std::vector<std::string> make_plots(const outputs& out, const std::vector<std::string>& pngs,
                                    std::string& note) {
  for (const auto& p : pngs) {  // a PNG left by an earlier run must not pass for a new one
    std::error_code ec;
    fs::remove(out.dir / p, ec);
    if (ec)
      throw program::io_error("cannot replace '" + (out.dir / p).string() + "': " + ec.message());
  }
  program::exit_status st;
  try {
    st = program::run_program({"gnuplot", "plots.gp"}, out.dir);
  } catch (const program::program_not_found&) {
    note =
        "gnuplot not found, no PNGs made. Install it (apt-get install gnuplot-nox) and run "
        "gnuplot plots.gp in " +
        out.dir.string();
    return {};
  }
  if (!st.ok())
    throw program::io_error("gnuplot plots.gp in '" + out.dir.string() + "' failed (" +
                            st.describe() + "); the CSV files and plots.gp are there");
  for (const auto& p : pngs)
    if (!program::png_complete(out.dir / p))
      throw program::io_error("gnuplot exited 0 but did not write '" + (out.dir / p).string() +
                              "' completely (missing, empty or cut short: disk full?)");
  return pngs;
}

int run(int argc, char** argv) {
  const config c = parse_args(argc, argv);
  const auto t_start = std::chrono::steady_clock::now();
  shatter::set_threads(1);  // parallelism is over networks; each product runs on one thread
  program::make_output_dir(c.out);
  outputs out{fs::path(c.out), {}};
  probe::sweep_options so;
  so.points = c.points;
  so.bn = c.bn;
  probe::noise_options no;

  figure_plan f = plan_figures(c);
  result_map results = plan_configurations(c, f);
  const auto t_probe = std::chrono::steady_clock::now();
  const std::size_t networks = probe_all(c, results, so, no);
  const double probe_seconds = seconds_since(t_probe);
  std::size_t failed = 0;
  for (const auto& [k, r] : results) failed += !r.failure.empty();

  json summary = {
      {"program", "shattering"}, {"out", c.out},        {"configurations", results.size()},
      {"networks", networks},    {"seeds", c.seeds},    {"width", c.width},
      {"points", c.points},      {"threads", c.threads}};
  summary["depth_sweep"] = depth_sweep(c, results, out);
  figure1(c, results, f, out, no);
  figure2(c, results, f, out);
  figure3(c, so, f, out);
  bn_comparison(c, so, no, f);
  const auto pngs = write_plot_script(c, f, out);
  std::string note;
  const auto plots = make_plots(out, pngs, note);

  std::vector<std::string> csv;
  for (const auto& w : out.written)
    if (w.size() > 4 && w.compare(w.size() - 4, 4, ".csv") == 0) csv.push_back(w);
  if (!note.empty()) std::cerr << "\nshattering: note: " << note << "\n";
  // Files named with the folder first, then the rest of the list by name only.
  auto listing = [&](const std::vector<std::string>& names) {
    std::vector<std::string> v = names;
    v[0] = (out.dir / v[0]).string();
    return join(v, ", ");
  };
  if (!plots.empty()) std::cout << "\nPlots: " << listing(plots) << "\n";
  std::cout << "CSV: " << listing(csv) << "\n";
  std::cerr << "Time: probing " << fmt(probe_seconds, 1) << " s, total "
            << fmt(seconds_since(t_start), 1) << " s on " << c.threads << " threads\n";
  summary["failed_configurations"] = failed;
  summary["files"] = out.written;
  summary["plots"] = plots;
  summary["plot_note"] = note.empty() ? json(nullptr) : json(note);
  summary["seconds"] = program::json_number(seconds_since(t_start));
  if (c.json) program::print_json_line(summary);
  if (failed > 0) {
    std::cerr << "shattering: error: " << failed
              << " configuration(s) produced non-finite outputs or gradients (see the table)\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  if (sub == "conv")
    return program::run_main("shattering conv",
                             [&] { return conv_sweep::run(argc - 1, argv + 1); });
  if (sub == "plane")
    return program::run_main("shattering plane",
                             [&] { return plane_maps::run(argc - 1, argv + 1); });
  return program::run_main("shattering", [&] { return run(argc, argv); });
}
