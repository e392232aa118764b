// What the two training programs (cifar10, quickstart) share beyond program_support.hpp: the
// check that data files are regular files, and the message after a stop request.
#ifndef SHATTER_EXAMPLES_TRAINING_SUPPORT_HPP
#define SHATTER_EXAMPLES_TRAINING_SUPPORT_HPP

#include <signal.h>
#include <sys/stat.h>

#include <iostream>
#include <string>
#include <vector>

#include "program_support.hpp"
#include "shatter/train/fit.hpp"
#include "shatter/train/run_directory.hpp"
#include "shatter/train/stop.hpp"

namespace program {

/// Refuses (usage_error naming `option`) anything but a regular file at `dir`/<name> or
/// `dir`/<name>.gz for each name: a FIFO would block the loader, a directory or device mislead
/// it. Checked with stat, without opening. Missing files are left to the loader's message.
inline void check_regular_files(const std::string& option, const std::string& dir,
                                const std::vector<std::string>& names) {
  for (const auto& n : names)
    for (const std::string& f : {dir + "/" + n, dir + "/" + n + ".gz"}) {
      struct stat st {};
      if (::stat(f.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        throw usage_error(option + ": '" + f + "' is " + shatter::detail::file_kind(st.st_mode) +
                          ", not a regular file");
    }
}

/// The command that resumes this run: the same arguments, shell-quoted, with --resume.
inline std::string resume_command(int argc, char** argv) {
  std::string cmd;
  bool has_resume = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    std::string q = "'";
    has_resume = has_resume || a == "--resume";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += (i ? " " : "") + q + "'";
  }
  return has_resume ? cmd : cmd + " --resume";
}

/// After fit stopped at a stop request: says on stderr which signal, where the checkpoint is and
/// the command that resumes; returns the exit status, 128 + signal (130 SIGINT, 143 SIGTERM).
inline int report_stop(const std::string& program, const shatter::fit_result& r, int argc,
                       char** argv) {
  const int sig = shatter::stop_signal ? int(shatter::stop_signal) : SIGINT;
  std::cerr << program << ": stopped by " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << " after step " << r.steps << "; checkpoint: " << r.checkpoint << "\n"
            << program << ": resume with: " << resume_command(argc, argv) << "\n";
  return 128 + sig;
}

}  // namespace program

#endif  // SHATTER_EXAMPLES_TRAINING_SUPPORT_HPP
