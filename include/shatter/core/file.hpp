// shatter: opening input files that must be regular files (data sets, checkpoints).
#ifndef SHATTER_CORE_FILE_HPP
#define SHATTER_CORE_FILE_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define SHATTER_FILE_POSIX 1
#else
#include <cstdio>
#include <filesystem>
#define SHATTER_FILE_POSIX 0
#endif

namespace shatter::detail {

/// A file opened for reading that is known to be a regular file, closed on destruction.
/// Opening never blocks and never opens a device: the path is checked with stat() first (a FIFO
/// would block open() until a writer appears, a device may act on being opened), then opened
/// with O_NONBLOCK and checked again with fstat() (the path may have been replaced meanwhile).
/// When it cannot be used, is_open() is false and either irregular() describes what the path is
/// ("a directory", "a FIFO (named pipe)", ...) or error() holds the errno of the failure.
class regular_file {
 public:
  explicit regular_file(const std::string& path) {
#if SHATTER_FILE_POSIX
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      errno_ = errno;
      return;
    }
    if ((kind_ = kind_of(st.st_mode))) return;
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
      errno_ = errno;
      return;
    }
    if (::fstat(fd_, &st) != 0 || (kind_ = kind_of(st.st_mode))) {
      if (!kind_) errno_ = errno;
      close();
      return;
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
#else
    std::error_code ec;
    const auto s = std::filesystem::status(path, ec);
    if (ec) {
      errno_ = ec.value();
      return;
    }
    if (s.type() != std::filesystem::file_type::regular) {
      kind_ = s.type() == std::filesystem::file_type::directory ? "a directory" : "a special file";
      return;
    }
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) {
      errno_ = errno;
      return;
    }
    size_ = static_cast<std::uint64_t>(std::filesystem::file_size(path, ec));
#endif
  }
  ~regular_file() {
    close();
  }
  regular_file(const regular_file&) = delete;
  regular_file& operator=(const regular_file&) = delete;

  /// Whether the file is open (a regular file that could be opened for reading).
  bool is_open() const {
#if SHATTER_FILE_POSIX
    return fd_ >= 0;
#else
    return f_ != nullptr;
#endif
  }
  /// What the path is when it exists but is no regular file ("a directory", ...), else nullptr.
  const char* irregular() const {
    return kind_;
  }
  /// The errno of a failed stat, open or read (0 if none).
  int error() const {
    return errno_;
  }
  /// The file's size in bytes when it was opened.
  std::uint64_t size() const {
    return size_;
  }

  /// Reads up to n bytes at the current position; returns how many were read (fewer than n only
  /// at the end of the file). On a read error returns what was read and sets error().
  std::size_t read(void* dst, std::size_t n) {
    std::size_t got = 0;
    char* out = static_cast<char*>(dst);
    while (got < n && is_open()) {
#if SHATTER_FILE_POSIX
      const ::ssize_t r = ::read(fd_, out + got, n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) errno_ = errno;
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
#else
      const std::size_t r = std::fread(out + got, 1, n - got, f_);
      got += r;
      if (r == 0) {
        if (std::ferror(f_)) errno_ = EIO;
        break;
      }
#endif
    }
    return got;
  }

  /// The rest of the file (read in chunks, so a file that grew since it was opened is read
  /// whole). error() is set on a read error.
  std::vector<unsigned char> read_all() {
    std::vector<unsigned char> bytes;
    bytes.reserve(static_cast<std::size_t>(size_));
    unsigned char chunk[1 << 16];
    for (;;) {
      const std::size_t got = read(chunk, sizeof chunk);
      bytes.insert(bytes.end(), chunk, chunk + got);
      if (got < sizeof chunk) break;
    }
    return bytes;
  }

 private:
#if SHATTER_FILE_POSIX
  static const char* kind_of(mode_t m) {
    if (S_ISREG(m)) return nullptr;
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "a special file";
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
#else
  void close() {
    if (f_) std::fclose(f_);
    f_ = nullptr;
  }
  std::FILE* f_ = nullptr;
#endif
  const char* kind_ = nullptr;
  int errno_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace shatter::detail

#endif  // SHATTER_CORE_FILE_HPP
