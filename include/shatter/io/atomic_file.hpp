// shatter: whole-file reads and crash-safe (atomic) whole-file writes.
#ifndef SHATTER_IO_ATOMIC_FILE_HPP
#define SHATTER_IO_ATOMIC_FILE_HPP

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define SHATTER_IO_POSIX 1
#else
#define SHATTER_IO_POSIX 0
#endif

#include "shatter/core/error.hpp"
#include "shatter/core/file.hpp"

namespace shatter::io {

/// Reads a whole file into memory. Throws data_error naming the path and the system's reason
/// when it cannot be opened or read, or when it is not a regular file (a FIFO, directory or
/// device is refused without blocking or reading it). Thread safety: may run concurrently with
/// itself.
inline std::vector<unsigned char> read_file(const std::string& path) {
  shatter::detail::regular_file f(path);
  require<data_error>(!f.irregular(), "cannot read '", path, "': it is ",
                      f.irregular() ? f.irregular() : "", ", not a regular file");
  require<data_error>(f.is_open(), "cannot open '", path,
                      "' for reading: ", std::strerror(f.error()));
  std::vector<unsigned char> bytes = f.read_all();
  require<data_error>(f.error() == 0, "error while reading '", path,
                      "': ", std::strerror(f.error()));
  return bytes;
}

namespace detail {
using shatter::detail::cat;

/// The directory part of a path ("." when there is none).
inline std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
}  // namespace detail

/// Replaces the file at `path` by `n` bytes so that, whatever happens (the process is killed,
/// the machine loses power after the call returned), `path` holds either its previous content or
/// the new one, never a mixture: writes a temporary file in the same directory
/// ("<path>.tmp.<pid>.<k>"), flushes and fsyncs it, renames it over `path`, then fsyncs the
/// directory (POSIX; elsewhere only the rename). Throws data_error naming the path and the
/// system's reason on failure and removes the temporary file. Thread safety: concurrent calls for
/// distinct paths are safe; for the same path the last rename wins (each file stays intact).
inline void write_file_atomic(const std::string& path, const void* data, std::size_t n) {
  require<data_error>(!path.empty(), "write_file_atomic: empty path");
  static std::atomic<unsigned long> counter{0};
#if SHATTER_IO_POSIX
  const long pid = static_cast<long>(::getpid());
#else
  const long pid = 0;
#endif
  const std::string tmp = detail::cat(path, ".tmp.", pid, ".", counter++);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  require<data_error>(f != nullptr, "cannot create '", tmp, "' (temporary file for '", path,
                      "'): ", std::strerror(errno));
  bool ok = n == 0 || std::fwrite(data, 1, n, f) == n;
  int err = ok ? 0 : errno;
  if (ok && std::fflush(f) != 0) ok = false, err = errno;
#if SHATTER_IO_POSIX
  if (ok && ::fsync(::fileno(f)) != 0) ok = false, err = errno;
#endif
  if (std::fclose(f) != 0 && ok) ok = false, err = errno;
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) ok = false, err = errno;
  if (!ok) {
    std::remove(tmp.c_str());
    throw data_error(detail::cat("cannot write '", path, "': ", std::strerror(err)));
  }
#if SHATTER_IO_POSIX
  // Make the rename itself durable. Best effort: some file systems refuse fsync on directories.
  const int dir = ::open(detail::parent_dir(path).c_str(), O_RDONLY);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
#endif
}

}  // namespace shatter::io

#endif  // SHATTER_IO_ATOMIC_FILE_HPP
