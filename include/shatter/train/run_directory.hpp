// shatter: the directory of one training run (lock, checkpoint, log), POSIX.
#ifndef SHATTER_TRAIN_RUN_DIRECTORY_HPP
#define SHATTER_TRAIN_RUN_DIRECTORY_HPP

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "shatter/core/error.hpp"

namespace shatter {

/// A run directory refused a run: it is locked by another process, is not a directory, holds a
/// run although a fresh one was asked for (or none to resume), or its checkpoint does not match
/// the run's options. The message names the directory and, for a mismatch, the option and both
/// values. A config_error, since a different directory or options would work.
class run_refused : public config_error {
 public:
  using config_error::config_error;
};

namespace detail {
/// "a FIFO", "a directory", ... for a stat mode that is not a regular file.
inline const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

/// Creates `dir` and its missing parents (mode 0777 before umask); data_error naming the part
/// that cannot be created, run_refused when a part exists and is not a directory.
inline void make_directories(const std::string& dir) {
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    const std::string part = dir.substr(0, i);
    struct stat st {};
    if (::stat(part.c_str(), &st) == 0) {
      require<run_refused>(S_ISDIR(st.st_mode), "run directory '", dir, "': '", part, "' is ",
                           file_kind(st.st_mode), ", not a directory");
      continue;
    }
    require<data_error>(::mkdir(part.c_str(), 0777) == 0 || errno == EEXIST,
                        "cannot create directory '", part, "': ", std::strerror(errno));
  }
}

/// Writes all of `s` to `fd`, retrying after interruptions; false with errno set on failure.
inline bool write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}
}  // namespace detail

/// The directory of one training run, held for the lifetime of this object: `lock` (who runs
/// here), `checkpoint.safetensors` (the last checkpoint) and `log.jsonl` (one line per finished
/// epoch). Construction creates the directory if needed and takes an exclusive lock (flock on
/// `lock`, which records "pid <pid> on host <host>"), so a second run on the same directory is
/// refused while the first one lives; the lock ends with the process, however it ends. Every
/// write is checked: a failure throws data_error naming the file and the system's reason.
/// Thread safety: one thread at a time; distinct directories are independent.
class run_directory {
 public:
  /// Opens and locks `dir`, creating it unless `create` is false (then a missing directory is
  /// refused). Throws run_refused when `dir` (or a parent) is not a directory or another
  /// process holds the lock (naming its pid and host), data_error when the directory or the
  /// lock file cannot be created.
  explicit run_directory(std::string dir, bool create = true) : dir_(std::move(dir)) {
    require<run_refused>(!dir_.empty(), "run directory: the path is empty");
    struct stat dst {};
    require<run_refused>(create || ::stat(dir_.c_str(), &dst) == 0, "run directory '", dir_,
                         "' does not exist");
    detail::make_directories(dir_);
    const std::string lock = file("lock");
    fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    require<data_error>(fd_ >= 0, "cannot open the lock file '", lock, "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw run_refused(detail::cat("run directory '", dir_, "': '", lock, "' is ",
                                    detail::file_kind(st.st_mode), ", not a regular file"));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder(200, '\0');
      const ssize_t n = ::pread(fd_, &holder[0], holder.size(), 0);
      holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
      ::close(fd_);
      if (err != EWOULDBLOCK)
        throw data_error(detail::cat("cannot lock '", lock, "': ", std::strerror(err)));
      throw run_refused(detail::cat("run directory '", dir_, "' is in use by another run (",
                                    holder.empty() ? "holder unknown" : holder, "; lock file '",
                                    lock, "')"));
    }
    char host[256] = "unknown";
    ::gethostname(host, sizeof host - 1);
    const std::string me = detail::cat("pid ", ::getpid(), " on host ", host, "\n");
    if (::ftruncate(fd_, 0) != 0 || !detail::write_all(fd_, me)) {
      const int err = errno;
      ::close(fd_);
      throw data_error(detail::cat("cannot write '", lock, "': ", std::strerror(err)));
    }
  }
  ~run_directory() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race)
  }
  run_directory(const run_directory&) = delete;
  run_directory& operator=(const run_directory&) = delete;

  /// The directory's path as given.
  const std::string& path() const { return dir_; }
  /// The path of `name` inside the directory.
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  /// The checkpoint's path.
  std::string checkpoint_path() const { return file("checkpoint.safetensors"); }
  /// The log's path.
  std::string log_path() const { return file("log.jsonl"); }

  /// Whether the directory holds a checkpoint; run_refused when something that is not a regular
  /// file (a FIFO, a directory, a device) is in its place (checked without opening it).
  bool has_checkpoint() const { return regular_file_exists(checkpoint_path()); }

  /// Removes the temporary files ("<name>.tmp.<pid>.<k>") that atomic writes interrupted by a
  /// crash left behind. Safe because nobody else writes here while the lock is held.
  void remove_stale_temporaries() const {
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) return;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      struct stat st {};
      if (name.find(".tmp.") != std::string::npos && ::lstat(file(name).c_str(), &st) == 0 &&
          S_ISREG(st.st_mode))
        std::remove(file(name).c_str());
    }
    ::closedir(d);
  }

  /// The log's size in bytes (0 when there is none, or when it is not a regular file).
  std::int64_t log_size() const {
    struct stat st {};
    return ::stat(log_path().c_str(), &st) == 0 && S_ISREG(st.st_mode)
               ? static_cast<std::int64_t>(st.st_size)
               : 0;
  }

  /// Appends `text` to the log and syncs it to disk; data_error naming the log and the system's
  /// reason when any part fails (a full disk, a read-only file system; a FIFO without a reader is
  /// refused, not waited for).
  void append_log(const std::string& text) const {
    const std::string path = log_path();
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    require<data_error>(fd >= 0, "cannot open '", path, "' for writing: ", std::strerror(errno));
    bool ok = detail::write_all(fd, text) && ::fsync(fd) == 0;
    int err = ok ? 0 : errno;
    if (::close(fd) != 0 && ok) ok = false, err = errno;
    require<data_error>(ok, "cannot write '", path, "': ", std::strerror(err));
  }

  /// Cuts the log back to its first `bytes` bytes (nothing when it is not longer or not a
  /// regular file); data_error naming the log on failure.
  void cut_log(std::int64_t bytes) const {
    if (log_size() <= bytes) return;
    require<data_error>(::truncate(log_path().c_str(), static_cast<off_t>(bytes)) == 0,
                        "cannot cut '", log_path(), "' back to ", bytes,
                        " bytes: ", std::strerror(errno));
  }

 private:
  /// Whether `path` exists; run_refused when it is not a regular file (after symlinks).
  bool regular_file_exists(const std::string& path) const {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    require<run_refused>(S_ISREG(st.st_mode), "run directory '", dir_, "': '", path, "' is ",
                         detail::file_kind(st.st_mode), ", not a regular file");
    return true;
  }

  std::string dir_;
  int fd_ = -1;
};

}  // namespace shatter

#endif  // SHATTER_TRAIN_RUN_DIRECTORY_HPP
