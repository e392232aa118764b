// Conventions shared by the example programs (shattering, cifar10, quickstart), so that the three
// behave alike:
//
// - Command lines are parsed by CLI11: `--k v` and `--k=v` both work, `--help` prints the options
//   to stdout and exits 0, a usage error or a bad value exits 2 with a message naming the option
//   and a pointer to --help (usage_error, parse).
// - Options the programs share have the same names, checks and defaults (add_threads, add_out,
//   add_seed, add_json); numbers are checked strictly (integer_in, finite_in: no wrap-around of
//   -1 into an unsigned, no NaN, no trailing text).
// - run_main maps exceptions to exit codes: usage errors 2; anything else at run time (I/O, data,
//   out of memory, a thread the system refuses) 1 with "<program>: error: <what>" on stderr.
// - Progress and messages go to stderr, results to stdout; with --json the last stdout line is one
//   JSON summary (print_json_line). Every JSON is written by nlohmann-json; a non-finite number
//   becomes null (json_number).
// - Files are written whole or not at all (write_file: temporary file, every write checked,
//   fsync, rename); external programs run without a shell (run_program: fork + execvp with an
//   argument vector and a working directory).
#ifndef SHATTER_EXAMPLES_PROGRAM_SUPPORT_HPP
#define SHATTER_EXAMPLES_PROGRAM_SUPPORT_HPP

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace program {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// A bad command line or option value: the program exits 2. The message names the option.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A file that could not be written, or an external program that could not be run: exit 1.
struct io_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An external program that is not installed (execvp found no such file on the PATH).
struct program_not_found : io_error {
  using io_error::io_error;
};

namespace detail {
inline std::string& usage_line() {
  static std::string line;
  return line;
}
inline std::string os_error(int err) {
  return std::strerror(err);
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Strict number parsing and CLI11 validators.

/// Parses a whole decimal integer in [lo, hi]; the message names `what` (the option) on failure.
/// Refuses empty text, signs on unsigned ranges' negatives, trailing text and overflow.
inline long long parse_integer(const std::string& what, const std::string& text, long long lo,
                               long long hi) {
  const std::string need =
      "needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  errno = 0;
  char* end = nullptr;
  const long long x = text.empty() ? 0 : std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0])) || *end != '\0' ||
      errno == ERANGE || x < lo || x > hi)
    throw usage_error(what + " " + need + ", got '" + text + "'");
  return x;
}

/// Parses a whole finite decimal number in [lo, hi]; the message names `what` on failure.
inline double parse_finite(const std::string& what, const std::string& text, double lo, double hi) {
  char* end = nullptr;
  const double x = text.empty() ? 0 : std::strtod(text.c_str(), &end);
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0])) || *end != '\0' ||
      !std::isfinite(x) || x < lo || x > hi) {
    std::ostringstream need;
    need << what << " needs a finite number in [" << lo << ", " << hi << "], got '" << text << "'";
    throw usage_error(need.str());
  }
  return x;
}

/// Parses a comma-separated list of integers in [lo, hi] (no empty items, at least one).
inline std::vector<long long> parse_integer_list(const std::string& what, const std::string& text,
                                                 long long lo, long long hi) {
  std::vector<long long> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma - start);
    if (item.empty())
      throw usage_error(what + " needs a comma-separated list of integers in [" +
                        std::to_string(lo) + ", " + std::to_string(hi) +
                        "] without empty items, got '" + text + "'");
    out.push_back(parse_integer(what, item, lo, hi));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// CLI11 validator: a whole integer in [lo, hi] (checked before CLI11 converts the text, so an
/// unsigned option never wraps -1 around and an out-of-range value never saturates).
inline CLI::Validator integer_in(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        try {
          parse_integer("", s, lo, hi);
        } catch (const usage_error& e) {
          return std::string(e.what()).substr(1);  // CLI11 prefixes the option's name
        }
        return {};
      },
      "");
}

/// CLI11 validator: a finite number in [lo, hi] (NaN, inf, 1e999 and trailing text refused).
inline CLI::Validator finite_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        try {
          parse_finite("", s, lo, hi);
        } catch (const usage_error& e) {
          return std::string(e.what()).substr(1);
        }
        return {};
      },
      "");
}

/// CLI11 validator: a comma-separated list of integers in [lo, hi] (see parse_integer_list).
inline CLI::Validator integer_list_in(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        try {
          parse_integer_list("", s, lo, hi);
        } catch (const usage_error& e) {
          return std::string(e.what()).substr(1);
        }
        return {};
      },
      "");
}

/// CLI11 validator: one of `names` (the message lists them).
inline CLI::Validator one_of(std::vector<std::string> names) {
  return CLI::Validator(
      [names](std::string& s) -> std::string {
        if (std::find(names.begin(), names.end(), s) != names.end()) return {};
        std::string list;
        for (std::size_t i = 0; i < names.size(); ++i)
          list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
        return "must be " + list + ", got '" + s + "'";
      },
      "");
}

