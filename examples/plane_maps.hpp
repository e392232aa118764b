// `shattering plane`: 2-D gradient maps. Each of the paper's fully connected nets (2 inputs, a
// scalar output) is swept over a grid of inputs on [-2, 2]^2 (probe::sweep_plane); the map of
// df/dx1 and its correlation with the gradient at the centre are drawn as heat maps, and the
// radially averaged power-spectrum slope of df/dx1 (brown -2, white 0 in two dimensions) is
// averaged over seeds. Writes plane_maps.csv, one .dat matrix per map, plane_maps.gp and
// plane_gradient.png, plane_correlation.png.
#ifndef SHATTER_EXAMPLES_PLANE_MAPS_HPP
#define SHATTER_EXAMPLES_PLANE_MAPS_HPP

#include <algorithm>
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
#include "shatter/network/builders.hpp"
#include "shatter/probe/plane.hpp"
#include "shatter/probe/radial_spectrum.hpp"

namespace plane_maps {

using idx = shatter::index;
using program::json;
namespace fs = std::filesystem;
namespace probe = shatter::probe;

/// The command line of `shattering plane`.
struct config {
  std::string out = "shattering_out";
  std::vector<shatter::architecture> archs{
      shatter::architecture::plain_relu, shatter::architecture::plain_relu_bn,
      shatter::architecture::resnet_bn, shatter::architecture::plain_crelu_ll};
  std::vector<idx> depths{1, 24, 50, 200};
  idx width = 200;
  idx points = 65;
  int seeds = 3;
  double bias_std = 0.5;
  int threads = 1;
  bool json = false;
};

inline config parse_args(int argc, char** argv) {
  config c;
  std::string archs = "plain_relu,plain_relu_bn,resnet_bn,plain_crelu_ll", depths = "1,24,50,200";
  CLI::App app(
      "2-D gradient maps: nets with 2 inputs swept over a grid on [-2, 2]^2; heat maps of\n"
      "df/dx1 and of its correlation with the gradient at the centre, and the radially averaged\n"
      "power-spectrum slope of df/dx1 (brown -2, white 0).",
      "shattering plane");
  program::configure(app);
  app.footer(
      "Writes plane_maps.csv, plane_*.dat, plane_maps.gp and (with gnuplot)\n"
      "plane_gradient.png and plane_correlation.png into --out.\n"
      "Exit codes: 0 done, 1 error, 2 bad command line.");
  program::add_out(app, c.out, "output folder");
  app.add_option("--archs", archs, "comma-separated fully connected architectures")
      ->type_name("LIST");
  app.add_option("--depths", depths, "comma-separated depths, each 1 to 10000")
      ->type_name("LIST")
      ->check(program::integer_list_in(1, 10000));
  app.add_option("--width", c.width, "hidden units per layer, 1 to 4096")
      ->check(program::integer_in(1, 4096));
  app.add_option("--points", c.points, "grid points per axis, 9 to 513")
      ->check(program::integer_in(9, 513));
  app.add_option("--seeds", c.seeds, "networks per configuration for the slope, 1 to 1000")
      ->check(program::integer_in(1, 1000));
  app.add_option("--bias-std", c.bias_std, "biases ~ N(0, S^2), S in [0, 1e6]")
      ->type_name("S")
      ->check(program::finite_in(0, 1e6));
  program::add_threads(app, c.threads);
  program::add_json(app, c.json);
  program::parse(app, argc, argv);
  c.archs.clear();
  std::stringstream in(archs);
  std::string name;
  while (std::getline(in, name, ',')) try {
      c.archs.push_back(shatter::parse_architecture(name));
    } catch (const shatter::config_error& e) {
      throw program::usage_error(std::string("--archs: ") + e.what());
    }
  if (c.archs.empty() || archs.back() == ',')
    throw program::usage_error("--archs: empty architecture name in '" + archs + "'");
  c.depths.clear();
  for (long long d : program::parse_integer_list("--depths", depths, 1, 10000))
    c.depths.push_back(idx(d));
  return c;
}

/// One (architecture, depth): seed 0's maps and the slopes of every seed.
struct result {
  shatter::architecture arch;
  idx depth;
  probe::plane_result first;
  std::vector<double> slopes;
  std::string failure;
};

inline std::string dat_name(const std::string& what, const result& r) {
  return "plane_" + what + "_" + shatter::to_string(r.arch) + "_" + std::to_string(r.depth) +
         ".dat";
}

inline std::string matrix_text(const Eigen::MatrixXd& m) {
  std::ostringstream f;
  for (idx i = 0; i < m.rows(); ++i) {
    for (idx j = 0; j < m.cols(); ++j) f << (j ? " " : "") << float(m(i, j));
    f << "\n";
  }
  return f.str();
}

/// Mean and sample standard deviation.
inline std::pair<double, double> mean_std(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x / double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0};
}

