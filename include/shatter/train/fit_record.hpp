// shatter: what fit records in a checkpoint's metadata to resume a run exactly.
#ifndef SHATTER_TRAIN_FIT_RECORD_HPP
#define SHATTER_TRAIN_FIT_RECORD_HPP

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "shatter/core/error.hpp"
#include "shatter/train/run_directory.hpp"

namespace shatter {

/// Where a run stands after a step, over all its sessions (a resumed run continues the record
/// of the one it resumes). `fit` keeps it, returns it in fit_result and stores it in the
/// metadata of each checkpoint it writes ("fit.*" keys), so that a resumed run reports its
/// interrupted epoch, its best epoch and its log exactly as an uninterrupted one would.
struct fit_record {
  std::int64_t step = 0;           ///< global steps done
  double epoch_loss_sum = 0;       ///< the unfinished epoch: sum of its finite batch losses
  std::int64_t epoch_seen = 0;     ///< ... samples in its finite batches
  std::int64_t epoch_correct = 0;  ///< ... of them classified correctly before each update
  std::int64_t epoch_batches = 0;  ///< ... finite batches
  std::int64_t epoch_skipped = 0;  ///< ... batches skipped for non-finite values
  std::int64_t skipped_total = 0;  ///< batches skipped over the whole run
  std::int64_t best_epoch = -1;    ///< 0-based epoch of the best test accuracy (-1: none yet)
  double best_test_accuracy = 0;   ///< its test accuracy
  double best_test_loss = 0;       ///< its test loss
  std::int64_t last_epoch = -1;    ///< the last finished epoch (-1: none yet)
  double last_test_accuracy = 0;   ///< its test accuracy (0 without a test set)
  double last_test_loss = 0;       ///< its test loss
  double seconds = 0;              ///< wall time of the finished epochs, over all sessions
  std::int64_t log_bytes = 0;      ///< the log's size before `log_line` was appended
  std::string log_line;            ///< the line this checkpoint's epoch adds to the log (or "")
  bool finished = false;           ///< every epoch of the run is done
};

namespace detail {
/// `v` with 17 significant digits (reads back to the same double).
inline std::string exact_text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// The record as "fit.*" metadata entries.
inline std::map<std::string, std::string> encode_fit_record(const fit_record& r) {
  return {{"fit.step", std::to_string(r.step)},
          {"fit.epoch_loss_sum", exact_text(r.epoch_loss_sum)},
          {"fit.epoch_seen", std::to_string(r.epoch_seen)},
          {"fit.epoch_correct", std::to_string(r.epoch_correct)},
          {"fit.epoch_batches", std::to_string(r.epoch_batches)},
          {"fit.epoch_skipped", std::to_string(r.epoch_skipped)},
          {"fit.skipped_total", std::to_string(r.skipped_total)},
          {"fit.best_epoch", std::to_string(r.best_epoch)},
          {"fit.best_test_accuracy", exact_text(r.best_test_accuracy)},
          {"fit.best_test_loss", exact_text(r.best_test_loss)},
          {"fit.last_epoch", std::to_string(r.last_epoch)},
          {"fit.last_test_accuracy", exact_text(r.last_test_accuracy)},
          {"fit.last_test_loss", exact_text(r.last_test_loss)},
          {"fit.seconds", exact_text(r.seconds)},
          {"fit.log_bytes", std::to_string(r.log_bytes)},
          {"fit.log_line", r.log_line},
          {"fit.finished", r.finished ? "1" : "0"}};
}

/// Reads the metadata entry `key` of checkpoint `path`; data_error naming both when it is
/// missing or not a number in [lo, hi].
inline double record_number(const std::map<std::string, std::string>& m, const std::string& key,
                            const std::string& path, double lo, double hi) {
  const auto it = m.find(key);
  require<data_error>(it != m.end(), path, ": checkpoint metadata has no \"", key,
                      "\" (not written by fit with a run directory?)");
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  require<data_error>(!it->second.empty() && *end == '\0' && v >= lo && v <= hi, path,
                      ": checkpoint metadata \"", key, "\" = \"", it->second,
                      "\" is not a number in [", lo, ", ", hi, "]");
  return v;
}

/// The record stored in a checkpoint's metadata; data_error naming the file and the key when
/// an entry is missing or out of range.
inline fit_record decode_fit_record(const std::map<std::string, std::string>& m,
                                    const std::string& path) {
  const double big = 9e15, inf = HUGE_VAL;  // counts are exact below 2^53
  auto count = [&](const char* key, double lo = 0) {
    return static_cast<std::int64_t>(record_number(m, key, path, lo, big));
  };
  auto real = [&](const char* key) { return record_number(m, key, path, -inf, inf); };
  fit_record r;
  r.step = count("fit.step");
  r.epoch_loss_sum = real("fit.epoch_loss_sum");
  r.epoch_seen = count("fit.epoch_seen");
  r.epoch_correct = count("fit.epoch_correct");
  r.epoch_batches = count("fit.epoch_batches");
  r.epoch_skipped = count("fit.epoch_skipped");
  r.skipped_total = count("fit.skipped_total");
  r.best_epoch = count("fit.best_epoch", -1);
  r.best_test_accuracy = real("fit.best_test_accuracy");
  r.best_test_loss = real("fit.best_test_loss");
  r.last_epoch = count("fit.last_epoch", -1);
  r.last_test_accuracy = real("fit.last_test_accuracy");
  r.last_test_loss = real("fit.last_test_loss");
  r.seconds = real("fit.seconds");
  r.log_bytes = count("fit.log_bytes");
  r.finished = record_number(m, "fit.finished", path, 0, 1) == 1;
  const auto line = m.find("fit.log_line");
  require<data_error>(line != m.end(), path, ": checkpoint metadata has no \"fit.log_line\"");
  r.log_line = line->second;
  return r;
}

/// Checks that the options a checkpoint was written with ("config.<name>" metadata entries)
/// are those of this run (`config`: name -> value). Throws run_refused naming every option that
/// differs, is missing on one side, with both values.
inline void check_same_config(const std::map<std::string, std::string>& metadata,
                              const std::map<std::string, std::string>& config,
                              const std::string& path) {
  std::map<std::string, std::string> stored;
  for (const auto& kv : metadata)
    if (kv.first.rfind("config.", 0) == 0) stored[kv.first.substr(7)] = kv.second;
  std::string diff;
  auto add = [&](const std::string& name, const std::string& then, const std::string& now) {
    diff += cat(diff.empty() ? "" : "; ", "option '", name, "' is ", then,
                " in the checkpoint but ", now, " in this run");
  };
  for (const auto& kv : config) {
    const auto it = stored.find(kv.first);
    if (it == stored.end())
      add(kv.first, "absent", "'" + kv.second + "'");
    else if (it->second != kv.second)
      add(kv.first, "'" + it->second + "'", "'" + kv.second + "'");
  }
  for (const auto& kv : stored)
    if (!config.count(kv.first)) add(kv.first, "'" + kv.second + "'", "absent");
  require<run_refused>(diff.empty(), "cannot resume from '", path,
                       "': it was written with other options: ", diff);
}
}  // namespace detail

}  // namespace shatter

#endif  // SHATTER_TRAIN_FIT_RECORD_HPP