// ---------------------------------------------------------------------------------------------
// Options shared by the programs: same names, checks and defaults everywhere.

/// Largest --threads accepted: more would only make the system refuse threads.
constexpr int max_threads = 1024;

/// Default of --threads: the cores the system reports (at least 1).
inline int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return int(std::clamp<unsigned>(n, 1u, unsigned(max_threads)));
}

/// --threads N: worker threads, in [1, 1024]; `threads` is set to default_threads() first.
inline CLI::Option* add_threads(CLI::App& app, int& threads) {
  threads = default_threads();
  return app.add_option("--threads", threads, "worker threads, 1 to 1024 (default: the cores)")
      ->check(integer_in(1, max_threads))
      ->type_name("N")
      ->capture_default_str();
}

/// --out DIR: the output folder; refuses "" and a path that exists and is not a directory. The
/// folder is created by the program when it starts writing (make_output_dir).
inline CLI::Option* add_out(CLI::App& app, std::string& out, const std::string& what) {
  return app.add_option("--out", out, what)
      ->type_name("DIR")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            if (s.empty()) return "needs a folder name, got ''";
            std::error_code ec;
            const auto st = fs::status(s, ec);
            if (!ec && fs::exists(st) && !fs::is_directory(st))
              return "'" + s + "' exists and is not a directory";
            return {};
          },
          ""));
}

/// --seed N: the run's seed, an integer in [0, 2^63 - 1] (-1 is refused, not wrapped to 2^64-1).
inline CLI::Option* add_seed(CLI::App& app, std::uint64_t& seed) {
  return app.add_option("--seed", seed, "seed of every random draw of the run, >= 0")
      ->check(integer_in(0, std::numeric_limits<long long>::max()))
      ->type_name("N")
      ->capture_default_str();
}

/// --json: the last line on stdout is one JSON object summarising the run.
inline CLI::Option* add_json(CLI::App& app, bool& json_flag) {
  return app.add_flag("--json", json_flag,
                      "print a JSON summary of the run as the last line on stdout");
}

/// Creates the output folder (and its parents); io_error naming it on failure.
inline void make_output_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw io_error("cannot create the folder '" + dir.string() + "': " + ec.message());
  if (!fs::is_directory(dir, ec))
    throw io_error("'" + dir.string() + "' exists and is not a directory");
}

// ---------------------------------------------------------------------------------------------
// Parsing and main.

/// Sets the conventions on a new CLI11 app: -h/--help, no Windows-style options, the last of a
/// repeated option counts (so a script can append an override).
inline void configure(CLI::App& app) {
  app.set_help_flag("-h,--help", "print this help and exit");
  app.allow_windows_style_options(false);
  app.option_defaults()->always_capture_default()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);  // a repeated option: the last one counts
}

/// Parses the command line. --help prints the help to stdout and exits 0; a usage error throws
/// usage_error with CLI11's message (which names the option).
inline void parse(CLI::App& app, int argc, char** argv) {
  std::string usage = CLI::Formatter().make_usage(&app, app.get_name());
  if (usage.rfind("Usage:", 0) == 0) usage = "usage:" + usage.substr(6);
  while (!usage.empty() && usage.back() == '\n') usage.pop_back();
  detail::usage_line() = usage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help() << std::flush;
    std::exit(std::cout ? 0 : 1);
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All) << std::flush;
    std::exit(std::cout ? 0 : 1);
  } catch (const CLI::ParseError& e) {
    throw usage_error(e.what());
  }
}

/// Runs body() and maps what it throws to the exit code: usage_error 2 (message, usage line and a
/// pointer to --help on stderr), anything else 1 ("<program>: error: <what>"). Also fails (1)
/// when stdout could not be written, so a result is never reported lost silently.
inline int run_main(const std::string& program, const std::function<int()>& body) {
  int code = 1;
  try {
    code = body();
  } catch (const usage_error& e) {
    std::cerr << program << ": " << e.what() << "\n"
              << (detail::usage_line().empty() ? "usage: " + program + " [OPTIONS]"
                                               : detail::usage_line())
              << "\nRun '" << program << " --help' for the options.\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << program
              << ": error: out of memory (an allocation failed; try fewer --threads, "
                 "smaller sizes, or more memory)\n";
    return 1;
  } catch (const std::system_error& e) {
    std::cerr << program << ": error: " << e.what() << " (" << e.code().category().name() << " "
              << e.code().value() << ")\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << program << ": error: unknown exception\n";
    return 1;
  }
  std::cout.flush();
  if (!std::cout) {
    std::cerr << program << ": error: writing to standard output failed\n";
    return 1;
  }
  return code;
}

// ---------------------------------------------------------------------------------------------
// JSON.