/// Probes every (architecture, depth, seed) in parallel.
inline std::vector<result> probe_all(const config& c) {
  std::vector<result> results;
  for (auto a : c.archs)
    for (idx d : c.depths)
      results.push_back({a, d, {}, std::vector<double>(std::size_t(c.seeds)), {}});
  std::mutex mu;
  const idx jobs = idx(results.size()) * c.seeds;
  shatter::exec::parallel_for(jobs, c.threads, [&](std::size_t i) {
    result& r = results[i / std::size_t(c.seeds)];
    const int s = int(i % std::size_t(c.seeds));
    shatter::mlp_spec spec;
    spec.in = 2;
    spec.width = c.width;
    spec.hidden_layers = r.depth;
    spec.bias_std = c.bias_std;
    shatter::rng g(0x91a7e + std::uint64_t(r.depth) * 1000003 + std::uint64_t(r.arch) * 7919 +
                   std::uint64_t(s));
    try {
      auto net = shatter::build<float>(r.arch, spec, g);
      probe::plane_options o;
      o.from = -2;
      o.to = 2;
      o.points = c.points;
      const probe::plane_basis axes{Eigen::Vector2d(0, 0), Eigen::Vector2d(1, 0),
                                    Eigen::Vector2d(0, 1)};
      auto m = probe::sweep_plane(net, axes, o);
      const double gmax = m.grad_s.cwiseAbs().maxCoeff();
      const double sd = std::sqrt((m.grad_s.array() - m.grad_s.mean()).square().mean());
      // A looks-linear net's map is constant up to float rounding: no spectrum to fit.
      const double slope = sd > 1e-4 * gmax ? probe::radial_spectrum_slope(m.grad_s) : std::nan("");
      std::lock_guard<std::mutex> lock(mu);
      r.slopes[std::size_t(s)] = slope;
      if (s == 0) r.first = std::move(m);
    } catch (const shatter::numeric_error& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (r.failure.empty()) r.failure = e.what();
    }
  });
  return results;
}

/// gnuplot: one image per quantity, a panel per (architecture, depth).
inline std::string plot_script(const config& c, const std::vector<result>& results) {
  std::ostringstream g;
  g << "# written by shattering plane; run: gnuplot plane_maps.gp (in this folder)\n";
  for (int q = 0; q < 2; ++q) {
    const std::string what = q == 0 ? "gradient" : "correlation";
    g << "set terminal pngcairo noenhanced size " << 300 * c.depths.size() + 60 << ","
      << 290 * c.archs.size() + 60 << " font ',9'\nset output 'plane_" << what << ".png'\n"
      << "set multiplot layout " << c.archs.size() << "," << c.depths.size() << " title '"
      << (q == 0 ? "df/dx1 over [-2,2]^2"
                 : "cosine between the gradient and the gradient at "
                   "the centre")
      << " (2-input nets, width " << c.width << ", seed 0)'\n"
      << "set size ratio -1\nunset xtics\nunset ytics\nset key off\n"
      << (q == 0 ? "set palette defined (0 '#2166ac', 1 'white', 2 '#b2182b')\nset autoscale cb\n"
                 : "set palette defined (-1 '#2166ac', 0 'white', 1 '#b2182b')\nset cbrange "
                   "[-1:1]\n");
    for (const auto& r : results) {
      const auto ms = mean_std(r.slopes);
      std::ostringstream title;
      title << shatter::to_string(r.arch) << " L=" << r.depth;
      if (!r.failure.empty())
        title << " (failed)";
      else if (std::isfinite(ms.first))
        title << ", slope " << std::fixed << std::setprecision(2) << ms.first;
      else
        title << ", constant";
      g << "set title '" << title.str() << "'\n";
      // A constant map (looks-linear) varies only by float rounding: one colour, not noise.
      const bool flat = q == 0 && r.failure.empty() && !std::isfinite(ms.first);
      if (flat) {
        const double v = r.first.grad_s(0, 0), h = std::max(1.0, std::abs(v));
        g << "set cbrange [" << v - h << ":" << v + h << "]\n";
      }
      if (r.failure.empty())
        g << "plot '" << dat_name(what, r) << "' matrix with image\n";
      else
        g << "plot 0 lc rgb 'white'\n";
      if (flat) g << "set autoscale cb\n";
    }
    g << "unset multiplot\nunset cbrange\n";
  }
  return g.str();
}

