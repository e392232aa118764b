// jacobian_spectrum: the singular values of networks' input-output Jacobians at initialisation
// against depth (dynamical isometry, Pennington et al. 2017). Fully connected nets: exact
// Jacobians (forward mode) and their SVD; CIFAR convnets: Lanczos on J^T J of the convolutional
// body (tangent and backward passes, matrix-free). Writes jacobian_spectrum.csv (every singular
// value), jacobian_summary.csv (quantiles per architecture and depth), a gnuplot script and,
// when gnuplot is installed, jacobian_spectrum.png. Command line, exit codes, files and gnuplot
// follow examples/program_support.hpp.
#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "program_support.hpp"
#include "shatter/layer/global_avg_pool.hpp"
#include "shatter/network/builders.hpp"
#include "shatter/network/cifar.hpp"
#include "shatter/probe/jacobian_spectrum.hpp"

namespace {

using idx = shatter::index;
using program::json;
namespace fs = std::filesystem;

struct config {
  std::string family = "mlp";
  std::vector<std::string> archs;
  std::vector<int> depths;
  std::string archs_text, depths_text;  // as given on the command line ("" for the defaults)
  int width = 0;                        // 0: the family's default
  int image = 16;
  int samples = 16;
  int seeds = 3;
  int steps = 40;
  std::string bn = "off";
  bool delta = false;
  double eta = 0.9;
  int threads = 1;
  std::string out = "jacobian_out";
  bool json = false;
};

const std::vector<std::string>& mlp_names() {
  static const std::vector<std::string> names{"plain_relu",     "plain_relu_bn", "resnet",
                                              "resnet_bn",      "plain_crelu",   "plain_crelu_ll",
                                              "plain_prelu_ll", "plain_tat"};
  return names;
}

/// The MLP name for a former one (fnn_relu, fnn_relu_bn, crelu, crelu_ll, prelu_ll, tat), which
/// --archs still accepts; other names unchanged.
std::string current_mlp_name(const std::string& a) {
  if (a == "fnn_relu" || a == "fnn_relu_bn" || a == "crelu" || a == "crelu_ll")
    return shatter::to_string(shatter::parse_architecture(a));
  if (a == "prelu_ll" || a == "tat") return "plain_" + a;
  return a;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

/// Splits a comma-separated list (items non-empty).
std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

/// Fills the family's defaults and checks what the option validators cannot: architecture names
/// of the family, CIFAR depths, the image size and the samples batch norm needs.
void finish_config(config& c) {
  const bool mlp = c.family == "mlp";
  const std::vector<std::string>& valid = mlp ? mlp_names() : shatter::cifar_arch_names();
  c.archs = c.archs_text.empty() ? valid : split(c.archs_text);
  if (mlp)
    for (auto& a : c.archs) a = current_mlp_name(a);
  for (const auto& a : c.archs)
    if (std::find(valid.begin(), valid.end(), a) == valid.end())
      throw program::usage_error("--archs: unknown " + c.family + " architecture '" + a +
                                 "' (valid: " + join(valid) + ")");
  c.depths.clear();
  if (c.depths_text.empty())
    c.depths =
        mlp ? std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128} : std::vector<int>{8, 14, 20, 32, 56};
  else
    for (long long d : program::parse_integer_list("--depths", c.depths_text, 1, 2000))
      c.depths.push_back(int(d));
  for (int d : c.depths)
    if (!mlp && (d < 8 || (d - 2) % 6 != 0))
      throw program::usage_error("--depths: CIFAR depths must be 6 n + 2 (8, 14, 20, ...), got " +
                                 std::to_string(d));
  if (!mlp && c.image % 4 != 0)
    throw program::usage_error("--image: needs a multiple of 4, got " + std::to_string(c.image));
  const bool any_bn =
      mlp ? std::any_of(c.archs.begin(), c.archs.end(),
                        [](const std::string& a) {
                          return a.size() > 3 && a.compare(a.size() - 3, 3, "_bn") == 0;
                        })
          : c.bn == "on";
  if (any_bn && c.samples < 2)
    throw program::usage_error(
        "--samples: batch norm takes the statistics of the sample batch: needs at least 2 "
        "samples, got " +
        std::to_string(c.samples));
  if (c.width == 0) c.width = mlp ? 64 : 8;
}

/// The network of one configuration; for CIFAR nets their convolutional body (every layer before
/// the global average pooling), whose Jacobian is not limited to the class count.
shatter::sequential<double> make_net(const config& c, const std::string& arch, int depth,
                                     shatter::rng& g) {
  if (c.family == "mlp") {
    shatter::mlp_spec s;
    s.in = s.width = s.out = c.width;
    s.hidden_layers = depth;
    if (arch == "plain_prelu_ll") return shatter::prelu_ll_mlp<double>(s, g);
    if (arch == "plain_tat") return shatter::tat_mlp<double>(s, g, c.eta);
    return shatter::build<double>(shatter::parse_architecture(arch), s, g);
  }
  shatter::cifar_spec s;
  s.weighted_layers = depth;
  s.input = {3, c.image, c.image};
  s.width = c.width;
  s.batch_norm = c.bn == "on";
  s.tat_eta = c.eta;
  s.delta = c.delta;
  auto net = shatter::build_cifar<double>(shatter::parse_cifar_arch(arch), s, g);
  shatter::sequential<double> body;
  for (std::size_t i = 0; i < net.size(); ++i) {
    if (dynamic_cast<shatter::global_avg_pool<double>*>(&net[i])) break;
    body.add(net[i].clone());
  }
  return body;
}

/// Singular values (descending) of the Jacobian at each of `samples` Gaussian inputs.
std::vector<Eigen::VectorXd> spectra(const config& c, shatter::sequential<double>& net,
                                     shatter::rng& g) {
  shatter::matrix<double> x(net.in_size(), c.samples);
  for (idx i = 0; i < x.size(); ++i) x(i) = g.normal();
  shatter::probe::jacobian_options jo;
  jo.threads = c.threads;
  if (c.family == "mlp") return shatter::probe::jacobian_singular_values(net, x, jo);
  shatter::probe::lanczos_options lo;
  lo.steps = c.steps;
  lo.seed = g();
  lo.jacobian = jo;
  std::vector<Eigen::VectorXd> out;
  for (auto& r : shatter::probe::jacobian_lanczos(net, x, lo)) out.push_back(r.singular_values);
  return out;
}

/// The q-quantile of sorted values (linear interpolation).
double quantile(const std::vector<double>& v, double q) {
  const double pos = q * double(v.size() - 1);
  const std::size_t i = std::size_t(pos);
  if (i + 1 >= v.size()) return v.back();
  return v[i] + (pos - double(i)) * (v[i + 1] - v[i]);
}

std::string gnuplot_script(const config& c) {
  std::ostringstream g;
  g << "# gnuplot script written by jacobian_spectrum; run: gnuplot jacobian_spectrum.gp (in this "
       "folder)\nset datafile separator ','\nset terminal pngcairo noenhanced size 1200,700 "
       "font ',10'\nset output 'jacobian_spectrum.png'\nset logscale xy\nset format y '%.0e'\nset "
       "key outside right\n"
       "set autoscale xfix\nset offsets graph 0.02, graph 0.02, 0, 0\nset xlabel 'depth'\nset "
       "ylabel 'singular values of the input-output Jacobian'\n"
       "set title '"
    << (c.family == "mlp" ? "fully connected nets, width " + std::to_string(c.width) + ", exact SVD"
                          : "CIFAR convnet bodies, " + std::to_string(c.image) + "x" +
                                std::to_string(c.image) + " images, Lanczos (Ritz values), BN " +
                                c.bn + (c.delta ? ", delta-orthogonal" : ""))
    << ": largest and median non-zero singular value'\n";
  g << "plot ";
  for (std::size_t i = 0; i < c.archs.size(); ++i) {
    const std::string sel = "(strcol(2) eq '" + c.archs[i] + "' ? $";
    const std::string lc = " lc " + std::to_string(i + 1);
    g << (i ? ", \\\n     " : "") << "'jacobian_summary.csv' skip 1 using 3:" << sel
      << "13 : 1/0) with linespoints" << lc << " dt 1 pt 7 ps 0.6 title '" << c.archs[i]
      << " max', \\\n     '' skip 1 using 3:" << sel << "11 : 1/0) with linespoints" << lc
      << " dt 2 pt 6 title '" << c.archs[i] << " median'";
  }
  g << "\n";
  return g.str();
}

/// What one architecture at one depth gives over its nets and samples.
struct spectrum_summary {
  std::vector<double> nonzero;  ///< singular values above 1e-10 times their Jacobian's largest
  double count = 0, sum_sq = 0;
  void add(const Eigen::VectorXd& sv) {
    for (idx k = 0; k < sv.size(); ++k) {
      if (sv(k) > 1e-10 * sv(0)) nonzero.push_back(sv(k));
      sum_sq += sv(k) * sv(k);
    }
    count += double(sv.size());
  }
};

/// One row of jacobian_summary.csv: quantiles over the non-zero singular values; for exact SVDs
/// also the fraction that is non-zero and the mean of sigma^2 (||J||_F^2 / min(in, out)).
std::string summary_row(const config& c, const std::string& arch, int depth, spectrum_summary& s) {
  std::sort(s.nonzero.begin(), s.nonzero.end());
  const bool exact = c.family == "mlp";
  std::ostringstream r;
  r << c.family << ',' << arch << ',' << depth << ',' << (exact ? "-" : c.bn) << ',' << c.seeds
    << ',' << c.samples << ',' << (exact ? "exact" : "lanczos") << ',' << std::setprecision(8);
  if (exact)
    r << double(s.nonzero.size()) / s.count << ',';
  else
    r << ',';
  for (double q : {0.0, 0.1, 0.5, 0.9, 1.0})
    r << (s.nonzero.empty() ? 0.0 : quantile(s.nonzero, q)) << ',';
  if (exact) r << s.sum_sq / s.count;
  r << '\n';
  return r.str();
}

config parse_args(int argc, char** argv) {
  config c;
  CLI::App app(
      "Singular values of input-output Jacobians at initialisation against depth: exact for "
      "fully connected nets, Lanczos on J^T J for CIFAR convnet bodies.",
      "jacobian_spectrum");
  program::configure(app);
  program::add_out(app, c.out, "output folder for the CSV files, the script and the PNG");
  app.add_option("--family", c.family, "mlp (exact SVD) or cifar (Lanczos)")
      ->check(program::one_of({"mlp", "cifar"}));
  app.add_option("--archs", c.archs_text,
                 "comma-separated architectures (default all: mlp " + join(mlp_names()) +
                     "; cifar " + join(shatter::cifar_arch_names()) + ")")
      ->type_name("LIST");
  app.add_option("--depths", c.depths_text,
                 "comma-separated depths, 1 to 2000 (mlp: hidden layers, default "
                 "1,2,4,...,128; cifar: 6n+2, default 8,14,20,32,56)")
      ->type_name("LIST")
      ->check(program::integer_list_in(1, 2000));
  app.add_option("--width", c.width,
                 "mlp: units per layer and input/output size (default 64); cifar: channels of "
                 "the first stage (default 8); 1 to 4096")
      ->check(program::integer_in(1, 4096))
      ->default_str("64 (mlp), 8 (cifar)");
  app.add_option("--image", c.image, "cifar: image side, a multiple of 4 in [4, 64]")
      ->check(program::integer_in(4, 64));
  app.add_option("--samples", c.samples, "inputs per network, one batch, 1 to 256")
      ->check(program::integer_in(1, 256));
  app.add_option("--seeds", c.seeds, "random networks per configuration, 1 to 1000")
      ->check(program::integer_in(1, 1000));
  app.add_option("--steps", c.steps, "cifar: Lanczos steps, 1 to 100000")
      ->check(program::integer_in(1, 100000));
  app.add_option("--bn", c.bn,
                 "cifar: batch norm after every convolution (statistics of the sample batch, "
                 "held fixed): on or off")
      ->check(program::one_of({"on", "off"}));
  app.add_flag("--delta", c.delta,
               "cifar: delta-orthogonal kernels for plain_crelu_ll (mirrored), plain_prelu_ll and "
               "plain_tat");
  app.add_option("--eta", c.eta, "TAT's C_f(0), in [1e-6, 0.999999]")
      ->check(program::finite_in(1e-6, 0.999999));
  program::add_threads(app, c.threads);
  program::add_json(app, c.json);
  program::parse(app, argc, argv);
  finish_config(c);
  return c;
}

/// Runs gnuplot on jacobian_spectrum.gp in the output folder (no shell) and checks the PNG.
/// Returns a note when gnuplot is not installed; throws io_error when it fails.
std::string make_plot(const fs::path& dir) {
  const fs::path png = dir / "jacobian_spectrum.png";
  std::error_code ec;
  fs::remove(png, ec);  // a PNG of an earlier run must not pass for this one
  if (ec) throw program::io_error("cannot replace '" + png.string() + "': " + ec.message());
  program::exit_status st;
  try {
    st = program::run_program({"gnuplot", "jacobian_spectrum.gp"}, dir);
  } catch (const program::program_not_found&) {
    return "gnuplot not found, no PNG made. Install it (apt-get install gnuplot-nox) and run "
           "gnuplot jacobian_spectrum.gp in " +
           dir.string();
  }
  if (!st.ok())
    throw program::io_error("gnuplot jacobian_spectrum.gp in '" + dir.string() + "' failed (" +
                            st.describe() + "); the CSV files and the script are there");
  if (!program::png_complete(png))
    throw program::io_error("gnuplot exited 0 but did not write '" + png.string() +
                            "' completely (missing, empty or cut short: disk full?)");
  return "";
}

/// Every architecture at every depth: the CSV texts, the table on stdout, the JSON rows.
void measure(const config& c, std::ostringstream& all, std::ostringstream& summary, json& rows) {
  const std::string method = c.family == "mlp" ? "exact" : "lanczos";
  const std::string bn = c.family == "mlp" ? "-" : c.bn;
  std::cout << std::left << std::setw(16) << "arch" << std::setw(7) << "depth" << std::setw(12)
            << "sigma_min" << std::setw(12) << "median" << std::setw(12) << "sigma_max"
            << "(over non-zero singular values)\n";
  for (const auto& arch : c.archs)
    for (int depth : c.depths) {
      spectrum_summary sum;
      for (int seed = 0; seed < c.seeds; ++seed) {
        shatter::rng g(1000003ull * std::uint64_t(seed + 1) + std::uint64_t(depth));
        auto net = make_net(c, arch, depth, g);
        const auto sv = spectra(c, net, g);
        for (std::size_t s = 0; s < sv.size(); ++s) {
          sum.add(sv[s]);
          for (idx k = 0; k < sv[s].size(); ++k)
            all << c.family << ',' << arch << ',' << depth << ',' << bn << ',' << seed << ',' << s
                << ',' << method << ',' << k << ',' << std::setprecision(10) << sv[s](k) << '\n';
        }
      }
      summary << summary_row(c, arch, depth, sum);
      const auto& v = sum.nonzero;
      const double lo = v.empty() ? 0.0 : v.front(), mid = v.empty() ? 0.0 : quantile(v, 0.5),
                   hi = v.empty() ? 0.0 : v.back();
      std::cout << std::setw(16) << arch << std::setw(7) << depth << std::setprecision(4)
                << std::setw(12) << lo << std::setw(12) << mid << std::setw(12) << hi << '\n';
      rows.push_back({{"arch", arch},
                      {"depth", depth},
                      {"sigma_min", program::json_number(lo)},
                      {"sigma_median", program::json_number(mid)},
                      {"sigma_max", program::json_number(hi)}});
    }
}

int run(int argc, char** argv) {
  const config c = parse_args(argc, argv);
  const fs::path dir(c.out);
  program::make_output_dir(dir);
  std::ostringstream all, summary;
  all << "family,arch,depth,bn,seed,sample,method,index,sigma\n";
  summary << "family,arch,depth,bn,nets,samples,method,rank_fraction,sigma_min,sigma_p10,"
             "sigma_median,sigma_p90,sigma_max,mean_sq\n";
  json rows = json::array();
  measure(c, all, summary, rows);
  program::write_file(dir / "jacobian_spectrum.csv", all.str());
  program::write_file(dir / "jacobian_summary.csv", summary.str());
  program::write_file(dir / "jacobian_spectrum.gp", gnuplot_script(c));
  std::cerr << "wrote " << (dir / "jacobian_spectrum.csv").string() << ", "
            << (dir / "jacobian_summary.csv").string() << ", "
            << (dir / "jacobian_spectrum.gp").string() << "\n";
  const std::string note = make_plot(dir);
  if (note.empty())
    std::cerr << "plot: " << (dir / "jacobian_spectrum.png").string() << "\n";
  else
    std::cerr << "note: " << note << "\n";
  if (c.json)
    program::print_json_line({{"program", "jacobian_spectrum"},
                              {"family", c.family},
                              {"out", c.out},
                              {"png", note.empty()},
                              {"rows", rows}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return program::run_main("jacobian_spectrum", [&] { return run(argc, argv); });
}