/// A number for a JSON document: null when it is not finite (JSON has no NaN or Infinity).
inline json json_number(double x) {
  return std::isfinite(x) ? json(x) : json(nullptr);
}

/// Serialises j on one line; strings that are not valid UTF-8 (file names) get U+FFFD instead of
/// making the dump throw.
inline std::string json_line(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// Prints j on one line to stdout (the --json summary: the program's last stdout line).
inline void print_json_line(const json& j) {
  std::cout << json_line(j) << std::endl;
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Writes `text` to `path` whole or not at all: a temporary file beside it, every write checked,
/// fsync, close, then rename over `path`. On failure throws io_error naming the file and the OS
/// error, removes the temporary and leaves an existing `path` as it was.
inline void write_file(const fs::path& path, std::string_view text) {
  static int counter = 0;
  const fs::path tmp =
      path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  auto fail = [&](const std::string& action, int err, int fd) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw io_error("cannot write '" + path.string() + "': " + action + ": " +
                   detail::os_error(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw io_error("cannot write '" + path.string() + "': cannot create '" + tmp.string() +
                   "': " + detail::os_error(err));
  }
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write", n < 0 ? errno : ENOSPC, fd);
    p += n;
    left -= std::size_t(n);
  }
  if (::fsync(fd) != 0) fail("fsync", errno, fd);
  if (::close(fd) != 0) fail("close", errno, -1);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno, -1);
}

/// Whether `path` is a regular file that is not empty.
inline bool nonempty_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && fs::file_size(path, ec) > 0 && !ec;
}

/// Whether a PNG was written whole: the signature at the start, the IEND chunk at the end
/// (gnuplot exits 0 after writing a truncated PNG on a full disk).
inline bool png_complete(const fs::path& p) {
  if (!nonempty_file(p)) return false;
  std::ifstream f(p, std::ios::binary);
  std::string head(8, '\0'), tail(8, '\0');
  if (!f.read(&head[0], 8)) return false;
  f.seekg(-8, std::ios::end);
  if (!f.read(&tail[0], 8)) return false;
  return head == "\x89PNG\r\n\x1a\n" && tail == std::string("IEND\xae\x42\x60\x82", 8);
}

// ---------------------------------------------------------------------------------------------
// External programs.

/// How an external program ended: its exit code, or the signal that killed it.
struct exit_status {
  int code = -1;   ///< exit code when it exited, else -1
  int signal = 0;  ///< the signal that ended it, else 0
  bool ok() const { return code == 0; }
  std::string describe() const {
    return signal ? "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")"
                  : "exit code " + std::to_string(code);
  }
};

/// Runs argv[0] (looked up on the PATH) with the arguments argv in the folder `dir`, without a
/// shell, so any argument or folder name (quotes, spaces, ';') is passed as it is. Its stdout
/// goes to our stderr (our stdout carries results only). Waits for it and returns how it ended.
/// Throws program_not_found when argv[0] is not installed, io_error when it could not be started
/// (or `dir` cannot be entered: the message names it).
inline exit_status run_program(const std::vector<std::string>& argv, const fs::path& dir) {
  if (argv.empty()) throw std::invalid_argument("run_program: empty argument vector");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string where = dir.string();
  int report[2];  // the child writes errno and the failed step here if chdir or exec fails
  if (::pipe2(report, O_CLOEXEC) != 0)
    throw io_error("cannot run " + argv[0] + ": pipe: " + detail::os_error(errno));
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    throw io_error("cannot run " + argv[0] + ": fork: " + detail::os_error(err));
  }
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    int failure[2] = {0, 0};
    if (::chdir(where.c_str()) != 0) {
      failure[0] = 1;
    } else if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
      failure[0] = 2;
    } else {
      ::execvp(args[0], args.data());
      failure[0] = 3;
    }
    failure[1] = errno;
    [[maybe_unused]] ssize_t w = ::write(report[1], failure, sizeof failure);
    ::_exit(127);
  }
  ::close(report[1]);
  int failure[2] = {0, 0};
  ssize_t got;
  do got = ::read(report[0], failure, sizeof failure);
  while (got < 0 && errno == EINTR);
  ::close(report[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      throw io_error("cannot wait for " + argv[0] + ": " + detail::os_error(errno));
  if (got == ssize_t(sizeof failure)) {
    const std::string err = detail::os_error(failure[1]);
    if (failure[0] == 1) throw io_error("cannot enter the folder '" + where + "': " + err);
    if (failure[0] == 3 && (failure[1] == ENOENT || failure[1] == ENOTDIR))
      throw program_not_found(argv[0] + " not found on the PATH");
    throw io_error("cannot run " + argv[0] + ": " + err);
  }
  exit_status s;
  if (WIFEXITED(status)) s.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
  return s;
}

}  // namespace program

#endif  // SHATTER_EXAMPLES_PROGRAM_SUPPORT_HPP