/// Runs `shattering plane`: probes, writes the CSV, the maps and the plots; exit code.
inline int run(int argc, char** argv) {
  const config c = parse_args(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  shatter::set_threads(1);
  program::make_output_dir(c.out);
  const fs::path dir(c.out);
  std::cerr << "shattering plane: " << c.archs.size() * c.depths.size() * std::size_t(c.seeds)
            << " networks, " << c.points << "x" << c.points << " grid, width " << c.width << ", "
            << c.threads << " threads ..." << std::endl;
  const auto results = probe_all(c);
  std::ostringstream csv;
  csv << "arch,depth,width,points,seeds,slope_mean,slope_std,corr_mean,corr_min\n";
  std::cout << "2-D gradient maps (2-input nets, width " << c.width << ", " << c.points << "x"
            << c.points << " grid on [-2,2]^2; slope of the radially averaged spectrum of df/dx1 "
            << "over " << c.seeds << " seeds, brown -2, white 0; corr = cosine with the centre's "
            << "gradient, seed 0)\n"
            << std::left << std::setw(12) << "arch" << std::right << std::setw(6) << "depth"
            << std::setw(18) << "slope" << std::setw(11) << "corr mean" << std::setw(10)
            << "corr min\n";
  std::size_t failed = 0;
  for (const auto& r : results) {
    const std::string name = shatter::to_string(r.arch);
    std::cout << std::left << std::setw(12) << name << std::right << std::setw(6) << r.depth;
    if (!r.failure.empty()) {
      ++failed;
      std::cout << "  failed: " << r.failure << "\n";
      csv << name << "," << r.depth << "," << c.width << "," << c.points << "," << c.seeds
          << ",,,,\n";
      continue;
    }
    program::write_file(dir / dat_name("gradient", r), matrix_text(r.first.grad_s));
    program::write_file(dir / dat_name("correlation", r), matrix_text(r.first.correlation));
    const auto ms = mean_std(r.slopes);
    const double cm = r.first.correlation.mean(), cmin = r.first.correlation.minCoeff();
    std::ostringstream slope;
    slope << std::fixed << std::setprecision(2) << ms.first << " +- " << ms.second;
    std::cout << std::setw(18) << (std::isfinite(ms.first) ? slope.str() : "- (constant)")
              << std::fixed << std::setprecision(3) << std::setw(11) << cm << std::setw(10) << cmin
              << "\n";
    csv << name << "," << r.depth << "," << c.width << "," << c.points << "," << c.seeds << ",";
    if (std::isfinite(ms.first))
      csv << ms.first << "," << ms.second;
    else
      csv << ",";
    csv << "," << cm << "," << cmin << "\n";
  }
  program::write_file(dir / "plane_maps.csv", csv.str());
  program::write_file(dir / "plane_maps.gp", plot_script(c, results));
  std::vector<std::string> plots;
  try {
    for (const char* p : {"plane_gradient.png", "plane_correlation.png"}) fs::remove(dir / p);
    const auto st = program::run_program({"gnuplot", "plane_maps.gp"}, dir);
    if (!st.ok()) throw program::io_error("gnuplot plane_maps.gp failed (" + st.describe() + ")");
    for (const char* p : {"plane_gradient.png", "plane_correlation.png"}) {
      if (!program::png_complete(dir / p))
        throw program::io_error(std::string("gnuplot did not write ") + p + " completely");
      plots.push_back(p);
    }
  } catch (const program::program_not_found&) {
    std::cerr << "shattering plane: note: gnuplot not found, no PNGs made (apt-get install "
                 "gnuplot-nox; gnuplot plane_maps.gp)\n";
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "Time: " << std::fixed << std::setprecision(1) << seconds << " s on " << c.threads
            << " threads\n";
  if (c.json)
    program::print_json_line(json{{"program", "shattering plane"},
                                  {"failed_configurations", failed},
                                  {"plots", plots},
                                  {"seconds", program::json_number(seconds)}});
  return failed > 0 ? 1 : 0;
}

}  // namespace plane_maps

#endif  // SHATTER_EXAMPLES_PLANE_MAPS_HPP
