// shatter: a stop request for the training loop, settable from a signal handler.
#ifndef SHATTER_TRAIN_STOP_HPP
#define SHATTER_TRAIN_STOP_HPP

#include <signal.h>

#include <csignal>

namespace shatter {

/// The flag the handlers of `handle_stop_signals` set: 0 while no stop was requested, otherwise
/// the number of the signal that asked for it. `fit` polls it at each step boundary when
/// `fit_options::stop` points here. Writing it is async-signal-safe (a volatile sig_atomic_t).
inline volatile std::sig_atomic_t stop_signal = 0;

namespace detail {
/// Records the signal in `stop_signal`. The handler was installed with SA_RESETHAND, so a second
/// signal of the same kind takes the default action (ends the process at once).
extern "C" inline void record_stop_signal(int sig) {
  stop_signal = sig;
}
}  // namespace detail

/// Installs handlers for SIGINT and SIGTERM that set `stop_signal` to the signal's number instead
/// of ending the process, so a training run can finish its step, write a checkpoint and exit
/// (conventionally with status 128 + signal: 130 for SIGINT, 143 for SIGTERM). A second signal
/// ends the process the default way. POSIX only. Thread safety: call once, before training.
inline void handle_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = detail::record_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // no SA_RESTART needed: the loop polls the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace shatter

#endif  // SHATTER_TRAIN_STOP_HPP
