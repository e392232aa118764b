// What the two training programs (cifar10, quickstart) share beyond program_support.hpp: the
// check that data files are regular files, the message after a stop request, and (built with
// SHATTER_USE_MPI) running as one rank of an MPI job started by mpirun.
#ifndef SHATTER_EXAMPLES_TRAINING_SUPPORT_HPP
#define SHATTER_EXAMPLES_TRAINING_SUPPORT_HPP

#include <signal.h>
#include <sys/stat.h>

#include <functional>
#include <iostream>
#include <streambuf>
#include <string>
#include <vector>

#include "program_support.hpp"
#include "shatter/train/fit.hpp"
#include "shatter/train/run_directory.hpp"
#include "shatter/train/stop.hpp"
#ifdef SHATTER_USE_MPI
#include "shatter/dist/mpi.hpp"
#endif

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

/// The ranks this program trains with: this process alone (comm null), or, when built with
/// SHATTER_USE_MPI and started by mpirun, the ranks of the MPI job (for fit_options::comm).
struct job {
  int rank = 0;
  int size = 1;
  shatter::communicator* comm = nullptr;
  /// Rank 0 (or alone): the rank that prints and writes files.
  bool root() const { return rank == 0; }
};

/// This process's job (see run_training_main).
inline job& this_job() {
  static job j;
  return j;
}

namespace detail {
/// A stream buffer that drops what it is given (the standard output of ranks other than 0).
struct discard_buffer : std::streambuf {
  int overflow(int c) override { return traits_type::not_eof(c); }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};
}  // namespace detail

/// After fit stopped at a stop request: says on stderr which signal, where the checkpoint is and
/// the command that resumes; returns the exit status, 128 + signal (130 SIGINT, 143 SIGTERM).
inline int report_stop(const std::string& program, const shatter::fit_result& r, int argc,
                       char** argv) {
  const int sig = shatter::stop_signal ? int(shatter::stop_signal) : SIGINT;
  if (this_job().root())
    std::cerr << program << ": stopped by " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
              << " after step " << r.steps << "; checkpoint: " << r.checkpoint << "\n"
              << program << ": resume with: " << resume_command(argc, argv) << "\n";
  return 128 + sig;
}

/// run_main for a training program. Alone it is run_main. Built with SHATTER_USE_MPI and
/// started by mpirun, the process joins the job first (this_job(): its rank, the ranks'
/// communicator): only rank 0's standard output is kept (progress lines are rank 0's, see
/// fit_options::comm), error messages name the rank ("<program> (rank r of n): error: ..."),
/// and a rank that fails (exit status 1 or 2) ends the whole job with MPI_Abort, so no rank waits
/// for it (one that hangs, after 600 s: see mpi_communicator::set_timeout); a stop request ends
/// every rank with the same status after the checkpoint.
inline int run_training_main(const std::string& program, int& argc, char**& argv,
                             const std::function<int()>& body) {
#ifdef SHATTER_USE_MPI
  if (shatter::dist::launched_by_mpirun()) {
    shatter::dist::mpi_session session(argc, argv, program);
    int code = 0;
    {
      shatter::dist::mpi_communicator comm;
      // A rank that hangs ends the job after 10 minutes of waiting for it: far above the
      // longest legitimate wait (a checkpoint write or an evaluation on another rank).
      comm.set_timeout(600, program);
      job& j = this_job();
      j = job{comm.rank(), comm.size(), &comm};
      detail::discard_buffer sink;
      std::streambuf* out = std::cout.rdbuf();
      if (!j.root()) std::cout.rdbuf(&sink);
      const std::string who = j.size > 1 ? program + " (rank " + std::to_string(j.rank) + " of " +
                                               std::to_string(j.size) + ")"
                                         : program;
      code = run_main(who, body);
      std::cout.rdbuf(out);
      if (j.size > 1 && j.root() && code == 0)
        std::cerr << program << ": rank 0 spent " << comm.seconds()
                  << " s in MPI collectives (sums, broadcasts, and waits for the other ranks)\n";
      if (j.size > 1 && (code == 1 || code == 2))
        shatter::dist::abort_job(program, "exit status " + std::to_string(code), code);
      j = job{};
    }
    return code;
  }
#endif
  (void)argc;
  (void)argv;
  return run_main(program, body);
}

}  // namespace program

#endif  // SHATTER_EXAMPLES_TRAINING_SUPPORT_HPP
